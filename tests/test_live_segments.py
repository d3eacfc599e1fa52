"""The buffer of a segment being made (livetx/cache/live.py): every reader gets the bytes from
the start and then live, the seal at the end, and a break instead of a clean short end."""

from __future__ import annotations

import asyncio

import pytest

from livetx.cache.live import LiveSegment, LiveSegments, StreamBroken
from livetx.errors import TranscodeFailed


async def collect(live: LiveSegment) -> bytes:
    return b"".join([chunk async for chunk in live.read()])


async def test_readers_get_the_buffered_bytes_then_the_live_ones_then_the_seal() -> None:
    live = LiveSegment()
    live.chunk(b"ab")
    early = asyncio.ensure_future(collect(live))
    await asyncio.sleep(0)  # (let it read what is there and wait)
    live.chunk(b"cd")
    late = asyncio.ensure_future(collect(live))
    live.chunk(b"ef")
    live.finish(b"abcdefSEAL")
    assert await early == await late == b"abcdefSEAL"
    assert await collect(live) == b"abcdefSEAL"  # a reader after the end too
    assert await live.whole() == b"abcdefSEAL"


async def test_a_failure_breaks_every_reader_and_whole_raises_the_error() -> None:
    live = LiveSegment()
    live.chunk(b"ab")
    reader = asyncio.ensure_future(collect(live))
    await asyncio.sleep(0)
    live.fail(TranscodeFailed("encoder gave up"))
    with pytest.raises(StreamBroken):
        await reader
    with pytest.raises(TranscodeFailed, match="encoder gave up"):
        await live.whole()
    live.finish(b"abSEAL")  # too late: it stays broken
    assert live.broken


async def test_an_attempt_started_over_resets_an_unread_buffer_and_breaks_a_read_one() -> None:
    unread = LiveSegment()
    unread.chunk(b"first try")
    unread.begin()  # a background job preempted before anybody read it
    unread.chunk(b"ab")
    unread.finish(b"abSEAL")
    assert await collect(unread) == b"abSEAL"

    read = LiveSegment()
    read.chunk(b"first try")
    reader = read.read()
    assert await reader.__anext__() == b"first try"
    read.begin()  # the worker died under it, and the job runs again
    with pytest.raises(StreamBroken):
        await reader.__anext__()


async def test_bytes_that_differ_from_the_segment_made_break_the_readers() -> None:
    live = LiveSegment()
    live.chunk(b"abX")
    live.finish(b"abcSEAL")
    assert live.broken
    with pytest.raises(StreamBroken):
        await collect(live)


async def test_a_request_waits_for_the_first_bytes_and_never_gets_a_broken_segment() -> None:
    segments = LiveSegments()
    waiting = asyncio.ensure_future(segments.started("k"))
    live = segments.open("k")
    await asyncio.sleep(0)
    assert not waiting.done()  # opened, but nothing to send yet
    live.chunk(b"ab")
    assert await asyncio.wait_for(waiting, 5) is live

    broken = segments.open("b")
    broken.fail(TranscodeFailed("no"))
    later = asyncio.ensure_future(segments.started("b"))
    await asyncio.sleep(0)
    assert not later.done()
    segments.close("b", broken)
    fresh = segments.open("b")  # the next flight's
    fresh.chunk(b"x")
    assert await asyncio.wait_for(later, 5) is fresh
    assert len(segments) == 2
