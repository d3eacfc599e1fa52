"""The segment path below HTTP: cache lookup -> singleflight -> pool transcode -> write-back.

Lookup goes tier by tier: the local tier (when output storage is remote), then the output
store. A miss goes through singleflight, so concurrent requests for one segment share one
transcode. The bytes reach the client as soon as they exist; the write-back to storage runs on
its own, retried, never leaving a partial object. A deleted or unreachable object is simply a
miss: the segment is made again, with identical timing, because the plan is a pure function.

Background work goes through the same path at a lower pool priority: pre-transcode when a
playlist is created, lookahead while a client plays. A client that asks for a segment being
made in the background promotes that job to client priority.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from livetx.cache.budget import PrefetchBudgets
from livetx.cache.keys import segment_key
from livetx.cache.local_tier import LocalTier
from livetx.cache.seal import is_sealed, seal
from livetx.cache.singleflight import LocalSingleFlight
from livetx.errors import LivetxError, Overloaded, StorageUnavailable
from livetx.hls.plan import lookahead_indexes, pretranscode_indexes
from livetx.media.pool import Priority, Ticket, TranscodePool
from livetx.storage.base import Storage
from livetx.titles import Rendition, Title

log = logging.getLogger(__name__)

WRITE_BACKOFF_CAP = 10.0  # seconds between write-back attempts, at most
WRITE_DEADLINE = 600.0  # a write-back is retried this long (storage outages), then given up
IN_ORDER_AHEAD = 2  # segments prefetched while a client plays in order
PLAYHEADS = 4096  # renditions whose last played segment is remembered
MEASURED_RENDITIONS = 4096  # renditions whose segment sizes are remembered
VERIFIED_FILES = 65536  # files whose seal was checked (by path, size and mtime)
LISTING_TTL = 1.0  # seconds a listing of a rendition's folder answers the status view
LISTINGS = 256  # folder listings kept


@dataclass(frozen=True)
class SegmentBody:
    """A segment to send: a file to stream (Range and HEAD for free) or bytes in memory."""

    etag: str
    path: Path | None = None
    data: bytes | None = None
    made: bool = False  # transcoded for this request (or a flight it joined), not found cached


@dataclass
class CacheStats:
    hits: dict[str, int] = field(default_factory=lambda: {"memory": 0, "local": 0, "storage": 0})
    misses: int = 0
    transcodes: int = 0
    joins: int = 0
    promotions: int = 0
    writebacks: int = 0
    writeback_failures: int = 0
    writebacks_dropped: int = 0  # over the memory bound: the segment is made again when asked for
    overloaded: int = 0  # requests answered 503 by admission control
    storage_errors: int = 0
    prefetched: int = 0
    prefetch_dropped: int = 0
    source_bytes: int = 0
    corrupt: int = 0  # cached copies whose seal did not match: deleted and made again


class SegmentService:
    def __init__(
        self,
        sources: Storage,
        output: Storage,
        pool: TranscodePool,
        tier: LocalTier | None = None,
        flight: LocalSingleFlight | None = None,
        prefetch_limit: int = 64,
        lookahead: bool = True,
        observe_transcode: Callable[[str, float], None] | None = None,
        max_queue: int = 32,
        wait_timeout: float = 60.0,
        memory_max_bytes: int = 512 * 1024**2,
        budgets: PrefetchBudgets | None = None,
    ) -> None:
        self.sources = sources
        self.output = output
        self.pool = pool
        self.tier = tier
        self.flight = flight or LocalSingleFlight()
        self.prefetch_limit = prefetch_limit
        self.lookahead = lookahead
        self.observe_transcode = observe_transcode
        self.max_queue = max_queue
        self.wait_timeout = wait_timeout
        self.memory_max_bytes = memory_max_bytes
        self.budgets = budgets or PrefetchBudgets(per_title=120, per_client=30)
        self.stats = CacheStats()
        self._tickets: dict[str, Ticket] = {}  # segment key -> its pool job, while it is made
        self._wanted: dict[str, Priority] = {}  # segment key -> most urgent priority asked for it
        self._fresh: dict[str, bytes] = {}  # made, not yet in storage: served from here meanwhile
        self._writebacks: OrderedDict[asyncio.Task[None], int] = OrderedDict()  # pending, oldest first -> bytes
        self._background: dict[str, asyncio.Task[None]] = {}
        self._playheads: OrderedDict[str, int] = OrderedDict()
        self._sizes: OrderedDict[str, dict[int, int]] = OrderedDict()  # spec id -> segment -> bytes
        self._verified: OrderedDict[tuple[str, str], None] = OrderedDict()  # (path, version) whose seal held
        self._listings: OrderedDict[tuple[str, str], tuple[float, frozenset[int]]] = OrderedDict()  # -> (when, indexes)
        self._listing: dict[tuple[str, str], asyncio.Task[frozenset[int]]] = {}
        self._bandwidths: dict[str, tuple[int, int]] = {}  # spec id -> bandwidth(), until a size changes

    # ---- the request path ---------------------------------------------------------------

    async def get(self, title: Title, rendition: Rendition, index: int, priority: Priority = Priority.CLIENT) -> SegmentBody:
        rendition.window(index)  # 404 for an index past the end, before any I/O
        key = segment_key(title, rendition, index)
        etag = f'"{rendition.spec_id}-{index}"'
        found = await self._lookup_near(key, etag)
        if found is not None:
            return found
        wanted = self._wanted.get(key)
        if wanted is None or priority < wanted:
            self._wanted[key] = priority  # read when the job is submitted, if it is not yet
        ticket = self._tickets.get(key)
        if ticket is not None and priority < ticket.priority:  # a client waits on background work: it goes first now
            self.stats.promotions += 1
            self.pool.promote(ticket, priority)
        if self.flight.running(key):
            self.stats.joins += 1
        # The storage lookup runs inside the flight too: a request that looked while the
        # segment was being made and written back can't miss both and make it again.
        flight = self.flight.do(key, self._fetch_or_make(title, rendition, index, key, etag, priority))
        if priority != Priority.CLIENT:
            return await flight
        try:  # a client gives up waiting; the work goes on for whoever else waits, and the cache
            return await asyncio.wait_for(flight, self.wait_timeout)
        except TimeoutError:
            self.stats.overloaded += 1
            raise Overloaded(
                f"segment not ready within {self.wait_timeout:g} s; it is still being made", retry_after=self.pool.retry_after()
            ) from None

    async def _lookup_near(self, key: str, etag: str) -> SegmentBody | None:
        """Memory (made, write-back still on the way) and the local tier: no storage I/O."""
        fresh = self._fresh.get(key)
        if fresh is not None:
            self.stats.hits["memory"] += 1
            return SegmentBody(etag, data=fresh)
        if self.tier is not None:
            path = self.tier.path(key)
            if path is not None:
                if not await self._file_sealed(path, _version(path)):
                    self._corrupt(key, "local")
                    await asyncio.to_thread(path.unlink, missing_ok=True)
                    return None
                self.stats.hits["local"] += 1
                return SegmentBody(etag, path=path)
        return None

    async def _file_sealed(self, path: Path, version: str | None) -> bool:
        """A file's seal is checked once per process for each version (size and mtime) of it."""
        if version is None or (str(path), version) in self._verified:
            return True  # checked before; or gone meanwhile, and the next lookup misses
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return True
        if not await asyncio.to_thread(is_sealed, data):
            return False
        self._mark_verified(path, version)
        return True

    def _mark_verified(self, path: Path, version: str | None) -> None:
        if version is not None:
            self._verified[(str(path), version)] = None
            if len(self._verified) > VERIFIED_FILES:
                self._verified.popitem(last=False)

    def _corrupt(self, key: str, tier: str) -> None:
        self.stats.corrupt += 1
        log.warning("cached segment failed its seal check: made again", extra={"event": "corrupt_segment", "tier": tier, "key": key})

    async def _fetch_or_make(self, title: Title, rendition: Rendition, index: int, key: str, etag: str, priority: Priority) -> SegmentBody:
        found = await self._lookup_near(key, etag)  # made while this flight was being set up
        if found is None:
            found = await self._lookup_storage(key, etag, rendition, index)
        if found is not None:
            self._wanted.pop(key, None)
            return found
        self.stats.misses += 1
        data = await self._make(title, rendition, index, key, priority)
        if self.tier is not None:
            path = self.tier.path(key)
            if path is not None:
                return SegmentBody(etag, path=path, made=True)
        return SegmentBody(etag, data=data, made=True)

    async def _lookup_storage(self, key: str, etag: str, rendition: Rendition, index: int) -> SegmentBody | None:
        try:
            info = await self.output.stat(key)
            if info is None:
                return None
            path = self.output.local_path(key)
            if path is None:
                data = await self.output.read(key)
                if not await asyncio.to_thread(is_sealed, data):
                    await self._drop_corrupt(key)
                    return None
                self._measure(rendition, index, len(data))
                path = await self.tier.put(key, data) if self.tier is not None else None
                if path is not None:
                    self._mark_verified(path, _version(path))
                self.stats.hits["storage"] += 1
                return SegmentBody(etag, path=path) if path is not None else SegmentBody(etag, data=data)
            if not await self._file_sealed(path, info.etag):  # a local store's ETag is its size and mtime
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

    async def _drop_corrupt(self, key: str) -> None:
        self._corrupt(key, "storage")
        try:
            await self.output.delete(key)
        except StorageUnavailable:
            pass  # overwritten by the write-back of the segment made now

    async def _make(self, title: Title, rendition: Rendition, index: int, key: str, priority: Priority) -> bytes:
        try:
            job = title.job(rendition, index, await self.sources.media_url(title.source.key))
            # whoever asked while the URL was being made counts too
            priority = min(priority, self._wanted.get(key, priority))
            # admission: checked and taken with no await in between, so a burst can't slip past
            if priority == Priority.CLIENT and self.pool.waiting_clients >= self.max_queue:
                self.stats.overloaded += 1
                waiting = self.pool.waiting_clients
                raise Overloaded(f"{waiting} segments are already waiting for a transcoder", retry_after=self.pool.retry_after())
            ticket = self.pool.submit(job, priority)
            self._tickets[key] = ticket
            result = await ticket.future
        finally:
            self._tickets.pop(key, None)
            self._wanted.pop(key, None)
        self.stats.transcodes += 1
        self.stats.source_bytes += result.source_bytes
        if self.observe_transcode is not None:
            self.observe_transcode(rendition.name, result.seconds)
        data = await asyncio.to_thread(seal, result.data)
        self._measure(rendition, index, len(data))
        if self.tier is not None:
            try:
                path = await self.tier.put(key, data)
                if path is not None:
                    self._mark_verified(path, _version(path))
            except OSError as exc:  # a full or broken local disk: serve from memory
                log.warning("local tier write failed", extra={"event": "tier_error", "error": type(exc).__name__})
        self._fresh[key] = data
        task = asyncio.create_task(self._write_back(key, data))
        self._writebacks[task] = len(data)
        task.add_done_callback(lambda t: self._writebacks.pop(t, None))
        self._bound_memory()
        return data

    def _bound_memory(self) -> None:
        """Made segments wait in memory for their write-back (for as long as storage is down):
        beyond `memory_max_bytes`, the oldest write-backs are dropped and their memory freed."""
        held = sum(self._writebacks.values())
        for task, size in list(self._writebacks.items()):
            if held <= self.memory_max_bytes or len(self._writebacks) <= 1:
                break
            task.cancel()
            self._writebacks.pop(task, None)
            held -= size
            self.stats.writebacks_dropped += 1
            log.warning("write-back dropped: too many segments waiting for storage", extra={"event": "writeback_dropped"})

    async def _write_back(self, key: str, data: bytes) -> None:
        """PUT until it succeeds: through a storage outage, uploads catch up once it is back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_DEADLINE
        try:
            await self._put(key, data, loop, deadline)
        finally:
            self._fresh.pop(key, None)

    async def _put(self, key: str, data: bytes, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        attempt = 0
        while True:
            try:
                await self.output.write(key, data)
                self.stats.writebacks += 1
                return
            except Exception as exc:  # noqa: BLE001 - retried, then reported
                attempt += 1
                self.stats.storage_errors += 1
                log.warning(
                    "segment write-back failed", extra={"event": "writeback_failed", "attempt": attempt, "error": type(exc).__name__}
                )
                if loop.time() > deadline:
                    self.stats.writeback_failures += 1
                    return
                await asyncio.sleep(min(WRITE_BACKOFF_CAP, 0.25 * 2**attempt))

    # ---- what a title's segments are doing (for the demo page and operators) ------------

    async def states(self, title: Title, rendition: Rendition) -> list[str]:
        """Each segment's state: "transcoding", "cached" (made or read by this process, or a
        file on local disk: output storage or the local tier), or "none" (not made as far as
        this process knows; remote storage is not asked).

        Disk is read with one listing of the rendition's folder, in a thread, reused for
        `LISTING_TTL` seconds; nothing here looks at segments one by one on the event loop."""
        first = segment_key(title, rendition, 0)
        stem = first[: -len("0.ts")]  # segment n's key is stem + f"{n}.ts"
        count = len(rendition.windows)
        states = ["none"] * count
        stores = [self.output] + ([self.tier.store] if self.tier is not None else [])
        for store in stores:
            path = store.local_path(first)
            if path is not None:
                for index in await self._listed(path.parent, path.name[: -len("0.ts")], count):
                    states[index] = "cached"
        for measured in self._sizes.get(rendition.spec_id, {}):
            states[measured] = "cached"
        for keys, state in ((self._fresh, "cached"), (self._tickets, "transcoding")):
            for key in keys:  # segments in memory or being made: a few at a time
                found = _index_of(key, stem)
                if found is not None and found < count:
                    states[found] = state
        return states

    async def _listed(self, folder: Path, prefix: str, count: int) -> frozenset[int]:
        """Indexes of the segment files named `prefix<n>.ts` in `folder`: one listing in a
        thread, shared by concurrent callers and reused for `LISTING_TTL` seconds."""
        loop = asyncio.get_running_loop()
        cache_key = (str(folder), prefix)
        cached = self._listings.get(cache_key)
        if cached is not None and loop.time() - cached[0] < LISTING_TTL:
            return cached[1]
        task = self._listing.get(cache_key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(_segment_files, folder, prefix, count))
            self._listing[cache_key] = task
            task.add_done_callback(lambda _: self._listing.pop(cache_key, None))
        found = await asyncio.shield(task)
        self._listings[cache_key] = (loop.time(), found)
        self._listings.move_to_end(cache_key)
        if len(self._listings) > LISTINGS:
            self._listings.popitem(last=False)
        return found

    # ---- measured bandwidth ------------------------------------------------------------

    def _measure(self, rendition: Rendition, index: int, size: int) -> None:
        sizes = self._sizes.setdefault(rendition.spec_id, {})
        self._sizes.move_to_end(rendition.spec_id)
        sizes[index] = size
        self._bandwidths.pop(rendition.spec_id, None)
        if len(self._sizes) > MEASURED_RENDITIONS:
            self._sizes.popitem(last=False)

    def bandwidth(self, rendition: Rendition) -> tuple[int, int]:
        """(BANDWIDTH, AVERAGE-BANDWIDTH) in bit/s. Once segments of the rendition have been
        made or read, the average is their measured mean and the peak their highest rate;
        until every segment is measured, the peak is never below the estimate."""
        sizes = self._sizes.get(rendition.spec_id)
        if not sizes:
            return rendition.bandwidth, rendition.average_bandwidth
        # asked on every master playlist and status call; recomputed after a size changes
        known = self._bandwidths.get(rendition.spec_id)
        if known is not None:
            return known
        rates = [float(8 * size / rendition.windows[i].duration) for i, size in sizes.items()]
        average = float(8 * sum(sizes.values()) / sum(rendition.windows[i].duration for i in sizes))
        peak = max(rates)
        if len(sizes) < len(rendition.windows):
            peak = max(peak, float(rendition.bandwidth))
        answer = (math.ceil(peak), math.ceil(average))
        self._bandwidths[rendition.spec_id] = answer
        if len(self._bandwidths) > MEASURED_RENDITIONS:
            del self._bandwidths[next(iter(self._bandwidths))]
        return answer

    # ---- background work ---------------------------------------------------------------

    def pretranscode(self, title: Title, client: str = "") -> None:
        """Queue the first `initd` ms of every rendition (when its playlist is created)."""
        for rendition in title.renditions:
            indexes = pretranscode_indexes(rendition.windows, rendition.initd)
            self.prefetch(title, rendition, indexes, Priority.PRETRANSCODE, client)

    def played(self, title: Title, rendition: Rendition, index: int, client: str = "") -> None:
        """A client fetched segment `index`: prefetch ahead of it. Playing in order, the next
        two; after a start or a seek, the title's `ta` segments. The same segment asked for
        again (a retry, a range request, a replay) sets off nothing new."""
        if not self.lookahead:
            return
        head = f"{title.source.key}\n{title.source.etag}\n{rendition.spec_id}\n{client}"
        previous = self._playheads.pop(head, None)
        self._playheads[head] = index
        if len(self._playheads) > PLAYHEADS:
            self._playheads.popitem(last=False)
        if previous == index:
            return
        ahead = IN_ORDER_AHEAD if previous == index - 1 else rendition.ta
        self.prefetch(title, rendition, lookahead_indexes(rendition.windows, index, ahead), Priority.LOOKAHEAD, client)

    def prefetch(self, title: Title, rendition: Rendition, indexes: Iterable[int], priority: Priority, client: str = "") -> None:
        """Queue background segments, within `prefetch_limit` and within the title's and the
        client's budgets (cache/budget.py): what they refuse is simply not made ahead."""
        budget_key = f"{title.profile.name}\n{title.source.key}\n{title.source.etag}"
        for index in indexes:
            key = segment_key(title, rendition, index)
            if key in self._background or key in self._tickets or key in self._fresh:
                continue
            if len(self._background) >= self.prefetch_limit:
                self.stats.prefetch_dropped += 1
                continue
            if not self.budgets.take(budget_key, client):
                return  # the rest would be refused too
            work = self._prefetch_one(title, rendition, index, priority, budget_key, client)
            task = asyncio.create_task(work)
            self._background[key] = task
            task.add_done_callback(lambda _, key=key: self._background.pop(key, None))  # type: ignore[misc]

    async def _prefetch_one(self, title: Title, rendition: Rendition, index: int, priority: Priority, budget_key: str, client: str) -> None:
        made = False
        try:
            made = (await self.get(title, rendition, index, priority)).made
            self.stats.prefetched += made
        except LivetxError as exc:
            log.warning("prefetch failed", extra={"event": "prefetch_failed", "code": exc.code})
        finally:
            if not made:  # found cached (or failed): it cost no transcode
                self.budgets.give_back(budget_key, client)

    # ---- shutdown ----------------------------------------------------------------------

    @property
    def pending_writebacks(self) -> int:
        return len(self._writebacks)

    async def drain(self, timeout: float = 30.0) -> None:
        """At shutdown: drop background work, wait for pending write-backs (up to `timeout`)."""
        for task in list(self._background.values()):
            task.cancel()
        if self._writebacks:
            await asyncio.wait(list(self._writebacks), timeout=timeout)


def _index_of(key: str, stem: str) -> int | None:
    """n for a segment key `stem<n>.ts`, else None."""
    if key.startswith(stem) and key.endswith(".ts"):
        digits = key[len(stem) : -len(".ts")]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return None


def _segment_files(folder: Path, prefix: str, count: int) -> frozenset[int]:
    """Indexes below `count` of the files `prefix<n>.ts` in `folder` (none if it is missing)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    found = (_index_of(name, prefix) for name in names)
    return frozenset(index for index in found if index is not None and index < count)


def _version(path: Path) -> str | None:
    """What changes whenever a file is rewritten: its size and mtime (None: it is gone)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"
