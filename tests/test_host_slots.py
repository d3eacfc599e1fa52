"""The host's transcode slots (lock files), alone and under pools that share them as the
server processes of one host do (each test's HostSlots objects over one folder stand for
processes: every attempt opens the file afresh, so they exclude each other as processes do)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from livetx.media.host_slots import HostSlot, HostSlots
from livetx.media.pool import Priority, TranscodePool
from tests.conftest import Source
from tests.support import job_for, wait_for

HOLD = """
import asyncio, sys
from pathlib import Path
from livetx.media.host_slots import HostSlots

async def hold():
    slots = HostSlots(Path(sys.argv[1]), 1)
    await slots.prepare()
    assert await slots.take(0) is not None
    print("held", flush=True)
    sys.stdin.read()  # until killed

asyncio.run(hold())
"""


async def freed(slots: HostSlots, index: int, timeout: float = 10) -> HostSlot:
    """Slot `index` once it is free (polled without waiting on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (slot := await slots.take(index, only=True)) is None:
        assert loop.time() < deadline, f"slot {index} still taken after {timeout:g} s"
        await asyncio.sleep(0.02)
    return slot


async def test_a_slot_is_its_holders_until_it_ends_even_killed(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == b"held\n"
        slots = HostSlots(tmp_path, 1)
        await slots.prepare()
        assert await slots.take(0) is None
        waiting = asyncio.ensure_future(slots.wait(0))
        assert await slots.take(0) is None and not waiting.done()
        holder.kill()  # no release: the kernel drops the dead process's lock
        slot = await asyncio.wait_for(waiting, 10)
        slot.release()
        slots.close()


async def test_slots_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    slots = HostSlots(tmp_path, 2)
    await slots.prepare()
    first, second = await slots.take(0), await slots.take(0)
    assert first is not None and second is not None and {first.index, second.index} == {0, 1}
    assert await slots.take(1) is None
    first.release()
    again = await slots.take(1)
    assert again is not None and again.index == first.index
    again.release()
    second.release()
    slots.close()


async def test_a_waiter_given_up_gives_back_the_slot_it_gets(tmp_path: Path) -> None:
    slots = HostSlots(tmp_path, 1)
    await slots.prepare()
    held = await slots.take(0)
    assert held is not None
    waiter = asyncio.ensure_future(slots.wait(0))
    await asyncio.sleep(0)  # let it start its thread
    waiter.cancel()
    held.release()  # its thread takes the slot, finds nobody waiting, and gives it back
    (await freed(slots, 0)).release()
    slots.close()


async def test_background_work_gives_way_to_clients_when_the_host_is_busy(tmp_path: Path, sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    elsewhere = HostSlots(tmp_path, 1)  # another server process, transcoding
    await elsewhere.prepare()
    busy = await elsewhere.take(0)
    assert busy is not None
    pool = TranscodePool(size=1, timeout=60, host=HostSlots(tmp_path, 1))
    await pool.start()
    try:
        background = pool.submit(job_for(src), Priority.PRETRANSCODE)
        await wait_for(lambda: pool.stats.host_deferred >= 2, 10, "the background job to find the host busy, twice")
        assert pool.stats.in_flight == 0 and pool.stats.host_waits == 0  # it never stood in line
        client = pool.submit(job_for(src), Priority.CLIENT)
        await wait_for(lambda: pool.stats.host_waiting == 1, 10, "the client job to wait for the host's slot")
        busy.release()
        assert (await asyncio.wait_for(client.future, 60)).video_frames == 30
        assert not background.future.done()  # the client went first
        assert (await asyncio.wait_for(background.future, 60)).video_frames == 30
        assert pool.stats.host_waits == 1 and pool.stats.host_waiting == 0
    finally:
        await pool.close()
        elsewhere.close()


async def test_a_client_waits_on_the_slot_its_preempted_background_job_frees(tmp_path: Path, sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    slow = job_for(src, stop=Fraction(4))
    assert slow.video is not None
    slow = replace(slow, video=replace(slow.video, width=1920, height=1080, preset="veryslow"))  # seconds of work
    elsewhere = HostSlots(tmp_path, 2)  # another server process holds slot 1 all along
    await elsewhere.prepare()
    other = await elsewhere.take(1, only=True)
    assert other is not None
    pool = TranscodePool(size=2, timeout=120, host=HostSlots(tmp_path, 2))
    await pool.start()
    try:
        background = pool.submit(slow, Priority.PRETRANSCODE)
        await wait_for(lambda: pool.stats.in_flight == 1, 30, "the background job to run, in slot 0")
        # the client's pool slot would wait on host slot 1 (held elsewhere, for ever): it
        # waits on the one its own background job holds, freed by the preemption
        client = await asyncio.wait_for(pool.run(job_for(src)), 30)
        assert client.video_frames == 30 and pool.stats.preempted == 1
        assert not background.future.done()  # queued again, to start over (closing the pool drops it)
    finally:
        other.release()
        await pool.close()
        elsewhere.close()


def test_several_processes_keep_about_two_workers_a_core_not_cores_squared(tmp_path: Path) -> None:
    """Each of N processes keeps twice its share of the host's bound (at most the bound), and
    a local tier of its own with its share of the bytes: the host's totals hold."""
    from livetx.app import pool_size
    from livetx.factories import make_tier
    from livetx.server_process import ServerProcess
    from tests.conftest import app_settings

    settings = app_settings(LIVETX_TRANSCODE_WORKERS="16", LIVETX_CACHE_LOCAL_DIR=str(tmp_path / "tier"))
    assert pool_size(settings, ServerProcess()) == 16
    assert [pool_size(settings, ServerProcess(count=n)) for n in (2, 4, 16, 32)] == [16, 8, 2, 2]
    small = app_settings(LIVETX_TRANSCODE_WORKERS="2")
    assert pool_size(small, ServerProcess(count=2)) == 2  # 2 cores, 2 processes: each can use both

    remote: Any = object()  # any store but a local one gets a tier; its class is all make_tier asks
    tiers = [make_tier(settings, remote, i, 4) for i in range(4)]
    assert all(tier is not None for tier in tiers)
    assert len({tier.root for tier in tiers if tier is not None}) == 4
    assert sum(tier.max_bytes for tier in tiers if tier is not None) <= settings.cache.local_max_bytes
