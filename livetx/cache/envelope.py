"""What a made segment is kept and sent as: sealed (livetx/cache/seal.py), and for an AES-128
rendition then encrypted whole, so storage, the local tier, the hot tier and every CDN hold
the very bytes a player gets, the same for every viewer of a title version.

An envelope closes a segment's bytes as made into the bytes stored, and tells whether stored
bytes are whole. The seal of an AES-128 segment is inside the encryption (a player decrypts
the whole file, so nothing may follow the ciphertext): checking it decrypts first, once per
copy read (seal checks are remembered per file, and the hot tier checks once). A copy that is
cut, padded, changed or encrypted under another key fails. A `sample-aes` segment leaves the
pool already encrypted (its samples, livetx/crypto/cbcs.py), in boxes a seal follows as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livetx.cache.seal import is_sealed, seal
from livetx.crypto import aes
from livetx.crypto.keys import KeySource
from livetx.media.model import INIT, SegmentPart
from livetx.titles import Rendition


class Envelope:
    """Clear segments: sealed."""

    def close(self, made: bytes) -> bytes:
        return seal(made)

    def holds(self, stored: bytes) -> bool:
        return is_sealed(stored)


CLEAR = Envelope()


@dataclass(frozen=True)
class Aes128(Envelope):
    """Sealed, then AES-128-CBC encrypted whole with `key` and `iv` (RFC 8216 4.3.2.4)."""

    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)

    def close(self, made: bytes) -> bytes:
        return aes.encrypt(self.key, self.iv, seal(made))

    def holds(self, stored: bytes) -> bool:
        clear = aes.decrypt(self.key, self.iv, stored)
        return clear is not None and is_sealed(clear)

    def open(self, stored: bytes) -> bytes | None:
        """The sealed clear bytes (None: not these key's, or damaged)."""
        return aes.decrypt(self.key, self.iv, stored)


def envelope_for(rendition: Rendition, index: SegmentPart, keys: KeySource) -> Envelope:
    """The envelope of one segment of `rendition`: AES-128 media segments under their period's
    key with the IV of their sequence number (livetx/crypto/aes.py); everything else clear (an
    init segment, which holds no media, stays clear: EXT-X-MAP precedes every EXT-X-KEY)."""
    encryption = rendition.encryption
    if encryption is None or encryption.method != "aes-128" or index == INIT:
        return CLEAR
    return Aes128(keys.key(encryption.key_name(index)).key, aes.sequence_iv(index))
