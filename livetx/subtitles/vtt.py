"""WebVTT (.vtt) text -> cues.

Blocks separated by blank lines. The first block is the header (`WEBVTT` and anything after
it, such as an X-TIMESTAMP-MAP, which a sidecar has no use for); `NOTE`, `STYLE` and `REGION`
blocks are skipped; a cue block has a `-->` line as its first or second line (after an
identifier), its text follows. A file without the `WEBVTT` line is read all the same (its
first block may then be a cue). Cue settings are kept as far as segments can carry them;
text keeps `<i>`, `<b>`, `<u>`, decodes character references, and drops every other tag
(classes, voices, ruby, karaoke timestamps) but its text.
"""

from __future__ import annotations

from livetx.subtitles.cues import Cue, assemble, clean_settings, markup_pieces, timing

_SKIPPED = ("NOTE", "STYLE", "REGION")


def parse(text: str) -> list[Cue]:
    """Every cue of the file whose times parse, in file order (not yet normalised)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cues: list[Cue] = []
    blocks = _blocks(text)
    if blocks and blocks[0][0].startswith("WEBVTT"):
        blocks = blocks[1:]
    for block in blocks:
        first = block[0]
        if first.split(" ", 1)[0].split("\t", 1)[0] in _SKIPPED and "-->" not in first:
            continue
        for at, line in enumerate(block[:2]):
            found = timing(line) if "-->" in line else None
            if found is not None:
                start, end, rest = found
                body = "\n".join(block[at + 1 :])
                cues.append(Cue(start, end, assemble(markup_pieces(body, entities=True)), clean_settings(rest)))
                break
    return cues


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks
