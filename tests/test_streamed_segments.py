"""Streamed segments over HTTP: a cold segment's bytes reach the client while it is made (the
real app in-process on loopback, real worker processes), every reader of one flight gets the
same bytes from the start, a making that breaks off cuts the connection, and HEAD and Range
wait for the whole. The buffer's own rules are tested alone in test_live_segments.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.cache.seal import is_sealed
from livetx.media.boxes import top_level
from livetx.media.sample import SampleSpec, write_sample
from livetx.web.keys import POOL, SEGMENTS
from tests.conftest import app_settings

CDN = "c" * 40
PULL = {"X-Livetx-Origin-Auth": CDN}
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
# long enough that a segment takes a while to make after its first bytes: 10 s windows at 640x360
LONG = SampleSpec(seconds=16.0, width=640, height=360, gop=60)
QUIET = {"LIVETX_PROFILES_DEFAULT_INITD": "0", "LIVETX_PROFILES_LADDER_INITD": "0", "LIVETX_CACHE_LOOKAHEAD": "false"}


@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("streamed") / "long.mp4"
    write_sample(path, LONG)
    return path


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, long_source: Path) -> MakeClient:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    shutil.copy(long_source, media / "a.mp4")

    async def make(**env: str) -> TestClient[Any, Any]:
        settings = app_settings(
            **{"LIVETX_STORAGE_URI": str(media), "LIVETX_CDN_ORIGIN_SECRET": CDN, "LIVETX_TRANSCODE_WORKERS": "1", **QUIET, **env}
        )
        return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]

    return make


async def long_segment(client: TestClient[Any, Any], profile: str = "default", key: str = "a.mp4") -> str:
    """The URL of the title's first full-length (10 s or 6 s) segment, in the first variant."""
    base = f"/hls/{profile}/{key}/"
    master = m3u8.loads(await (await client.get(base + "master.m3u8", headers=PULL)).text())
    media = m3u8.loads(await (await client.get(base + master.playlists[0].uri, headers=PULL)).text())
    longest = max(media.segments, key=lambda s: s.duration)
    return base + longest.uri


@pytest.mark.parametrize("profile", ["default", "ladder"])
async def test_a_cold_segment_comes_while_it_is_made_and_equals_the_one_kept(make_client: MakeClient, profile: str) -> None:
    client = await make_client()
    service = client.app[SEGMENTS]
    url = await long_segment(client, profile)
    response = await client.get(url, headers=PULL)
    assert response.status == 200
    assert response.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in response.headers
    assert response.headers["X-Request-Id"] and response.headers["ETag"] and response.headers["Cache-Control"].endswith("immutable")
    first = await response.content.readany()
    assert first and len(service.live) == 1  # the client holds bytes of a segment still being made
    body = first + await response.read()
    assert len(first) < len(body) // 2
    if profile == "default":  # MPEG-TS: whole packets
        assert first[0] == 0x47 and len(first) % 188 == 0
    else:  # fMP4: whole fragments
        assert {kind for kind, _, _ in top_level(first)} <= {b"moof", b"mdat"}
    assert is_sealed(body)
    kept = await client.get(url, headers=PULL)  # now from memory or storage: whole, with its length
    assert kept.headers["Content-Length"] == str(len(body)) and await kept.read() == body
    assert (service.stats.transcodes, service.stats.streamed) == (1, 1)


async def test_a_second_client_gets_the_same_bytes_from_the_start(make_client: MakeClient) -> None:
    client = await make_client()
    service = client.app[SEGMENTS]
    url = await long_segment(client)
    one = await client.get(url, headers=PULL)
    first = await one.content.readany()
    two = await client.get(url, headers=PULL)  # joins the flight midway
    assert two.headers.get("Transfer-Encoding") == "chunked"
    assert await two.read() == first + await one.read()
    assert (service.stats.transcodes, service.stats.streamed, service.stats.joins) == (1, 2, 1)


@pytest.mark.parametrize("allowed", ["*", "https://player.example"])
async def test_a_streamed_segment_carries_the_headers_of_a_whole_one(make_client: MakeClient, allowed: str) -> None:
    """CORS and the request id are added by middlewares once the handler returns; a streamed
    answer has sent its headers by then, so without them a player on another origin (hls.js on
    a site, fetch) is refused the body."""
    client = await make_client(LIVETX_SERVER_CORS_ORIGINS=allowed)
    url = await long_segment(client)
    asked = {**PULL, "Origin": "https://player.example", "X-Request-Id": "streamed-1"}
    streamed = await client.get(url, headers=asked)
    assert streamed.headers.get("Transfer-Encoding") == "chunked"
    await streamed.read()
    whole = await client.get(url, headers={**asked, "X-Request-Id": "whole-1"})
    assert "Content-Length" in whole.headers
    for response, request_id in ((streamed, "streamed-1"), (whole, "whole-1")):
        assert response.headers["Access-Control-Allow-Origin"] == allowed
        assert "ETag" in response.headers["Access-Control-Expose-Headers"]
        assert response.headers.get("Vary") == (None if allowed == "*" else "Origin")
        assert response.headers["X-Request-Id"] == request_id


async def test_head_and_range_wait_for_the_whole_segment(make_client: MakeClient) -> None:
    client = await make_client()
    service = client.app[SEGMENTS]
    url = await long_segment(client)
    streaming = await client.get(url, headers=PULL)
    first = await streaming.content.readany()  # it is being made now
    head, ranged = await asyncio.gather(client.head(url, headers=PULL), client.get(url, headers={**PULL, "Range": "bytes=100-299"}))
    body = first + await streaming.read()
    assert head.status == 200 and head.headers["Content-Length"] == str(len(body))
    assert ranged.status == 206 and ranged.headers["Content-Range"] == f"bytes 100-299/{len(body)}"
    assert await ranged.read() == body[100:300]
    assert (service.stats.transcodes, service.stats.streamed) == (1, 3)  # all three found it being made


async def test_a_making_that_breaks_off_cuts_the_connection(make_client: MakeClient) -> None:
    """The worker killed under the segment after its first bytes went out: the job runs again on
    a fresh worker, and the client that had bytes of the first attempt gets a body cut short
    (no terminating chunk), never a short one ended cleanly. What is kept is whole."""
    client = await make_client()
    service = client.app[SEGMENTS]
    url = await long_segment(client)
    response = await client.get(url, headers=PULL)
    assert await response.content.readany()
    (pid,) = client.app[POOL].worker_pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    assert service.stats.streams_aborted == 1
    again = await client.get(url, headers=PULL)  # the retry's segment, whole
    assert again.status == 200 and is_sealed(await again.read())
    assert service.stats.transcodes == 1


async def test_with_streaming_off_a_cold_segment_comes_whole(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_TRANSCODE_STREAM="false")
    url = await long_segment(client)
    response = await client.get(url, headers=PULL)
    body = await response.read()
    assert response.headers["Content-Length"] == str(len(body)) and is_sealed(body)
    assert client.app[SEGMENTS].stats.streamed == 0
