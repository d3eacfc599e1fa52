"""Made segments on their way to the output store: held in memory, PUT with retries, bounded.

A segment is served from memory from the moment it is made until its write-back ends, so a
request never misses a segment that is made but not yet stored.

Invariants:
- `_fresh[key]` is set when a write-back of `key` starts and removed when that write-back
  ends (stored, given up after `WRITE_DEADLINE`, or dropped), unless a newer write-back of
  the same key has replaced it meanwhile (the bytes are compared by identity).
- `_pending` holds exactly the write-back tasks not yet done, oldest first, each with its
  key and bytes; a task leaves it when it finishes or is dropped (even one dropped before it
  ever ran).
- `_settled[key]` is the future of `key`'s newest write-back: done once that write-back
  stored the segment or its first attempt failed (or it ended otherwise); removed when it
  ends, unless a newer one replaced it. A segment lease waits for it (cluster/flight.py): the
  processes waiting for the lease then find the segment in storage, or, storage failing,
  make their own copy rather than wait for its retries.
- The bytes of `_pending` stay within `max_bytes`, except that the newest write-back is
  always kept: beyond the bound the oldest are cancelled (`writebacks_dropped`), and their
  segments are made again when asked for.
"""

from __future__ import annotations

import asyncio
import logging

from livetx.cache.stats import CacheStats
from livetx.lru import Lru
from livetx.storage.base import Storage

log = logging.getLogger("livetx.cache.service")  # the segment service's log, as before the split

WRITE_BACKOFF_CAP = 10.0  # seconds between write-back attempts, at most
WRITE_DEADLINE = 600.0  # a write-back is retried this long (storage outages), then given up


class WriteBacks:
    def __init__(self, stats: CacheStats, max_bytes: int) -> None:
        self.stats = stats
        self.max_bytes = max_bytes
        self._fresh: dict[str, bytes] = {}  # made, not yet in storage: served from here meanwhile
        self._settled: dict[str, asyncio.Future[None]] = {}  # stored, or its first attempt failed
        # oldest first (never refreshed: first in, first dropped), bounded by the bytes held
        self._pending: Lru[asyncio.Task[None], tuple[str, bytes]] = Lru(max_bytes, weigh=lambda entry: len(entry[1]))

    def fresh(self, key: str) -> bytes | None:
        """The segment's bytes while its write-back is on the way, else None."""
        return self._fresh.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._fresh

    def keys(self) -> list[str]:
        """The segments held in memory now."""
        return list(self._fresh)

    @property
    def pending(self) -> int:
        """Write-backs not yet stored."""
        return len(self._pending)

    def tasks(self) -> list[asyncio.Task[None]]:
        return self._pending.keys()

    def start(self, store: Storage, key: str, data: bytes) -> None:
        """Hold `data` for `key` and PUT it to `store` in the background, within the memory bound."""
        self._fresh[key] = data
        settled = self._settled[key] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._write_back(store, key, data, settled))
        task.add_done_callback(lambda task: self._ended(task, key, settled))
        self._bound_memory(self._pending.put(task, (key, data)))

    async def settled(self, key: str) -> None:
        """Return once the write-back of `key` under way, if any, has stored it or failed its
        first attempt (or was dropped): the segment is in storage, or storage is failing."""
        settled = self._settled.get(key)
        if settled is not None:
            await asyncio.wait([settled])  # not `await settled`: a cancelled caller would cancel it

    def _ended(self, task: asyncio.Task[None], key: str, settled: asyncio.Future[None]) -> None:
        """A write-back finished, failed or was cancelled (if it never ran, this is the only
        place that frees its bytes)."""
        _settle(settled)
        if self._settled.get(key) is settled:
            del self._settled[key]
        entry = self._pending.pop(task)
        if entry is not None:
            self._release(*entry)

    def _release(self, key: str, data: bytes) -> None:
        if self._fresh.get(key) is data:  # not a newer write-back's bytes
            del self._fresh[key]

    def abandon(self) -> None:
        """Cancel every pending write-back (their segments are made again when asked for)."""
        for task in self._pending.keys():
            task.cancel()

    async def wait(self, timeout: float) -> None:
        """Wait for the pending write-backs, up to `timeout` seconds."""
        if self._pending:
            await asyncio.wait(self._pending.keys(), timeout=timeout)

    def _bound_memory(self, dropped: list[tuple[asyncio.Task[None], tuple[str, bytes]]]) -> None:
        """Made segments wait in memory for their write-back (for as long as storage is down):
        beyond `max_bytes`, the oldest write-backs are dropped (`_pending` left them) and their
        memory freed."""
        for task, (key, data) in dropped:
            task.cancel()
            self._release(key, data)
            self.stats.writebacks_dropped += 1
            log.warning("write-back dropped: too many segments waiting for storage", extra={"event": "writeback_dropped"})

    async def _write_back(self, store: Storage, key: str, data: bytes, settled: asyncio.Future[None]) -> None:
        """PUT until it succeeds: through a storage outage, uploads catch up once it is back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_DEADLINE
        await self._put(store, key, data, loop, deadline, settled)  # the bytes are freed by `_ended`

    async def _put(
        self, store: Storage, key: str, data: bytes, loop: asyncio.AbstractEventLoop, deadline: float, settled: asyncio.Future[None]
    ) -> None:
        attempt = 0
        while True:
            try:
                await store.write(key, data)
                self.stats.writebacks += 1
                return
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                _settle(settled)  # storage failing: a lease held for this segment may go
                attempt += 1
                self.stats.storage_errors += 1
                log.warning(
                    "segment write-back failed", extra={"event": "writeback_failed", "attempt": attempt, "error": type(exc).__name__}
                )
                if loop.time() > deadline:
                    self.stats.writeback_failures += 1
                    return
                await asyncio.sleep(min(WRITE_BACKOFF_CAP, 0.25 * 2**attempt))


def _settle(settled: asyncio.Future[None]) -> None:
    if not settled.done():
        settled.set_result(None)
