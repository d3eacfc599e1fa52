"""A segment carries its own checksum, so a truncated or damaged copy is never served.

The seal is one MPEG-TS null packet (PID 0x1FFF, which every demuxer discards by the
standard) appended to the segment, holding a magic string and the SHA-256 of everything
before it. It travels with the object through any store and any copy (object storage, the
local tier, a CDN), and needs no metadata support from the backend. A copy whose last
packet is not a seal matching the bytes before it is corrupt: cut short, padded, or changed.
"""

from __future__ import annotations

import hashlib

TS_PACKET = 188
MAGIC = b"livetx-seal-v1\n"
# sync byte, PID 0x1FFF (null packet), payload only, continuity counter 0
_HEADER = b"\x47\x1f\xff\x10"
_PAYLOAD = TS_PACKET - len(_HEADER)


def seal(data: bytes) -> bytes:
    """The segment with its seal packet appended."""
    digest = hashlib.sha256(data).hexdigest().encode()
    payload = MAGIC + digest
    return data + _HEADER + payload + b"\xff" * (_PAYLOAD - len(payload))


def is_sealed(data: bytes) -> bool:
    """Whole TS packets, ending in a seal whose digest matches the bytes before it."""
    if len(data) < 2 * TS_PACKET or len(data) % TS_PACKET:
        return False
    body, trailer = data[:-TS_PACKET], data[-TS_PACKET:]
    if not trailer.startswith(_HEADER + MAGIC):
        return False
    digest = trailer[len(_HEADER) + len(MAGIC) : len(_HEADER) + len(MAGIC) + 64]
    return digest == hashlib.sha256(body).hexdigest().encode()
