"""livetx/catalog.py on its own: stats, probes and their records, the negative probe cache, job
registration and claims, titles and first sight, against real local stores and real sources.

Probes run in a thread (no ProbePool): the Catalog's own caching is what is tested here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from livetx.catalog import Catalog
from livetx.errors import OutputClaimed, ProfileNotFound, SourceNotFound, SourceUnreadable
from livetx.jobs import Job, parse_imm
from livetx.layout import claim_key, record_key
from livetx.storage.local import LocalStorage
from livetx.titles import parse_profile
from tests.conftest import Source
from tests.support import Clock

KEY = "in/a.mp4"
PROFILES = {
    "default": parse_profile("default", {"st": 5000, "initial_segments": [2000], "renditions": {"r": {"preset": "ultrafast"}}}),
    "other": parse_profile("other", {"st": 6000, "renditions": {"r": {"preset": "ultrafast", "s": "x90"}}}),
}


class RecordingStore(LocalStorage):
    """Real local storage that notes the key of every write, in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[str] = []

    async def write(self, key: str, data: bytes) -> None:
        self.writes.append(key)
        await super().write(key, data)


class Stores:
    def __init__(self, tmp: Path, sources: dict[str, Source]) -> None:
        self.src_dir = tmp / "src"
        self.sources = LocalStorage(self.src_dir)
        self.output = RecordingStore(tmp / "out")
        self.samples = sources
        self.catalogs: list[Catalog] = []
        self.put(KEY, "video-only")

    def put(self, key: str, sample: str) -> None:
        """Place (or replace) source `key` with one of the session's samples."""
        path = self.src_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.samples[sample].path, path)

    def catalog(self, **options: Any) -> Catalog:
        catalog = Catalog(self.sources, PROFILES, self.output, **options)
        self.catalogs.append(catalog)
        return catalog

    def imm(self, master: str = "out/master.m3u8", target: str = "out/v0", source: str = KEY) -> Job:
        body = {
            "SourceURI": f"oss://local/{source}",
            "MasterURI": f"oss://local/{master}",
            "Targets": [{"URI": f"oss://local/{target}", "Duration": 5, "Video": {"TranscodeVideo": {"Resolution": "x90"}}}],
        }
        return parse_imm(body, self.sources.key_for_uri, self.output.key_for_uri)

    def job_objects(self) -> list[str]:
        jobs = self.output.root / ".jobs"
        return sorted(str(p.relative_to(jobs)) for p in jobs.rglob("*")) if jobs.exists() else []


@pytest.fixture
async def stores(tmp_path: Path, sources: dict[str, Source]) -> AsyncIterator[Stores]:
    made = Stores(tmp_path, sources)
    yield made
    for catalog in made.catalogs:  # background record and playlist writes end within the test
        await catalog.drain()


# ---- stats -----------------------------------------------------------------------------------


async def test_a_source_stat_is_reused_within_stat_ttl(stores: Stores) -> None:
    catalog = stores.catalog(stat_ttl=3600)
    first = await catalog.source(KEY)
    assert await catalog.source(KEY) == first and catalog.stat_count == 1


@pytest.mark.parametrize("stat_ttl", [0, 3600])
async def test_concurrent_lookups_of_a_source_join_one_stat(stores: Stores, stat_ttl: float) -> None:
    """A busy title's requests find its stat due at the same moment: one stat, not one each."""
    catalog = stores.catalog(stat_ttl=stat_ttl)
    infos = await asyncio.gather(*(catalog.source(KEY) for _ in range(20)))
    assert catalog.stat_count == 1 and len(set(infos)) == 1


async def test_a_title_is_answered_from_memory_until_its_stat_is_due(stores: Stores) -> None:
    """A title being played is one lookup per request until the looks it was made from (the
    source's stat, its sidecar listing) are due again: then the source is looked at, and a
    replaced one gives its new title, at the same moment the stat alone would."""
    clock = Clock(1000.0)
    catalog = stores.catalog(stat_ttl=5, clock=clock)
    first = await catalog.title("default", KEY)
    looks = (catalog.stat_count, catalog.listing_count)
    stores.put(KEY, "mp4-30")  # replaced: not seen until the stat is due
    clock.advance(4)
    assert await catalog.title("default", KEY) is first and (catalog.stat_count, catalog.listing_count) == looks
    clock.advance(1)
    second = await catalog.title("default", KEY)
    assert second.source.etag != first.source.etag and catalog.stat_count == looks[0] + 1
    assert await catalog.title("other", KEY) is not second  # each profile its own title


