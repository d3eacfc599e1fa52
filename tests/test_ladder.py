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
from livetx.hls.plan import plan_segments, video_grid
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.storage.base import ObjectInfo
from livetx.titles import Title, build_title, parse_profile
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
    spec = SampleSpec(seconds=8.0, width=640, height=360, fps=Fraction(25), gop=25)  # a keyframe every second
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
    # p1080 is dropped (no upscale: capped to 640x360, which p720 already is); the source (H.264
    # High in MP4, a keyframe every second) is copied as `original`, at its own size; the first
    # listed rendition leads, then the rest by bandwidth
    assert variants[0] == ("p720.m3u8", (640, 360), 25.0)
    assert sorted(variants[1:]) == [("original.m3u8", (640, 360), 25.0), ("p360.m3u8", (320, 180), 25.0), ("p480.m3u8", (426, 240), 25.0)]
    rest = [p.stream_info.bandwidth for p in master.playlists[1:]]
    assert rest == sorted(rest, reverse=True)
    for playlist in master.playlists:
        info = playlist.stream_info
        assert info.codecs.startswith("avc1.6400") and info.codecs.endswith(",mp4a.40.2")
        assert info.bandwidth >= info.average_bandwidth > 0


def test_upscale_allowed_keeps_the_rung(source: Source) -> None:
    profile = parse_profile("up", {"renditions": {"a": {"s": "x360"}, "b": {"s": "x1080", "sopt": 0}, "c": {"s": "x1080"}}})
    title = build_title(ObjectInfo("ladder.mp4", 1, "e"), probe(str(source.path)), profile)
    # b upscales as asked; c is capped to 640x360, which a already is, and is dropped
    assert [(r.name, r.video.width, r.video.height) for r in title.variants if r.video] == [("a", 640, 360), ("b", 1920, 1080)]


def _shipped_ladder(path: Path) -> Title:
    """The shipped `ladder` profile (scaled as the server's here) planned for the file at `path`."""
    profile = app_settings(**LADDER).profiles["ladder"]
    return build_title(ObjectInfo(path.name, path.stat().st_size, "e"), probe(str(path)), profile)


@pytest.fixture(scope="module")
def odd_keyframes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same video, a keyframe every 1.4 s (off the 2 s grid), in MP4 (a keyframe index) and in MPEG-TS (none)."""
    folder = tmp_path_factory.mktemp("odd")
    spec = SampleSpec(seconds=8.0, width=640, height=360, fps=Fraction(25), gop=35)
    for suffix in ("mp4", "ts"):
        write_sample(folder / f"odd.{suffix}", spec)
    return {suffix: folder / f"odd.{suffix}" for suffix in ("mp4", "ts")}


def test_the_shipped_ladder_copies_a_source_that_qualifies_and_cuts_every_rung_at_its_keyframes(odd_keyframes: dict[str, Path]) -> None:
    title = _shipped_ladder(odd_keyframes["mp4"])
    assert [r.name for r in title.variants] == ["p720", "p480", "p360", "original"] and title.left_out == ()
    original = title.rendition("original")
    assert original.video is not None and original.video.copies and original.container == "fmp4"
    assert title.info.video is not None and title.info.video.keyframes is not None
    keyframes = set(title.info.video.keyframes)
    windows = [[(w.start, w.stop) for w in r.windows] for r in title.variants]
    assert all(w == windows[0] for w in windows)  # one set of boundaries
    assert {start for start, _ in windows[0]} <= keyframes
    grid = video_grid(title.duration, Fraction(25))
    assert windows[0] != [(w.start, w.stop) for w in plan_segments(grid, 6000, (2000, 2000))]  # not the plain 2-2-4 s grid
    # trick play is made from the lowest transcoded H.264 rung, never from the copy
    (iframe,) = title.iframe_renditions
    lowest = title.rendition("p360").video
    assert iframe.video is not None and lowest is not None and iframe.video.codec == "h264"
    assert (iframe.video.width, iframe.video.height) == (lowest.width, lowest.height) == (320, 180)


def test_the_shipped_ladder_leaves_the_copy_out_of_a_source_without_a_keyframe_index(odd_keyframes: dict[str, Path]) -> None:
    title = _shipped_ladder(odd_keyframes["ts"])
    assert [r.name for r in title.variants] == ["p720", "p480", "p360"]
    ((name, reason),) = title.left_out
    assert name == "original" and "no keyframe index in an MPEG-TS source" in reason
    grid = video_grid(title.duration, Fraction(25))
    plain = [(w.start, w.stop) for w in plan_segments(grid, 6000, (2000, 2000))]
    assert all([(w.start, w.stop) for w in r.windows] == plain for r in title.variants)  # the usual grid


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
    # five 1 s segments and a 3 s one, cut at the source's keyframes (one a second)
    client = await make_client(LIVETX_PROFILES_LADDER_INITIAL_SEGMENTS="1000,1000,1000,1000,1000")
    master = m3u8.loads(await text(client, BASE + "master.m3u8"))
    medias = [m3u8.loads(await text(client, BASE + v.uri)) for v in master.playlists]
    assert len(medias) == 4  # p720, p480, p360 and the copy
    inits = [await body(client, BASE + m.segment_map[0].uri) for m in medias]
    count = len(medias[0].segments)
    assert count == 6 and count > len(medias)  # the first rendition comes round again
    # through the variants and round again, the copy among them: a different rendition for
    # every segment, each after its init
    played = [i % len(medias) for i in range(count)]
    mixed = [(inits[r], await body(client, BASE + medias[r].segments[i].uri)) for i, r in enumerate(played)]
    video = decode_switching(mixed, source.spec.width)
    assert video.indexes == list(range(source.frames))
    frame = 90000 // 25
    # decode times are title times (tfdt), one frame apart across every switch, each segment
    # opening on a keyframe at its window's start
    dts: list[int] = []
    shifts: list[int] = []
    for init, segment in mixed:
        with open_fmp4(init, [segment]) as container:
            packets = [p for p in container.demux(video=0) if p.size]
        assert packets[0].is_keyframe and packets[0].dts == len(dts) * frame
        dts += [p.dts for p in packets]
        # FFmpeg's mp4 demuxer shows a segment's PTS its reorder delay late (tests/test_fmp4.py):
        # at most the two frames of x264's B-frames, or of the source's for the copy
        alone = decode_video(open_fmp4(init, [segment])).pts
        shifts += [alone[0] - packets[0].dts] * len(packets)
        assert alone == [packets[0].dts + shifts[-1] + k * frame for k in range(len(packets))]
    assert dts == [k * frame for k in range(source.frames)]
    assert all(0 <= shift <= 2 * frame for shift in shifts)
    # switching shows every frame at its title time (as that segment alone does): no jump, no repeat
    assert video.pts == [k * frame + shift for k, shift in enumerate(shifts)]


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
