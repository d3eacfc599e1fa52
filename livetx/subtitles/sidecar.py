"""A sidecar file's bytes -> the track's cleaned cues, or SubtitleUnreadable naming the track.

The format is the file's kind (`srt`, `vtt`, `ass`, `ssa`, from its name) or, when unknown,
what the text looks like. Nothing but SubtitleUnreadable (or SubtitleTooLarge) leaves here:
the parsers only slice strings, and every result goes through `cues.normalise`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from livetx.errors import SubtitleUnreadable
from livetx.subtitles import ass, srt, vtt
from livetx.subtitles.cues import Cue, normalise
from livetx.subtitles.text import decode


@dataclass(frozen=True)
class SidecarName:
    """What a sidecar's file name says about its track (`film.forced.en.srt`)."""

    language: str | None  # as written in the name (`en`, `pt-BR`, `fre`); None: none given
    forced: bool = False
    hearing_impaired: bool = False  # `sdh`, `cc`, `hi`
    default: bool = False
    label: str | None = None  # any other tag: the rendition's NAME
    kind: str = "srt"  # the format from the suffix: srt, vtt, ass, ssa


@dataclass(frozen=True)
class Sidecar:
    """A sidecar subtitle file of a source (found next to it, or named by an IMM request), read
    and parsed at planning time: its cues, or why it is left out of the master."""

    key: str
    etag: str  # part of the title's identity: a changed sidecar replans the title
    name: SidecarName
    cues: tuple[Cue, ...] = ()
    error: str | None = None  # SubtitleUnreadable / SubtitleTooLarge message: listed in the title API, not played


PARSERS: dict[str, Callable[[str], list[Cue]]] = {"srt": srt.parse, "vtt": vtt.parse, "ass": ass.parse, "ssa": ass.parse}


def sniff(text: str) -> str:
    """The format a sidecar's text looks like: vtt, ass or srt (the lenient default)."""
    head = text.lstrip("\ufeff \t\r\n")[:4096]
    if head.startswith("WEBVTT"):
        return "vtt"
    lowered = head.lower()
    if "[script info]" in lowered or "[events]" in lowered:
        return "ass"
    return "srt"


def parse(data: bytes, track: str, kind: str | None = None) -> tuple[Cue, ...]:
    """The cleaned cues of sidecar `data`. `track` names it in errors (a key, or
    `SourceSubtitles[0].URI`); `kind` is its format from its name, None to sniff it."""
    text = decode(data, track)
    parser = PARSERS.get((kind or "").lower()) or PARSERS[sniff(text)]
    cues = normalise(parser(text))
    if not cues:
        raise SubtitleUnreadable.of(track, "no cue with valid times and text")
    return cues
