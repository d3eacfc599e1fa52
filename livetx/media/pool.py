"""A process pool with a typed async submit, priorities, time limits and worker replacement.

Each slot owns one warm worker process (spawned, with av and the transcoder imported) and
talks to it over a pipe. A job that overruns its time limit gets its worker killed and
replaced; a worker that dies is replaced too, and its job runs once more on the fresh worker
(a kill from outside, say the OOM killer). A job that overruns, or dies twice, fails alone with
a named error, and the pool keeps serving.

Waiting clients go before lookahead, lookahead before pre-transcode, and pre-transcode before
background jobs (livetx/batch/). Background work never
delays a client: while any client job is queued or running, no background job starts, and the
running ones are preempted (a worker stops between packets, within milliseconds, and the job
goes back in the queue), so a client's transcode has every core. A client that joins
background work promotes it to client priority.

A ticket may carry a gate: run by the pool slot once, when the job is about to reach its worker
(after its host slot, if any, is taken), never while it waits in the queue. A gate that raises
fails the ticket with what it raised, and the slot takes the next one. The segment service uses
it to take a background segment's lease only when its job starts (cluster/flight.py); a job
preempted or retried after its gate passed goes back in the queue with what the gate let in.

With several server processes on one host (`livetx serve --processes N`), each has a pool of
its own and the pools share the host's transcode slots (`host_slots.py`): a job runs only while
its pool slot holds a host slot, so the host never runs more than `transcode.workers` at once.
A client job that finds every host slot taken waits for one (blocking, in a thread); a
background job only takes a free one and otherwise goes back in the queue, to try again in
HOST_RETRY seconds, so background work never stands in line before clients, on this process
or another. A background job another process runs is not preempted for this process's client:
the client waits at most for the end of that one transcode (see the README's "Several
processes on one host").

A picture job (a snapshot, a poster, a storyboard sheet: livetx/media/picture.py) runs on the same
warm workers, under the same host slots and time limit, always at client priority
(`TranscodePool.picture`).

Header probes have a `ProbePool` of their own (workers of the same kind, started when first
needed), so a probe never waits behind transcodes, and a probe that hangs (a source that stalls
FFmpeg's demuxer at open) is killed at its time limit, its worker replaced.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any, Generic, Protocol, TypeVar

from livetx.errors import (
    LivetxError,
    ProbeTimeout,
    SourceChanged,
    SourceTooLarge,
    SourceTypeRefused,
    SourceUnreadable,
    TranscodeFailed,
    TranscodeTimeout,
)
from livetx.media.host_slots import HostSlot, HostSlots
from livetx.media.messages import (
    Cancel,
    Cancelled,
    Chunk,
    Done,
    Failed,
    Outcome,
    Preempted,
    Ready,
    Reply,
    Restarted,
    TimedOut,
    WorkerLost,
    WorkerUnavailable,
)
from livetx.media.model import MediaInfo, SegmentJob, SegmentResult
from livetx.media.picture import PictureJob, PictureResult
from livetx.media.probe import ProbeJob

log = logging.getLogger(__name__)

# errors a worker raises that reach the caller as they are; any other is a TranscodeFailed
_PASSED_ON: frozenset[type[LivetxError]] = frozenset({SourceUnreadable, SourceTooLarge, SourceTypeRefused, SourceChanged, TranscodeFailed})

J = TypeVar("J")  # a worker's jobs: SegmentJob | PictureJob (a transcode pool), ProbeJob (a probe pool)
R = TypeVar("R")  # and their results
T = TypeVar("T", SegmentResult, PictureResult)  # what one ticket's job makes
# what a transcode pool's workers take and give
WorkJob = SegmentJob | PictureJob
WorkResult = SegmentResult | PictureResult


# run by a pool slot as its job is about to start; raises to refuse the job (see the module docstring)
Gate = Callable[[], Awaitable[None]]


class Listener(Protocol):
    """Hears a segment job's bytes as its worker muxes them, on the event loop (see `Chunk`)."""

    def begin(self) -> None:
        """An attempt at the job starts: whatever was heard before is void."""

    def chunk(self, data: bytes) -> None:
        """The attempt's next bytes."""


