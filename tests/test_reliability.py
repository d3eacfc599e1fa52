"""Reliability: damaged cached copies are never served, overload is answered, not queued forever.

Against the real app (aiohttp's test server), the real SeaweedFS S3 server and a local store;
corruption is made by overwriting the stored objects and files themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

from livetx.cache.seal import TS_PACKET, is_sealed, seal
from livetx.errors import SourceChanged, StorageUnavailable
from livetx.layout import segment_key
from livetx.media.transcode import transcode_segment
from livetx.storage.base import file_version
from livetx.storage.breaker import CircuitBreaker
from livetx.subtitles.cues import Cue
from livetx.subtitles.webvtt import render_segment
from livetx.web.keys import CATALOG, POOL, SEGMENTS
from tests.checker import decode_video, open_joined
from tests.conftest import MakeClient, Source
from tests.s3server import BUCKET, SeaweedS3
from tests.support import CDN_HEADERS, Clock, SlowStore, fetch, job_for, playlist_segments, wait_for

QUIET = {
    "LIVETX_CACHE_LOOKAHEAD": "false",
    "LIVETX_PROFILES_DEFAULT_INITD": "0",
    "LIVETX_JOBS_RUN": "false",
}  # no background transcodes, and no job runner looking in storage
# the stored copies (and write-backs) are what these tests damage or drop: no hot copy in front of them
STORED = {"LIVETX_CACHE_HOT_MAX_BYTES": "0"}


# ---- the seal ---------------------------------------------------------------------------


def damaged(data: bytes) -> dict[str, bytes]:
    """Ways a stored copy goes wrong."""
    middle = len(data) // 2
    return {
        "cut at a packet boundary": data[: (len(data) // TS_PACKET // 2) * TS_PACKET],
        "cut mid-packet": data[:middle],
        "seal cut off": data[:-TS_PACKET],
        "one bit flipped": data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :],
        "a packet repeated": data[:TS_PACKET] + data,
        "zero bytes": b"",
        "sealed twice": seal(data),
    }


def test_seal_accepts_only_the_exact_bytes(sources: dict[str, Source]) -> None:
    body = sources["ts-2997"].path.read_bytes()[: 200 * TS_PACKET]
    sealed = seal(body)
    assert is_sealed(sealed) and len(sealed) == len(body) + TS_PACKET
    for name, bad in damaged(sealed).items():
        if name == "sealed twice":
            assert is_sealed(bad)  # a seal over a sealed body is still a whole, unchanged object
            continue
        assert not is_sealed(bad), name
    assert not is_sealed(body)  # a copy written before seals existed


def test_decoders_skip_the_seal(sources: dict[str, Source]) -> None:
    src = sources["ts-2997"]
    plain = src.path.read_bytes()
    with av.open(io.BytesIO(seal(plain)), format="mpegts") as sealed, av.open(io.BytesIO(plain), format="mpegts") as bare:
        assert decode_video(sealed).indexes == decode_video(bare).indexes == list(range(src.frames))


def test_a_webvtt_segment_is_sealed_with_a_note_block_over_the_exact_bytes() -> None:
    """A NOTE block after a blank line: a comment to every WebVTT parser (tests/test_subtitle_reader.py
    parses sealed segments); its digest covers everything before the block."""
    body = render_segment([Cue(1000, 2500, "<i>one</i>"), Cue(2000, 4000, "two", "line:0")], "ts").encode()
    sealed = seal(body)
    assert sealed == body + b"NOTE livetx-seal-v1 " + hashlib.sha256(body).hexdigest().encode() + b"\n"  # body ends in a blank line
    assert is_sealed(sealed) and is_sealed(seal(sealed))  # sealed twice: still whole
    middle = len(sealed) // 2
    for bad in (sealed[:middle], sealed[:-1], sealed + b"\n", sealed.replace(b"two", b"tow"), sealed[:middle] + sealed[middle + 1 :], body):
        assert not is_sealed(bad)
    bare = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nno blank line after"  # any WebVTT: the blank line is added first
    assert seal(bare).startswith(bare + b"\n\nNOTE livetx-seal-v1 ") and is_sealed(seal(bare))


# ---- damaged copies in storage and in the local tier ------------------------------------


async def segment_key_of(client: Any, src: Source, index: int) -> str:
    title = await client.server.app[CATALOG].title("default", src.path.name)
    rendition = title.renditions[0]
    return segment_key(title, rendition, index)


@pytest.mark.parametrize("damage", ["cut at a packet boundary", "one bit flipped", "seal cut off", "zero bytes"])
async def test_damaged_object_in_s3_is_made_again_and_replaced(
    s3_app: MakeClient,
    s3_sources: str,
    sources: dict[str, Source],
    damage: str,
) -> None:
    src = sources["ts-2997"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_CACHE_LOCAL_MAX_BYTES="0", **QUIET, **STORED)
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    good = await fetch(client, segments[1])
    await service.wait_idle()
    key = await segment_key_of(client, src, 1)
    await service.output.write(key, damaged(good)[damage])
    transcodes = service.stats.transcodes
    again = await fetch(client, segments[1])
    assert again == good and is_sealed(again)
    assert service.stats.corrupt == 1 and service.stats.transcodes == transcodes + 1
    await service.wait_idle()
    assert await service.output.read(key) == good  # the damaged object was replaced


async def test_damaged_local_tier_file_is_replaced_from_storage(
    s3_app: MakeClient,
    s3_sources: str,
    sources: dict[str, Source],
    tmp_path: Path,
) -> None:
    src = sources["ts-2997"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, **QUIET, **STORED)
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    good = await fetch(client, segments[2])
    await service.wait_idle()
    (tier_file,) = [p for p in (tmp_path / "tier").rglob("*-2.ts")]
    tier_file.write_bytes(good[: len(good) // 2])
    transcodes = service.stats.transcodes
    assert await fetch(client, segments[2]) == good
    assert service.stats.corrupt == 1 and service.stats.transcodes == transcodes  # the S3 copy was whole
    assert hashlib.sha256(tier_file.read_bytes()).digest() == hashlib.sha256(good).digest()


async def test_damaged_file_in_a_local_store_is_made_again(
    s3_app: MakeClient,
    sources: dict[str, Source],
    tmp_path: Path,
) -> None:
    src = sources["mp4-30"]
    media = tmp_path / "media"
    media.mkdir()
    (media / src.path.name).write_bytes(src.path.read_bytes())
    client = await s3_app(LIVETX_STORAGE_URI=str(media), **QUIET, **STORED)
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    bodies = [await fetch(client, path) for path in segments]
    await service.wait_idle()
    files = sorted((media / ".livetx").rglob("*.ts"))
    assert len(files) == len(segments)
    for path in files:  # every stored segment damaged a different way
        path.write_bytes(path.read_bytes()[:-1000])
    again = [await fetch(client, path) for path in segments]
    assert again == bodies
    assert service.stats.corrupt == len(segments)
    assert decode_video(open_joined(again)).indexes == list(range(src.frames))


# ---- admission control ------------------------------------------------------------------


async def local_app(s3_app: MakeClient, src: Source, tmp_path: Path, **env: str) -> Any:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    (media / src.path.name).write_bytes(src.path.read_bytes())
    return await s3_app(LIVETX_STORAGE_URI=str(media), LIVETX_TRANSCODE_WORKERS="1", **QUIET, **env)


async def test_over_capacity_answers_503_with_retry_after_and_serves_what_is_made(
    s3_app: MakeClient, sources: dict[str, Source], tmp_path: Path
) -> None:
    src = sources["mp4-30"]
    client = await local_app(s3_app, src, tmp_path, LIVETX_TRANSCODE_MAX_QUEUE="1")
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    made = await fetch(client, segments[0])
    assert len(segments) == 4
    responses = await asyncio.gather(*(client.get(path, headers=CDN_HEADERS) for path in segments[1:]))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 200, 503]  # one on the worker, one queued, the third refused
    for refused in (r for r in responses if r.status == 503):
        body = await refused.json()
        assert body["error"]["code"] == "overloaded" and body["request_id"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert service.stats.overloaded == 1
    assert await fetch(client, segments[0]) == made  # made segments are served meanwhile
    for path in segments[1:]:  # and once the queue drains, the refused one is made
        assert is_sealed(await fetch(client, path))


async def test_a_client_that_waits_too_long_gets_503_and_the_transcode_goes_on(
    s3_app: MakeClient, sources: dict[str, Source], tmp_path: Path
) -> None:
    src = sources["mp4-30"]
    client = await local_app(s3_app, src, tmp_path, LIVETX_TRANSCODE_WAIT_TIMEOUT="0.05")
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    first = await client.get(segments[-1], headers=CDN_HEADERS)
    assert first.status == 503 and "Retry-After" in first.headers
    assert (await first.json())["error"]["code"] == "overloaded"
    # nobody waits any more, yet the segment is finished
    await wait_for(lambda: service.stats.transcodes, 60, "the abandoned transcode to finish")
    assert is_sealed(await fetch(client, segments[-1]))
    assert service.stats.transcodes == 1


async def test_a_client_that_goes_away_does_not_cancel_a_shared_transcode(
    s3_app: MakeClient, sources: dict[str, Source], tmp_path: Path
) -> None:
    src = sources["mp4-30"]
    client = await local_app(s3_app, src, tmp_path)
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    impatient = asyncio.create_task(client.get(segments[2], headers=CDN_HEADERS))
    patient = asyncio.create_task(fetch(client, segments[2]))
    pool = client.server.app[POOL]
    await wait_for(lambda: pool.stats.in_flight or service.stats.transcodes, 60, "the shared transcode to start")
    impatient.cancel()  # the connection is dropped mid-wait
    body = await patient
    assert is_sealed(body) and service.stats.transcodes == 1


async def test_write_backs_held_in_memory_are_bounded(s3_app: MakeClient, sources: dict[str, Source], tmp_path: Path) -> None:
    src = sources["mp4-30"]
    client = await local_app(s3_app, src, tmp_path, LIVETX_CACHE_MEMORY_MAX_BYTES="1", **STORED)
    service = client.server.app[SEGMENTS]
    service.output = SlowStore(service.output, stat_delay=0, write_delay=3600)  # storage that never finishes a PUT
    segments = await playlist_segments(client, src.path.name)
    bodies = [await fetch(client, path) for path in segments[:3]]
    await asyncio.sleep(0)
    assert service.pending_writebacks == 1 and service.stats.writebacks_dropped == 2
    assert len(service.writebacks.keys()) == 1  # only the newest is held
    assert await fetch(client, segments[0]) == bodies[0]  # a dropped one is made again, identically
    assert service.stats.transcodes == 4
    service.writebacks.abandon()  # PUTs that never finish: shutdown would wait 30 s for them


# ---- the S3 circuit breaker -------------------------------------------------------------


def test_breaker_opens_fails_fast_probes_and_closes() -> None:
    clock = Clock(100.0)
    breaker = CircuitBreaker("s3 test", threshold=3, open_seconds=2.0, max_open_seconds=5.0, clock=clock)
    for _ in range(3):
        breaker.before()
        breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(StorageUnavailable) as refused:
        breaker.before()
    assert refused.value.retry_after == 2
    clock.now += 2.0
    breaker.before()  # the one probe
    with pytest.raises(StorageUnavailable):
        breaker.before()  # others still fail fast while it is out
    breaker.failure()  # the probe failed: open twice as long
    clock.now += 3.9
    with pytest.raises(StorageUnavailable):
        breaker.before()
    clock.now += 0.1
    breaker.before()
    breaker.abandon()  # a cancelled probe leaves no verdict...
    breaker.before()  # ...and another may go
    breaker.failure()
    clock.now += 5.0  # capped at max_open_seconds
    breaker.before()
    breaker.success()
    assert breaker.state == "closed" and breaker.opened == 3
    breaker.before()


async def test_dead_s3_fails_fast_with_retry_after_and_recovers(
    s3_app: MakeClient, s3: SeaweedS3, s3_sources: str, sources: dict[str, Source]
) -> None:
    src = sources["ts-2997"]
    client = await s3_app(
        LIVETX_STORAGE_URI=s3_sources, LIVETX_S3_BREAKER_FAILURES="2", LIVETX_S3_BREAKER_SECONDS="1", LIVETX_S3_MAX_ATTEMPTS="1", **QUIET
    )
    master = f"/hls/default/{src.path.name}/master.m3u8"
    breaker = client.server.app[SEGMENTS].output.breaker
    breaker.clock = clock = Clock(0.0)  # the open period passes only when the test says so
    s3.stop()
    try:
        for _ in range(6):
            response = await client.get(master, headers=CDN_HEADERS)
            assert response.status == 503, await response.text()
            assert (await response.json())["error"]["code"] == "storage_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        # two failures open it; the other four never reached the network
        assert breaker.state == "open" and breaker.rejected == 4
    finally:
        s3.start()
    for _ in range(5):  # after the open period a probe goes through, and all is well again
        clock.advance(breaker.max_open_seconds)
        response = await client.get(master, headers=CDN_HEADERS)
        if response.status == 200:
            break
    assert response.status == 200, f"still {response.status} after 5 open periods with S3 back: {await response.text()}"
    segments = await playlist_segments(client, src.path.name)
    assert decode_video(open_joined([await fetch(client, path) for path in segments])).indexes == list(range(src.frames))


# ---- a full local disk ------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: room for no segment (needs root, as in CI)."""
    where = tmp_path / "full"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_full_local_disks_still_serve_whole_segments(
    s3_app: MakeClient, s3_sources: str, full_disk: Path, sources: dict[str, Source], tmp_path: Path
) -> None:
    src = sources["mp4-30"]
    # the local tier (S3 output) on the full disk
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_CACHE_LOCAL_DIR=str(full_disk / "tier"), **QUIET)
    segments = await playlist_segments(client, src.path.name)
    bodies = [await fetch(client, path) for path in segments]
    assert decode_video(open_joined(bodies)).indexes == list(range(src.frames))
    assert all(is_sealed(b) for b in bodies)
    # a local output store on the full disk: served from memory, write-backs keep failing
    media = full_disk / "media"
    client = await s3_app(LIVETX_STORAGE_URI=str(tmp_path / "src"), LIVETX_STORAGE_OUTPUT_URI=str(media), **QUIET)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / src.path.name).write_bytes(src.path.read_bytes())
    segments = await playlist_segments(client, src.path.name)
    again = [await fetch(client, path) for path in segments]
    assert again == bodies
    service = client.server.app[SEGMENTS]
    assert service.stats.storage_errors > 0 and service.pending_writebacks > 0

    def no_temp_file() -> list[Path] | None:
        files = [p for p in full_disk.rglob("*") if p.is_file()]
        return None if any(p.name.startswith(".tmp-") for p in files) else files

    # write-backs keep retrying: a temp file lives only while one is under way
    files = await wait_for(no_temp_file, 10, "a moment with no half-written file on the full disk")
    assert all(is_sealed(p.read_bytes()) for p in files if p.suffix == ".ts")  # what fitted is whole


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An S3 endpoint that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


