"""Display rotation of an MP4/MOV video track, read from its track header without decoding.

FFmpeg applies the container's display matrix to decoded frames (PyAV: `VideoFrame.rotation`),
but PyAV exposes no stream-level reader for it, and a playlist must know the display size
before any frame is decoded. Phones write the rotation into the ISO-BMFF `tkhd` matrix, so
this walks moov -> trak -> (tkhd, mdia/hdlr) and reads the first video track's matrix.
Other containers carry no rotation that FFmpeg applies, and give 0.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from typing import Protocol

MOOV_LIMIT = 64 << 20  # a moov box larger than this is not read (rotation taken as 0)
TOP_LEVEL_LIMIT = 4096  # boxes walked at the top level before giving up


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes | None: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def _read(f: Readable, size: int) -> bytes:
    return f.read(size) or b""


def _read_moov(f: Readable) -> bytes | None:
    """The payload of the top-level moov box, seeking past everything else (mdat can be huge)."""
    f.seek(0)
    for _ in range(TOP_LEVEL_LIMIT):
        head = _read(f, 8)
        if len(head) < 8:
            return None
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", _read(f, 8))
            header = 16
        if kind == b"moov":
            if size == 0 or size - header > MOOV_LIMIT:
                return None
            return _read(f, size - header)
        if size < header:  # 0 (to end of file) or corrupt: nothing after it
            return None
        f.seek(size - header, 1)
    return None


def _matrix_rotation(tkhd: bytes) -> int:
    version = tkhd[0]
    matrix_at = 4 + (32 if version == 1 else 20) + 16  # fullbox header, times/ids, reserved/layer/volume
    if len(tkhd) < matrix_at + 36:
        return 0
    a, b = struct.unpack_from(">ii", tkhd, matrix_at)
    if a == 0 and b == 0:
        return 0
    # the matrix maps coded to display: its angle, counter-clockwise, as FFmpeg reports it
    degrees = -math.degrees(math.atan2(b, a))
    return round(degrees / 90) % 4 * 90


def display_rotation(f: Readable) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) to turn the coded picture to display it."""
    try:
        moov = _read_moov(f)
    except (OSError, struct.error, ValueError):
        return 0
    return moov_rotation(moov) if moov is not None else 0


def moov_rotation(moov: bytes) -> int:
    """`display_rotation` of a moov payload already read (the probe reads it once for rotation and colour)."""
    for kind, lo, hi in _boxes(moov):
        if kind != b"trak":
            continue
        tkhd, handler = _track(moov, lo, hi)
        if handler == b"vide" and tkhd is not None:
            return _matrix_rotation(tkhd)
    return 0


def read_moov(f: Readable) -> bytes | None:
    """The top-level moov payload of an MP4/MOV file (None: none, too large, or unreadable)."""
    try:
        return _read_moov(f)
    except (OSError, struct.error, ValueError):
        return None


def _track(moov: bytes, lo: int, hi: int) -> tuple[bytes | None, bytes | None]:
    """The tkhd payload and the mdia/hdlr handler type of the trak box moov[lo:hi] (None: absent)."""
    tkhd = handler = None
    for sub, s_lo, s_hi in _boxes(moov, lo, hi):
        if sub == b"tkhd":
            tkhd = moov[s_lo:s_hi]
        elif sub == b"mdia":
            handler = _handler(moov, s_lo, s_hi) or handler
    return tkhd, handler


def _handler(moov: bytes, lo: int, hi: int) -> bytes | None:
    """The handler type (b"vide", b"soun", ...) in the mdia box moov[lo:hi] (None: no hdlr); the last one wins."""
    handler = None
    for leaf, l_lo, l_hi in _boxes(moov, lo, hi):
        if leaf == b"hdlr" and l_hi - l_lo >= 12:
            handler = moov[l_lo + 8 : l_lo + 12]
    return handler
