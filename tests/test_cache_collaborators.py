"""The segment service's other collaborators on their own: Admission (with a real TranscodePool),
BandwidthMeter, Prefetcher and FolderListings. (WriteBacks and SealChecks: test_cache_parts.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from livetx.cache.admission import Admission
from livetx.cache.bandwidth import BandwidthMeter
from livetx.cache.budget import PrefetchBudgets
from livetx.cache.listing import FolderListings
from livetx.cache.prefetch import IN_ORDER_AHEAD, Prefetcher
from livetx.cache.stats import CacheStats
from livetx.errors import Overloaded, SourceUnreadable
from livetx.hls.plan import SegmentWindow, lookahead_indexes, pretranscode_indexes
from livetx.layout import segment_index, segment_key
from livetx.media.model import SegmentJob
from livetx.media.pool import Priority, TranscodePool
from livetx.media.probe import probe
from livetx.storage.base import ObjectInfo
from livetx.titles import Rendition, Title, build_title, parse_profile
from tests.conftest import Source
from tests.support import job_for, sparse_title, wait_for

# ---- Admission -------------------------------------------------------------------------------


async def ready(job: SegmentJob, gate: asyncio.Event | None = None) -> SegmentJob:
    """The job's setup (stat, plan): done when `gate` opens."""
    if gate is not None:
        await gate.wait()
    return job


@pytest.fixture
async def idle_pool() -> AsyncIterator[TranscodePool]:
    """A real pool of one worker that is never started: submitted jobs wait in its queue."""
    pool = TranscodePool(1, 10.0)
    yield pool
    await pool.close()


@pytest.fixture
def job(sources: dict[str, Source]) -> SegmentJob:
    return job_for(sources["mp4-30"])  # video and audio, as job_for plans it


