"""Sidecar bytes -> text: the size cap, then the encoding.

A byte order mark decides (UTF-8, UTF-16 LE or BE); without one the text is strict UTF-8, else
cp1252 (what Windows tools write for Western languages), else Latin-1, which decodes any bytes. Undecodable UTF-16 units become U+FFFD.
UTF-16 without a BOM is recognised by its NUL bytes (ASCII text in UTF-16 has one in every
other byte), since it would otherwise decode as Latin-1 garbage with NULs.
"""

from __future__ import annotations

import codecs

from livetx.errors import SubtitleTooLarge

MAX_SIDECAR_BYTES = 2 * 1024 * 1024  # a sidecar larger than this is refused before it is read

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),  # first: the UTF-8 mark does not start with a UTF-16 one
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def check_size(size: int, track: str) -> None:
    """Refuse a sidecar of `size` bytes beyond MAX_SIDECAR_BYTES (before reading it)."""
    if size > MAX_SIDECAR_BYTES:
        raise SubtitleTooLarge.of(track, f"{size} bytes, more than the {MAX_SIDECAR_BYTES} read")


def decode(data: bytes, track: str) -> str:
    """The text of a sidecar file (never fails but for its size: undecodable bytes of a
    UTF-16 file become U+FFFD, and single-byte text always decodes)."""
    check_size(len(data), track)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            if encoding == "utf-8":  # a UTF-8 mark on cp1252 text happens: the fallbacks below
                return _single_byte(body)
            return body.decode(encoding, errors="replace")  # an odd byte, a lone surrogate: U+FFFD
    guess = _utf16_without_bom(data)
    if guess is not None:
        try:
            return data.decode(guess)
        except UnicodeDecodeError:
            pass
    return _single_byte(data)


def _single_byte(data: bytes) -> str:
    """Strict UTF-8, else cp1252, else Latin-1 (which decodes any bytes)."""
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
