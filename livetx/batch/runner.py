"""The runner: one per server process, started and stopped with the app. It finds jobs to run
(the open markers in storage, livetx/batch/store.py), claims them (livetx/batch/claims.py),
runs each (livetx/batch/work.py) and notifies (livetx/batch/notices.py).

- It looks every `jobs.poll` seconds, and at once when a job is submitted to this process.
- A job runs when its pipeline (livetx/batch/pipelines.py, the app's PipelineStore) is not
  paused and one of the pipeline's `Concurrency` slots is free (slot leases: fleet-wide with
  Redis, host-wide without). Pipeline records are read at most once every
  PIPELINE_READ_EVERY seconds, once for all the jobs of a look, so a change (un-pausing, a
  new concurrency) takes effect at the next look after that, with no restart; a change made
  through this process's API is read at once. A job whose pipeline was deleted fails.
- Its segments go to the pool at `Priority.JOB`, the lowest: a client's segment never waits
  behind a job (the pool preempts background work whenever a client waits), nor does
  pre-transcode or lookahead (they sort first).
- Progress is written to the record at most every `jobs.progress_every` seconds, and the
  claim renewed every third of `jobs.lease_ttl`, in the same write.
- Cancel: `DELETE` leaves a marker; the job stops before its next segments and writes nothing.
- At shutdown a running job goes back to queued (another runner, or this one restarted, takes
  it at once); a job whose runner was killed is taken over when its claim runs out, at once
  on the same host (claims.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from livetx.batch.claims import Claims, make_engine
from livetx.batch.notices import Notices
from livetx.batch.pipelines import Pipeline, PipelineStore
from livetx.batch.record import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobError, JobRecord, Output
from livetx.batch.request import from_work
from livetx.batch.store import JobStore
from livetx.batch.work import Cancelled, check_planned, make_all_segments, make_file, make_snapshots, title_for
from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.cluster.leases import Lease
from livetx.errors import LivetxError, PipelineNotFound, StorageUnavailable
from livetx.notify.delivery import Deliveries
from livetx.settings import Settings

log = logging.getLogger(__name__)

PIPELINE_READ_EVERY = 1.0  # seconds a runner keeps the pipeline records it read (pause, concurrency)


class Runner:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        segments: SegmentService,
        pipelines: PipelineStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.segments = segments
        self.pipelines = pipelines
        self.clock = clock
        self._seen: dict[str, Pipeline | None] = {}  # pipeline name -> its record as last read (None: there is none)
        self._seen_at = -float("inf")  # (the event loop's clock)
        self.store = JobStore(catalog.output)
        self.claims = Claims(make_engine(settings), self.store, settings.jobs.lease_ttl, clock)
        self.deliveries = Deliveries(settings.notify, clock=clock)
        self.notices = Notices(self.deliveries, self.store, settings.notify, self.claims.owner, settings.jobs.lease_ttl)
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}  # job id -> its run or its delivery
        self._loop: asyncio.Task[None] | None = None
        self._remuxer: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        """Start looking for jobs and running them (unless `jobs.run` is off: the API still
        takes, answers and cancels jobs, and runners elsewhere run them)."""
        if not self.settings.jobs.run:
            return
        await self.claims.engine.start()
        await self.deliveries.start()
        self._remuxer = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._loop = asyncio.create_task(self._forever(), name="livetx-jobs")

    async def close(self) -> None:
        if self._loop is None:  # never started (jobs.run off)
            return
        self._loop.cancel()
        await asyncio.gather(self._loop, return_exceptions=True)
        tasks = list(self._busy.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.deliveries.close()
        if self._remuxer is not None:
            self._remuxer.shutdown(wait=False, cancel_futures=True)
        await self.claims.engine.close()

    def wake(self) -> None:
        """A job was submitted here: look now."""
        self._wake.set()

    def pipelines_changed(self) -> None:
        """A pipeline was changed through this process: read the records again, and look now."""
        self._seen_at = -float("inf")
        self.wake()

    async def _pipeline(self, name: str) -> Pipeline | None:
        """The pipeline `name` as read in this look, or at most PIPELINE_READ_EVERY s ago."""
        if name not in self._seen:
            try:
                self._seen[name] = await self.pipelines.get(name)
            except PipelineNotFound:
                self._seen[name] = None
        return self._seen[name]

    @property
    def running(self) -> int:
        return len(self._busy)

    async def _forever(self) -> None:
        down = False  # the last look found storage unavailable
        while True:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:  # once per outage, not at every look
                if not down:
                    log.warning("job scan: storage unavailable (%s); looking again every %s s", exc.message, self.settings.jobs.poll)
                down = True
            except Exception:  # a bug: logged, tried again at the next look
                log.exception("job scan failed")
            else:
                down = False
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.jobs.poll)
            except TimeoutError:
                pass
            self._wake.clear()

    async def scan(self) -> None:
        """One look at the open jobs: take what can be taken."""
        now = asyncio.get_running_loop().time()
        if now - self._seen_at >= PIPELINE_READ_EVERY:
            self._seen, self._seen_at = {}, now
        for job_id in await self.store.open_ids():
            if job_id in self._busy:
                continue
            try:
                await self._look(job_id)
            except LivetxError as exc:  # this job's record or storage: the others still get their look
                log.warning("job %s: not taken (%s)", job_id, exc.code)

    async def _look(self, job_id: str) -> None:
        record = await self.store.get(job_id)
        if record is None:
            return
        if record.finished and not record.notice_pending:
            await self.store.close(job_id, runner=False)  # a marker left by a runner that stopped in between
            return
        if not self.claims.takeable(record, holding=True):  # (whether it is, is known once its lease is held)
            return
        if record.finished:
            await self._take_notice(record)
            return
        pipeline = await self._pipeline(record.pipeline)
        if pipeline is None:
            await self._fail_unplaced(record)
            return
        if pipeline.paused:
            return
        slot = await self.claims.slot(pipeline.name, pipeline.concurrency)
        if slot is None:
            return  # the pipeline is full: the next look tries again
        try:
            taken = await self.claims.take(record)
        except BaseException:
            await slot.release()
            raise
        if taken is None:
            await slot.release()
            return
        lease, claimed = taken
        self._start(claimed.id, self._run(claimed, lease, slot))

    def _start(self, job_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"livetx-job {job_id}")
        self._busy[job_id] = task
        task.add_done_callback(lambda _: self._busy.pop(job_id, None))

    async def _fail_unplaced(self, record: JobRecord) -> None:
        """A job whose pipeline is gone (deleted after the job was submitted) fails."""
        taken = await self.claims.take(record)
        if taken is None:
            return
        lease, claimed = taken
        error = JobError(PipelineNotFound.code, f"no pipeline named {record.pipeline!r} (deleted after the job was submitted)")
        now = self.clock()
        if claimed.state == QUEUED:
            claimed = claimed.transition(RUNNING, now)
        self._start(claimed.id, self._end(claimed.transition(FAILED, now, error=error), lease))

    async def _take_notice(self, record: JobRecord) -> None:
        taken = await self.claims.take(record)
        if taken is None:
            return
        lease, claimed = taken
        self._start(claimed.id, self._notify(claimed, lease))

    # ---- one job ------------------------------------------------------------------------

    async def _run(self, record: JobRecord, lease: Lease, slot: Lease) -> None:
        keeper = _Keeper(self, record)
        try:
            try:
                final = await self._make(keeper)
            except asyncio.CancelledError:  # shutdown: back in the queue, for whoever looks next
                await asyncio.shield(self._requeue(keeper))
                raise
            finally:
                keeper.stop()
                await slot.release()
        except LivetxError as exc:  # storage failed under the record: the claim runs out, and the job is taken over then
            log.warning("job %s: record not written (%s)", record.id, exc.code)
            await lease.release()
            return
        except BaseException:
            await lease.release()
            raise
        await self._end(final, lease)

    async def _end(self, final: JobRecord, lease: Lease) -> None:
        """A job's end written, then its notice sent (which releases the lease) or its marker closed."""
        notifying = False
        try:
            if final.notice_pending:  # its delivery is this runner's (see notices.py)
                final = self.claims.renewed(final)
            await self.store.put(final)
            log.info("job %s %s", final.id, final.state, extra={"event": "job_ended", "job": final.id, "state": final.state})
            if final.notice_pending:
                notifying = True
                await self._notify(final, lease)  # (releases the lease)
            else:
                await self.store.close(final.id)
        except LivetxError as exc:  # storage failed under the record: the claim runs out, and the job is taken over then
            log.warning("job %s: record not written (%s)", final.id, exc.code)
        finally:
            if not notifying:
                await lease.release()

    async def _make(self, keeper: _Keeper) -> JobRecord:
        record = keeper.record
        now = self.clock()
        if await self.store.cancel_requested(record.id):
            return record.transition(CANCELLED, now)
        running = record.transition(RUNNING, now, attempts=record.attempts + 1)
        await keeper.write(running)
        keeper.start()
        jobs = self.settings.jobs
        try:
            work = from_work(record.work)
            if work.profile is not None:  # segmented: the playlist job's title, every segment made
                title = await self.catalog.title(work.profile, work.composite.clips[0].key)
                await make_all_segments(self.segments, title, keeper.progress, keeper.cancelled, jobs.segments_at_once)
                outputs = [(work.output_uri, work.output_key)]
                if work.mpd_uri is not None and work.mpd_key is not None:  # DASH: its MPD, written with the playlist
                    outputs.append((work.mpd_uri, work.mpd_key))
                made_outputs = []
                for uri, key in outputs:
                    info = await self.catalog.output.stat(key)
                    made_outputs.append(Output(uri, info.size if info else 0))
                return keeper.record.transition(SUCCEEDED, self.clock(), outputs=tuple(made_outputs))
            title = await title_for(self.catalog, work.composite, work.clip_field)
            check_planned(title, self.settings.limits, oss=bool(record.topic) or "Process" in record.request)
            if work.snapshot is not None:  # pictures, each its own object
                pictures = await make_snapshots(work, title, self.catalog, self.segments, keeper.progress, keeper.cancelled)
                return keeper.record.transition(SUCCEEDED, self.clock(), outputs=tuple(Output(uri, size) for uri, size in pictures))
            assert self._remuxer is not None
            made = await make_file(
                work, title, self.segments, self._remuxer, self.settings.limits, jobs.segments_at_once, keeper.progress, keeper.cancelled
            )
        except Cancelled:
            return keeper.record.transition(CANCELLED, self.clock())
        except LivetxError as exc:
            return keeper.record.transition(FAILED, self.clock(), error=JobError(exc.code, exc.message))
        except Exception as exc:
            log.exception("job %s failed", record.id)
            return keeper.record.transition(FAILED, self.clock(), error=JobError("job_failed", f"{type(exc).__name__}"))
        return keeper.record.transition(SUCCEEDED, self.clock(), outputs=(Output(work.output_uri, made.size),))

    async def _requeue(self, keeper: _Keeper) -> None:
        try:
            current = keeper.record
            if current.state == RUNNING:
                await self.store.put(current.transition(QUEUED, self.clock()))
        except Exception:  # noqa: BLE001 - at shutdown: the claim runs out, and it is taken over then
            log.warning("job %s: could not put back in the queue", keeper.record.id)

    async def _notify(self, record: JobRecord, lease: Lease) -> None:
        task = self.notices.send(record)
        try:
            if task is None:
                await self.store.put(replace(record, delivered=False, owner=None, lease_until=None))
                await self.store.close(record.id)
                return
            await asyncio.wait([task])  # (cancelled at shutdown: the delivery with it, taken over later)
            if not task.cancelled():
                await self.store.close(record.id)
        finally:
            if task is not None and not task.done():
                task.cancel()
            await lease.release()


