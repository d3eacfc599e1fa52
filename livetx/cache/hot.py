"""Hot segments: the bytes of segments clients ask for, held in memory up to a byte bound, the
least recently used dropped first (`cache.hot_max_bytes`, per process).

A cached segment is otherwise sent from its file, which costs a stat, an open and, on uvloop
(which has no sendfile), reads of 256 KiB in a thread for every request. From memory it is one
write, so the segment service answers from here first.

Invariants:
- Only bytes whose seal was checked here enter: `offer` takes bytes or a file, and a thread
  reads the file and checks the seal (livetx/cache/seal.py) of exactly the bytes it keeps. A
  corrupt, cut or unsealed copy never enters; it is counted in `refused`.
- A key names its bytes for good (its spec id hashes the source version and the whole
  transcode spec), so an entry is never stale: it leaves only by the bound.
- At most `max_bytes` bytes are held; a segment larger than that never enters (it is sent from
  its file). 0 turns the tier off.
- One check per key at a time (a key being checked is not offered again), none once it is held;
  the event loop never reads or hashes: that runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from livetx.cache.seal import is_sealed
from livetx.lru import Lru

OVERSIZED_KEYS = 4096  # segments known to be larger than the bound, not read again to find out


class HotSegments:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.refused = 0  # offers whose seal did not hold
        self.evictions = 0
        self._held: Lru[str, bytes] = Lru(max_bytes, weigh=len)
        self._checking: dict[str, asyncio.Task[None]] = {}
        self._oversized: Lru[str, None] = Lru(OVERSIZED_KEYS)  # keys whose file is larger than the bound

    def get(self, key: str) -> bytes | None:
        """The segment's bytes (now the most recently used), or None."""
        return self._held.get(key)

    def offer(self, key: str, source: bytes | Path | None, holds: Callable[[bytes], bool] = is_sealed) -> None:
        """Hold the segment `key`, from its bytes or its file, once its seal is checked by
        `holds` (in the background: the caller does not wait)."""
        if source is None or self.max_bytes <= 0 or key in self._held or key in self._checking or key in self._oversized:
            return
        if isinstance(source, bytes) and len(source) > self.max_bytes:
            return
        task = asyncio.create_task(self._check(key, source, holds))
        self._checking[key] = task
        task.add_done_callback(lambda _: self._checking.pop(key, None))

    async def _check(self, key: str, source: bytes | Path, holds: Callable[[bytes], bool]) -> None:
        outcome, data = await asyncio.to_thread(_read_checked, source, self.max_bytes, holds)
        if outcome == SEALED:
            self.evictions += len(self._held.put(key, data))
        elif outcome == UNSEALED:
            self.refused += 1
        elif outcome == OVERSIZED:  # a key's size never changes: not read again
            self._oversized.put(key, None)

    def tasks(self) -> list[asyncio.Task[None]]:
        """Checks still running."""
        return list(self._checking.values())

    def cancel(self) -> None:
        for task in self._checking.values():
            task.cancel()

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def __len__(self) -> int:
        return len(self._held)

    @property
    def bytes(self) -> int:  # (last in the class: above, `bytes` is the type)
        return self._held.weight


SEALED, UNSEALED, OVERSIZED, GONE = "sealed", "unsealed", "oversized", "gone"


def _read_checked(source: bytes | Path, max_bytes: int, holds: Callable[[bytes], bool] = is_sealed) -> tuple[str, bytes]:
    """(SEALED, the bytes) when `source`'s bytes (read, if it is a file) fit in `max_bytes` and
    their seal holds; else (UNSEALED, OVERSIZED or GONE, b"")."""
    if isinstance(source, Path):
        try:
            if source.stat().st_size > max_bytes:
                return OVERSIZED, b""
            data = source.read_bytes()
        except FileNotFoundError:
            return GONE, b""
    else:
        data = source
    if len(data) > max_bytes:
        return OVERSIZED, b""
    return (SEALED, data) if holds(data) else (UNSEALED, b"")
