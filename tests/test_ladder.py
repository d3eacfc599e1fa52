"""Adaptive bitrate: a rendition ladder, the master playlist, switching between renditions.

The shipped ladder is fMP4: a rendition plays as its init segment and then its media segments,
and a switch appends the new rendition's init segment before its media segment (as hls.js does).
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile
from livetx.web.keys import CATALOG, SEGMENTS
from tests.checker import decode_switching, decode_video, open_fmp4
from tests.conftest import Source, app_settings

CDN = "c" * 40
HEADERS = {"X-Livetx-Origin-Auth": CDN}
LADDER = {
    # a small ladder on a 640x360 source, same shape as the shipped one
    "LIVETX_PROFILES_LADDER_RENDITIONS_P720_S": "x360",
    "LIVETX_PROFILES_LADDER_RENDITIONS_P1080_S": "x1080",  # above the source: capped, then dropped
    "LIVETX_PROFILES_LADDER_RENDITIONS_P480_S": "x240",
    "LIVETX_PROFILES_LADDER_RENDITIONS_P360_S": "x180",
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    spec = SampleSpec(seconds=8.0, width=640, height=360, fps=Fraction(25), gop=50)
    path = tmp_path_factory.mktemp("ladder") / "ladder.mp4"
    write_sample(path, spec)
    return Source(path, spec)


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, source: Source) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(source.path, media / "ladder.mp4")

    async def make(**env: str) -> TestClient[Any, Any]:
        settings = app_settings(
            **{
                "LIVETX_STORAGE_URI": str(media),
                "LIVETX_CDN_ORIGIN_SECRET": CDN,
                "LIVETX_TRANSCODE_WORKERS": "2",
                "LIVETX_CACHE_LOOKAHEAD": "false",
                "LIVETX_PROFILES_LADDER_INITD": "0",
                **LADDER,
                **env,
            }
        )
        return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]

    return make


async def text(client: TestClient[Any, Any], path: str) -> str:
    response = await client.get(path, headers=HEADERS)
    assert response.status == 200, await response.text()
    return await response.text()


async def body(client: TestClient[Any, Any], path: str) -> bytes:
    response = await client.get(path, headers=HEADERS)
    assert response.status == 200, await response.text()
    return await response.read()


BASE = "/hls/ladder/ladder.mp4/"


async def test_master_describes_every_variant(make_client: Callable[..., Awaitable[TestClient[Any, Any]]]) -> None:
    client = await make_client()
    master = m3u8.loads(await text(client, BASE + "master.m3u8"))
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in master.dumps()
    variants = [(p.uri, p.stream_info.resolution, p.stream_info.frame_rate) for p in master.playlists]
    # p1080 is dropped (no upscale: capped to 640x360, which p720 already is); the first listed
    # rendition leads, then the rest by bandwidth
    assert variants == [("p720.m3u8", (640, 360), 25.0), ("p480.m3u8", (426, 240), 25.0), ("p360.m3u8", (320, 180), 25.0)]
    for playlist in master.playlists:
        info = playlist.stream_info
        assert info.codecs.startswith("avc1.6400") and info.codecs.endswith(",mp4a.40.2")
        assert info.bandwidth >= info.average_bandwidth > 0


def test_upscale_allowed_keeps_the_rung(source: Source) -> None:
    profile = parse_profile("up", {"renditions": {"a": {"s": "x360"}, "b": {"s": "x1080", "sopt": 0}, "c": {"s": "x1080"}}})
    title = build_title(ObjectInfo("ladder.mp4", 1, "e"), probe(str(source.path)), profile)
    # b upscales as asked; c is capped to 640x360, which a already is, and is dropped
    assert [(r.name, r.video.width, r.video.height) for r in title.variants if r.video] == [("a", 640, 360), ("b", 1920, 1080)]


async def test_every_variant_plays_frame_exact(make_client: Callable[..., Awaitable[TestClient[Any, Any]]], source: Source) -> None:
    client = await make_client()
    master = m3u8.loads(await text(client, BASE + "master.m3u8"))
    boundaries = []
    for variant in master.playlists:
        media = m3u8.loads(await text(client, BASE + variant.uri))
        boundaries.append([s.duration for s in media.segments])
        init = await body(client, BASE + media.segment_map[0].uri)
        segments = [await body(client, BASE + s.uri) for s in media.segments]
        assert decode_video(open_fmp4(init, segments), source.spec.width).indexes == list(range(source.frames)), variant.uri
    assert all(b == boundaries[0] for b in boundaries)  # identical boundaries: switching lines up


async def test_switching_renditions_every_segment_shows_no_jump(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]], source: Source
) -> None:
    client = await make_client(LIVETX_PROFILES_LADDER_INITIAL_SEGMENTS="2000,2000,2000")  # four 2 s segments
    master = m3u8.loads(await text(client, BASE + "master.m3u8"))
    medias = [m3u8.loads(await text(client, BASE + v.uri)) for v in master.playlists]
    inits = [await body(client, BASE + m.segment_map[0].uri) for m in medias]
    count = len(medias[0].segments)
    assert count > len(medias)  # the first rendition comes round again
    # down the ladder and back up: a different rendition for every segment, each after its init
    mixed = [(inits[i % len(medias)], await body(client, BASE + medias[i % len(medias)].segments[i].uri)) for i in range(count)]
    video = decode_switching(mixed, source.spec.width)
    assert video.indexes == list(range(source.frames))
    steps = {b - a for a, b in zip(video.pts, video.pts[1:], strict=False)}
    assert steps == {90000 // 25}  # continuous timestamps (90 kHz) across every switch


async def test_bandwidth_is_measured_once_segments_exist(make_client: Callable[..., Awaitable[TestClient[Any, Any]]]) -> None:
    client = await make_client()
    before = {p.uri: p.stream_info for p in m3u8.loads(await text(client, BASE + "master.m3u8")).playlists}
    media = m3u8.loads(await text(client, BASE + "p360.m3u8"))
    sizes = [len(await body(client, BASE + s.uri)) for s in media.segments]
    after = {p.uri: p.stream_info for p in m3u8.loads(await text(client, BASE + "master.m3u8")).playlists}
    total = sum(s.duration for s in media.segments)
    expected_average = 8 * sum(sizes) / total
    assert after["p360.m3u8"].average_bandwidth == pytest.approx(expected_average, rel=0.01)
    peak = max(8 * size / s.duration for size, s in zip(sizes, media.segments, strict=True))
    assert after["p360.m3u8"].bandwidth == pytest.approx(peak, rel=0.01)  # every segment measured
    assert after["p480.m3u8"].bandwidth == before["p480.m3u8"].bandwidth  # not measured yet: estimate
    service = client.server.app[SEGMENTS]
    title = await client.server.app[CATALOG].title("ladder", "ladder.mp4")
    assert service.bandwidth(title.rendition("p360"))[1] == after["p360.m3u8"].average_bandwidth