HOST_RETRY = 0.2  # seconds before a background job tries again for a host slot when all were taken


class Priority(IntEnum):
    CLIENT = 0
    LOOKAHEAD = 1
    PRETRANSCODE = 2
    # background jobs (livetx/batch/): below every other kind, so no playlist's pre-transcode or
    # lookahead waits behind a job; like all background work, preempted whenever a client waits
    JOB = 3


def _worker_main(conn: Connection, origin: str = "") -> None:
    """Child process: import once, then run jobs (segments, pictures or probes) until the pipe closes.
    Remote sources are read from `origin` only ("": none, the store is local)."""
    from livetx.media.picture import make_picture
    from livetx.media.probe import probe
    from livetx.media.scheduling import drop_realtime
    from livetx.media.transcode import transcode_segment

    def should_stop() -> bool:
        try:
            return bool(conn.poll()) and isinstance(conn.recv(), Cancel)
        except (EOFError, OSError):  # the parent went away: stop now
            return True

    def emit(data: bytes) -> None:
        conn.send(Chunk(data))  # (a parent gone away shows at the reply)

    conn.send(Ready(os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if isinstance(job, Cancel):  # arrived after its job had finished: nothing to stop
            continue
        reply: Reply[SegmentResult] | Reply[MediaInfo] | Reply[PictureResult]
        try:
            if isinstance(job, ProbeJob):
                reply = Done(probe(job.source, origin=origin))
            elif isinstance(job, PictureJob):
                reply = Done(make_picture(job, should_stop, origin=origin))
            else:
                reply = Done(transcode_segment(job, should_stop, origin=origin, emit=emit))
        except Preempted:
            reply = Cancelled()
        except LivetxError as exc:
            reply = Failed(type(exc), exc.message)
        except Exception as exc:  # noqa: BLE001 - report, never die silently (no message: it may name the file)
            reply = Failed(TranscodeFailed, f"unexpected {type(exc).__name__}")
        drop_realtime()  # whatever an encoder of the job left real-time (livetx/media/scheduling.py)
        try:
            conn.send(reply)
        except (EOFError, OSError):  # the parent closed the pipe (shutdown): nothing to report to
            return


class _Worker(Generic[J, R]):
    """Parent-side handle of one worker process, taking jobs J with results R. Its methods
    block: run them in a thread."""

    def __init__(self, ctx: SpawnContext, origin: str = "", what: str = "transcode") -> None:
        self.ctx = ctx
        self.origin = origin
        self.what = what
        self.process: SpawnProcess | None = None
        self.conn: Connection | None = None
        # a replacement (in the thread that ran the job) and `stop` (closing) never interleave,
        # and once `stop` has begun nothing starts a worker again
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._stopped:
            raise TranscodeFailed(f"{self.what} worker stopped: the pool is closing")
        parent, child = self.ctx.Pipe()
        self.process = self.ctx.Process(target=_worker_main, args=(child, self.origin), daemon=True, name=f"livetx-{self.what}")
        self.process.start()
        child.close()
        self.conn = parent
        if not parent.poll(60):
            raise TranscodeFailed(f"{self.what} worker did not start")
        parent.recv()

    def live_pid(self) -> int | None:
        """The process id while the worker process lives."""
        return self.process.pid if self.process is not None and self.process.is_alive() else None

    def stop(self) -> None:
        """End the worker (its pipe closed, it returns; killed if it has not within 2 s), for
        good: a job running meanwhile fails, and its worker is not replaced."""
        with self._lock:
            self._stopped = True
            process, conn = self.process, self.conn
        if conn is not None:
            conn.close()
        if process is not None and process.pid is not None:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()

    def _replace(self) -> None:
        """The worker killed and a fresh one started, unless `stop` has begun."""
        with self._lock:
            self._kill()
            self._start()

    def _kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join()
        if self.conn is not None:
            self.conn.close()

    def cancel(self) -> None:
        """Ask the running job to stop (called from the event loop while `call` waits in a thread)."""
        try:
            if self.conn is not None:
                self.conn.send(Cancel())
        except OSError:
            pass

    def call(self, job: J, timeout: float, on_chunk: Callable[[bytes], None] | None = None) -> Outcome[R]:
        """Run one job: the worker's reply, or (the worker replaced) TimedOut or WorkerLost. The
        `Chunk`s a segment job sends before its reply go to `on_chunk` (called in this thread);
        the time limit is the job's, however many chunks come."""
        assert self.conn is not None
        deadline = time.monotonic() + timeout
        try:
            self.conn.send(job)
            while True:
                if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                    self._replace()
                    return TimedOut(f"{self.what} exceeded its {timeout:g} s limit")
                reply = self.conn.recv()
                if not isinstance(reply, Chunk):
                    break
                if on_chunk is not None:
                    on_chunk(reply.data)
        except (EOFError, OSError, BrokenPipeError):
            self._replace()
            return WorkerLost(f"{self.what} worker died")
        assert isinstance(reply, Done | Failed | Cancelled), f"unexpected reply {type(reply).__name__}"
        return reply


@dataclass
class PoolStats:
    queued: int = 0
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    restarts: int = 0
    preempted: int = 0
    retried: int = 0  # jobs run again after their worker died
    mean_seconds: float = 0.0  # moving average of a transcode's wall time
    host_waits: int = 0  # client jobs that found every host slot taken and waited for one
    host_waiting: int = 0  # client jobs waiting for a host slot now
    host_deferred: int = 0  # times a background job found every host slot it tried taken
    refused: int = 0  # jobs their gate refused as they were about to start


@dataclass(eq=False)
class Ticket(Generic[T]):
    """One submitted job (a segment's, or a picture's making a T): its priority can be raised
    while it waits or runs."""

    job: WorkJob
    priority: Priority
    future: asyncio.Future[T]
    running_on: _Worker[WorkJob, WorkResult] | None = None
    taken: bool = False  # off the queue, in a pool slot (waiting for a host slot, or running)
    host_slot: HostSlot | None = None  # the host slot it runs in (several server processes only)
    cancelling: bool = False
    retried: bool = False  # a job whose worker died goes again once, on a fresh worker
    gate: Gate | None = None  # run once, as the job is about to start; None once it has
    listener: Listener | None = None  # hears the segment's bytes as they are muxed


class TranscodePool:
    def __init__(self, size: int, timeout: float, origin: str = "", host: HostSlots | None = None, host_offset: int = 0) -> None:
        """`origin`: where remote sources may be read from (`livetx.storage.base.media_origin`).
        `host`: the host's transcode slots, shared with other server processes (None: this
        process is the only one); `host_offset` spreads the processes' first tries over them."""
        self.size = size or os.cpu_count() or 1
        self.timeout = timeout
        self.host = host
        self.host_offset = host_offset
        self.stats = PoolStats()
        self._ctx = multiprocessing.get_context("spawn")
        self._workers = [_Worker[WorkJob, WorkResult](self._ctx, origin) for _ in range(self.size)]
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="livetx-pool")
        self._queue: asyncio.PriorityQueue[tuple[int, int, Ticket[Any]]] = asyncio.PriorityQueue()
        self._running: set[Ticket[Any]] = set()
        self._clients = 0  # client tickets queued or running
        self._clients_idle = asyncio.Event()
        self._clients_idle.set()
        self._clients_busy = asyncio.Event()  # the opposite of _clients_idle
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.host is not None:
            await self.host.prepare()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.start) for w in self._workers))
        self._tasks = [asyncio.create_task(self._dispatch(i, w), name="livetx-pool-slot") for i, w in enumerate(self._workers)]

    async def close(self) -> None:
        # the flag as well as the cancel: on Python 3.11, a wait_for whose awaitable completes
        # as it is cancelled (a slot in _hold_back as the last client finishes) swallows the
        # cancellation, and that slot would go on taking tickets
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.stop) for w in self._workers))
        self._threads.shutdown(wait=True)
        if self.host is not None:
            self.host.close()

    @property
    def waiting_clients(self) -> int:
        """Client jobs beyond what the workers can take at once (background jobs give way)."""
        return max(0, self._clients - self.size)

    def retry_after(self) -> int:
        """Seconds until the client queue has likely drained enough to take one more (1 to 60),
        spread at random over up to twice that, so that clients refused together don't all
        come back together."""
        per_job = self.stats.mean_seconds or 2.0
        drained = (self.waiting_clients + 1) * per_job / self.size
        return max(1, min(60, math.ceil(drained * random.uniform(1.0, 2.0))))

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operators and chaos tests)."""
        return [pid for w in self._workers if (pid := w.live_pid()) is not None]

    async def run(self, job: SegmentJob, priority: Priority = Priority.CLIENT) -> SegmentResult:
        return await self.submit(job, priority).future

    async def picture(self, job: PictureJob, priority: Priority = Priority.CLIENT) -> PictureResult:
        """A picture (a snapshot, a poster, a storyboard sheet), at client priority; a snapshot
        job's at Priority.JOB (preempted, and queued again, whenever a client waits)."""
        ticket: Ticket[PictureResult] = Ticket(job, priority, asyncio.get_running_loop().create_future())
        if priority == Priority.CLIENT:
            self._client_added(ticket)
        self._enqueue(ticket)
        return await ticket.future

    def submit(
        self, job: SegmentJob, priority: Priority = Priority.CLIENT, gate: Gate | None = None, listener: Listener | None = None
    ) -> Ticket[SegmentResult]:
        ticket: Ticket[SegmentResult] = Ticket(job, priority, asyncio.get_running_loop().create_future(), gate=gate, listener=listener)
        if priority == Priority.CLIENT:
            self._client_added(ticket)
        self._enqueue(ticket)
        return ticket

    def promote(self, ticket: Ticket[Any], priority: Priority = Priority.CLIENT) -> None:
        """A client now waits on `ticket`: queue it (again) at the higher priority."""
        if priority >= ticket.priority or ticket.future.done():
            return
        ticket.priority = priority
        if priority == Priority.CLIENT:
            self._client_added(ticket)
        if not ticket.taken:
            self._enqueue(ticket)  # the old queue entry is skipped: its priority no longer matches

    def _client_added(self, ticket: Ticket[Any]) -> None:
        self._clients += 1
        self._clients_idle.clear()
        self._clients_busy.set()
        ticket.future.add_done_callback(self._client_done)
        self._preempt_background()

    def _client_done(self, _: asyncio.Future[Any]) -> None:
        self._clients -= 1
        if self._clients == 0:
            self._clients_idle.set()
            self._clients_busy.clear()

    def _enqueue(self, ticket: Ticket[Any]) -> None:
        ticket.taken = False
        self.stats.queued += 1
        self._queue.put_nowait((int(ticket.priority), next(self._seq), ticket))

    def _preempt_background(self) -> None:
        """A client waits: stop every running background job (they go back in the queue)."""
        for ticket in self._running:
            if ticket.priority > Priority.CLIENT and not ticket.cancelling and ticket.running_on is not None:
                ticket.cancelling = True
                ticket.running_on.cancel()

    async def _dispatch(self, slot: int, worker: _Worker[WorkJob, WorkResult]) -> None:
        """One slot: take the next ticket, run it on this slot's worker (in a host slot, with
        several server processes; past its gate, if it has one), settle it."""
        while not self._closing:
            priority, _, ticket = await self._queue.get()
            self.stats.queued -= 1
            # a caller that gave up, an entry left behind by a promotion, or a ticket already taken
            if ticket.future.done() or priority != ticket.priority or ticket.taken:
                continue
            if ticket.priority > Priority.CLIENT and not self._clients_idle.is_set():
                await self._hold_back(ticket)
                continue
            ticket.taken = True
            if self.host is not None:
                ticket.host_slot = await self._take_host_slot(slot, ticket)
                if ticket.host_slot is None:  # a background job, and the host is busy
                    await self._defer(ticket)
                    continue
            if ticket.gate is not None:
                await self._open_gate(ticket)
            if ticket.future.done():  # refused by its gate, or its caller went away meanwhile
                self._release_host_slot(ticket)
                continue
            if ticket.priority > Priority.CLIENT and not self._clients_idle.is_set():
                self._release_host_slot(ticket)  # a client came while it took the host slot or its gate
                await self._hold_back(ticket)
                continue
            try:
                outcome, took = await self._run_on(worker, ticket)
            finally:
                self._release_host_slot(ticket)
            self._settle(ticket, outcome, took)

    async def _open_gate(self, ticket: Ticket[Any]) -> None:
        """Run the ticket's gate, once: a job that goes back in the queue keeps what it let in.
        A gate that raises fails the ticket with that."""
        gate, ticket.gate = ticket.gate, None
        assert gate is not None
        try:
            await gate()
        except Exception as exc:  # noqa: BLE001 - the gate's refusal (or failure) is the job's outcome
            self.stats.refused += 1
            if not ticket.future.done():
                ticket.future.set_exception(exc)

    def _release_host_slot(self, ticket: Ticket[Any]) -> None:
        if ticket.host_slot is not None:
            ticket.host_slot.release()
            ticket.host_slot = None

    async def _take_host_slot(self, slot: int, ticket: Ticket[Any]) -> HostSlot | None:
        """A host slot for the ticket: a free one, else (a client job) the first one freed of
        those it waits on; None for a background job when the one it tries is taken."""
        assert self.host is not None
        first = slot + self.host_offset
        background = ticket.priority > Priority.CLIENT
        # a background job tries this pool slot's own host slot only: one lock call per retry
        taken = await self.host.take(first, only=background)
        if taken is not None:
            return taken
        if background:
            self.stats.host_deferred += 1
            return None
        # every host slot is taken. A background job of this process holds one, when it runs:
        # it is being preempted for this client (see _preempt_background), so wait on that one
        mine = [t.host_slot.index for t in self._running if t.priority > Priority.CLIENT and t.host_slot is not None]
        self.stats.host_waits += 1
        self.stats.host_waiting += 1
        try:
            return await self.host.wait(mine[0] if mine else first)
        finally:
            self.stats.host_waiting -= 1

    async def _defer(self, ticket: Ticket[Any]) -> None:
        """A background job found the host busy: back in the queue, tried again after
        HOST_RETRY seconds, or at once when a client of this process needs this slot."""
        self._enqueue(ticket)
        try:
            await asyncio.wait_for(self._clients_busy.wait(), timeout=HOST_RETRY)
        except TimeoutError:
            pass

    async def _hold_back(self, ticket: Ticket[Any]) -> None:
        """Background waits while a client does; a short wait, so this slot still picks up a
        client job queued in the meantime (it sorts first)."""
        self._enqueue(ticket)
        try:
            await asyncio.wait_for(self._clients_idle.wait(), timeout=0.05)
        except TimeoutError:
            pass

    async def _run_on(self, worker: _Worker[WorkJob, WorkResult], ticket: Ticket[Any]) -> tuple[Outcome[WorkResult], float]:
        """Run the ticket's job on `worker` (in a thread: `call` blocks); its outcome and wall time."""
        loop = asyncio.get_running_loop()
        ticket.running_on = worker
        self._running.add(ticket)
        self.stats.in_flight += 1
        began = loop.time()
        outcome: Outcome[WorkResult]
        on_chunk = None
        if (listener := ticket.listener) is not None:
            listener.begin()

            def on_chunk(data: bytes) -> None:  # in the pool's thread: handed to the loop, in order
                loop.call_soon_threadsafe(listener.chunk, data)

        try:
            outcome = await loop.run_in_executor(self._threads, worker.call, ticket.job, self.timeout, on_chunk)
        except Exception as exc:  # noqa: BLE001 - e.g. a worker that cannot be restarted
            outcome = WorkerLost(f"{type(exc).__name__}")
        finally:
            self.stats.in_flight -= 1
            self._running.discard(ticket)
            ticket.running_on = None
        return outcome, loop.time() - began

    def _settle(self, ticket: Ticket[Any], outcome: Outcome[WorkResult], took: float) -> None:
        """Resolve the ticket's future from the outcome, or queue the ticket again."""
        if isinstance(outcome, Restarted):
            self.stats.restarts += 1
            log.warning("transcode worker replaced", extra={"event": "worker_restart", "reason": outcome.reason})
        if ticket.future.done():
            return
        if isinstance(outcome, WorkerLost) and not ticket.retried:
            ticket.retried = True  # killed from outside (OOM, an operator): once more
            self.stats.retried += 1
            self._enqueue(ticket)
        elif isinstance(outcome, Cancelled):
            self.stats.preempted += 1
            ticket.cancelling = False
            self._enqueue(ticket)
        elif isinstance(outcome, Done):
            self.stats.completed += 1
            self.stats.mean_seconds = took if not self.stats.mean_seconds else 0.8 * self.stats.mean_seconds + 0.2 * took
            ticket.future.set_result(outcome.result)
        else:
            self.stats.failed += 1
            ticket.future.set_exception(_segment_error(outcome))


