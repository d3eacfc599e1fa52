"""The process pool: real worker processes, time limits, replacement of a stuck worker."""

from __future__ import annotations

import asyncio
import os
import signal
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.errors import SourceUnreadable, TranscodeFailed, TranscodeTimeout
from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.pool import TranscodePool
from tests.conftest import Source


def job_for(src: Source, start: Fraction = Fraction(0), stop: Fraction = Fraction(1)) -> SegmentJob:
    return SegmentJob(
        source=str(src.path),
        origin=Fraction(0),
        start=start,
        stop=stop,
        video=VideoSpec("h264", src.spec.width, src.spec.height, src.spec.fps, preset="ultrafast"),
        audio=AudioSpec(src.spec.sample_rate, 2),
        video_stream=0,
        audio_stream=1,
    )


async def test_runs_jobs_in_worker_processes(sources: dict[str, Source]) -> None:
    pool = TranscodePool(size=1, timeout=60)
    await pool.start()
    try:
        result = await pool.run(job_for(sources["mp4-30"]))
        assert result.video_frames == 30 and result.data[:1] == b"\x47"  # MPEG-TS sync byte
    finally:
        await pool.close()


async def test_stuck_worker_is_replaced_and_pool_keeps_serving(sources: dict[str, Source], tmp_path: Path) -> None:
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)  # opening it blocks forever: a hung transcode
    stuck = SegmentJob(fifo.as_posix(), Fraction(0), Fraction(0), Fraction(1), None, AudioSpec(48000, 2), None, 0)
    pool = TranscodePool(size=1, timeout=2)
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


async def test_worker_killed_mid_job_is_replaced(sources: dict[str, Source], tmp_path: Path) -> None:
    fifo = tmp_path / "hangs"
    os.mkfifo(fifo)
    stuck = SegmentJob(fifo.as_posix(), Fraction(0), Fraction(0), Fraction(1), None, AudioSpec(48000, 2), None, 0)
    pool = TranscodePool(size=1, timeout=60)
    await pool.start()
    try:
        (victim,) = pool.worker_pids()
        running = asyncio.ensure_future(pool.run(stuck))
        await asyncio.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(TranscodeFailed, match="died"):
            await running
        assert pool.stats.restarts == 1 and pool.worker_pids() != [victim]
        assert (await pool.run(job_for(sources["mp4-30"]))).video_frames == 30
    finally:
        await pool.close()
