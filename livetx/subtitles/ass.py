"""ASS/SSA text -> cues, and ASS dialogue text -> WebVTT cue text.

A file: the `[Events]` section's `Format:` line names the fields (the v4+ order when absent);
each `Dialogue:` line is split into that many fields, the last (Text) keeping its commas.
`Comment:` lines and every other section are ignored. Times are `h:mm:ss.cc`.

Dialogue text (also what FFmpeg's decoder gives for SRT, WebVTT and mov_text tracks, read
from its events by `event_text`):
`{\\i1}`/`{\\b1}`/`{\\u1}` (and their `0` forms, `\\r`) become `<i>`/`<b>`/`<u>` spans; `\\N`
is a line break, `\\n` a space (a soft break), `\\h` a no-break space; `\\an1`..`\\an9` (and
SSA's `\\a`) become WebVTT settings: top rows `line:0`, middle rows `line:50%,center`, left
and right columns `align:left`/`align:right`; the bottom centre is WebVTT's default. Every
other override (`\\pos`, `\\move`, colours, fonts, karaoke, fades) is dropped; drawings
(`\\p1` up to `\\p0`) are dropped with their text.
"""

from __future__ import annotations

import re

from livetx.subtitles.cues import Cue, Piece, Tag, assemble, clock_ms, markup_pieces

DEFAULT_FORMAT: tuple[str, ...] = ("layer", "start", "end", "style", "name", "marginl", "marginr", "marginv", "effect", "text")
_CLOCK = re.compile(r"\s*(\d{1,5}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,3}))?\s*")
EVENT_FIELDS = 9  # of a decoded event: ReadOrder, Layer, Style, Name, MarginL, MarginR, MarginV, Effect, Text
_OVERRIDE = re.compile(r"\{([^{}]*)\}")
_NUMBER = re.compile(r"[0-9]{1,4}")  # an override tag's argument: ASCII digits only, short (str.isdigit takes "²")
_SPANS = {"i": "i", "b": "b", "u": "u"}
_SSA_ALIGN = {1: 1, 2: 2, 3: 3, 5: 7, 6: 8, 7: 9, 9: 4, 10: 5, 11: 6}  # SSA \a -> ASS \an


def parse(text: str) -> list[Cue]:
    """Every Dialogue line whose times parse, in file order (not yet normalised)."""
    cues: list[Cue] = []
    fields: tuple[str, ...] = DEFAULT_FORMAT
    in_events = False
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            in_events = line.lower() == "[events]"
            continue
        if not in_events:
            continue
        kind, colon, value = line.partition(":")
        kind = kind.strip().lower()
        if not colon:
            continue
        if kind == "format":
            names = tuple(name.strip().lower() for name in value.split(","))
            if {"start", "end", "text"} <= set(names) and names[-1] == "text":
                fields = names
        elif kind == "dialogue":
            cue = _dialogue(value, fields)
            if cue is not None:
                cues.append(cue)
    return cues


def _dialogue(value: str, fields: tuple[str, ...]) -> Cue | None:
    parts = value.lstrip().split(",", len(fields) - 1)
    if len(parts) != len(fields):
        return None
    row = dict(zip(fields, parts, strict=True))
    start, end = _clock(row["start"]), _clock(row["end"])
    if start is None or end is None:
        return None
    text, settings = dialogue_text(row["text"])
    return Cue(start, end, text, settings)


def _clock(value: str) -> int | None:
    match = _CLOCK.fullmatch(value)
    return None if match is None else clock_ms(*match.group(1, 2, 3, 4))


def dialogue_text(text: str, markup: bool = False) -> tuple[str, str]:
    """WebVTT cue text and settings of one ASS dialogue text. `markup`: the plain text may
    also hold SRT's `<i>`-style tags (SRT with ASS overrides)."""
    pieces: list[Piece] = []
    alignment: int | None = None
    drawing = False
    position = 0
    for match in _OVERRIDE.finditer(text):
        if not drawing:
            pieces.extend(_plain(text[position : match.start()], markup))
        position = match.end()
        for tag in match.group(1).split("\\")[1:]:
            tag = tag.strip()
            if tag.startswith("an") and _NUMBER.fullmatch(tag[2:]):
                number = int(tag[2:])
                if alignment is None and 1 <= number <= 9:
                    alignment = number
            elif tag.startswith("a") and _NUMBER.fullmatch(tag[1:]):
                if alignment is None:
                    alignment = _SSA_ALIGN.get(int(tag[1:]))
            elif tag.startswith("p") and _NUMBER.fullmatch(tag[1:]):
                drawing = int(tag[1:]) > 0
            elif tag.startswith("r"):  # \r, \r<style>: back to the style's defaults
                pieces.extend(Tag(name, opening=False) for name in _SPANS)
            elif tag[:1] in _SPANS and (len(tag) == 1 or _NUMBER.fullmatch(tag[1:])):
                weight = int(tag[1:] or 0)
                pieces.append(Tag(_SPANS[tag[0]], opening=weight == 1 or (tag[0] == "b" and weight >= 600)))
    if not drawing:
        pieces.extend(_plain(text[position:], markup))
    return assemble(pieces), _settings(alignment)


def event_text(event: str) -> tuple[str, str]:
    """WebVTT cue text and settings of one event as FFmpeg's decoders give it, whatever the
    track's codec (`AVSubtitleRect.ass`): `ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,
    Effect,Text`, without times (the packet carries them). ("", "") when there is no Text field."""
    fields = event.split(",", EVENT_FIELDS - 1)
    if len(fields) < EVENT_FIELDS:
        return "", ""
    return dialogue_text(fields[-1])


def _plain(text: str, markup: bool) -> list[Piece]:
    text = text.replace("\\N", "\n").replace("\\n", " ").replace("\\h", "\u00a0")
    return markup_pieces(text, entities=False) if markup else [text]


def _settings(alignment: int | None) -> str:
    if alignment is None:
        return ""
    settings = []
    if alignment >= 7:
        settings.append("line:0")
    elif alignment >= 4:
        settings.append("line:50%,center")
    column = (alignment - 1) % 3
    if column != 1:
        settings.append("align:left" if column == 0 else "align:right")
    return " ".join(settings)
