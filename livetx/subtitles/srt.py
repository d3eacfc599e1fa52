"""SubRip (.srt) text -> cues.

Blocks separated by blank lines; in each, the first `start --> end` line opens a cue (the
counter line before it is optional and ignored) and the lines after it are its text, up to
the next blank line or the next timing line. A block with a bad time is dropped alone. Text
keeps `<i>`, `<b>`, `<u>` spans; `<font>` and other tags are dropped, `&` is literal. ASS-style
`{\\an8}` tags, common in SRT, go through the ASS override reader.
"""

from __future__ import annotations

from livetx.subtitles import ass
from livetx.subtitles.cues import Cue, assemble, markup_pieces, timing


def parse(text: str) -> list[Cue]:
    """Every cue of the file whose times parse, in file order (not yet normalised)."""
    cues: list[Cue] = []
    current: tuple[int, int] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            cues.append(_cue(current[0], current[1], lines))

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        found = timing(line) if "-->" in line else None
        if found is not None:
            close()
            current, lines = (found[0], found[1]), []
        elif not line.strip():
            close()
            current, lines = None, []
        elif current is not None:
            lines.append(line)
    close()
    return cues


def _cue(start: int, end: int, lines: list[str]) -> Cue:
    body = "\n".join(lines)
    if "{" in body:  # {\an8}, {\i1}: ASS overrides in SRT, as many tools write them
        text, settings = ass.dialogue_text(body.replace("\n", "\\N"), markup=True)
        return Cue(start, end, text, settings)
    return Cue(start, end, assemble(markup_pieces(body, entities=False)))
