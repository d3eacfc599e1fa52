"""A local disk tier in front of remote output storage, bounded in bytes, least recently used
evicted first. Only a cache: losing it costs a storage GET, never correctness.

Files are written through a temp file and a rename, so a reader never sees half a segment.
The index is rebuilt from the directory at start (oldest access first).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from livetx.lru import Lru
from livetx.storage.local import LocalStorage


class LocalTier:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.store = LocalStorage(root)
        self.root = self.store.root
        self.max_bytes = max_bytes
        self.evictions = 0
        self._index: Lru[str, int] = Lru(max_bytes, weigh=lambda size: size)  # key -> size

    def scan(self) -> None:
        """Index what an earlier run left behind."""
        found = []
        if self.root.is_dir():
            for folder, _, names in os.walk(self.root):
                for name in names:
                    path = Path(folder) / name
                    if name.startswith(".tmp-"):
                        path.unlink(missing_ok=True)  # a write that never finished
                        continue
                    st = path.stat()
                    found.append((st.st_atime, path.relative_to(self.root).as_posix(), st.st_size))
        victims = []
        for _, key, size in sorted(found):  # oldest access first
            victims += self._victims(self._index.put(key, size))
        if self.bytes > self.max_bytes:  # the newest file alone (the index keeps it) is too big
            dropped = self._index.items()
            self._index.clear()
            victims += self._victims(dropped)
        self._unlink(victims)

    def path(self, key: str) -> Path | None:
        """The file for `key` if the tier holds it (and mark it recently used)."""
        if key not in self._index:
            return None
        path = self.store.local_path(key)
        if path is None or not path.is_file():
            self._index.pop(key)
            return None
        self._index.get(key)  # now the most recent
        return path

    async def put(self, key: str, data: bytes) -> Path | None:
        if len(data) > self.max_bytes:
            return None
        await self.store.write(key, data)
        victims = self._victims(self._index.put(key, len(data)))  # the index changes here, on the event loop, never in a thread
        if victims:
            await asyncio.to_thread(self._unlink, victims)
        return self.path(key)

    def _victims(self, evicted: list[tuple[str, int]]) -> list[Path]:
        self.evictions += len(evicted)
        return [path for key, _ in evicted if (path := self.store.local_path(key)) is not None]

    @staticmethod
    def _unlink(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)  # a response still streaming it keeps its open file

    @property
    def bytes(self) -> int:  # (last in the class: above, `bytes` is the type)
        return self._index.weight
