"""Subtitle sidecars (issue 16): the name grammar, the source store's prefix listing (local and
a real S3 server), discovery, parsing and caching in the Catalog, and IMM `SourceSubtitles`.

Stores are real (a local directory, SeaweedFS); the counting stores below are subclasses that
note each listing and read, so the Catalog's caching is seen from the store's side.
"""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.catalog import SIDECARS_LISTED, Catalog
from livetx.errors import InvalidPath, ParameterError, StorageUnavailable
from livetx.factories import open_storages
from livetx.jobs import Job, parse_imm
from livetx.layout import record_key
from livetx.storage.base import ObjectInfo, Storage, split_prefix
from livetx.storage.local import LocalStorage
from livetx.storage.s3 import S3Storage
from livetx.subtitles.names import language_tag, listing_prefix, parse_sidecar_name, request_name
from livetx.subtitles.sidecar import SidecarName
from livetx.subtitles.text import MAX_SIDECAR_BYTES
from livetx.titles import parse_profile
from livetx.web.keys import CATALOG
from livetx.web.lag import LoopLagMonitor
from tests.conftest import Source, app_settings, s3_settings
from tests.s3server import BUCKET, SeaweedS3

SOURCE = "dir/film.mp4"


def srt(*texts: str) -> str:
    """An SRT file with one cue a second per text, from 1 s."""
    return "".join(f"{i + 1}\n00:00:{i + 1:02d},000 --> 00:00:{i + 1:02d},500\n{text}\n\n" for i, text in enumerate(texts))


def name(language: str | None, **flags: Any) -> SidecarName:
    return SidecarName(language=language, **flags)


# ---- the name grammar ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("dir/film.en.srt", name("en"), id="language"),
        pytest.param("dir/film.srt", name(None), id="no-tag"),
        pytest.param("dir/film.fr.vtt", name("fr", kind="vtt"), id="vtt"),
        pytest.param("dir/film.EN.SRT", name("en"), id="upper-case"),
        pytest.param("dir/film.fre.ass", name("fre", kind="ass"), id="three-letters"),
        pytest.param("dir/film.pt-br.ssa", name("pt-BR", kind="ssa"), id="region"),
        pytest.param("dir/film.zh-hant.srt", name("zh-Hant"), id="script"),
        pytest.param("dir/film.es-419.srt", name("es-419"), id="un-area"),
        pytest.param("dir/film.forced.en.srt", name("en", forced=True), id="forced-first"),
        pytest.param("dir/film.en.forced.srt", name("en", forced=True), id="forced-last"),
        pytest.param("dir/film.en.sdh.srt", name("en", hearing_impaired=True), id="sdh"),
        pytest.param("dir/film.cc.en.srt", name("en", hearing_impaired=True), id="cc"),
        pytest.param("dir/film.en.HI.srt", name("en", hearing_impaired=True), id="hi-is-hearing-impaired"),
        pytest.param("dir/film.default.de.srt", name("de", default=True), id="default"),
        pytest.param("dir/film.en.Director Commentary.srt", name("en", label="Director Commentary"), id="label"),
        pytest.param("dir/film.en.fr.srt", name("en", label="fr"), id="second-language-is-a-label"),
        pytest.param("dir/film.1.srt", name(None, label="1"), id="number-label"),
        pytest.param("dir/film.english.srt", name(None, label="english"), id="word-label"),
        pytest.param("dir/film.mp4.en.srt", name("en"), id="after-the-whole-name"),
        pytest.param("dir/film.mp4.srt", name(None), id="whole-name-no-tag"),
        pytest.param("dir/film.en-.srt", name(None, label="en-"), id="not-a-language"),
        pytest.param("dir/film.ｅｎ.srt", name(None, label="ｅｎ"), id="not-ascii"),
        pytest.param("dir/filmography.srt", None, id="other-stem"),
        pytest.param("dir/Film.en.srt", None, id="stem-is-case-sensitive"),
        pytest.param("other/film.en.srt", None, id="other-folder"),
        pytest.param("dir/sub/film.en.srt", None, id="sub-folder"),
        pytest.param("film.en.srt", None, id="root"),
        pytest.param("dir/film.en.txt", None, id="not-a-subtitle-suffix"),
        pytest.param("dir/film.en", None, id="no-suffix"),
        pytest.param("dir/film.mp4", None, id="the-source"),
        pytest.param("dir/film..en.srt", None, id="empty-tag"),
        pytest.param("dir/.film.en.srt", None, id="hidden"),
        pytest.param("dir/film.en.srt/x.srt", None, id="inside-a-folder"),
        pytest.param("dir/film.e\x01n.srt", None, id="control-character"),
        pytest.param("dir/film.en.m3u8", None, id="playlist"),
    ],
)
def test_sidecar_names(key: str, expected: SidecarName | None) -> None:
    assert parse_sidecar_name(SOURCE, key) == expected


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        pytest.param("film.mkv", "film.en.srt", name("en"), id="source-at-the-root"),
        pytest.param("dir/film", "dir/film.en.srt", name("en"), id="source-without-suffix"),
        pytest.param("dir/a.b.mkv", "dir/a.b.en.srt", name("en"), id="dotted-stem"),
        pytest.param("dir/a.b.mkv", "dir/a.en.srt", None, id="shorter-stem"),
    ],
)
def test_sidecar_names_follow_the_source(source: str, key: str, expected: SidecarName | None) -> None:
    assert parse_sidecar_name(source, key) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("dir/film.en.srt", name("en"), id="a-sidecar-of-the-source"),
        pytest.param("dir/film.en.Commentary.srt", name("en", label="Commentary"), id="sidecar-label"),
        pytest.param("subs/movie.fr.forced.vtt", name("fr", forced=True, kind="vtt"), id="own-tags"),
        pytest.param("subs/Movie.2010.de.srt", name("de"), id="own-stem-with-dots"),
        pytest.param("subs/movie.Commentary.en.srt", name("en"), id="no-label-from-its-own-name"),
        pytest.param("subs/movie.en.fr.srt", name("fr"), id="the-last-language"),
        pytest.param("subs/sub.srt", name(None), id="nothing-said"),
        pytest.param("subs/en.srt", name(None), id="the-stem-is-no-tag"),
    ],
)
def test_request_names(key: str, expected: SidecarName) -> None:
    assert request_name(SOURCE, key) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("EN", "en"), ("pt-br", "pt-BR"), ("SR-LATN", "sr-Latn"), ("es-419", "es-419"), ("e", None), ("engl", None), ("en-u", None)],
)
def test_language_tags(tag: str, expected: str | None) -> None:
    assert language_tag(tag) == expected