class _Keeper:
    """A running job's record: progress written at most every `progress_every` seconds, the
    claim renewed every third of the lease's time, cancel requests looked up."""

    def __init__(self, runner: Runner, record: JobRecord) -> None:
        self.runner = runner
        self.record = record
        self._lock = asyncio.Lock()
        self._written = 0.0
        self._task: asyncio.Task[None] | None = None
        self._cancel = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def write(self, record: JobRecord) -> None:
        async with self._lock:
            self.record = self.runner.claims.renewed(record) if record.state == RUNNING else record
            await self.runner.store.put(self.record)
            self._written = self.runner.clock()

    async def _renew(self) -> None:
        every = self.runner.settings.jobs.lease_ttl / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.write(self.record)
            except LivetxError as exc:
                log.warning("job %s: claim not renewed (%s)", self.record.id, exc.code)

    async def progress(self, done: int, count: int) -> None:
        percent = min(99, done * 100 // max(1, count))
        if percent == self.record.progress:
            return
        if self.runner.clock() - self._written < self.runner.settings.jobs.progress_every and done < count:
            return
        await self.write(replace(self.record, progress=percent))

    async def cancelled(self) -> bool:
        if not self._cancel:
            self._cancel = await self.runner.store.cancel_requested(self.record.id)
        return self._cancel
