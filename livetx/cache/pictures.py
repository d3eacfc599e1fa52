"""Pictures (snapshots, posters, storyboard sheets) below HTTP: cache lookup -> singleflight -> pool -> write-back.

The segment path's parts serve pictures too (`SegmentService`'s singleflight, memory of
write-backs, local tier, seal checks and output store), so a picture is found, made and kept as
a segment is: one pool job for concurrent requests of one picture, at client priority, the
bytes to the client as soon as they exist and the write-back on its own, never a partial
object. A picture's bytes carry a seal of their own (`seal_picture`, after the image's last
structure); a cached copy whose seal does not hold is dropped and made again. Admission is the
segments': beyond `transcode.max_queue` clients waiting, 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from livetx.cache.seal import picture_sealed, seal_picture
from livetx.cache.service import SegmentBody, SegmentService
from livetx.errors import Overloaded, StorageUnavailable
from livetx.media.picture import PictureJob

log = logging.getLogger(__name__)


@dataclass
class PictureStats:
    made: int = 0  # pictures made by the pool
    hits: int = 0  # found made (memory, local tier, output store)
    corrupt: int = 0  # cached copies whose seal did not hold
    seconds: float = 0.0  # pool time of the pictures made


class PictureService:
    def __init__(self, segments: SegmentService) -> None:
        self.segments = segments
        self.stats = PictureStats()

    async def get(self, key: str, etag: str, job: Callable[[], Awaitable[PictureJob]]) -> SegmentBody:
        """The picture at output key `key`: cached, or made from `job()` (called on a miss only)."""
        found = await self._near(key, etag)
        if found is not None:
            return found
        flight = self.segments.flight.do(key, self._fetch_or_make(key, etag, job))
        return await self.segments.within_wait_timeout(flight, "picture")

    async def _near(self, key: str, etag: str) -> SegmentBody | None:
        """Memory (write-back on the way) and the local tier: no storage I/O."""
        segments = self.segments
        fresh = segments.writebacks.fresh(key)
        if fresh is not None:
            self.stats.hits += 1
            return SegmentBody(etag, data=fresh)
        path = segments.tier.path(key) if segments.tier is not None else None
        if path is None:
            return None
        if not await segments.seals.sealed(path, holds=picture_sealed):
            self.stats.corrupt += 1
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return None
        self.stats.hits += 1
        return SegmentBody(etag, path=path)

    async def _fetch_or_make(self, key: str, etag: str, job: Callable[[], Awaitable[PictureJob]]) -> SegmentBody:
        found = await self._near(key, etag) or await self._stored(key, etag)
        if found is not None:
            return found
        segments = self.segments
        made = await job()
        # admission, as a segment's (cache/admission.py): checked and submitted with no await between
        if segments.pool.waiting_clients >= segments.admission.max_queue:
            segments.stats.overloaded += 1
            waiting = segments.pool.waiting_clients
            raise Overloaded(f"{waiting} jobs are already waiting for a worker", retry_after=segments.pool.retry_after())
        result = await segments.pool.picture(made)
        self.stats.made += 1
        self.stats.seconds += result.seconds
        data = seal_picture(result.data)
        await self._keep_local(key, data)
        segments.writebacks.start(segments.output, key, data)
        return SegmentBody(etag, data=data, made=True)

    async def _keep_local(self, key: str, data: bytes) -> Path | None:
        """Sealed bytes into the local tier, when there is one (in front of remote output)."""
        tier = self.segments.tier
        if tier is None:
            return None
        try:
            path = await tier.put(key, data)
            if path is not None:
                await self.segments.seals.remember(path)
            return path
        except OSError as exc:  # a full or broken local disk: serve from memory
            log.warning("local tier write failed", extra={"event": "tier_error", "error": type(exc).__name__})
            return None

    async def _stored(self, key: str, etag: str) -> SegmentBody | None:
        output = self.segments.output
        try:
            info = await output.stat(key)
            if info is None:
                return None
            path = output.local_path(key)
            if path is not None:
                if await self.segments.seals.sealed(path, info.etag, picture_sealed):
                    self.stats.hits += 1
                    return SegmentBody(etag, path=path)
            else:
                data = await output.read(key)
                if await asyncio.to_thread(picture_sealed, data):
                    self.stats.hits += 1
                    path = await self._keep_local(key, data)  # read from remote storage once
                    return SegmentBody(etag, path=path) if path is not None else SegmentBody(etag, data=data)
            self.stats.corrupt += 1
            log.warning("cached picture failed its seal check: made again", extra={"event": "corrupt_picture", "key": key})
            await output.delete(key)
        except (StorageUnavailable, FileNotFoundError) as exc:  # make it again instead
            log.warning("picture lookup failed", extra={"event": "storage_error", "error": type(exc).__name__})
        return None
