"""The storage interface: sources are read from it, segments and playlists written back to it.

Keys are "/"-separated relative names. `check_key` refuses any key with more than one
spelling or a way out of its root before a backend sees it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from livetx.errors import InvalidPath

MAX_KEY_BYTES = 1024


def check_key(key: str) -> str:
    """A storage key: relative, NFC, no empty/'.'/'..' segments, no backslash or control character."""
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidPath("key must be 1 to 1024 bytes")
    if key.startswith("/") or "\\" in key or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidPath("key must be relative, without backslashes or control characters")
    if unicodedata.normalize("NFC", key) != key:
        raise InvalidPath("key is not NFC-normalised")
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        raise InvalidPath("key has an empty, '.' or '..' segment")
    return key


def check_source_key(key: str) -> str:
    """A source key: a storage key none of whose segments is hidden (where livetx keeps its output)."""
    check_key(key)
    if any(seg.startswith(".") for seg in key.split("/")):
        raise InvalidPath("source key segments must not start with '.'")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # changes whenever the content does


class Storage(Protocol):
    """What livetx needs of a store. Backends: `local.LocalStorage` (more to come)."""

    async def stat(self, key: str) -> ObjectInfo | None: ...

    async def read(self, key: str) -> bytes: ...

    async def write(self, key: str, data: bytes) -> None:
        """Atomic: readers see the whole object or none of it."""

    async def delete(self, key: str) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for the object, when the backend has one (for sendfile)."""

    def media_url(self, key: str) -> str:
        """What a transcode worker opens to read the object (a path, or a URL with ranged reads)."""