@pytest.mark.parametrize(
    ("source", "prefix"), [("dir/film.mkv", "dir/film."), ("film.mkv", "film."), ("dir/film", "dir/film."), ("a/b.c.mp4", "a/b.c.")]
)
def test_listing_prefix(source: str, prefix: str) -> None:
    assert listing_prefix(source) == prefix


@pytest.mark.parametrize("prefix", ["/dir/film.", "dir//film.", "../film.", "dir/../film.", "dir/fi\x00lm.", "dir/fi\\lm."])
def test_bad_listing_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidPath):
        split_prefix(prefix)


# ---- Storage.list_prefix, local and S3 -------------------------------------------------


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "store")
        return
    s3: SeaweedS3 = request.getfixturevalue("s3")
    request.getfixturevalue("s3_env")
    uri = f"s3://{BUCKET}/sidecars-{tmp_path.name}"
    async with open_storages(s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=uri)) as (sources, _):
        yield sources


async def test_list_prefix_lists_one_folder_by_name(store: Storage) -> None:
    for key in ("dir/film.mp4", "dir/film.en.srt", "dir/film.x/a.srt", "dir/filmography.srt", "dir/.film.srt", "other/film.en.srt"):
        await store.write(key, key.encode())
    await store.write("film.fr.srt", b"root")
    listed = await store.list_prefix("dir/film.", 100)
    assert [o.key for o in listed] == ["dir/film.en.srt", "dir/film.mp4"]  # by key; no sub-folder, hidden or other name
    for info in listed:
        stat = await store.stat(info.key)
        assert stat is not None and (info.size, info.etag) == (stat.size, stat.etag)
    assert [o.key for o in await store.list_prefix("dir/film.", 1)] == ["dir/film.en.srt"]
    assert [o.key for o in await store.list_prefix("film.", 100)] == ["film.fr.srt"]
    assert await store.list_prefix("none/film.", 100) == []
    assert await store.list_prefix(".hidden/film.", 100) == []


async def test_list_prefix_refuses_a_bad_prefix(store: Storage) -> None:
    with pytest.raises(InvalidPath):
        await store.list_prefix("dir/../film.", 10)


