"""Sidecar bytes -> text: the size cap, then the encoding.

A byte order mark decides (UTF-8, UTF-16 LE or BE); without one the text is strict UTF-8, else
cp1252 (what Windows tools write for Western languages), else Latin-1, which decodes any bytes.
UTF-16 without a BOM is recognised by its NUL bytes (ASCII text in UTF-16 has one in every
other byte), since it would otherwise decode as Latin-1 garbage with NULs.
"""

from __future__ import annotations

import codecs

from livetx.errors import SubtitleTooLarge, SubtitleUnreadable

MAX_SIDECAR_BYTES = 2 * 1024 * 1024  # a sidecar larger than this is refused before it is read

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def check_size(size: int, track: str) -> None:
    """Refuse a sidecar of `size` bytes beyond MAX_SIDECAR_BYTES (before reading it)."""
    if size > MAX_SIDECAR_BYTES:
        raise SubtitleTooLarge(track, f"{size} bytes, more than the {MAX_SIDECAR_BYTES} read")


def decode(data: bytes, track: str) -> str:
    """The text of a sidecar file; SubtitleUnreadable when it cannot be text."""
    check_size(len(data), track)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise SubtitleUnreadable(track, f"not valid {encoding.upper()} after its byte order mark") from None
    guess = _utf16_without_bom(data)
    if guess is not None:
        try:
            return data.decode(guess)
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 LE or BE when most even or odd bytes of the head are NUL and the others not."""
    head = data[:4096]
    if len(head) < 4 or len(head) % 2:
        return None
    even, odd = head[0::2], head[1::2]
    half = len(head) // 4
    if odd.count(0) > half and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > half and odd.count(0) == 0:
        return "utf-16-be"
    return None
