"""Which segment files a rendition has on local disk, for the status view: one listing of its
folder in a thread, shared by concurrent callers and reused for `LISTING_TTL` seconds.

Invariants:
- `_listings[(folder, prefix)]` is (when listed, indexes found); at most `LISTINGS` are kept,
  the least recently listed forgotten first.
- `_listing[(folder, prefix)]` is the one listing running for that folder and prefix, if any;
  it leaves when it finishes.
- Nothing here reads the disk on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from livetx.layout import SEGMENT_SUFFIX, segment_index
from livetx.lru import Lru

LISTING_TTL = 1.0  # seconds a listing of a rendition's folder answers the status view
LISTINGS = 256  # folder listings kept


class FolderListings:
    def __init__(self, ttl: float = LISTING_TTL, capacity: int = LISTINGS) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._listings: Lru[tuple[str, str], tuple[float, frozenset[int]]] = Lru(capacity)  # -> (when, indexes)
        self._listing: dict[tuple[str, str], asyncio.Task[frozenset[int]]] = {}

    async def indexes(self, folder: Path, prefix: str, count: int, suffix: str = SEGMENT_SUFFIX) -> frozenset[int]:
        """Indexes below `count` of the segment files named `prefix<n><suffix>` in `folder`."""
        loop = asyncio.get_running_loop()
        cache_key = (str(folder), prefix)
        cached = self._listings.peek(cache_key)
        if cached is not None and loop.time() - cached[0] < self.ttl:
            return cached[1]
        task = self._listing.get(cache_key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(_segment_files, folder, prefix, count, suffix))
            self._listing[cache_key] = task
            task.add_done_callback(lambda _: self._listing.pop(cache_key, None))
        found = await asyncio.shield(task)
        self._listings.put(cache_key, (loop.time(), found))
        return found


def _segment_files(folder: Path, prefix: str, count: int, suffix: str) -> frozenset[int]:
    """Indexes below `count` of the files `prefix<n><suffix>` in `folder` (none if it is missing)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    found = (segment_index(name, prefix, suffix) for name in names)
    return frozenset(index for index in found if index is not None and index < count)
