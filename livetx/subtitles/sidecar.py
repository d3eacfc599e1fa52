"""A sidecar file's bytes -> the track's cleaned cues, or SubtitleUnreadable naming the track.

The format is the file's kind (`srt`, `vtt`, `ass`, `ssa`, from its name) or, when unknown,
what the text looks like. Nothing but SubtitleUnreadable (or SubtitleTooLarge) leaves here:
the parsers only slice strings, and every result goes through `cues.normalise`.
"""

from __future__ import annotations

from collections.abc import Callable

from livetx.errors import SubtitleUnreadable
from livetx.subtitles import ass, srt, vtt
from livetx.subtitles.cues import Cue, normalise
from livetx.subtitles.text import decode

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
