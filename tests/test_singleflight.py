from __future__ import annotations

import asyncio

import pytest

from livetx.cache.singleflight import LocalSingleFlight


async def test_concurrent_callers_share_one_run() -> None:
    flight = LocalSingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(flight.do("k", work()) for _ in range(50)))
    assert results == [42] * 50 and calls == 1 and flight.joins == 49


async def test_error_reaches_every_caller_and_next_call_retries() -> None:
    flight = LocalSingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("nope")

    results = await asyncio.gather(*(flight.do("k", boom()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)

    async def ok() -> int:
        return 1

    assert await flight.do("k", ok()) == 1 and flight.runs == 2


async def test_leader_leaving_does_not_cancel_the_work() -> None:
    flight = LocalSingleFlight()
    finished = asyncio.Event()

    async def work() -> str:
        await asyncio.sleep(0.05)
        finished.set()
        return "done"

    leader = asyncio.create_task(flight.do("k", work()))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(flight.do("k", work()))
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await follower == "done" and finished.is_set()
