"""The segment path below HTTP: cache lookup -> singleflight -> pool transcode -> write-back.

Lookup goes tier by tier: hot segments in memory (asked for by clients before, their seal
checked), memory (made, write-back on the way), the local tier (when output storage is remote),
then the output store. A miss goes through singleflight, so concurrent requests for one
segment share one transcode; with a coordination engine (livetx/cluster/), the flight then
takes the segment's lease, so that one process of the cluster makes it while the others wait
and find it in storage (background work takes it only when its job reaches a worker, so it
never holds a segment back from another origin's client while it is queued). The bytes reach the client as soon as they
exist; the write-back to storage runs on its own, retried, never leaving a partial object. A
deleted or unreachable object is simply a miss: the segment is made again, with identical
timing, because the plan is a pure function.

Background work goes through the same path at a lower pool priority: pre-transcode when a
playlist is created, lookahead while a client plays. A client that asks for a segment being
made in the background promotes that job to client priority.

`SegmentService` holds the request path; each job beside it has its own collaborator, whose
docstring states the invariants of its state:
  admission.py    pool jobs: admission control, priorities asked for, promotion
  writebacks.py   made segments held in memory, PUT with retries, within a memory bound
  seal_checks.py  which cached files had their seal checked (stat and read off the loop)
  hot.py          segments clients asked for, in memory within a byte bound: answered first
  live.py         segments being made, read by their clients as they are muxed (streamed)
  bandwidth.py    measured sizes -> BANDWIDTH and AVERAGE-BANDWIDTH
  prefetch.py     pre-transcode and lookahead: playheads, budgets, background tasks
  listing.py      folder listings for the status view
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from livetx.cache.admission import Admission
from livetx.cache.bandwidth import BandwidthMeter
from livetx.cache.budget import PrefetchBudgets
from livetx.cache.envelope import Envelope, envelope_for
from livetx.cache.hot import HotSegments
from livetx.cache.keys import strong_etag
from livetx.cache.listing import FolderListings
from livetx.cache.live import LiveSegment, LiveSegments
from livetx.cache.local_tier import LocalTier
from livetx.cache.prefetch import Prefetcher
from livetx.cache.seal_checks import SealChecks
from livetx.cache.singleflight import LocalSingleFlight
from livetx.cache.stats import CacheStats
from livetx.cache.writebacks import WriteBacks
from livetx.cluster.flight import ClusterFlight
from livetx.crypto.keys import Derived, KeySource
from livetx.errors import Overloaded, SegmentNotFound, StorageUnavailable
from livetx.layout import segment_index, segment_key, segment_stem, segment_suffix
from livetx.media.model import INIT, SampleEncryption, SegmentJob, SegmentPart
from livetx.media.pool import Gate, Priority, TranscodePool
from livetx.settings import CacheSettings, TranscodeSettings
from livetx.storage.base import Storage
from livetx.titles import Rendition, Title

__all__ = ["CacheStats", "SegmentBody", "SegmentService"]

log = logging.getLogger(__name__)

T = TypeVar("T")

IDLE_TIMEOUT = 30.0  # seconds `wait_idle` waits, by default, before it says what is still pending


@dataclass(frozen=True)
class SegmentBody:
    """A segment to send: a file to stream (Range and HEAD for free), bytes in memory, or a
    segment still being made, to send as it comes (`live`)."""

    etag: str
    path: Path | None = None
    data: bytes | None = None
    made: bool = False  # transcoded for this request (or a flight it joined), not found cached
    live: LiveSegment | None = None


class SegmentService:
    def __init__(
        self,
        sources: Storage,
        output: Storage,
        pool: TranscodePool,
        cache: CacheSettings,
        transcode: TranscodeSettings,
        *,
        tier: LocalTier | None = None,
        flight: LocalSingleFlight | None = None,
        cluster: ClusterFlight | None = None,
        observe_transcode: Callable[[str, float], None] | None = None,
        keys: KeySource | None = None,
    ) -> None:
        self.sources = sources
        self.output = output  # read at each use: a write-back goes to the store of the moment
        self.pool = pool
        self.tier = tier
        self.flight = flight or LocalSingleFlight()
        self.cluster = cluster  # None: this process alone decides what to make
        self.wait_timeout = transcode.wait_timeout
        self.stream = transcode.stream  # a client waiting for a segment gets its bytes as they are muxed
        self.observe_transcode = observe_transcode
        self.keys = keys if keys is not None else Derived({})  # content keys of encrypted renditions
        self.stats = CacheStats()
        self.budgets = PrefetchBudgets(cache.prefetch_per_title, cache.prefetch_per_client)
        self.admission = Admission(pool, self.stats, transcode.max_queue)
        self.writebacks = WriteBacks(self.stats, cache.memory_max_bytes)
        self.seals = SealChecks()
        self.hot = HotSegments(cache.hot_max_bytes)
        self.meter = BandwidthMeter()
        self.listings = FolderListings()
        self.live = LiveSegments()
        self.prefetcher = Prefetcher(self._made, self._busy, self.stats, self.budgets, cache.prefetch_limit, cache.lookahead)

    # ---- the request path ---------------------------------------------------------------

    async def get(self, title: Title, rendition: Rendition, index: SegmentPart, priority: Priority = Priority.CLIENT) -> SegmentBody:
        """Segment `index` of the rendition, or its init segment (`INIT`, fMP4 only): made
        and kept exactly as media segments are."""
        if index == INIT:
            if rendition.container != "fmp4":
                kind = "WebVTT subtitles" if rendition.subtitle is not None else "MPEG-TS"
                raise SegmentNotFound(f"rendition {rendition.name!r} is {kind}: it has no init segment")
        else:
            rendition.window(index)  # 404 for an index past the end, before any I/O
        key = segment_key(title, rendition, index)
        etag = strong_etag(rendition.spec_id, index)
        held = self.hot.get(key)
        if held is not None:
            self.stats.hits["hot"] += 1
            return SegmentBody(etag, data=held)
        envelope = self.envelope(rendition, index)
        found = await self._lookup_near(key, etag, envelope)
        if found is not None:
            return self._heat(key, found, priority, envelope)
        self.admission.ask(key, priority)
        if self.flight.running(key):
            self.stats.joins += 1
        # The storage lookup runs inside the flight too: a request that looked while the
        # segment was being made and written back can't miss both and make it again.
        flight = self.flight.do(key, self._fetch_or_make(title, rendition, index, key, etag, priority, envelope))
        if priority != Priority.CLIENT:
            return await flight
        if self.stream and _streamable(rendition, index):
            return await self._first_bytes(key, etag, flight, envelope)
        return self._heat(key, await self.within_wait_timeout(flight), priority, envelope)

    async def _first_bytes(self, key: str, etag: str, flight: Awaitable[SegmentBody], envelope: Envelope) -> SegmentBody:
        """Whichever comes first: the flight's segment (found, or made whole), or the first bytes
        of the segment this process is making (a `live` body, to send as it comes). Bounded by
        the wait timeout, as a whole segment is."""
        whole = asyncio.ensure_future(flight)
        whole.add_done_callback(_retrieved)  # it may end after this request has gone on with the live bytes
        started = asyncio.ensure_future(self.live.started(key))
        try:
            await asyncio.wait((whole, started), timeout=self.wait_timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            whole.cancel()  # (the flight itself is shielded: it goes on for the cache)
            raise
        finally:
            started.cancel()
        if whole.done():
            return self._heat(key, whole.result(), Priority.CLIENT, envelope)
        if started.done() and not started.cancelled():
            self.stats.streamed += 1
            return SegmentBody(etag, made=True, live=started.result())
        whole.cancel()
        raise self._overloaded("segment")

    def envelope(self, rendition: Rendition, index: SegmentPart) -> Envelope:
        """How the segment is sealed (and, AES-128, encrypted) as stored and sent."""
        return envelope_for(rendition, index, self.keys)

    def _heat(self, key: str, body: SegmentBody, priority: Priority, envelope: Envelope) -> SegmentBody:
        """A segment a client asked for goes to the hot tier (which checks its seal first)."""
        if priority == Priority.CLIENT:
            self.hot.offer(key, body.data if body.data is not None else body.path, envelope.holds)
        return body

    async def _lookup_near(self, key: str, etag: str, envelope: Envelope) -> SegmentBody | None:
        """Memory (made, write-back still on the way) and the local tier: no storage I/O."""
        fresh = self.writebacks.fresh(key)
        if fresh is not None:
            self.stats.hits["memory"] += 1
            return SegmentBody(etag, data=fresh)
        path = self.tier.path(key) if self.tier is not None else None
        if path is None:
            return None
        if not await self.seals.sealed(path, holds=envelope.holds):
            self._corrupt(key, "local")
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return None
        self.stats.hits["local"] += 1
        return SegmentBody(etag, path=path)

    async def _fetch_or_make(
        self, title: Title, rendition: Rendition, index: SegmentPart, key: str, etag: str, priority: Priority, envelope: Envelope
    ) -> SegmentBody:
        """The flight's work: look again (nearby, then storage), else make the segment; under
        its lease when an engine coordinates the cluster (see `ClusterFlight.once`)."""
        lookup = partial(self._lookup, key, etag, rendition, index, envelope)
        make = partial(self._made_body, title, rendition, index, key, etag, priority, envelope)
        found = await lookup()  # made while this flight was being set up, or by another process
        if found is not None:
            return found
        if self.cluster is None:
            return await make(None)
        durable = partial(self.writebacks.settled, key)
        return await self.cluster.once(key, lookup, make, durable, background=priority > Priority.CLIENT)

    async def _lookup(self, key: str, etag: str, rendition: Rendition, index: SegmentPart, envelope: Envelope) -> SegmentBody | None:
        found = await self._lookup_near(key, etag, envelope)
        if found is None:
            found = await self._lookup_storage(key, etag, rendition, index, envelope)
        if found is not None:
            self.admission.found(key)
        return found

    async def _made_body(
        self,
        title: Title,
        rendition: Rendition,
        index: SegmentPart,
        key: str,
        etag: str,
        priority: Priority,
        envelope: Envelope,
        gate: Gate | None,
    ) -> SegmentBody:
        self.stats.misses += 1
        data = await self._make(title, rendition, index, key, priority, envelope, gate)
        path = self.tier.path(key) if self.tier is not None else None
        if path is not None:
            return SegmentBody(etag, path=path, made=True)
        return SegmentBody(etag, data=data, made=True)

    async def within_wait_timeout(self, flight: Awaitable[T], what: str = "segment") -> T:
        try:  # a client gives up waiting; the work goes on for whoever else waits, and the cache
            return await asyncio.wait_for(flight, self.wait_timeout)
        except TimeoutError:
            raise self._overloaded(what) from None

    def _overloaded(self, what: str) -> Overloaded:
        self.stats.overloaded += 1
        return Overloaded(f"{what} not ready within {self.wait_timeout:g} s; it is still being made", retry_after=self.pool.retry_after())

    async def _lookup_storage(
        self, key: str, etag: str, rendition: Rendition, index: SegmentPart, envelope: Envelope
    ) -> SegmentBody | None:
        try:
            info = await self.output.stat(key)
            if info is None:
                return None
            path = self.output.local_path(key)
            if path is None:
                return await self._read_remote(key, etag, rendition, index, envelope)
            if not await self.seals.sealed(path, info.etag, envelope.holds):  # a local store's ETag is its size and mtime
                await self._drop_corrupt(key)
                return None
            self._measure(rendition, index, info.size)
        except (StorageUnavailable, FileNotFoundError) as exc:
            # storage down or the object went away: make the segment again instead
            self.stats.storage_errors += isinstance(exc, StorageUnavailable)
            log.warning("segment lookup failed", extra={"event": "storage_error", "error": type(exc).__name__})
            return None
        self.stats.hits["storage"] += 1
        return SegmentBody(etag, path=path)

    async def _read_remote(self, key: str, etag: str, rendition: Rendition, index: SegmentPart, envelope: Envelope) -> SegmentBody | None:
        """A remote store's object: read whole, checked, and kept in the local tier if there is one."""
        data = await self.output.read(key)
        if not await asyncio.to_thread(envelope.holds, data):
            await self._drop_corrupt(key)
            return None
        self._measure(rendition, index, len(data))
        path = await self.tier.put(key, data) if self.tier is not None else None
        if path is not None:
            await self.seals.remember(path)
        self.stats.hits["storage"] += 1
        return SegmentBody(etag, path=path) if path is not None else SegmentBody(etag, data=data)

    async def _make(
        self, title: Title, rendition: Rendition, index: SegmentPart, key: str, priority: Priority, envelope: Envelope, gate: Gate | None
    ) -> bytes:
        """Admission -> pool (past `gate`, see `ClusterFlight.once`) -> seal (and encrypt, see
        `envelope`) -> local tier -> write-back; the bytes as stored and sent. A segment a client
        may stream is readable as it is muxed (live.py) until it is whole in memory."""
        live = self.live.open(key) if _streamable(rendition, index) else None
        try:
            data = await self._transcode(title, rendition, index, key, priority, envelope, gate, live)
        except BaseException as exc:
            if live is not None:
                live.fail(exc)
            raise
        finally:
            if live is not None:
                self.live.close(key, live)
        return data

    async def _transcode(
        self,
        title: Title,
        rendition: Rendition,
        index: SegmentPart,
        key: str,
        priority: Priority,
        envelope: Envelope,
        gate: Gate | None,
        live: LiveSegment | None,
    ) -> bytes:
        result = await self.admission.run(key, self._job(title, rendition, index), priority, gate, live)
        self.stats.transcodes += 1
        self.stats.source_bytes += result.source_bytes
        if self.observe_transcode is not None:
            self.observe_transcode(rendition.name, result.seconds)
        data = await asyncio.to_thread(envelope.close, result.data)
        self._measure(rendition, index, len(data))
        await self._keep_local(key, data)
        self.writebacks.start(self.output, key, data)
        if live is not None:  # (after the write-back starts: a request from now on finds it in memory)
            live.finish(data)
        return data

    async def _job(self, title: Title, rendition: Rendition, index: SegmentPart) -> SegmentJob:
        if index == INIT and not (rendition.video is not None and rendition.video.copies):  # from the spec alone
            job = title.job(rendition, index, "")
        else:
            job = title.job(rendition, index, await self.sources.media_url(title.source_key_of(index)))  # (a composite's clip)
        encryption = rendition.encryption
        if encryption is not None and encryption.method == "sample-aes":  # the worker encrypts the samples
            key = self.keys.key(encryption.key_name(0 if index == INIT else index))
            job = replace(job, samples=SampleEncryption(key.key, key.key_id, key.constant_iv))
        return job

    def _measure(self, rendition: Rendition, index: SegmentPart, size: int) -> None:
        """Media segment sizes give the bandwidths; an init segment is fetched once, not played,
        and subtitles (a few hundred bytes) are left out of a variant's BANDWIDTH."""
        if index != INIT and rendition.subtitle is None:
            self.meter.measure(rendition, index, size)

    async def _keep_local(self, key: str, data: bytes) -> None:
        if self.tier is None:
            return
        try:
            path = await self.tier.put(key, data)
            if path is not None:
                await self.seals.remember(path)
        except OSError as exc:  # a full or broken local disk: serve from memory
            log.warning("local tier write failed", extra={"event": "tier_error", "error": type(exc).__name__})

    def _corrupt(self, key: str, tier: str) -> None:
        self.stats.corrupt += 1
        log.warning("cached segment failed its seal check: made again", extra={"event": "corrupt_segment", "tier": tier, "key": key})

    async def _drop_corrupt(self, key: str) -> None:
        self._corrupt(key, "storage")
        try:
            await self.output.delete(key)
        except StorageUnavailable:
            pass  # overwritten by the write-back of the segment made now

    # ---- background work ---------------------------------------------------------------

    def pretranscode(self, title: Title, client: str = "") -> None:
        """Queue the first `initd` ms of every rendition (when its playlist is created)."""
        self.prefetcher.pretranscode(title, client)

    def played(self, title: Title, rendition: Rendition, index: int, client: str = "") -> None:
        """A client fetched segment `index`: prefetch ahead of it (see `Prefetcher.played`)."""
        self.prefetcher.played(title, rendition, index, client)

    async def _made(self, title: Title, rendition: Rendition, index: SegmentPart, priority: Priority) -> bool:
        return (await self.get(title, rendition, index, priority)).made

    def _busy(self, key: str) -> bool:
        """Being made or held in memory: no need to make it ahead."""
        return self.admission.making(key) or key in self.writebacks

    # ---- what a title's segments are doing (for the demo page and operators) ------------

    def bandwidth(self, rendition: Rendition) -> tuple[int, int]:
        """(BANDWIDTH, AVERAGE-BANDWIDTH) in bit/s, measured once segments are (see `BandwidthMeter`)."""
        return self.meter.bandwidth(rendition)

    async def states(self, title: Title, rendition: Rendition) -> list[str]:
        """Each segment's state: "transcoding", "cached" (made or read by this process, or a
        file on local disk: output storage or the local tier), or "none" (not made as far as
        this process knows; remote storage is not asked).

        Disk is read with one listing of the rendition's folder, in a thread, reused for a
        second; nothing here looks at segments one by one on the event loop."""
        stem = segment_stem(title, rendition)  # segment n's key is stem + f"{n}.ts" (or .m4s)
        suffix = segment_suffix(rendition)
        first = segment_key(title, rendition, 0)
        name_stem = stem.rsplit("/", 1)[-1]  # and its file name, in a local store's folder
        count = len(rendition.windows)
        states = ["none"] * count
        stores = [self.output] + ([self.tier.store] if self.tier is not None else [])
        for store in stores:
            path = store.local_path(first)
            if path is not None:
                for index in await self.listings.indexes(path.parent, name_stem, count, suffix):
                    states[index] = "cached"
        for measured in self.meter.measured(rendition):
            states[measured] = "cached"
        for keys, state in ((self.writebacks.keys(), "cached"), (self.admission.keys(), "transcoding")):
            for key in keys:  # segments in memory or being made: a few at a time
                found = segment_index(key, stem, suffix)
                if found is not None and found < count:
                    states[found] = state
        return states

    # ---- idle and shutdown -------------------------------------------------------------

    @property
    def pending_writebacks(self) -> int:
        return self.writebacks.pending

    async def wait_idle(self, timeout: float = IDLE_TIMEOUT) -> None:
        """Wait until no background work, no pool job and no write-back is pending (work
        that finishes may start more: each round waits for what is pending then). Raises
        TimeoutError naming what is still pending after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending := self._pending_work():
            remaining = deadline - loop.time()
            if remaining <= 0:
                background, jobs, writebacks = len(self.prefetcher.tasks()), len(self.admission.keys()), self.writebacks.pending
                raise TimeoutError(
                    f"segment service not idle after {timeout:g} s: "
                    f"{background} background segments, {jobs} pool jobs, {writebacks} write-backs pending"
                )
            await asyncio.wait(pending, timeout=remaining)

    def _pending_work(self) -> list[asyncio.Future[Any]]:
        return [*self.prefetcher.tasks(), *self.admission.futures(), *self.writebacks.tasks(), *self.hot.tasks()]

    async def drain(self, timeout: float = 30.0) -> None:
        """At shutdown: drop background work, wait for pending write-backs (up to `timeout`)."""
        self.prefetcher.cancel()
        self.hot.cancel()
        await self.writebacks.wait(timeout)


def _streamable(rendition: Rendition, index: SegmentPart) -> bool:
    """A media segment sent in the clear as made: an encrypted one leaves the pool whole
    (sample-aes) or is encrypted whole after it (AES-128), an init segment is tiny, and
    WebVTT is made at once."""
    return index != INIT and rendition.encryption is None and rendition.subtitle is None


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # its error reached the live segment's readers, or nobody waits for it
