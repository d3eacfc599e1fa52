"""The segment path below HTTP: cache lookup -> singleflight -> pool transcode -> write-back.

A hit is answered from the output store. A miss goes through singleflight, so concurrent
requests for one segment share one transcode; the bytes go to the client as soon as they
exist, and the write-back to storage runs on its own, retried, never leaving a partial object.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from livetx.cache.keys import segment_key
from livetx.cache.singleflight import LocalSingleFlight
from livetx.media.pool import Priority, TranscodePool
from livetx.storage.base import Storage
from livetx.titles import Rendition, Title

log = logging.getLogger(__name__)

WRITE_RETRIES = 3


@dataclass(frozen=True)
class SegmentBody:
    """A segment to send: a file to stream (a hit on local storage) or bytes in memory."""

    etag: str
    path: Path | None = None
    data: bytes | None = None


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    transcodes: int = 0
    writebacks: int = 0
    writeback_failures: int = 0


class SegmentService:
    def __init__(self, sources: Storage, output: Storage, pool: TranscodePool, flight: LocalSingleFlight | None = None) -> None:
        self.sources = sources
        self.output = output
        self.pool = pool
        self.flight = flight or LocalSingleFlight()
        self.stats = CacheStats()
        self._writebacks: set[asyncio.Task[None]] = set()

    async def get(self, title: Title, rendition: Rendition, index: int, priority: Priority = Priority.CLIENT) -> SegmentBody:
        rendition.window(index)  # 404 for an index past the end, before any I/O
        key = segment_key(title, rendition, index)
        etag = f'"{rendition.spec_id}-{index}"'
        if await self.output.stat(key) is not None:
            self.stats.hits += 1
            path = self.output.local_path(key)
            return SegmentBody(etag, path=path) if path is not None else SegmentBody(etag, data=await self.output.read(key))
        self.stats.misses += 1
        data = await self.flight.do(key, self._make(title, rendition, index, key, priority))
        return SegmentBody(etag, data=data)

    async def _make(self, title: Title, rendition: Rendition, index: int, key: str, priority: Priority) -> bytes:
        job = title.job(rendition, index, self.sources.media_url(title.source.key))
        result = await self.pool.run(job, priority)
        self.stats.transcodes += 1
        task = asyncio.create_task(self._write_back(key, result.data))
        self._writebacks.add(task)
        task.add_done_callback(self._writebacks.discard)
        return result.data

    async def _write_back(self, key: str, data: bytes) -> None:
        for attempt in range(WRITE_RETRIES):
            try:
                await self.output.write(key, data)
                self.stats.writebacks += 1
                return
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                log.warning(
                    "segment write-back failed",
                    extra={"event": "writeback_failed", "attempt": attempt + 1, "error": type(exc).__name__},
                )
                await asyncio.sleep(0.5 * 2**attempt)
        self.stats.writeback_failures += 1

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for pending write-backs (at shutdown)."""
        if self._writebacks:
            await asyncio.wait(list(self._writebacks), timeout=timeout)