async def test_an_s3_that_never_answers_times_out_then_fails_fast(
    s3_app: MakeClient, black_hole: str, sources: dict[str, Source], tmp_path: Path
) -> None:
    client = await s3_app(
        LIVETX_STORAGE_URI=f"s3://{BUCKET}/anything",
        LIVETX_S3_ENDPOINT_URL=black_hole,
        LIVETX_S3_READ_TIMEOUT="0.5",
        LIVETX_S3_MAX_ATTEMPTS="1",
        LIVETX_S3_BREAKER_FAILURES="2",
        LIVETX_S3_BREAKER_SECONDS="5",
        **QUIET,
    )
    breaker = client.server.app[SEGMENTS].output.breaker
    breaker.clock = Clock(0.0)  # stays open for the rest of the test, however slow the machine
    timings = []
    for i in range(5):
        began = time.monotonic()
        try:  # a bound on a hang, not a speed claim: the read timeout is 0.5 s
            response = await asyncio.wait_for(client.get(f"/hls/default/t{i}.mp4/master.m3u8", headers=CDN_HEADERS), 30)
        except TimeoutError:
            raise AssertionError(f"request {i} to an S3 that never answers got no answer in 30 s") from None
        timings.append(time.monotonic() - began)
        assert response.status == 503 and (await response.json())["error"]["code"] == "storage_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
    assert all(t > 0.4 for t in timings[:2])  # each waited for its read timeout
    assert breaker.rejected == 3  # then the breaker answered at once: none of the last three reached S3