def _segment_error(outcome: Failed | Restarted) -> LivetxError:
    """The error a segment's caller sees: a timeout, one of the worker's own errors passed on,
    else TranscodeFailed."""
    if isinstance(outcome, TimedOut):
        return TranscodeTimeout(outcome.message)
    if isinstance(outcome, Failed) and outcome.kind in _PASSED_ON:
        return outcome.kind(outcome.message)
    return TranscodeFailed(outcome.message)


class ProbePool:
    """Header probes in worker processes of their own, `size` at once, each under `timeout`.

    Workers start when first needed and stay warm. A probe over its limit gets its worker
    killed and replaced and fails with ProbeTimeout; a probe that kills its worker (a crash in
    a demuxer) fails with SourceUnreadable. A caller that goes away does not free the worker
    before its probe has ended, so replies never cross.
    """

    def __init__(self, size: int, timeout: float, origin: str = "") -> None:
        self.size = max(1, size)
        self.timeout = timeout
        self.restarts = 0
        self.probes = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._workers = [_Worker[ProbeJob, MediaInfo](self._ctx, origin, "probe") for _ in range(self.size)]
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="livetx-probe")
        self._free: asyncio.Queue[_Worker[ProbeJob, MediaInfo]] = asyncio.Queue()
        for worker in self._workers:
            self._free.put_nowait(worker)

    def worker_pids(self) -> list[int]:
        return [pid for w in self._workers if (pid := w.live_pid()) is not None]

    def _run(self, worker: _Worker[ProbeJob, MediaInfo], job: ProbeJob) -> Outcome[MediaInfo]:
        """In a thread: start the worker if it never was, then run the probe."""
        try:
            if worker.process is None:
                worker.start()
            return worker.call(job, self.timeout)
        except Exception as exc:  # noqa: BLE001 - a worker that cannot be (re)started
            worker.process = None  # started afresh by the next probe
            return WorkerUnavailable(f"probe worker failed: {type(exc).__name__}")

    async def probe(self, source: str) -> MediaInfo:
        worker = await self._free.get()
        running = asyncio.get_running_loop().run_in_executor(self._threads, self._run, worker, ProbeJob(source))
        running.add_done_callback(lambda _: self._free.put_nowait(worker))
        self.probes += 1
        outcome = await asyncio.shield(running)
        if isinstance(outcome, Restarted):
            self.restarts += 1
            log.warning("probe worker replaced", extra={"event": "worker_restart", "reason": outcome.reason})
        if isinstance(outcome, Done):
            return outcome.result
        raise _probe_error(outcome, self.timeout)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        # every worker, started or not: one a probe in flight would start now stays unstarted
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.stop) for w in self._workers))
        self._threads.shutdown(wait=True)


def _probe_error(outcome: Failed | Cancelled | Restarted, timeout: float) -> LivetxError:
    """The error a probe's caller sees: the source's fault (SourceUnreadable and its kinds, a
    timeout) unless no worker could be started."""
    if isinstance(outcome, TimedOut):
        return ProbeTimeout(f"probing the source took over the {timeout:g} s limit")
    if isinstance(outcome, WorkerUnavailable):
        return TranscodeFailed(outcome.message)  # not the source's fault
    if isinstance(outcome, Cancelled):  # pragma: no cover - a probe never polls for Cancel
        return SourceUnreadable("probing the source was cancelled")
    if isinstance(outcome, WorkerLost) or outcome.kind is TranscodeFailed:  # the worker died on it, or an unexpected error
        return SourceUnreadable(f"probing the source failed: {outcome.message}")
    return (outcome.kind if outcome.kind in _PASSED_ON else SourceUnreadable)(outcome.message)
