"""The host-local lease engine: flock(2)'d lock files, within one process and across two real
ones (a holder SIGKILLed frees its lock at once)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from pathlib import Path

import pytest

from livetx.cluster.leases import CoordinationDown
from livetx.cluster.lockfiles import STRIPES, LockFiles, stripe
from tests.conftest import ROOT
from tests.support import wait_for

# holds the lease of argv[2] in lock directory argv[1], says so, and waits to be killed
HOLDER = """
import asyncio, sys
from pathlib import Path
from livetx.cluster.lockfiles import LockFiles

async def main():
    engine = LockFiles(Path(sys.argv[1]))
    await engine.start()
    lease = await engine.try_acquire(sys.argv[2])
    print("held" if lease is not None else "busy", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


async def engine(directory: Path) -> LockFiles:
    started = LockFiles(directory)
    await started.start()
    return started


async def test_one_holder_at_a_time_and_release_frees_it(tmp_path: Path) -> None:
    a, b = await engine(tmp_path / "locks"), await engine(tmp_path / "locks")
    lease = await a.try_acquire("seg/1.ts")
    assert lease is not None and lease.key == "seg/1.ts"
    assert await b.try_acquire("seg/1.ts") is None
    assert await a.try_acquire("seg/1.ts") is None  # a second open in one process is refused too
    assert a.state().held == 1
    await lease.release()
    await lease.release()  # once only
    assert a.state().held == 0
    assert await b.try_acquire("seg/1.ts") is not None


async def test_a_waiter_returns_when_the_holder_releases(tmp_path: Path) -> None:
    a, b = await engine(tmp_path), await engine(tmp_path)
    lease = await a.try_acquire("k")
    assert lease is not None
    waiter = asyncio.create_task(b.wait_released("k"))
    await wait_for(lambda: b.state().waiting == 1, 5, "the waiter to block")
    assert not waiter.done()
    await lease.release()
    await asyncio.wait_for(waiter, 5)
    assert await b.try_acquire("k") is not None


async def test_keys_sharing_a_lock_file_wait_for_each_other_and_no_more(tmp_path: Path) -> None:
    other = next(key for key in (f"k{n}" for n in itertools.count(1)) if stripe(key) == stripe("k0"))
    a, b = await engine(tmp_path), await engine(tmp_path)
    lease = await a.try_acquire("k0")
    assert lease is not None
    assert await b.try_acquire(other) is None  # the same file: held "elsewhere" for a while
    waiter = asyncio.create_task(b.wait_released(other))
    await lease.release()
    await asyncio.wait_for(waiter, 5)
    assert await b.try_acquire(other) is not None
    assert len({stripe(f"seg/{n}.ts") for n in range(1000)}) > 850  # few share one
    assert len(list(tmp_path.iterdir())) == 1 and STRIPES == 4096


async def test_a_killed_holder_process_frees_its_waiters(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(locks), "seg/1.ts", cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 60) == b"held\n"
        here = await engine(locks)
        assert await here.try_acquire("seg/1.ts") is None
        waiter = asyncio.create_task(here.wait_released("seg/1.ts"))
        await wait_for(lambda: here.state().waiting == 1, 5, "the waiter to block")
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(waiter, 10)  # the kernel dropped the dead process's lock
        lease = await here.try_acquire("seg/1.ts")
        assert lease is not None
        await lease.release()
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_an_unusable_lock_directory_is_coordination_down(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    broken = await engine(blocked / "locks")
    assert not broken.state().up
    with pytest.raises(CoordinationDown, match="unusable"):
        await broken.try_acquire("k")
    with pytest.raises(CoordinationDown):
        await broken.wait_released("k")