# ---- a source replaced after its playlist was planned -----------------------------------


def test_a_job_pinned_to_an_older_local_file_makes_nothing(sources: dict[str, Source], tmp_path: Path) -> None:
    src = sources["mp4-30"]
    path = tmp_path / "a.mp4"
    path.write_bytes(src.path.read_bytes())
    job = job_for(Source(path, src.spec))
    pinned = replace(job, source_pin=file_version(path.stat()))
    assert transcode_segment(pinned).video_frames == 30  # the version it was planned from
    path.write_bytes(sources["mkv-25-44k"].path.read_bytes())  # replaced in place
    with pytest.raises(SourceChanged):
        transcode_segment(pinned)


async def test_a_source_replaced_in_s3_within_the_stat_ttl_is_never_mixed_in(
    s3_app: MakeClient, s3_sources: str, sources: dict[str, Source]
) -> None:
    src = sources["mp4-30"]
    client = await s3_app(LIVETX_STORAGE_URI=s3_sources, LIVETX_CACHE_STAT_TTL="60", LIVETX_CACHE_LOCAL_MAX_BYTES="0", **QUIET)
    service = client.server.app[SEGMENTS]
    segments = await playlist_segments(client, src.path.name)
    old_key = await segment_key_of(client, src, 1)
    await service.sources.write(src.path.name, sources["mkv-25-44k"].path.read_bytes())  # same key, other media
    response = await client.get(segments[1], headers=CDN_HEADERS)  # the catalog still holds the old version
    assert response.status == 503 and (await response.json())["error"]["code"] == "source_changed"
    assert "Retry-After" in response.headers
    assert await service.output.stat(old_key) is None  # nothing was made from the new bytes under the old name
    again = await client.get(segments[1], headers=CDN_HEADERS)  # the source was looked at again: old URL, old spec
    assert again.status == 404 and (await again.json())["error"]["code"] == "segment_not_found"
    fresh = await playlist_segments(client, src.path.name)  # the new playlist plays the new media
    bodies = [await fetch(client, path) for path in fresh]
    assert decode_video(open_joined(bodies)).indexes == list(range(sources["mkv-25-44k"].frames))
