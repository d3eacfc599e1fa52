"""ISO-BMFF (MP4) top-level boxes, as far as fMP4 segments need them. Pure: bytes in, bytes out.

ISO/IEC 14496-12 4.2: a box is a 32-bit size (1: a 64-bit size follows the type; 0: to the
end of the file), a four-character type, then its body.
"""

from __future__ import annotations

import struct

INIT_BOXES = (b"ftyp", b"moov")  # what an init segment holds (CMAF 7.3.2.1)
MEDIA_BOXES = (b"styp", b"sidx", b"moof", b"mdat")  # what a media segment holds (CMAF 7.3.2.3)


def top_level(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each top-level box; ValueError for bytes that are not boxes."""
    out = []
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("a truncated box header")
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            if pos + 16 > len(data):
                raise ValueError("a truncated box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
        elif size == 0:
            size = len(data) - pos
        if size < 8 or pos + size > len(data):
            raise ValueError(f"a box {kind!r} of a size past the data")
        out.append((kind, pos, pos + size))
        pos += size
    return out


def split_fragment(data: bytes) -> tuple[bytes, bytes]:
    """A fragmented mp4 muxer's output as (init segment, media segment): `ftyp`+`moov`, and the
    fragment boxes after them; anything else (`free`, `mfra`) is left out."""
    boxes = top_level(data)
    init = b"".join(data[start:end] for kind, start, end in boxes if kind in INIT_BOXES)
    media = b"".join(data[start:end] for kind, start, end in boxes if kind in MEDIA_BOXES)
    return init, media