async def test_a_forgotten_title_is_planned_from_a_new_stat(stores: Stores) -> None:
    catalog = stores.catalog(stat_ttl=3600)
    first = await catalog.title("default", KEY)
    stores.put(KEY, "mp4-30")
    assert await catalog.title("default", KEY) is first
    catalog.forget(KEY)  # (a transcode found the source changed)
    assert (await catalog.title("default", KEY)).source.etag != first.source.etag


async def test_without_stat_ttl_every_title_stats_its_source(stores: Stores) -> None:
    catalog = stores.catalog(stat_ttl=0)
    await catalog.title("default", KEY)
    await catalog.title("default", KEY)
    assert catalog.stat_count == 2


async def test_without_stat_ttl_every_lookup_stats_the_source(stores: Stores) -> None:
    catalog = stores.catalog(stat_ttl=0)
    await catalog.source(KEY)
    await catalog.source(KEY)
    assert catalog.stat_count == 2


async def test_a_forgotten_source_is_stated_again_and_shows_its_new_version(stores: Stores) -> None:
    catalog = stores.catalog(stat_ttl=3600)
    old = await catalog.source(KEY)
    stores.put(KEY, "mp4-30")
    assert await catalog.source(KEY) == old  # within stat_ttl: the remembered answer
    catalog.forget(KEY)
    new = await catalog.source(KEY)
    assert new.etag != old.etag and catalog.stat_count == 2


async def test_a_missing_source_is_not_found(stores: Stores) -> None:
    with pytest.raises(SourceNotFound):
        await stores.catalog().source("in/none.mp4")


# ---- probes ------------------------------------------------------------------------------------


async def test_a_source_version_is_probed_once(stores: Stores) -> None:
    catalog = stores.catalog()
    source = await catalog.source(KEY)
    first = await catalog.media_info(source)
    assert await catalog.media_info(source) == first and catalog.probe_count == 1


async def test_concurrent_requests_share_one_probe(stores: Stores) -> None:
    catalog = stores.catalog()
    source = await catalog.source(KEY)
    infos = await asyncio.gather(*(catalog.media_info(source) for _ in range(4)))
    assert all(info == infos[0] for info in infos) and catalog.probe_count == 1


async def test_a_replaced_source_is_probed_again(stores: Stores) -> None:
    catalog = stores.catalog()
    old = await catalog.media_info(await catalog.source(KEY))
    stores.put(KEY, "mp4-30")
    new = await catalog.media_info(await catalog.source(KEY))
    assert catalog.probe_count == 2 and new != old


async def test_a_probe_is_recorded_and_another_catalog_reads_it_back(stores: Stores) -> None:
    first = stores.catalog()
    source = await first.source(KEY)
    info = await first.media_info(source)
    await first.drain()
    assert await stores.output.stat(first.probe_key(source)) is not None
    second = stores.catalog()
    assert await second.media_info(await second.source(KEY)) == info and second.probe_count == 0


async def test_a_corrupt_probe_record_is_ignored_and_replaced(stores: Stores) -> None:
    catalog = stores.catalog()
    source = await catalog.source(KEY)
    await stores.output.write(catalog.probe_key(source), b"{not json")
    info = await catalog.media_info(source)
    await catalog.drain()
    assert catalog.probe_count == 1
    again = stores.catalog()
    assert await again.media_info(source) == info and again.probe_count == 0


async def test_a_probe_record_of_another_version_is_not_used(stores: Stores) -> None:
    catalog = stores.catalog()
    old = await catalog.source(KEY)
    await catalog.media_info(old)
    stores.put(KEY, "mp4-30")
    new = await catalog.source(KEY)
    assert catalog.probe_key(new) != catalog.probe_key(old)


