"""The segment service's collaborators on their own: write-backs and their memory bound, seal
checks, and the service's `wait_idle`, against real local storage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from livetx.cache.hot import HotSegments
from livetx.cache.keys import strong_etag
from livetx.cache.seal import seal
from livetx.cache.seal_checks import SealChecks
from livetx.cache.service import SegmentService
from livetx.cache.stats import CacheStats
from livetx.cache.writebacks import WriteBacks
from livetx.media.pool import TranscodePool
from livetx.settings import CacheSettings, TranscodeSettings
from livetx.storage.local import LocalStorage

SEGMENT = seal(b"\x47" + bytes(187))  # one TS packet and its seal


class GatedStore(LocalStorage):
    """Real local storage whose PUTs wait until the gate opens: a storage outage on demand."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = asyncio.Event()

    async def write(self, key: str, data: bytes) -> None:
        await self.gate.wait()
        await super().write(key, data)


async def test_a_made_segment_is_served_from_memory_until_it_is_stored(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    writebacks = WriteBacks(CacheStats(), max_bytes=1 << 20)
    writebacks.start(store, "a/0.ts", SEGMENT)
    assert writebacks.fresh("a/0.ts") == SEGMENT and writebacks.pending == 1
    store.gate.set()
    await writebacks.wait(timeout=10)
    assert writebacks.fresh("a/0.ts") is None and writebacks.pending == 0 and writebacks.keys() == []
    assert await store.read("a/0.ts") == SEGMENT and writebacks.stats.writebacks == 1


async def test_write_backs_beyond_the_memory_bound_drop_the_oldest_but_keep_the_newest(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    writebacks = WriteBacks(CacheStats(), max_bytes=len(SEGMENT) * 2)
    for n in range(4):
        writebacks.start(store, f"a/{n}.ts", SEGMENT)
        await asyncio.sleep(0)  # each write-back starts (and waits at the gate) before the next
    assert writebacks.pending == 2 and writebacks.stats.writebacks_dropped == 2
    await asyncio.sleep(0)  # the dropped ones run their cancellation
    assert sorted(writebacks.keys()) == ["a/2.ts", "a/3.ts"]
    writebacks.abandon()
    await writebacks.wait(timeout=10)
    assert writebacks.pending == 0 and writebacks.keys() == [] and await store.stat("a/3.ts") is None


async def test_write_backs_dropped_before_they_ran_free_their_bytes(tmp_path: Path) -> None:
    """Two segments made in one event-loop step: the older is dropped before its task ever
    ran, and must not stay in memory for good."""
    store = GatedStore(tmp_path)
    writebacks = WriteBacks(CacheStats(), max_bytes=len(SEGMENT))
    writebacks.start(store, "a/0.ts", SEGMENT)
    writebacks.start(store, "a/1.ts", SEGMENT)  # no await between: a/0's task never started
    assert writebacks.keys() == ["a/1.ts"] and writebacks.stats.writebacks_dropped == 1
    store.gate.set()
    await writebacks.wait(timeout=10)
    assert writebacks.keys() == [] and writebacks.pending == 0


async def test_an_older_write_back_ending_keeps_a_newer_ones_bytes(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    writebacks = WriteBacks(CacheStats(), max_bytes=1 << 20)
    newer = seal(b"\x47" + bytes(187) + b"\x47" + bytes(187))
    writebacks.start(store, "a/0.ts", SEGMENT)
    await asyncio.sleep(0)
    writebacks.start(store, "a/0.ts", newer)  # made again (dropped and asked for) while the first is on the way
    first = writebacks.tasks()[0]
    first.cancel()
    await asyncio.wait([first])
    await asyncio.sleep(0)  # its end is handled
    assert writebacks.fresh("a/0.ts") is newer
    store.gate.set()
    await writebacks.wait(timeout=10)
    assert writebacks.fresh("a/0.ts") is None and await store.read("a/0.ts") == newer


async def test_a_file_is_read_for_its_seal_once_per_version(tmp_path: Path) -> None:
    checks = SealChecks(capacity=8)
    path = tmp_path / "0.ts"
    path.write_bytes(SEGMENT)
    assert await checks.sealed(path)
    path.write_bytes(SEGMENT[:-1])  # rewritten: another size, so another version, read again
    assert not await checks.sealed(path)
    assert await checks.sealed(tmp_path / "gone.ts")  # gone: the next lookup misses instead


def test_the_etag_names_the_spec_and_the_number() -> None:
    assert strong_etag("0123456789ab", 7) == '"0123456789ab-7"'


async def test_wait_idle_names_what_is_still_pending(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    service = SegmentService(store, store, TranscodePool(1, 10.0), CacheSettings(), TranscodeSettings())
    await service.wait_idle(timeout=0)  # nothing pending: returns at once
    service.writebacks.start(store, "a/0.ts", SEGMENT)
    with pytest.raises(TimeoutError, match="1 write-backs pending"):
        await service.wait_idle(timeout=0.05)
    store.gate.set()
    await service.wait_idle(timeout=10)
    assert service.pending_writebacks == 0 and await store.read("a/0.ts") == SEGMENT


# ---- hot segments ------------------------------------------------------------------------


def packet(n: int) -> bytes:
    """A sealed one-packet TS segment, different for each n (376 bytes with its seal)."""
    return seal(b"\x47" + bytes([n]) + bytes(186))


async def settled(hot: HotSegments) -> None:
    await asyncio.gather(*hot.tasks())


async def test_hot_segments_are_bounded_in_bytes_least_recently_used_dropped_first() -> None:
    hot = HotSegments(max_bytes=2 * len(packet(0)))
    for n in (0, 1):
        hot.offer(f"a/{n}.ts", packet(n))
        await settled(hot)
    assert hot.get("a/0.ts") == packet(0)  # now the most recent: a/1 goes first
    hot.offer("a/2.ts", packet(2))
    await settled(hot)
    assert "a/1.ts" not in hot and hot.get("a/0.ts") == packet(0) and hot.get("a/2.ts") == packet(2)
    assert hot.bytes == 2 * len(packet(0)) <= hot.max_bytes and hot.evictions == 1
    for n in range(3, 10):
        hot.offer(f"a/{n}.ts", packet(n))
        await settled(hot)
        assert hot.bytes <= hot.max_bytes and len(hot) == 2


async def test_hot_segments_hold_only_copies_whose_seal_holds(tmp_path: Path) -> None:
    """Bytes and files alike: a cut, padded, flipped, unsealed or empty copy never enters."""
    hot = HotSegments(max_bytes=1 << 20)
    flipped = bytearray(SEGMENT)
    flipped[40] ^= 1
    bad = {
        "cut": SEGMENT[:-1],
        "padded": SEGMENT + b"\xff" * 188,
        "flipped": bytes(flipped),
        "unsealed": b"\x47" + bytes(187) * 2,
        "empty": b"",
        "fmp4 unsealed": bytes(16) + b"moof",
    }
    for name, data in bad.items():
        (tmp_path / f"{name}.ts").write_bytes(data)
        hot.offer(f"file/{name}", tmp_path / f"{name}.ts")
        hot.offer(f"bytes/{name}", data)
    (tmp_path / "good.ts").write_bytes(SEGMENT)
    hot.offer("file/good", tmp_path / "good.ts")
    hot.offer("file/gone", tmp_path / "gone.ts")
    await settled(hot)
    assert len(hot) == 1 and hot.get("file/good") == SEGMENT
    assert hot.refused == 2 * len(bad)


async def test_a_segment_larger_than_the_hot_bound_is_never_read_again(tmp_path: Path) -> None:
    hot = HotSegments(max_bytes=len(SEGMENT) - 1)
    (tmp_path / "big.ts").write_bytes(SEGMENT)
    hot.offer("big", SEGMENT)
    assert hot.tasks() == []  # bytes: too large at once
    hot.offer("big", tmp_path / "big.ts")
    await settled(hot)
    hot.offer("big", tmp_path / "big.ts")
    assert hot.tasks() == [] and len(hot) == 0 and hot.bytes == 0  # its size is known now


async def test_no_hot_segments_at_zero() -> None:
    hot = HotSegments(max_bytes=0)
    hot.offer("a/0.ts", SEGMENT)
    assert hot.tasks() == [] and len(hot) == 0
