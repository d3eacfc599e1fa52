"""S3 as source and output store, against a real S3 server (SeaweedFS on loopback).

The app runs in-process on a loopback port (aiohttp's test server) with the real pool; the
worker reads S3 sources with ranged GETs on presigned URLs.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import av
import m3u8
import pytest

from livetx.factories import open_storages
from livetx.layout import master_playlist_key, media_playlist_key, segment_key
from livetx.media.probe import probe
from livetx.storage.base import Storage
from livetx.storage.s3 import S3Storage
from livetx.web.keys import CATALOG, SEGMENTS
from tests.checker import check_tone, decode_audio, decode_video, open_joined
from tests.conftest import MakeClient, Source, launch_server, s3_settings
from tests.s3server import BUCKET, SeaweedS3
from tests.support import CDN_HEADERS, SlowStore, fetch, playlist_segments

pytestmark = pytest.mark.usefixtures("s3_env")


async def upload(s3: SeaweedS3, tmp: Path, key: str, path: Path) -> None:
    settings = s3_settings(s3, tmp, LIVETX_STORAGE_URI=f"s3://{BUCKET}/src")
    async with open_storages(settings) as (sources, _):
        await sources.write(key, path.read_bytes())


# ---- the storage contract, local and S3 ------------------------------------------------


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, s3: SeaweedS3, tmp_path: Path) -> AsyncIterator[Storage]:
    uri = str(tmp_path / "store") if request.param == "local" else f"s3://{BUCKET}/contract-{tmp_path.name}"
    async with open_storages(s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=uri)) as (sources, _):
        yield sources


async def test_storage_contract(store: Storage) -> None:
    assert await store.stat("a/b.ts") is None
    await store.write("a/b.ts", b"x" * 1000)
    info = await store.stat("a/b.ts")
    assert info is not None and info.size == 1000 and info.etag
    assert await store.read("a/b.ts") == b"x" * 1000
    await store.write("a/b.ts", b"y" * 10)
    changed = await store.stat("a/b.ts")
    assert changed is not None and changed.etag != info.etag
    await store.write(".hidden/c.ts", b"z")
    assert [o.key for o in await store.list(10)] == ["a/b.ts"]  # hidden keys are not listed
    await store.delete("a/b.ts")
    assert await store.stat("a/b.ts") is None
    await store.delete("a/b.ts")  # deleting twice is fine


async def test_a_file_is_written_whole_as_one_object(store: Storage, tmp_path: Path) -> None:
    """`write_file` (a job's output): the file's bytes, in one PUT or, past `s3.part_bytes`, in
    a multipart upload of parts that size (3 parts here); no temp object left beside it."""
    part = 5 * 1024 * 1024
    assert isinstance(store, S3Storage) == (store.local_path("x") is None)  # the S3 case is the S3 class
    if isinstance(store, S3Storage):
        store.part_bytes = part
    data = os.urandom(1024) * (2 * part // 1024 + 300)  # 2 whole parts and a short last one
    path = tmp_path / "out.mp4"
    path.write_bytes(data)
    await store.write_file("exports/out.mp4", path)
    info = await store.stat("exports/out.mp4")
    assert info is not None and info.size == len(data)
    assert await store.read("exports/out.mp4") == data
    assert [o.key for o in await store.list_prefix("exports/", 10)] == ["exports/out.mp4"]
    if isinstance(store, S3Storage):
        assert info.etag.endswith("-3")  # S3's ETag of a 3-part upload
        uploads = await store.client.list_multipart_uploads(Bucket=store.location.bucket)
        assert not uploads.get("Uploads")  # none left open
    small = tmp_path / "small.mp4"
    small.write_bytes(b"m" * 1000)
    await store.write_file("exports/out.mp4", small)  # replaced whole
    assert await store.read("exports/out.mp4") == b"m" * 1000


async def test_records_are_listed_in_their_hidden_folder(store: Storage) -> None:
    """livetx's own records (templates, pipelines) sit in hidden folders that `list` and
    `list_prefix` skip: `list_records` lists one such folder, and only it."""
    assert await store.list_records(".jobs/templates/", 10) == []  # no folder yet
    for key in (".jobs/templates/b.json", ".jobs/templates/a.json", ".jobs/templates/sub/c.json", ".jobs/other.json"):
        await store.write(key, b"{}")
    assert [o.key for o in await store.list_records(".jobs/templates/", 10)] == [".jobs/templates/a.json", ".jobs/templates/b.json"]
    assert [o.key for o in await store.list_records(".jobs/templates/", 1)] == [".jobs/templates/a.json"]
    assert await store.list_prefix(".jobs/templates/", 10) == []  # still hidden from the others


# ---- sources read in ranges ------------------------------------------------------------


async def test_worker_reads_an_s3_source_in_ranges(s3: SeaweedS3, s3_sources: str, tmp_path: Path, sources: dict[str, Source]) -> None:
    src = sources["ts-10h"]
    async with open_storages(s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=s3_sources)) as (store, _):
        url = await store.media_url(src.path.name)
    assert url.startswith("http://127.0.0.1")
    remote, local = await asyncio.to_thread(probe, url), probe(str(src.path))
    assert remote == local  # the same facts through ranged GETs


# ---- through the app -------------------------------------------------------------------


async def test_play_through_with_s3_as_the_store(s3_app: MakeClient, s3_sources: str, sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources)
    segments = await playlist_segments(client, src.path.name)
    bodies = [await fetch(client, path) for path in segments]
    assert decode_video(open_joined(bodies)).indexes == list(range(src.frames))
    service = client.server.app[SEGMENTS]
    assert service.stats.source_bytes > 0
    # everything lands in the output store: segments, and the playlists next to them
    output = service.output
    await service.wait_idle()
    title = await client.server.app[CATALOG].title("default", src.path.name)
    rendition = title.renditions[0]
    names = [segment_key(title, rendition, i) for i in range(len(segments))]
    assert [await output.read(name) for name in names] == bodies
    stored = m3u8.loads((await output.read(media_playlist_key(title, rendition))).decode())
    assert [s.uri.rsplit("/", 1)[-1] for s in stored.segments] == [n.rsplit("/", 1)[-1] for n in names]
    master = master_playlist_key(title)
    assert master is not None and (await output.read(master)).startswith(b"#EXTM3U")


async def test_deleted_segments_are_made_again_with_identical_timing(
    s3_app: MakeClient, s3_sources: str, sources: dict[str, Source]
) -> None:
    src = sources["mkv-25-44k"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_CACHE_LOCAL_MAX_BYTES="0")
    segments = await playlist_segments(client, src.path.name)
    half = len(segments) // 2
    first = [await fetch(client, path) for path in segments[:half]]
    service = client.server.app[SEGMENTS]
    await service.wait_idle()
    title = await client.server.app[CATALOG].title("default", src.path.name)
    rendition = title.renditions[0]
    for i in range(len(segments)):  # delete every .ts object mid-way
        await service.output.delete(segment_key(title, rendition, i))
    again = [await fetch(client, path) for path in segments]  # plays on, from the start
    assert [pts_of(b) for b in again[:half]] == [pts_of(b) for b in first]
    assert decode_video(open_joined(again)).indexes == list(range(src.frames))


def pts_of(segment: bytes) -> list[int]:
    with av.open(io.BytesIO(segment), format="mpegts") as container:
        return [p.pts for p in container.demux() if p.pts is not None]


async def test_fifty_cold_requests_share_one_transcode(s3_app: MakeClient, s3_sources: str, sources: dict[str, Source]) -> None:
    src = sources["ts-2997"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false")
    segments = await playlist_segments(client, src.path.name)
    target = segments[len(segments) // 2]
    service = client.server.app[SEGMENTS]
    before = service.stats.transcodes
    bodies = await asyncio.gather(*(fetch(client, target) for _ in range(50)))
    assert service.stats.transcodes - before == 1
    assert len(set(bodies)) == 1 and len(bodies[0]) > 0


async def test_requests_spread_over_a_slow_make_and_write_back_share_one_transcode(
    s3_app: MakeClient, s3_sources: str, sources: dict[str, Source]
) -> None:
    src = sources["ts-2997"]
    client = await s3_app(
        LIVETX_STORAGE_URI=s3_sources, LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false", LIVETX_CACHE_LOCAL_MAX_BYTES="0"
    )
    segments = await playlist_segments(client, src.path.name)
    service = client.server.app[SEGMENTS]
    service.output = SlowStore(service.output, stat_delay=0.6, write_delay=1.5)
    before = service.stats.transcodes

    async def later(delay: float) -> bytes:
        await asyncio.sleep(delay)
        return await fetch(client, segments[1])

    bodies = await asyncio.gather(*(later(0.1 * i) for i in range(40)))  # over 4 s
    assert service.stats.transcodes - before == 1
    assert len(set(bodies)) == 1


async def test_s3_outage_is_served_by_the_transcoder_and_uploads_catch_up(
    s3_app: MakeClient, s3: SeaweedS3, tmp_path: Path, sources: dict[str, Source]
) -> None:
    src = sources["mp4-30"]
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(src.path, media / src.path.name)
    client = await s3_app(
        LIVETX_STORAGE_URI=str(media), LIVETX_STORAGE_OUTPUT_URI=f"s3://{BUCKET}/out-{tmp_path.name}", LIVETX_CACHE_LOOKAHEAD="false"
    )
    segments = await playlist_segments(client, src.path.name)
    service = client.server.app[SEGMENTS]
    s3.stop()
    try:
        bodies = [await fetch(client, path) for path in segments]  # S3 is down: made and served anyway
        assert decode_video(open_joined(bodies)).indexes == list(range(src.frames))
        assert service.stats.storage_errors > 0 and service.pending_writebacks > 0
    finally:
        s3.start()
    await service.wait_idle(timeout=60)  # the uploads catch up after S3 came back
    assert service.pending_writebacks == 0 and service.stats.writeback_failures == 0
    title = await client.server.app[CATALOG].title("default", src.path.name)
    rendition = title.renditions[0]
    stored = [await service.output.read(segment_key(title, rendition, i)) for i in range(len(segments))]
    assert stored == bodies


def test_ffmpeg_plays_through_livetx_serve_on_s3(s3: SeaweedS3, s3_sources: str, tmp_path: Path, sources: dict[str, Source]) -> None:
    """The real `livetx serve --storage s3://...`, played end to end by FFmpeg's HLS demuxer."""
    src = sources["mkv-25-44k"]
    with launch_server(tmp_path, Path("unused"), LIVETX_STORAGE_URI=s3_sources, **s3.env) as server:
        url = server.cli("url", src.path.name, "--base-url", server.base_url)
        with av.open(url, options={"protocol_whitelist": "http,tcp"}) as container:
            video = decode_video(container)
        with av.open(url, options={"protocol_whitelist": "http,tcp"}) as container:
            audio = decode_audio(container)
    assert video.indexes == list(range(src.frames))
    report = check_tone(audio, src.spec.tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05, report


@pytest.mark.parametrize("tier_bytes", ["0", "100000000"], ids=["no-local-tier", "local-tier"])
async def test_range_and_head_on_fresh_and_stored_segments(
    s3_app: MakeClient, s3_sources: str, sources: dict[str, Source], tier_bytes: str
) -> None:
    src = sources["mp4-30"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_CACHE_LOCAL_MAX_BYTES=tier_bytes, LIVETX_CACHE_LOOKAHEAD="false")
    path = (await playlist_segments(client, src.path.name))[-1]
    service = client.server.app[SEGMENTS]
    whole = await fetch(client, path)  # made now (or by pre-transcode)
    await service.wait_idle()
    if service.tier is not None:
        service.tier._index.clear()  # forget the local copy: the next answers come from S3
    for _ in range(2):
        part = await client.get(path, headers={**CDN_HEADERS, "Range": "bytes=188-375"})
        assert part.status == 206 and await part.read() == whole[188:376]
        assert part.headers["Content-Range"] == f"bytes 188-375/{len(whole)}"
        tail = await client.get(path, headers={**CDN_HEADERS, "Range": "bytes=-188"})
        assert tail.status == 206 and await tail.read() == whole[-188:]
        beyond = await client.get(path, headers={**CDN_HEADERS, "Range": f"bytes={len(whole) + 10}-"})
        assert beyond.status == 416
        head = await client.head(path, headers=CDN_HEADERS)
        assert head.status == 200 and int(head.headers["Content-Length"]) == len(whole)
