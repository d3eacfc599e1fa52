"""livetx/lru.py: the one bounded mapping behind every "keep the last N" cache."""

from __future__ import annotations

import asyncio

import pytest

from livetx.lru import Lru, Once


def test_put_beyond_the_bound_drops_the_least_recent_and_returns_it() -> None:
    lru: Lru[str, int] = Lru(2)
    assert lru.put("a", 1) == [] and lru.put("b", 2) == []
    assert lru.put("c", 3) == [("a", 1)]
    assert lru.keys() == ["b", "c"] and len(lru) == 2 and "a" not in lru and lru.get("a") is None


def test_get_makes_an_entry_the_most_recent_and_peek_does_not() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.peek("a") == 1 and lru.keys() == ["a", "b"]  # still the least recent
    assert lru.get("a") == 1 and lru.keys() == ["b", "a"]
    assert lru.put("c", 3) == [("b", 2)]


def test_put_again_replaces_the_value_and_refreshes_it() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.put("a", 10) == [] and lru.items() == [("b", 2), ("a", 10)]


def test_pop_and_clear() -> None:
    lru: Lru[str, int] = Lru(3)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.pop("a") == 1 and lru.pop("a") is None and lru.keys() == ["b"] and lru.weight == 1
    lru.clear()
    assert len(lru) == 0 and lru.weight == 0 and list(lru) == []


def test_a_weighted_bound_counts_the_weights() -> None:
    lru: Lru[str, bytes] = Lru(10, weigh=len)
    lru.put("a", b"x" * 4)
    lru.put("b", b"x" * 4)
    assert lru.weight == 8
    assert lru.put("c", b"x" * 5) == [("a", b"x" * 4)] and lru.weight == 9
    assert lru.put("b", b"x") == [] and lru.weight == 6  # a replaced value's weight is taken off
    assert lru.put("d", b"x" * 10) == [("c", b"x" * 5), ("b", b"x")] and lru.keys() == ["d"] and lru.weight == 10


def test_the_entry_just_put_is_kept_even_beyond_the_bound() -> None:
    lru: Lru[str, bytes] = Lru(10, weigh=len)
    lru.put("a", b"x")
    assert lru.put("big", b"x" * 11) == [("a", b"x")] and lru.keys() == ["big"] and lru.weight == 11
    assert lru.put("b", b"x") == [("big", b"x" * 11)] and lru.keys() == ["b"]


async def test_once_makes_a_key_once_for_every_caller_and_keeps_it() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def make() -> int:
        calls.append("made")
        started.set()
        await release.wait()
        return 7

    once: Once[str, int] = Once(Lru(4))
    waiters = [asyncio.ensure_future(once.get("a", make)) for _ in range(3)]
    await asyncio.wait_for(started.wait(), 10)  # the first waiter's making has begun
    waiters[0].cancel()  # a caller that leaves cancels nothing for the others
    release.set()
    assert await asyncio.gather(*waiters[1:]) == [7, 7]
    assert calls == ["made"] and once.held("a") == 7 and once.made == 1
    assert await once.get("a", make) == 7 and calls == ["made"]  # kept: not made again


async def test_once_keeps_no_failure_and_what_keep_refuses() -> None:
    once: Once[str, int] = Once(Lru(4), keep=lambda value: value < 10)

    async def fail() -> int:
        raise ValueError("broken")

    async def big() -> int:
        return 99

    with pytest.raises(ValueError, match="broken"):
        await once.get("a", fail)
    assert once.held("a") is None and once.made == 0
    assert await once.get("b", big) == 99 and once.held("b") is None and once.made == 1
