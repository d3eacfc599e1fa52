"""Content keys: derived, never stored. Pure: no aiohttp, no av, no storage.

Each title version (profile, source key, source ETag) gets its content keys from a master key
(`[encryption]`, held like the signing keys) through HKDF-SHA256 (RFC 5869): the input key is
the master secret, the info names the title version and the key period. Every origin derives
the same key from the same facts, so nothing per title has to be written anywhere, and a
replaced source (a new ETag) gets new keys.

A title can change keys every `key_rotation` segments: segment n uses the key of period
`n // key_rotation` (period 0 for the whole title when it does not rotate).

A key is named by its master key id, the title version tag (a hash of the title's identity,
so that a key URL of a replaced source is refused rather than answered with another key) and
the period. The 16-byte key id a CMAF `tenc` box carries (`default_KID`) follows from the same
facts by another HKDF info: it reveals nothing about the key.

The seam for a key server: `KeySource` is what the rest of livetx asks for a key. `Derived`
is livetx's own; a SPEKE-style client would implement the same two methods, fetching (and
caching) keys by the same names instead of deriving them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from livetx.lru import Lru

KEY_BYTES = 16  # AES-128
KEYS_KEPT = 4096  # derived keys kept (one HKDF is ~10 us, but a playing title asks again and again)
VERSION_HEX = 12  # hex digits of a title version tag
_INFO = b"livetx-content-key-v1"
_KID_INFO = b"livetx-key-id-v1"
_IV_INFO = b"livetx-constant-iv-v1"


def version_tag(profile: str, source_key: str, etag: str) -> str:
    """The title version a key belongs to, as it appears in key URLs: 12 hex digits."""
    text = "\n".join(("livetx-title", profile, source_key, etag))
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_HEX]


def period_of(index: int, rotation: int) -> int:
    """The key period of segment `index`: every `rotation` segments a new key (0: never)."""
    return index // rotation if rotation > 0 else 0


@dataclass(frozen=True)
class KeyName:
    """Which content key: master key id, title version tag, period."""

    kid: str
    version: str
    period: int


@dataclass(frozen=True)
class ContentKey:
    name: KeyName
    key: bytes = field(repr=False)  # the AES-128 key: never shown
    key_id: bytes  # 16 bytes: a CMAF default_KID (tenc, pssh), derived apart from the key
    constant_iv: bytes = field(repr=False)  # 16 bytes: the `cbcs` constant IV of this key

    def __repr__(self) -> str:
        return f"ContentKey({self.name!r}, key_id={self.key_id.hex()})"


class KeySource(Protocol):
    """Where content keys come from (a key server would be another implementation)."""

    @property
    def kids(self) -> tuple[str, ...]:
        """The master key ids whose keys can be had (configured, or known to the key server)."""
        ...

    def knows(self, kid: str) -> bool:
        """Whether keys of master key `kid` can be had."""
        ...

    def key(self, name: KeyName) -> ContentKey:
        """The content key `name` (KeyError for an unknown master key id)."""
        ...


def _hkdf(secret: bytes, info: bytes, name: KeyName) -> bytes:
    full = b"\n".join((info, name.kid.encode(), name.version.encode(), str(name.period).encode()))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=full).derive(secret)


class Derived:
    """Content keys derived from configured master keys (kid -> secret)."""

    def __init__(self, masters: dict[str, bytes]) -> None:
        self._masters = dict(masters)
        self._kids = tuple(self._masters)  # (asked on every segment request)
        self._kept: Lru[KeyName, ContentKey] = Lru(KEYS_KEPT)

    @property
    def kids(self) -> tuple[str, ...]:
        return self._kids

    def knows(self, kid: str) -> bool:
        return kid in self._masters

    def key(self, name: KeyName) -> ContentKey:
        found = self._kept.get(name)
        if found is None:
            secret = self._masters[name.kid]
            found = ContentKey(name, _hkdf(secret, _INFO, name), _hkdf(secret, _KID_INFO, name), _hkdf(secret, _IV_INFO, name))
            self._kept.put(name, found)
        return found

    def __repr__(self) -> str:
        return f"Derived(kids={sorted(self._masters)!r})"