@pytest.mark.parametrize(
    ("ttl", "probes"),
    [
        pytest.param(3600.0, 1, id="within-ttl-answered-from-memory"),
        pytest.param(0.0, 2, id="no-ttl-probed-again"),
    ],
)
async def test_a_broken_source_is_probed_again_only_after_probe_failure_ttl(stores: Stores, ttl: float, probes: int) -> None:
    (stores.src_dir / "in/broken.mp4").write_bytes(b"not media at all" * 64)
    catalog = stores.catalog(probe_failure_ttl=ttl)
    source = await catalog.source("in/broken.mp4")
    errors = []
    for _ in range(2):
        with pytest.raises(SourceUnreadable) as raised:
            await catalog.media_info(source)
        errors.append(raised.value)
    assert catalog.probe_count == probes
    assert type(errors[0]) is type(errors[1]) and errors[0].message == errors[1].message
    assert await stores.output.stat(catalog.probe_key(source)) is None  # a failure is not recorded


async def test_a_replaced_broken_source_is_probed_at_once(stores: Stores) -> None:
    (stores.src_dir / "in/broken.mp4").write_bytes(b"not media at all" * 64)
    catalog = stores.catalog(probe_failure_ttl=3600)
    with pytest.raises(SourceUnreadable):
        await catalog.media_info(await catalog.source("in/broken.mp4"))
    stores.put("in/broken.mp4", "video-only")
    info = await catalog.media_info(await catalog.source("in/broken.mp4"))
    assert info.video is not None and catalog.probe_count == 2


# ---- API-made jobs: plan, register, profile --------------------------------------------------


async def test_plan_keeps_no_job_record_and_no_claim(stores: Stores) -> None:
    job = stores.imm()
    title = await stores.catalog().plan(job)
    assert title.profile.name == job.profile_name and stores.job_objects() == []


@pytest.mark.parametrize(
    ("source", "error"),
    [
        pytest.param("in/none.mp4", SourceNotFound, id="missing"),
        pytest.param("in/broken.mp4", SourceUnreadable, id="unreadable"),
    ],
)
async def test_a_failing_plan_leaves_no_record(stores: Stores, source: str, error: type[Exception]) -> None:
    (stores.src_dir / "in/broken.mp4").write_bytes(b"not media at all" * 64)
    with pytest.raises(error):
        await stores.catalog().plan(stores.imm(source=source))
    assert stores.job_objects() == []


async def test_register_writes_every_claim_before_the_record(stores: Stores) -> None:
    catalog = stores.catalog()
    job = stores.imm()
    await catalog.register(job, await catalog.plan(job))
    claims = [claim_key(key) for key in job.claims()]
    assert stores.output.writes[-3:] == [*claims, record_key(job.id)]
    for key in job.claims():
        assert json.loads(await stores.output.read(claim_key(key))) == {"key": key, "job": job.id}
    assert Job.from_record(json.loads(await stores.output.read(record_key(job.id)))) == job


async def test_registering_the_same_job_again_is_idempotent(stores: Stores) -> None:
    catalog = stores.catalog()
    job = stores.imm()
    title = await catalog.plan(job)
    await catalog.register(job, title)
    await catalog.publish(title)  # its playlists now exist where it claimed
    await stores.catalog().register(job, title)


@pytest.mark.parametrize(
    ("make_other", "field"),
    [
        pytest.param(lambda s: s.imm(target="out/v1"), "MasterURI", id="same-master"),
        pytest.param(lambda s: s.imm(master="out/other.m3u8"), "Targets[0].URI", id="same-target"),
    ],
)
async def test_another_job_claiming_a_held_key_is_refused(stores: Stores, make_other: Callable[[Stores], Job], field: str) -> None:
    catalog = stores.catalog()
    job = stores.imm()
    await catalog.register(job, await catalog.plan(job))
    other = make_other(stores)
    with pytest.raises(OutputClaimed) as raised:
        await stores.catalog().register(other, await catalog.plan(other))
    assert raised.value.details["parameter"] == field
    assert await stores.output.stat(record_key(other.id)) is None


