"""The Cue model, cue text made safe for WebVTT, and the cleaning every track goes through.

Times are whole milliseconds of title time: the precision of SRT and WebVTT (ASS has
centiseconds), and the precision a WebVTT segment writes, so a parsed cue is exact and
comparisons stay integer. A sidecar's times are already title time (players place them from
the start of playback); an embedded cue's source time becomes title time with `from_seconds`
after subtracting the title's origin.

Cue text is stored ready for a WebVTT cue payload: `&`, `<` and `>` escaped (which also
breaks any `-->`), no control character, no blank line (a blank line would end the cue), and
no markup but balanced `<i>`, `<b>` and `<u>` spans. Cue settings are kept only as WebVTT
writes them (`line`, `position`, `size`, `align`, `vertical`), values checked; `region` is
dropped, since segments carry no REGION block.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

STYLE_TAGS = ("i", "b", "u")  # the spans kept; every other tag is dropped, its text kept


@dataclass(frozen=True)
class Tag:
    """An opening or closing style span (`<i>` / `</i>`)."""

    name: str  # one of STYLE_TAGS
    opening: bool


Piece = str | Tag  # cue text as parsed: plain text (not escaped) and style spans


@dataclass(frozen=True)
class Cue:
    """One cue: shown over title time [start, end) milliseconds."""

    start: int
    end: int
    text: str  # WebVTT cue payload: escaped, balanced i/b/u spans, no blank line
    settings: str = ""  # WebVTT cue settings, space-separated (`line:0 align:left`), or ""


def from_seconds(start: Fraction, end: Fraction, text: str, settings: str = "") -> Cue:
    """A cue from exact title times in seconds, at the nearest millisecond."""
    return Cue(round(start * 1000), round(end * 1000), text, settings)


# --- text ---------------------------------------------------------------------------

# C0 controls but tab and newline, DEL, C1 controls, BOM / zero-width no-break space, and
# the Unicode line and paragraph separators (a line break WebVTT parsers do not see as one)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u2028\u2029\ufff9-\ufffb]")
_SPACES = re.compile("[ \t]+")
# an HTML-like tag, as SRT and WebVTT write them: <i>, </i>, <font color="red">, <c.yellow>,
# <v Bob>, <00:00:01.000>; a `<` not followed by a letter, `/` or digit is text
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*|[0-9][0-9:.]*)([^<>\n]*)>")


def clean_text(text: str) -> str:
    """Plain text without control characters, with tabs as spaces and \\r\\n as \\n."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _CONTROL.sub("", text)


def escape(text: str) -> str:
    """Plain text as a WebVTT cue payload: `&`, `<`, `>` escaped (so no `-->` survives)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def assemble(pieces: Iterable[Piece]) -> str:
    """Cue text from plain text and style spans: text escaped, spans balanced (a closing span
    that is not open is dropped, an open one closed at the end), blank lines and trailing
    spaces removed. "" when nothing visible is left."""
    out: list[str] = []
    open_tags: list[str] = []
    visible = False
    for piece in pieces:
        if isinstance(piece, Tag):
            if piece.opening and piece.name not in open_tags:
                open_tags.append(piece.name)
                out.append(f"<{piece.name}>")
            elif not piece.opening and piece.name in open_tags:
                while open_tags:  # close the spans opened inside it too
                    name = open_tags.pop()
                    out.append(f"</{name}>")
                    if name == piece.name:
                        break
            continue
        text = clean_text(piece)
        visible = visible or bool(text.strip())
        out.append(escape(text))
    if not visible:
        return ""
    out.extend(f"</{name}>" for name in reversed(open_tags))
    lines: list[str] = []
    carry = ""  # a line of spans only (`<i>` alone) joins the next line, so spans stay balanced
    for line in "".join(out).split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if not _SPANS.sub("", line).strip():
            carry += line
            continue
        lines.append(carry + line)
        carry = ""
    lines[-1] += carry
    return "\n".join(lines)


_SPANS = re.compile(r"</?[ibu]>")


def markup_pieces(text: str, entities: bool) -> list[Piece]:
    """Split SRT or WebVTT cue text into plain text and style spans. `entities`: the text is
    WebVTT, whose `&amp;`-style references are decoded (SRT's `&` is literal). Tags other than
    i/b/u (`<font>`, `<c.x>`, `<v Bob>`, timestamps, ruby) are dropped, their text kept."""
    pieces: list[Piece] = []
    position = 0
    for match in _TAG.finditer(text):
        plain = text[position : match.start()]
        pieces.append(html.unescape(plain) if entities else plain)
        name = match.group(2).lower()
        if name in STYLE_TAGS:
            pieces.append(Tag(name, opening=not match.group(1)))
        position = match.end()
    rest = text[position:]
    pieces.append(html.unescape(rest) if entities else rest)
    return pieces


# --- settings -----------------------------------------------------------------------

_SETTING_VALUES = {
    "vertical": re.compile(r"rl|lr"),
    "line": re.compile(r"(?:-?\d{1,4}|\d{1,3}(?:\.\d{1,3})?%)(?:,(?:start|center|end))?"),
    "position": re.compile(r"\d{1,3}(?:\.\d{1,3})?%(?:,(?:line-left|center|line-right|auto))?"),
    "size": re.compile(r"\d{1,3}(?:\.\d{1,3})?%"),
    "align": re.compile(r"start|center|end|left|right"),
}


def clean_settings(raw: str) -> str:
    """The WebVTT cue settings of `raw` that segments can carry, each name once, in order."""
    kept: dict[str, str] = {}
    for token in raw.split():
        name, colon, value = token.partition(":")
        pattern = _SETTING_VALUES.get(name)
        if colon and pattern is not None and name not in kept and pattern.fullmatch(value):
            kept[name] = value
    return " ".join(f"{name}:{value}" for name, value in kept.items())


# --- a track's cues -----------------------------------------------------------------


def normalise(cues: Iterable[Cue]) -> tuple[Cue, ...]:
    """A track's cues as served: negative, empty or reversed times dropped, cues without
    visible text dropped, overlaps kept (WebVTT shows overlapping cues together), sorted by
    start then end (stable: equal times keep the file's order)."""
    kept = [cue for cue in cues if 0 <= cue.start < cue.end and cue.text]
    return tuple(sorted(kept, key=lambda cue: (cue.start, cue.end)))


# --- times --------------------------------------------------------------------------

# [hours:]minutes:seconds[(,|.)fraction], as SRT and WebVTT write it (leniently: SRT files
# in the wild use `.` and one or two digit fields); hours bounded so a time stays a small int
CLOCK = r"(?:(\d{1,5}):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"\s*{CLOCK}\s*-->\s*{CLOCK}(.*)")


def clock_ms(hours: str | None, minutes: str, seconds: str, fraction: str | None) -> int | None:
    """Milliseconds of a matched clock; None when minutes or seconds are 60 or more.
    `fraction` is decimal: "5" is 500 ms."""
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    ms = int((fraction or "0").ljust(3, "0"))
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + ms


def timing(line: str) -> tuple[int, int, str] | None:
    """Start and end ms and the rest of a `start --> end [settings]` line; None when the
    line is no timing line or a time is invalid."""
    match = _TIMING.fullmatch(line)
    if match is None:
        return None
    start = clock_ms(*match.group(1, 2, 3, 4))
    end = clock_ms(*match.group(5, 6, 7, 8))
    if start is None or end is None:
        return None
    return start, end, match.group(9)


def timestamp(ms: int) -> str:
    """A WebVTT timestamp: hh:mm:ss.ttt (hours grow past two digits when needed)."""
    seconds, milli = divmod(ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}.{milli:03d}"