async def cancel(tasks: list[asyncio.Task[object]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_client_job_is_refused_when_max_queue_clients_wait(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=1)
    # one client on the worker (never started: it stays there) and one waiting
    running = [asyncio.create_task(admission.run(f"k{n}", ready(job), Priority.CLIENT)) for n in range(2)]
    await wait_for(lambda: len(admission.keys()) == 2, 10, "two client jobs submitted")
    with pytest.raises(Overloaded) as raised:
        await admission.run("k2", ready(job), Priority.CLIENT)
    assert 1 <= raised.value.retry_after <= 60 and admission.stats.overloaded == 1
    assert not admission.making("k2")
    await cancel(running)  # type: ignore[arg-type]


async def test_a_burst_of_clients_cannot_slip_past_admission(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=1)
    gate = asyncio.Event()
    burst = [asyncio.create_task(admission.run(f"k{n}", ready(job, gate), Priority.CLIENT)) for n in range(6)]
    await asyncio.sleep(0)  # every request waits on its setup
    gate.set()  # all set up in one step
    await wait_for(lambda: sum(t.done() for t in burst) == 4, 10, "four requests refused")
    refused = [t for t in burst if t.done()]
    assert all(isinstance(t.exception(), Overloaded) for t in refused)
    assert len(admission.keys()) == 2 and admission.stats.overloaded == 4
    await cancel(burst)  # type: ignore[arg-type]


async def test_background_work_is_not_refused_by_max_queue(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=0)
    task = asyncio.create_task(admission.run("k", ready(job), Priority.PRETRANSCODE))
    await wait_for(lambda: admission.making("k"), 10, "the background job submitted")
    await cancel([task])  # type: ignore[list-item]
    assert admission.keys() == [] and admission.stats.overloaded == 0


async def test_a_client_asking_during_setup_raises_the_jobs_priority(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=0)  # a client job is refused: shows its priority
    gate = asyncio.Event()
    task = asyncio.create_task(admission.run("k", ready(job, gate), Priority.PRETRANSCODE))
    await asyncio.sleep(0)
    admission.ask("k", Priority.CLIENT)
    gate.set()
    with pytest.raises(Overloaded):
        await task


async def test_a_key_found_cached_forgets_its_asked_priority(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=0)
    admission.ask("k", Priority.CLIENT)
    admission.found("k")
    task = asyncio.create_task(admission.run("k", ready(job), Priority.PRETRANSCODE))
    await wait_for(lambda: admission.making("k"), 10, "the job submitted at its own priority")
    await cancel([task])  # type: ignore[list-item]


async def test_an_ended_job_forgets_its_asked_priority(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=0)
    gate = asyncio.Event()
    first = asyncio.create_task(admission.run("k", ready(job, gate), Priority.PRETRANSCODE))
    await asyncio.sleep(0)
    admission.ask("k", Priority.CLIENT)
    await cancel([first])  # type: ignore[list-item]
    again = asyncio.create_task(admission.run("k", ready(job), Priority.PRETRANSCODE))
    await wait_for(lambda: admission.making("k"), 10, "the next job submitted at its own priority")
    await cancel([again])  # type: ignore[list-item]


async def test_a_client_joining_background_work_promotes_it_and_gets_the_result(job: SegmentJob) -> None:
    pool = TranscodePool(1, 60.0)
    await pool.start()
    try:
        admission = Admission(pool, CacheStats(), max_queue=4)
        task = asyncio.create_task(admission.run("k", ready(job), Priority.PRETRANSCODE))
        # checked every loop step: seen submitted long before a worker could end it
        await wait_for(lambda: admission.making("k"), 10, "the background job submitted", interval=0)
        admission.ask("k", Priority.CLIENT)
        admission.ask("k", Priority.LOOKAHEAD)  # less urgent than the job now: nothing to do
        assert admission.stats.promotions == 1
        result = await asyncio.wait_for(task, 60)
        assert result.data.startswith(b"\x47") and admission.keys() == [] and admission.futures() == []
    finally:
        await pool.close()


async def test_a_failed_job_leaves_admission(idle_pool: TranscodePool, job: SegmentJob) -> None:
    admission = Admission(idle_pool, CacheStats(), max_queue=4)

    async def broken() -> SegmentJob:
        raise SourceUnreadable("no")

    with pytest.raises(SourceUnreadable):
        await admission.run("k", broken(), Priority.CLIENT)
    assert admission.keys() == [] and not admission.making("k")


# ---- BandwidthMeter --------------------------------------------------------------------------


def rendition(spec_id: str = "r", seconds: tuple[int, ...] = (2, 4, 4), bandwidth: int = 1000, average: int = 800) -> Rendition:
    windows, at = [], 0
    for i, length in enumerate(seconds):
        windows.append(SegmentWindow(i, at, at + length, Fraction(1)))
        at += length
    return Rendition("r", spec_id, None, None, tuple(windows), bandwidth, average, "mp4a.40.2")


def test_an_unmeasured_rendition_has_its_estimate() -> None:
    assert BandwidthMeter().bandwidth(rendition()) == (1000, 800)


def test_a_fully_measured_rendition_has_its_measured_peak_and_mean() -> None:
    meter, r = BandwidthMeter(), rendition()
    for index, size in enumerate((50, 200, 100)):  # 200, 400 and 200 bit/s
        meter.measure(r, index, size)
    assert meter.bandwidth(r) == (400, 280)  # below the estimate: measured is what it is
    assert sorted(meter.measured(r)) == [0, 1, 2]


def test_a_partly_measured_peak_is_never_below_the_estimate() -> None:
    meter, r = BandwidthMeter(), rendition()
    meter.measure(r, 0, 50)
    assert meter.bandwidth(r) == (1000, 200)


def test_a_new_size_changes_the_answer() -> None:
    meter, r = BandwidthMeter(), rendition(seconds=(2,))
    meter.measure(r, 0, 50)
    assert meter.bandwidth(r) == (200, 200)
    meter.measure(r, 0, 100)  # made again, another size
    assert meter.bandwidth(r) == (400, 400)


def test_the_least_recently_measured_rendition_is_forgotten() -> None:
    meter = BandwidthMeter(capacity=2)
    a, b, c = rendition("a"), rendition("b"), rendition("c")
    meter.measure(a, 0, 50)
    meter.measure(b, 0, 50)
    meter.measure(a, 1, 50)  # a measured again: b is now the oldest
    meter.measure(c, 0, 50)
    assert meter.measured(b) == [] and meter.bandwidth(b) == (1000, 800)
    assert sorted(meter.measured(a)) == [0, 1] and meter.measured(c) == [0]


def test_the_answer_is_rounded_up() -> None:
    meter, r = BandwidthMeter(), rendition(seconds=(3,))
    meter.measure(r, 0, 100)  # 266.67 bit/s
    assert meter.bandwidth(r) == (267, 267)


# ---- Prefetcher ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def title(tmp_path_factory: pytest.TempPathFactory) -> Title:
    """A 120 s title (two frames: quick to probe) with two renditions, 10 s segments."""
    path = tmp_path_factory.mktemp("prefetch") / "long.mkv"
    sparse_title(path, 120)
    profile = parse_profile(
        "p",
        {"st": 10000, "initial_segments": [2000], "initd": 25000, "ta": 10, "renditions": {"a": {"s": "x90"}, "b": {"s": "x144"}}},
    )
    return build_title(ObjectInfo("long.mkv", path.stat().st_size, "v1"), probe(str(path)), profile)


class Maker:
    """Makes segments on demand: records what was asked, waits at `gate`, answers `made`."""

    def __init__(self, made: bool = True) -> None:
        self.asked: list[tuple[str, int, Priority]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.made = made

    async def __call__(self, title: Title, rendition: Rendition, index: int, priority: Priority) -> bool:
        self.asked.append((rendition.name, index, priority))
        await self.gate.wait()
        return self.made


def prefetcher(
    maker: Maker, limit: int = 100, per_title: int = 1000, lookahead: bool = True, busy: frozenset[str] = frozenset()
) -> Prefetcher:
    budgets = PrefetchBudgets(per_title, 1000, clock=lambda: 0.0)  # a clock that stands still: no refill
    return Prefetcher(maker, busy.__contains__, CacheStats(), budgets, limit, lookahead)


async def settle(prefetch: Prefetcher) -> None:
    await asyncio.wait_for(asyncio.gather(*prefetch.tasks()), 10)


async def test_pretranscode_queues_the_first_initd_of_every_rendition(title: Title) -> None:
    maker = Maker()
    prefetch = prefetcher(maker)
    prefetch.pretranscode(title)
    await settle(prefetch)
    expected = [(r.name, i, Priority.PRETRANSCODE) for r in title.renditions for i in pretranscode_indexes(r.windows, r.initd)]
    assert sorted(maker.asked) == sorted(expected)
    assert 2 <= len(expected) // 2 < len(title.renditions[0].windows)  # the start of each, not all of it
    assert prefetch.stats.prefetched == len(expected)


@pytest.mark.parametrize(
    ("plays", "ahead"),
    [
        pytest.param([0], lambda r: lookahead_indexes(r.windows, 0, r.ta), id="start-takes-ta"),
        pytest.param([4, 5], lambda r: lookahead_indexes(r.windows, 5, IN_ORDER_AHEAD), id="in-order-takes-two"),
        pytest.param([0, 7], lambda r: lookahead_indexes(r.windows, 7, r.ta), id="seek-takes-ta"),
        pytest.param([3, 3], lambda r: [], id="same-segment-again-sets-off-nothing"),
    ],
)
async def test_playing_prefetches_ahead_of_the_playhead(title: Title, plays: list[int], ahead: object) -> None:
    maker = Maker()
    prefetch = prefetcher(maker)
    r = title.renditions[0]
    for index in plays[:-1]:
        prefetch.played(title, r, index)
    await settle(prefetch)
    before = len(maker.asked)
    prefetch.played(title, r, plays[-1])
    await settle(prefetch)
    assert [i for _, i, _ in maker.asked[before:]] == ahead(r)  # type: ignore[operator]
    assert all(p == Priority.LOOKAHEAD for _, _, p in maker.asked)


async def test_clients_have_playheads_of_their_own(title: Title) -> None:
    maker = Maker()
    prefetch = prefetcher(maker)
    r = title.renditions[0]
    prefetch.played(title, r, 4, client="one")
    await settle(prefetch)
    before = len(maker.asked)
    prefetch.played(title, r, 5, client="two")  # not in order for client two: a start
    await settle(prefetch)
    assert [i for _, i, _ in maker.asked[before:]] == lookahead_indexes(r.windows, 5, r.ta)


async def test_no_lookahead_when_it_is_off(title: Title) -> None:
    maker = Maker()
    prefetch = prefetcher(maker, lookahead=False)
    prefetch.played(title, title.renditions[0], 0)
    assert prefetch.tasks() == [] and maker.asked == []


async def test_a_key_busy_or_queued_is_not_queued_again(title: Title) -> None:
    r = title.renditions[0]
    maker = Maker()
    maker.gate.clear()
    prefetch = prefetcher(maker, busy=frozenset({segment_key(title, r, 1)}))
    prefetch.prefetch(title, r, [0, 1, 2], Priority.LOOKAHEAD)
    prefetch.prefetch(title, r, [0, 2, 3], Priority.LOOKAHEAD)  # 0 and 2 are queued already
    assert len(prefetch.tasks()) == 3 and segment_key(title, r, 0) in prefetch
    maker.gate.set()
    await settle(prefetch)
    assert sorted(i for _, i, _ in maker.asked) == [0, 2, 3]
    assert segment_key(title, r, 0) not in prefetch and prefetch.tasks() == []  # ended: gone


async def test_background_beyond_the_limit_is_dropped(title: Title) -> None:
    maker = Maker()
    maker.gate.clear()
    prefetch = prefetcher(maker, limit=2)
    prefetch.prefetch(title, title.renditions[0], range(5), Priority.LOOKAHEAD)
    assert len(prefetch.tasks()) == 2 and prefetch.stats.prefetch_dropped == 3
    maker.gate.set()
    await settle(prefetch)


@pytest.mark.parametrize(
    ("made", "left"),
    [
        pytest.param(True, False, id="made-spends-its-token"),
        pytest.param(False, True, id="found-cached-gives-it-back"),
    ],
)
async def test_a_prefetch_spends_budget_only_when_it_transcodes(title: Title, made: bool, left: bool) -> None:
    maker = Maker(made=made)
    prefetch = prefetcher(maker, per_title=1)
    r = title.renditions[0]
    prefetch.prefetch(title, r, [0], Priority.LOOKAHEAD)
    await settle(prefetch)
    prefetch.prefetch(title, r, [1], Priority.LOOKAHEAD)
    assert (len(prefetch.tasks()) == 1) is left
    await settle(prefetch)


async def test_a_failed_prefetch_gives_its_token_back(title: Title) -> None:
    async def failing(title: Title, rendition: Rendition, index: int, priority: Priority) -> bool:
        raise SourceUnreadable("gone")

    budgets = PrefetchBudgets(1, 1000, clock=lambda: 0.0)
    prefetch = Prefetcher(failing, lambda _: False, CacheStats(), budgets, 10, True)
    r = title.renditions[0]
    prefetch.prefetch(title, r, [0], Priority.LOOKAHEAD)
    await settle(prefetch)
    assert budgets.title.available(f"{title.profile.name}\n{title.source.key}\n{title.source.etag}")


async def test_a_refused_budget_ends_the_batch(title: Title) -> None:
    maker = Maker()
    prefetch = prefetcher(maker, per_title=2)
    prefetch.prefetch(title, title.renditions[0], range(5), Priority.LOOKAHEAD)
    assert len(prefetch.tasks()) == 2 and prefetch.budgets.refused["title"] == 1
    await settle(prefetch)


async def test_cancel_drops_all_background_work(title: Title) -> None:
    maker = Maker()
    maker.gate.clear()
    prefetch = prefetcher(maker)
    prefetch.prefetch(title, title.renditions[0], range(3), Priority.LOOKAHEAD)
    tasks = prefetch.tasks()
    prefetch.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks) and prefetch.tasks() == []


# ---- FolderListings -------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    for name in ("p0.ts", "p1.ts", "p7.ts", "p12.ts", "q3.ts", "p2.tmp", "px.ts", "p\u0663.ts", "p-1.ts"):
        (tmp_path / name).write_bytes(b"")
    yield tmp_path


async def test_a_listing_finds_the_segment_files_below_count(folder: Path) -> None:
    assert await FolderListings().indexes(folder, "p", 10) == {0, 1, 7}


async def test_a_missing_folder_has_no_segments(tmp_path: Path) -> None:
    assert await FolderListings().indexes(tmp_path / "none", "p", 10) == frozenset()


@pytest.mark.parametrize(
    ("ttl", "found"),
    [
        pytest.param(3600.0, {0, 1, 7}, id="within-ttl-reused"),
        pytest.param(0.0, {0, 1, 5, 7}, id="no-ttl-listed-again"),
    ],
)
async def test_a_listing_is_reused_within_its_ttl(folder: Path, ttl: float, found: set[int]) -> None:
    listings = FolderListings(ttl=ttl)
    await listings.indexes(folder, "p", 10)
    (folder / "p5.ts").write_bytes(b"")
    assert await listings.indexes(folder, "p", 10) == found


async def test_concurrent_callers_share_one_listing(folder: Path) -> None:
    listings = FolderListings(ttl=0)
    one, two = await asyncio.gather(listings.indexes(folder, "p", 10), listings.indexes(folder, "p", 10))
    assert one is two


async def test_the_least_recently_listed_folder_is_forgotten(tmp_path: Path) -> None:
    listings = FolderListings(ttl=3600, capacity=1)
    (tmp_path / "a").mkdir()
    await listings.indexes(tmp_path / "a", "p", 10)
    await listings.indexes(tmp_path / "b", "p", 10)
    (tmp_path / "a" / "p0.ts").write_bytes(b"")
    assert await listings.indexes(tmp_path / "a", "p", 10) == {0}


@pytest.mark.parametrize(
    ("key", "index"),
    [
        pytest.param("a/r-12.ts", 12, id="segment"),
        pytest.param("a/r-0.ts", 0, id="zero"),
        pytest.param("a/r-.ts", None, id="no-digits"),
        pytest.param("a/r-1x.ts", None, id="not-digits"),
        pytest.param("a/r-\u0663.ts", None, id="non-ascii-digit"),
        pytest.param("a/r-1.m3u8", None, id="not-ts"),
        pytest.param("b/r-1.ts", None, id="other-stem"),
    ],
)
def test_segment_index(key: str, index: int | None) -> None:
    assert segment_index(key, "a/r-") == index