async def test_a_job_may_not_claim_an_object_no_job_made(stores: Stores) -> None:
    await stores.output.write("out/master.m3u8", b"#EXTM3U\n")
    catalog = stores.catalog()
    job = stores.imm()
    with pytest.raises(OutputClaimed) as raised:
        await catalog.register(job, await catalog.plan(job))
    assert raised.value.details["parameter"] == "MasterURI" and stores.job_objects() == []


async def test_a_job_profile_is_loaded_from_its_record_by_another_catalog(stores: Stores) -> None:
    first = stores.catalog()
    job = stores.imm()
    profile = await first.register(job, await first.plan(job))
    assert await stores.catalog().profile(job.profile_name) == profile


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("nothing", id="unknown"),
        pytest.param("j-0123456789abcdef", id="job-without-record"),
        pytest.param("j-../x", id="job-id-not-alphanumeric"),
    ],
)
async def test_an_unknown_profile_is_not_found(stores: Stores, name: str) -> None:
    with pytest.raises(ProfileNotFound):
        await stores.catalog().profile(name)


async def test_a_corrupt_job_record_is_not_a_profile(stores: Stores) -> None:
    await stores.output.write(record_key("0123456789abcdef"), b"{not json")
    with pytest.raises(ProfileNotFound):
        await stores.catalog().profile("j-0123456789abcdef")


# ---- titles and first sight -------------------------------------------------------------------


async def test_a_title_is_planned_once_per_profile_and_source_version(stores: Stores) -> None:
    catalog = stores.catalog()
    title = await catalog.title("default", KEY)
    assert await catalog.title("default", KEY) is title
    assert (await catalog.title("other", KEY)).profile.name == "other"
    assert catalog.probe_count == 1  # one probe serves both profiles


async def test_a_new_source_version_gets_a_new_title(stores: Stores) -> None:
    catalog = stores.catalog()
    old = await catalog.title("default", KEY)
    stores.put(KEY, "mp4-30")
    new = await catalog.title("default", KEY)
    assert new is not old and new.source.etag != old.source.etag


async def test_a_job_profile_serves_only_its_own_source(stores: Stores) -> None:
    catalog = stores.catalog()
    stores.put("in/b.mp4", "video-only")
    job = stores.imm()
    await catalog.register(job, await catalog.plan(job))
    assert (await catalog.title(job.profile_name, KEY)).profile.name == job.profile_name
    with pytest.raises(ProfileNotFound):
        await catalog.title(job.profile_name, "in/b.mp4")


async def test_first_sight_is_true_once_per_title_version(stores: Stores) -> None:
    catalog = stores.catalog()
    title = await catalog.title("default", KEY)
    assert catalog.first_sight(title, publish=False)
    assert not catalog.first_sight(title, publish=False)
    assert catalog.first_sight(await catalog.title("other", KEY), publish=False)
    stores.put(KEY, "mp4-30")
    assert catalog.first_sight(await catalog.title("default", KEY), publish=False)


@pytest.mark.parametrize(
    ("publish", "written"),
    [
        # (the I-frame rendition's playlist too: the published master lists it)
        pytest.param(True, ["in/a.mp4/default/iframe.m3u8", "in/a.mp4/default/master.m3u8", "in/a.mp4/default/r.m3u8"], id="published"),
        pytest.param(False, [], id="not-published"),
    ],
)
async def test_first_sight_writes_the_playlists_only_when_asked(stores: Stores, publish: bool, written: list[str]) -> None:
    catalog = stores.catalog()
    title = await catalog.title("default", KEY)
    await catalog.drain()  # the probe record
    before = len(stores.output.writes)
    catalog.first_sight(title, publish=publish)
    await catalog.drain()
    assert sorted(stores.output.writes[before:]) == written


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"table": {"renditions": {"t0": {"fps": "999"}}}}, id="parameter-out-of-bounds"),
        pytest.param({"prefixes": {}}, id="prefix-missing"),
    ],
)
async def test_a_job_record_that_builds_no_profile_is_not_a_profile(stores: Stores, change: dict[str, Any]) -> None:
    record = {**stores.imm().to_record(), "id": "0123456789abcdef", **change}
    await stores.output.write(record_key("0123456789abcdef"), json.dumps(record).encode())
    with pytest.raises(ProfileNotFound):
        await stores.catalog().profile("j-0123456789abcdef")
