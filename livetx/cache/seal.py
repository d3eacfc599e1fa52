"""A segment carries its own checksum, so a truncated or damaged copy is never served.

The seal holds a magic string and the SHA-256 of everything before it, appended as something
every reader skips by its format's own rules: after an MPEG-TS segment, one null packet (PID
0x1FFF, which every demuxer discards by the standard); after an fMP4 init or media segment,
one top-level `free` box (ISO/IEC 14496-12 8.1.2, ignored by every reader); after a WebVTT
segment (text starting `WEBVTT`), one comment block `NOTE livetx-seal-v1 <digest>` (a NOTE
block shows nothing, W3C WebVTT 4.1), after a blank line: the digest then covers the segment
up to that block, with the line breaks added to make the blank line. It travels with
the object through any store and any copy (object storage, the local tier, a CDN), and needs
no metadata support from the backend. A copy whose last packet or box is not a seal matching
the bytes before it is corrupt: cut short, padded, or changed.
"""

from __future__ import annotations

import hashlib

TS_PACKET = 188
MAGIC = b"livetx-seal-v1\n"
# sync byte, PID 0x1FFF (null packet), payload only, continuity counter 0
_HEADER = b"\x47\x1f\xff\x10"
_PAYLOAD = TS_PACKET - len(_HEADER)


# a `free` box: 32-bit size, type, then the magic string and the digest
_BOX = 8 + len(MAGIC) + 64
_BOX_HEADER = _BOX.to_bytes(4, "big") + b"free"

WEBVTT = b"WEBVTT"  # how a WebVTT segment starts (livetx writes no byte-order mark)
# a WebVTT comment block: "NOTE", the magic string's words, the digest, a line break
_NOTE = b"NOTE " + MAGIC.rstrip(b"\n") + b" "
_NOTE_BLOCK = len(_NOTE) + 64 + 1


def seal(data: bytes) -> bytes:
    """The segment with its seal appended: a TS packet after MPEG-TS (which starts with the
    sync byte 0x47), a NOTE block after WebVTT, a `free` box after fMP4 (which starts with a
    box's size, far below 0x47000000 and 0x57454256, "WEBV")."""
    if data.startswith(WEBVTT):
        return _seal_text(data)
    digest = hashlib.sha256(data).hexdigest().encode()
    payload = MAGIC + digest
    if not data.startswith(b"\x47"):
        return data + _BOX_HEADER + payload
    return data + _HEADER + payload + b"\xff" * (_PAYLOAD - len(payload))


def is_sealed(data: bytes) -> bool:
    """Whole TS packets ending in a seal packet, or boxes ending in a seal box, whose digest
    matches the bytes before it, or WebVTT ending in a seal block after a blank line."""
    if data.startswith(WEBVTT):
        return _text_sealed(data)
    if not data.startswith(b"\x47"):
        return _box_sealed(data)
    if len(data) < 2 * TS_PACKET or len(data) % TS_PACKET:
        return False
    body, trailer = data[:-TS_PACKET], data[-TS_PACKET:]
    if not trailer.startswith(_HEADER + MAGIC):
        return False
    digest = trailer[len(_HEADER) + len(MAGIC) : len(_HEADER) + len(MAGIC) + 64]
    return digest == hashlib.sha256(body).hexdigest().encode()


def _box_sealed(data: bytes) -> bool:
    if len(data) <= _BOX:
        return False
    body, trailer = data[:-_BOX], data[-_BOX:]
    if not trailer.startswith(_BOX_HEADER + MAGIC):
        return False
    return trailer[len(_BOX_HEADER) + len(MAGIC) :] == hashlib.sha256(body).hexdigest().encode()


def _seal_text(data: bytes) -> bytes:
    """WebVTT, a blank line (the line breaks it lacks added), then the seal block."""
    breaks = len(data) - len(data.rstrip(b"\n"))  # "\r\n" ends a line too: "\r\n\n" is a blank line
    body = data + b"\n" * max(0, 2 - breaks)
    return body + _NOTE + hashlib.sha256(body).hexdigest().encode() + b"\n"


def _text_sealed(data: bytes) -> bool:
    body, trailer = data[:-_NOTE_BLOCK], data[-_NOTE_BLOCK:]
    if len(data) <= _NOTE_BLOCK or not body.endswith(b"\n\n") or not trailer.startswith(_NOTE) or not trailer.endswith(b"\n"):
        return False
    return trailer[len(_NOTE) : -1] == hashlib.sha256(body).hexdigest().encode()


# ---- pictures ---------------------------------------------------------------------------
# A picture (JPEG, WebP, PNG) is sealed with the magic string and the digest appended after its
# last structure: after JPEG's EOI marker, PNG's IEND chunk, or WebP's RIFF chunk (whose size
# says where it ends), where decoders stop reading (Pillow and FFmpeg decode the sealed bytes:
# tests/test_pictures.py checks both). Segments keep their own seals above; a picture's key
# says it is one, so the two never meet.
_PICTURE_SEAL = len(MAGIC) + 64


def seal_picture(data: bytes) -> bytes:
    return data + MAGIC + hashlib.sha256(data).hexdigest().encode()


def picture_sealed(data: bytes) -> bool:
    """Bytes ending in a picture seal whose digest matches the bytes before it."""
    if len(data) <= _PICTURE_SEAL:
        return False
    body, trailer = data[:-_PICTURE_SEAL], data[-_PICTURE_SEAL:]
    return trailer.startswith(MAGIC) and trailer[len(MAGIC) :] == hashlib.sha256(body).hexdigest().encode()
