"""The process pool: real worker processes, time limits, replacement of a stuck worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.errors import (
    LivetxError,
    ParameterError,
    ProbeTimeout,
    SourceChanged,
    SourceTooLarge,
    SourceTypeRefused,
    SourceUnreadable,
    TranscodeFailed,
    TranscodeTimeout,
)
from livetx.media.messages import Cancel, Cancelled, Done, Failed, Ready, Restarted, TimedOut, WorkerLost, WorkerUnavailable
from livetx.media.model import AudioSpec, SegmentJob, SegmentResult
from livetx.media.pool import Priority, TranscodePool, _probe_error, _segment_error, _Worker
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import Source, Stall
from tests.support import cpu_seconds, job_for, wait_for, wait_until


def stuck_job(origin: str) -> SegmentJob:
    return SegmentJob(f"{origin}/source.mp4", Fraction(0), Fraction(0), Fraction(1), None, AudioSpec(48000, 2), None, 0)


async def test_runs_jobs_in_worker_processes(sources: dict[str, Source]) -> None:
    pool = TranscodePool(size=1, timeout=60)
    await pool.start()
    try:
        result = await pool.run(job_for(sources["mp4-30"]))
        assert result.video_frames == 30 and result.data[:1] == b"\x47"  # MPEG-TS sync byte
    finally:
        await pool.close()


async def test_stuck_worker_is_replaced_and_pool_keeps_serving(sources: dict[str, Source], stalling: str) -> None:
    stuck = stuck_job(stalling)
    pool = TranscodePool(size=1, timeout=2, origin=stalling)
    await pool.start()
    try:
        with pytest.raises(TranscodeTimeout) as info:
            await pool.run(stuck)
        assert info.value.status == 504
        assert pool.stats.restarts == 1
        result = await pool.run(job_for(sources["mp4-30"]))
        assert result.video_frames == 30
    finally:
        await pool.close()


async def test_a_fifo_source_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)  # swapped in for a source after its stat: opening it would block
    pool = TranscodePool(size=1, timeout=30)
    await pool.start()
    try:
        with pytest.raises(SourceUnreadable, match="not a regular file"):
            await asyncio.wait_for(pool.run(replace(stuck_job(""), source=str(fifo))), 10)
    finally:
        await pool.close()


async def test_unreadable_source_is_a_named_error(tmp_path: Path, sources: dict[str, Source]) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    pool = TranscodePool(size=1, timeout=30)
    await pool.start()
    try:
        with pytest.raises((TranscodeFailed, SourceUnreadable)):
            await pool.run(job_for(Source(junk, sources["mp4-30"].spec)))
        assert pool.stats.restarts == 0
    finally:
        await pool.close()


async def test_worker_killed_mid_job_is_replaced(sources: dict[str, Source], stalling: str) -> None:
    stuck = stuck_job(stalling)
    pool = TranscodePool(size=1, timeout=60, origin=stalling)
    await pool.start()
    try:
        running = asyncio.ensure_future(pool.run(stuck))
        victims = []
        for attempt in (1, 2):  # the job goes again once on a fresh worker; killed twice, it fails
            await wait_for(lambda n=attempt: Stall.requests >= n, 60, f"attempt {attempt} of the job to reach its worker")
            (victim,) = pool.worker_pids()
            victims.append(victim)
            os.kill(victim, signal.SIGKILL)
        with pytest.raises(TranscodeFailed, match="died"):
            await running
        assert pool.stats.restarts == 2 and pool.stats.retried == 1 and pool.worker_pids()[0] not in victims
        assert (await pool.run(job_for(sources["mp4-30"]))).video_frames == 30
    finally:
        await pool.close()


async def test_a_job_whose_worker_is_killed_once_still_completes(tmp_path: Path) -> None:
    src = tmp_path / "long.ts"
    spec = SampleSpec(seconds=6.0, width=1280, height=720, container="mpegts", preset="ultrafast")
    write_sample(src, spec)
    job = job_for(Source(src, spec), stop=Fraction(6))
    assert job.video is not None
    job = replace(job, video=replace(job.video, preset="medium"))  # slow enough to be caught mid-way
    pool = TranscodePool(size=1, timeout=120)
    await pool.start()
    try:
        (victim,) = pool.worker_pids()
        idle = cpu_seconds(victim)  # what its start-up cost
        ticket = pool.submit(job)
        await wait_for(lambda: cpu_seconds(victim) > idle + 0.2, 60, "the worker to be busy with the job")
        os.kill(victim, signal.SIGKILL)
        result = await asyncio.wait_for(ticket.future, 120)
        assert pool.stats.restarts == 1 and pool.stats.retried == 1
        assert result.video_frames == 6 * spec.fps
    finally:
        await pool.close()


async def test_client_preempts_background_work_which_then_finishes(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    slow = job_for(src, stop=Fraction(4))
    assert slow.video is not None
    slow = replace(slow, video=replace(slow.video, width=1920, height=1080, preset="veryslow"))  # seconds of work
    pool = TranscodePool(size=1, timeout=120)
    await pool.start()
    try:
        (pid,) = pool.worker_pids()
        idle = cpu_seconds(pid)  # what its start-up cost
        gates = 0

        async def gate() -> None:
            nonlocal gates
            gates += 1

        background = pool.submit(slow, Priority.PRETRANSCODE, gate=gate)
        # well into it: measured in the worker's CPU time, whatever the load on the machine
        await wait_for(lambda: cpu_seconds(pid) > idle + 0.3, 60, "the worker to be busy with the background job")
        assert background.running_on is not None
        client = await asyncio.wait_for(pool.run(job_for(src)), timeout=30)
        assert client.video_frames == 30
        assert not background.future.done() and pool.stats.preempted == 1
        finished = await asyncio.wait_for(background.future, timeout=120)
        assert finished.video_frames == 4 * 30  # started over, made whole
        assert gates == 1  # back in the queue with what its gate let in (a lease): not asked again
    finally:
        await pool.close()


async def test_promoted_ticket_jumps_the_queue(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    pool = TranscodePool(size=1, timeout=60)
    await pool.start()
    try:
        blocker = pool.submit(job_for(src), Priority.CLIENT)
        queued = [pool.submit(job_for(src, stop=Fraction(1, 2)), Priority.LOOKAHEAD) for _ in range(3)]
        wanted = pool.submit(job_for(src), Priority.PRETRANSCODE)
        pool.promote(wanted)
        await wanted.future
        assert blocker.future.done() and not any(t.future.done() for t in queued)  # it ran before the lookahead work
        await asyncio.gather(*(t.future for t in queued))
    finally:
        await pool.close()


async def test_background_waits_while_a_client_transcodes(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    pool = TranscodePool(size=2, timeout=60)  # a free worker, yet background must not take it
    await pool.start()
    try:
        client = pool.submit(job_for(src, stop=Fraction(5)), Priority.CLIENT)
        background = pool.submit(job_for(src), Priority.LOOKAHEAD)

        def client_done() -> bool:
            if client.future.done():
                return True
            assert background.running_on is None  # while the client transcodes
            return False

        await wait_for(client_done, 60, "the client transcode", interval=0.01)
        await asyncio.wait_for(background.future, timeout=30)
    finally:
        await pool.close()


class Refused(Exception):
    pass


async def test_a_gate_runs_as_its_job_starts_and_may_refuse_it(sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    pool = TranscodePool(size=1, timeout=60)
    await pool.start()
    try:
        opened: list[str] = []

        async def refuse() -> None:
            opened.append("refused")
            raise Refused

        async def admit() -> None:
            opened.append("admitted")

        blocker = pool.submit(job_for(src), Priority.CLIENT)
        refused = pool.submit(job_for(src), Priority.LOOKAHEAD, gate=refuse)
        admitted = pool.submit(job_for(src), Priority.LOOKAHEAD, gate=admit)
        assert opened == []  # queued: no gate runs yet
        await blocker.future
        with pytest.raises(Refused):
            await refused.future
        result = await admitted.future  # the slot went on to the next ticket
        assert result.video_frames == 30
        assert sorted(opened) == ["admitted", "refused"] and pool.stats.refused == 1 and pool.stats.completed == 2
    finally:
        await pool.close()


# ---- the typed process boundary (livetx.media.messages) ------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(Ready(123), id="ready"),
        pytest.param(Cancel(), id="cancel"),
        pytest.param(Cancelled(), id="cancelled"),
        pytest.param(Failed(SourceChanged, "the source changed"), id="failed"),
        pytest.param(TimedOut("probe exceeded its 1 s limit"), id="timed-out"),
    ],
)
def test_messages_survive_the_pipe(message: object) -> None:
    assert pickle.loads(pickle.dumps(message)) == message


@pytest.mark.parametrize(
    ("outcome", "error", "message"),
    [
        pytest.param(TimedOut("over"), TranscodeTimeout, "over", id="timeout"),
        pytest.param(WorkerLost("transcode worker died"), TranscodeFailed, "transcode worker died", id="worker-lost"),
        pytest.param(Failed(SourceChanged, "changed"), SourceChanged, "changed", id="passed-on"),
        pytest.param(Failed(SourceTooLarge, "too big"), SourceTooLarge, "too big", id="passed-on-subclass"),
        pytest.param(Failed(ParameterError, "odd"), TranscodeFailed, "odd", id="not-passed-on"),
    ],
)
def test_segment_errors(outcome: Failed | Restarted, error: type[LivetxError], message: str) -> None:
    made = _segment_error(outcome)
    assert type(made) is error and made.message == message


@pytest.mark.parametrize(
    ("outcome", "error", "message"),
    [
        pytest.param(TimedOut("over"), ProbeTimeout, "probing the source took over the 2 s limit", id="timeout"),
        pytest.param(WorkerUnavailable("probe worker failed: OSError"), TranscodeFailed, "probe worker failed: OSError", id="no-worker"),
        pytest.param(WorkerLost("probe worker died"), SourceUnreadable, "probing the source failed: probe worker died", id="worker-lost"),
        pytest.param(
            Failed(TranscodeFailed, "unexpected KeyError"),
            SourceUnreadable,
            "probing the source failed: unexpected KeyError",
            id="unexpected",
        ),
        pytest.param(Failed(SourceTypeRefused, "refused"), SourceTypeRefused, "refused", id="passed-on"),
        pytest.param(Failed(ParameterError, "odd"), SourceUnreadable, "odd", id="not-passed-on"),
    ],
)
def test_probe_errors(outcome: Failed | Restarted, error: type[LivetxError], message: str) -> None:
    made = _probe_error(outcome, 2.0)
    assert type(made) is error and made.message == message


@pytest.fixture(scope="module")
def worker() -> Iterator[_Worker[SegmentJob, SegmentResult]]:
    worker = _Worker[SegmentJob, SegmentResult](multiprocessing.get_context("spawn"))
    worker.start()
    yield worker
    worker.stop()


def test_worker_replies_with_typed_messages(worker: _Worker[SegmentJob, SegmentResult], sources: dict[str, Source], tmp_path: Path) -> None:
    worker.cancel()  # a Cancel with no job running is ignored
    done = worker.call(job_for(sources["mp4-30"]), timeout=60)
    assert isinstance(done, Done) and isinstance(done.result, SegmentResult) and done.result.video_frames == 30
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not media" * 100)
    failed = worker.call(job_for(Source(junk, sources["mp4-30"].spec)), timeout=60)
    assert isinstance(failed, Failed) and failed.kind in (SourceUnreadable, TranscodeFailed, SourceTypeRefused)


def test_a_worker_stopped_while_its_job_runs_is_not_replaced(stalling: str) -> None:
    """The pool closing while a job hangs on its worker: the job fails, and no fresh worker is
    started behind `stop` (the thread running the job used to replace the worker it found
    dead, and a worker outlived its pool)."""
    worker = _Worker[SegmentJob, SegmentResult](multiprocessing.get_context("spawn"), stalling)
    worker.start()
    first = worker.live_pid()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(worker.call(stuck_job(stalling), timeout=60))
        except Exception as exc:  # noqa: BLE001 - what the call raised is the outcome here
            outcome.append(exc)

    running = threading.Thread(target=run)
    running.start()
    reads = Stall.requests
    wait_until(lambda: Stall.requests > reads, 30, "the job reading its stalled source")
    worker.stop()
    running.join(timeout=30)
    assert not running.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], TranscodeFailed), outcome
    assert worker.live_pid() is None
    assert first is not None and not os.path.exists(f"/proc/{first}")  # reaped, not a zombie either


def test_worker_over_its_limit_is_replaced(stalling: str) -> None:
    worker = _Worker[SegmentJob, SegmentResult](multiprocessing.get_context("spawn"), stalling)
    worker.start()
    try:
        before = worker.live_pid()
        assert worker.call(stuck_job(stalling), timeout=0.5) == TimedOut("transcode exceeded its 0.5 s limit")
        assert worker.live_pid() not in (None, before)
    finally:
        worker.stop()