async def test_local_list_prefix_never_follows_a_link_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.srt").write_text(srt("secret"))
    (root / "dir" / "film.en.srt").write_text(srt("mine"))
    (root / "dir" / "film.xx.srt").symlink_to(outside / "secret.srt")
    (root / "linked").symlink_to(outside)
    store = LocalStorage(root)
    assert [o.key for o in await store.list_prefix("dir/film.", 10)] == ["dir/film.en.srt"]
    with pytest.raises(InvalidPath):
        await store.list_prefix("linked/secret.", 10)


# ---- discovery through the Catalog -------------------------------------------------------

Listing = list[str]


class CountingLocal(LocalStorage):
    """Real local storage noting each prefix listed and each key read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: Listing = []
        self.reads: Listing = []

    async def list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        self.listed.append(prefix)
        return await super().list_prefix(prefix, limit)

    async def read(self, key: str) -> bytes:
        self.reads.append(key)
        return await super().read(key)


class CountingS3(S3Storage):
    """Real S3 storage noting each prefix listed and each key read."""

    def __init__(self, store: S3Storage) -> None:
        super().__init__(store.client, store.location, store.options, store.breaker)
        self.listed: Listing = []
        self.reads: Listing = []

    async def list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        self.listed.append(prefix)
        return await super().list_prefix(prefix, limit)

    async def read(self, key: str) -> bytes:
        self.reads.append(key)
        return await super().read(key)


Counting = CountingLocal | CountingS3
PROFILES = {"p": parse_profile("p", {"st": 5000, "renditions": {"r": {"preset": "ultrafast"}}})}

FILES: dict[str, bytes] = {
    "dir/film.en.srt": srt("Hello", "World").encode("utf-8"),
    "dir/film.fr.srt": srt("Été à Noël").encode("latin-1"),
    "dir/film.de.srt": b"\xff\xfe" + srt("Grüße").encode("utf-16-le"),
    "dir/film.forced.en.srt": srt("Forced").encode(),
    "dir/film.broken.srt": b"1\n00:00:xx,000 --> nonsense\nno valid time\n",
    "dir/film.big.srt": b"x" * (3 * 1024 * 1024),
    "dir/filmography.srt": srt("Not a sidecar").encode(),
    "other/film.en.srt": srt("Another folder").encode(),
    "dir/film.mkv.en.srt": srt("The mkv's").encode(),  # belongs to dir/film.mkv, placed below
}


class Stores:
    def __init__(self, sources: Counting, output: Storage, media: Source) -> None:
        self.sources, self.output, self.media = sources, output, media

    async def fill(self) -> ObjectInfo:
        await self.sources.write(SOURCE, self.media.path.read_bytes())
        await self.sources.write("dir/film.mkv", b"another media file of the same stem")
        for key, data in FILES.items():
            await self.sources.write(key, data)
        info = await self.sources.stat(SOURCE)
        assert info is not None
        return info

    def catalog(self, stat_ttl: float = 60.0) -> Catalog:
        return Catalog(self.sources, PROFILES, self.output, stat_ttl=stat_ttl)


@pytest.fixture(params=["local", "s3"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path, sources: dict[str, Source]) -> AsyncIterator[Stores]:
    if request.param == "local":
        yield Stores(CountingLocal(tmp_path / "src"), LocalStorage(tmp_path / "out"), sources["video-only"])
        return
    s3: SeaweedS3 = request.getfixturevalue("s3")
    request.getfixturevalue("s3_env")
    uri = f"s3://{BUCKET}/sidecars-{tmp_path.name}"
    async with open_storages(s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=uri)) as (src, out):
        assert isinstance(src, S3Storage)
        yield Stores(CountingS3(src), out, sources["video-only"])


@pytest.fixture
async def local(tmp_path: Path, sources: dict[str, Source]) -> Stores:
    return Stores(CountingLocal(tmp_path / "src"), LocalStorage(tmp_path / "out"), sources["video-only"])


async def test_sidecars_are_found_read_and_parsed(stores: Stores) -> None:
    source = await stores.fill()
    found = {s.key: s for s in await stores.catalog().sidecars(source)}
    assert sorted(found) == [
        "dir/film.big.srt",
        "dir/film.broken.srt",
        "dir/film.de.srt",
        "dir/film.en.srt",
        "dir/film.forced.en.srt",
        "dir/film.fr.srt",
    ]
    assert [c.text for c in found["dir/film.en.srt"].cues] == ["Hello", "World"]
    assert [c.text for c in found["dir/film.fr.srt"].cues] == ["Été à Noël"]  # Latin-1
    assert [c.text for c in found["dir/film.de.srt"].cues] == ["Grüße"]  # UTF-16 with a BOM
    assert (found["dir/film.en.srt"].cues[0].start, found["dir/film.en.srt"].cues[0].end) == (1000, 1500)
    forced = found["dir/film.forced.en.srt"]
    assert forced.name == SidecarName("en", forced=True) and forced.error is None
    assert found["dir/film.fr.srt"].name.language == "fr" and found["dir/film.de.srt"].name.language == "de"
    broken = found["dir/film.broken.srt"]
    assert broken.cues == () and broken.error is not None and "dir/film.broken.srt" in broken.error and "unreadable" in broken.error
    big = found["dir/film.big.srt"]
    assert big.cues == () and big.error is not None and str(MAX_SIDECAR_BYTES) in big.error
    assert "dir/film.big.srt" not in stores.sources.reads  # refused from its listed size, never read
    for sidecar in found.values():
        info = await stores.sources.stat(sidecar.key)
        assert info is not None and sidecar.etag == info.etag


async def test_a_listing_is_reused_for_the_stat_ttl_and_each_sidecar_read_once(stores: Stores) -> None:
    source = await stores.fill()
    catalog = stores.catalog(stat_ttl=60.0)
    first = await catalog.sidecars(source)
    assert await catalog.sidecars(source) == first
    title = await catalog.title("p", SOURCE)
    assert await catalog.title("p", SOURCE) is title
    assert stores.sources.listed == ["dir/film."] and catalog.listing_count == 1
    assert sorted(stores.sources.reads) == sorted(s.key for s in first if s.key != "dir/film.big.srt")


async def test_a_new_or_changed_sidecar_is_seen_once_the_listing_is_renewed(local: Stores) -> None:
    source = await local.fill()
    catalog = local.catalog(stat_ttl=0.0)  # no reuse: every call lists again
    before = await catalog.sidecars(source)
    title = await catalog.title("p", SOURCE)
    reads = len(local.sources.reads)
    assert await catalog.sidecars(source) == before and await catalog.title("p", SOURCE) is title
    assert len(local.sources.reads) == reads  # listed again, but no sidecar version read twice
    await local.sources.write("dir/film.es.srt", srt("Hola").encode())
    await local.sources.write("dir/film.en.srt", srt("Changed").encode())
    after = {s.key: s for s in await catalog.sidecars(source)}
    assert [c.text for c in after["dir/film.es.srt"].cues] == ["Hola"]
    assert [c.text for c in after["dir/film.en.srt"].cues] == ["Changed"]
    assert sorted(local.sources.reads[reads:]) == ["dir/film.en.srt", "dir/film.es.srt"]
    assert await catalog.title("p", SOURCE) is not title  # the sidecars are part of the title's identity
    await local.sources.delete("dir/film.es.srt")
    assert "dir/film.es.srt" not in {s.key for s in await catalog.sidecars(source)}


async def test_concurrent_callers_share_one_read(local: Stores) -> None:
    source = await local.fill()
    catalog = local.catalog()
    results = await asyncio.gather(*(catalog.sidecars(source) for _ in range(4)))
    assert all(r == results[0] for r in results)
    assert len(local.sources.reads) == len(set(local.sources.reads)) == 5  # each readable sidecar once


async def test_parsing_a_large_sidecar_leaves_the_event_loop_free(local: Stores) -> None:
    source = await local.fill()
    parts: list[str] = []
    size = 0
    while size < MAX_SIDECAR_BYTES - 1000:  # just under the cap: the largest parse livetx does
        i = len(parts)
        parts.append(f"{i + 1}\n{_ts(i * 2000)} --> {_ts(i * 2000 + 1500)}\nline {i} of a long film\n\n")
        size += len(parts[-1])
    await local.sources.write("dir/film.long.srt", "".join(parts).encode())
    catalog = local.catalog()
    monitor = LoopLagMonitor(lambda lag: None, interval=0.005)
    watching = asyncio.create_task(monitor.run())
    loop = asyncio.get_running_loop()
    began = loop.time()
    gc.disable()  # a full collection (seen: 0.75 s in a long test session) stops every thread, the loop's too
    try:
        found = {s.key: s for s in await catalog.sidecars(source)}
    finally:
        gc.enable()
    took = loop.time() - began
    watching.cancel()
    assert len(found["dir/film.long.srt"].cues) == len(parts)
    assert monitor.worst < took / 4, (monitor.worst, took)  # parsed off the loop: it kept running meanwhile


def _ts(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


class FlakyLocal(CountingLocal):
    """Real local storage whose first `failures` reads of `dir/film.en.srt` (or listings) fail as
    a store that is down."""

    def __init__(self, root: Path, failures: int = 1, listing: bool = False) -> None:
        super().__init__(root)
        self.failures, self.listing = failures, listing

    def _fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable("store down")

    async def read(self, key: str) -> bytes:
        if not self.listing and key == "dir/film.en.srt":
            self._fail()
        return await super().read(key)

    async def list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        if self.listing:
            self._fail()
        return await super().list_prefix(prefix, limit)


async def test_a_failed_read_is_tried_again(tmp_path: Path, sources: dict[str, Source]) -> None:
    stores = Stores(FlakyLocal(tmp_path / "src"), LocalStorage(tmp_path / "out"), sources["video-only"])
    source = await stores.fill()
    catalog = stores.catalog()
    first = {s.key: s for s in await catalog.sidecars(source)}
    assert first["dir/film.en.srt"].error == "store down" and not first["dir/film.en.srt"].cues
    again = {s.key: s for s in await catalog.sidecars(source)}
    assert again["dir/film.en.srt"].error is None and again["dir/film.en.srt"].cues  # not kept: read again


async def test_a_failed_listing_gives_no_sidecars_and_the_title_still_plans(tmp_path: Path, sources: dict[str, Source]) -> None:
    stores = Stores(FlakyLocal(tmp_path / "src", failures=2, listing=True), LocalStorage(tmp_path / "out"), sources["video-only"])
    source = await stores.fill()
    catalog = stores.catalog(stat_ttl=0.0)
    assert await catalog.sidecars(source) == ()
    assert (await catalog.title("p", SOURCE)).source == source  # planned without them (second failure)
    assert len(await catalog.sidecars(source)) == 6  # the store is back


async def test_at_most_a_listing_page_of_objects_is_looked_at(local: Stores) -> None:
    source = await local.fill()
    for i in range(SIDECARS_LISTED):
        await local.sources.write(f"dir/film.a{i:03d}.srt", srt("x").encode())
    found = await local.catalog().sidecars(source)
    assert len(found) == SIDECARS_LISTED and all(s.key.startswith("dir/film.a") for s in found)  # the first page, by key


# ---- IMM SourceSubtitles -------------------------------------------------------------------


def imm(*subtitles: str, source: str = SOURCE) -> dict[str, Any]:
    return {
        "SourceURI": f"oss://local/{source}",
        "MasterURI": "oss://local/out/master.m3u8",
        "SourceSubtitles": [{"URI": uri} for uri in subtitles],
        "Targets": [{"URI": "oss://local/out/v", "InitialTranscode": 0, "Video": {"TranscodeVideo": {"Resolution": "x90"}}}],
    }


def parse(body: dict[str, Any]) -> Job:
    store = LocalStorage(Path("/nonexistent"))
    return parse_imm(body, store.key_for_uri, store.key_for_uri)


def test_source_subtitles_become_keys_on_the_job() -> None:
    job = parse(imm("oss://local/dir/film.en.srt", "oss://local/subs/x.fr.vtt"))
    assert job.subtitles == ("dir/film.en.srt", "subs/x.fr.vtt")
    assert job.subtitle_fields() == {"dir/film.en.srt": "SourceSubtitles[0].URI", "subs/x.fr.vtt": "SourceSubtitles[1].URI"}
    assert Job.from_record(json.loads(json.dumps(job.to_record()))).subtitles == job.subtitles
    assert parse(imm("oss://local/dir/film.en.srt")).id != parse(imm()).id  # they are part of what the request means


def test_jobs_without_subtitles_keep_their_ids_and_records() -> None:
    job = parse(imm())
    record = job.to_record()
    old = {k: v for k, v in record.items() if k != "subtitles"}  # written before subtitles
    assert Job.from_record(old) == Job.from_record(record)
    without = {k: v for k, v in imm().items() if k != "SourceSubtitles"}
    assert parse(without).id == job.id


@pytest.mark.parametrize(
    ("uris", "field"),
    [
        pytest.param(["oss://elsewhere/dir/film.en.srt"], "SourceSubtitles[0].URI", id="other-bucket"),
        pytest.param(["oss://local/dir/film.en.srt", "oss://local/dir/.film.en.srt"], "SourceSubtitles[1].URI", id="hidden"),
        pytest.param(["oss://local/dir/../film.en.srt"], "SourceSubtitles[0].URI", id="dot-dot"),
        pytest.param(["oss://local/dir/film.en.txt"], "SourceSubtitles[0].URI", id="not-a-subtitle"),
        pytest.param(["oss://local/dir/film.m3u8"], "SourceSubtitles[0].URI", id="playlist"),
        pytest.param(["oss://local/a.srt", "oss://local/a.srt"], "SourceSubtitles[1].URI", id="twice"),
        pytest.param(["not a uri"], "SourceSubtitles[0].URI", id="not-a-uri"),
    ],
)
def test_bad_source_subtitles_name_the_field(uris: list[str], field: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(imm(*uris))
    assert caught.value.status == 400 and caught.value.name == field


API_KEY = "backend-" + "k" * 40
SCOPED = "scoped-" + "s" * 40  # may read dir/ only
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> TestClient[Any, Any]:
    media = tmp_path / "media"
    (media / "dir").mkdir(parents=True)
    (media / "subs").mkdir()
    shutil.copy(sources["video-only"].path, media / SOURCE)
    (media / "dir" / "film.en.srt").write_text(srt("Hello"))
    (media / "dir" / "film.de.srt").write_text(srt("Discovered, not named"))
    (media / "subs" / "movie.fr.forced.srt").write_text(srt("Forcé"))
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_API_KEYS=f"backend:{API_KEY},scoped:{SCOPED}",
        LIVETX_API_SCOPES_SCOPED_OPERATIONS="playlists",
        LIVETX_API_SCOPES_SCOPED_READ="dir/",
        LIVETX_API_SCOPES_SCOPED_WRITE="out/",
        LIVETX_CACHE_LOOKAHEAD="false",
    )
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def post(client: TestClient[Any, Any], body: dict[str, Any], key: str = API_KEY) -> tuple[int, Any]:
    response = await client.post("/api/v1/playlists", json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def test_an_api_title_has_the_subtitles_its_request_named(client: TestClient[Any, Any]) -> None:
    body = imm("oss://local/dir/film.en.srt", "oss://local/subs/movie.fr.forced.srt")
    status, answer = await post(client, body)
    assert status == 200, answer
    catalog = client.server.app[CATALOG]
    job = parse(body)
    title = await catalog.title(job.profile_name, SOURCE)
    reads = catalog.sidecar_reads
    named = await catalog.named_sidecars(title.source, job.subtitles)
    assert [(s.key, s.name.language, s.name.forced, s.cues[0].text) for s in named] == [
        ("dir/film.en.srt", "en", False, "Hello"),
        ("subs/movie.fr.forced.srt", "fr", True, "Forcé"),
    ]
    assert catalog.sidecar_reads == reads == 2 and catalog.listing_count == 0  # read when planned; no discovery


async def test_a_missing_subtitle_is_a_400_naming_it_and_keeps_no_job(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, imm("oss://local/dir/film.en.srt", "oss://local/dir/film.es.srt"))
    assert status == 400 and answer["error"]["parameter"] == "SourceSubtitles[1].URI", answer
    output = client.server.app[CATALOG].output
    assert await output.stat(record_key(parse(imm("oss://local/dir/film.en.srt", "oss://local/dir/film.es.srt")).id)) is None


async def test_a_subtitle_outside_the_keys_read_scope_is_refused(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, imm("oss://local/dir/film.en.srt", "oss://local/subs/movie.fr.forced.srt"), key=SCOPED)
    error = answer["error"]
    assert status == 403 and error["code"] == "api_key_scope" and error["parameter"] == "SourceSubtitles[1].URI", answer
    status, answer = await post(client, imm("oss://local/dir/film.en.srt"), key=SCOPED)
    assert status == 200, answer


async def test_a_subtitle_in_another_bucket_is_a_400(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, imm("oss://elsewhere/dir/film.en.srt"))
    assert status == 400 and answer["error"]["parameter"] == "SourceSubtitles[0].URI", answer
