"""Whole-segment AES-128 (RFC 8216 4.3.2.4, METHOD=AES-128): AES-128-CBC with PKCS7 padding over
the whole segment file. Pure.

The IV is not written in the playlist: it follows from the segment's media sequence number,
as the RFC allows when the EXT-X-KEY tag has no IV attribute (the number as a 128-bit
big-endian integer). livetx's media sequence starts at 0, so segment n's IV is n: unique under
each key, known from the segment's index alone (a segment is made alone, in any order), and one
EXT-X-KEY tag covers a whole key period instead of one tag per segment. CBC needs IVs that an
attacker cannot choose plaintext against; a VOD segment's plaintext is fixed before its IV is
known, so a predictable IV costs nothing here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7

BLOCK = 16


def sequence_iv(sequence: int) -> bytes:
    """The IV of the segment with media sequence number `sequence` (RFC 8216 5.2)."""
    return sequence.to_bytes(BLOCK, "big")


def encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    padder = PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def decrypt(key: bytes, iv: bytes, data: bytes) -> bytes | None:
    """The plaintext, or None for bytes that are not a whole number of blocks or whose padding
    is wrong (a damaged or cut copy, or another key)."""
    if not data or len(data) % BLOCK:
        return None
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None
