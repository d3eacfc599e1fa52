"""Which cached files have had their seal checked: each version of a file is read once.

Invariants:
- `_verified` holds (path, version) pairs whose seal held when read; a version is a file's
  size and mtime (`file_version`), so a rewritten file is a new version and is read again.
- At most `VERIFIED_FILES` pairs are kept, the first verified forgotten first
  (a forgotten file is simply read and checked again).
- Nothing here touches the disk on the event loop: stat, read and hash run in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from livetx.cache.seal import is_sealed
from livetx.lru import Lru

VERIFIED_FILES = 65536  # files whose seal was checked (by path, size and mtime)


class SealChecks:
    def __init__(self, capacity: int = VERIFIED_FILES) -> None:
        self.capacity = capacity
        self._verified: Lru[tuple[str, str], None] = Lru(capacity)  # (path, version) whose seal held

    async def sealed(self, path: Path, version: str | None = None, holds: Callable[[bytes], bool] = is_sealed) -> bool:
        """False only if the file is there and its seal does not hold. `version` is the
        file's, if the caller knows it (a local store's ETag); else it is looked up. `holds`:
        the check of its bytes (an encrypted segment's decrypts first, livetx/cache/envelope.py)."""
        if version is None:
            version = await asyncio.to_thread(file_version, path)
            if version is None:
                return True  # gone meanwhile: the next lookup misses
        if (str(path), version) in self._verified:
            return True  # checked before
        held = await asyncio.to_thread(_read_sealed, path, holds)
        if held is None:
            return True  # gone meanwhile
        if not held:
            return False
        self._remember(path, version)
        return True

    async def remember(self, path: Path) -> None:
        """A file just written from sealed bytes: no need to read it back."""
        version = await asyncio.to_thread(file_version, path)
        if version is not None:
            self._remember(path, version)

    def _remember(self, path: Path, version: str) -> None:
        if (str(path), version) not in self._verified:  # first verified, first forgotten
            self._verified.put((str(path), version), None)


def _read_sealed(path: Path, holds: Callable[[bytes], bool]) -> bool | None:
    """Whether the file's seal holds (None: the file is gone)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return holds(data)


def file_version(path: Path) -> str | None:
    """What changes whenever a file is rewritten: its size and mtime (None: it is gone)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"
