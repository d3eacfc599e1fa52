"""fMP4 (CMAF) renditions through the real app: segments made in any order join as one pass.

A profile with an H.264, an HEVC and an AV1 rendition in fMP4 (B-frames on) is served three times,
each time from fresh storage: the init segment first and then the media segments in a
shuffled order, the media segments first and the init last, and everything at once. The
first run's output is decoded back to back through one demuxer (init + 0 + 1 + ...).

FFmpeg's mp4 demuxer (PyAV's, as ffprobe's) moves negative composition offsets up: it shows
every video PTS the encoder's reorder delay D late (D = 2 frames at x264/x265's defaults; 0
for SVT-AV1, whose reordering stays inside the AV1 stream),
while its DTS are the `tfdt` title times as written. Browsers' players apply the offsets as
written; the checks below expect FFmpeg's view and measure D, as the spike's REPORT found.
"""

from __future__ import annotations

import asyncio
import io
import random
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import pytest
from aiohttp.test_utils import TestClient, TestServer

from livetx.app import create_app
from livetx.cache.seal import is_sealed
from livetx.factories import make_signer
from livetx.urls import signed_url
from livetx.web.keys import SETTINGS
from tests.checker import check_tone, decode_audio, decode_video, open_fmp4, residual_peaks
from tests.conftest import ROOT, Source, app_settings

CLOCK = 90000
PROFILE = """
[profiles.cmaf]
t = 4000
st = 5000
initial_segments = [1000, 1000, 1500]
initd = 0

[profiles.cmaf.renditions.avc]
container = "fmp4"
s = "x180"
ab = 128000

[profiles.cmaf.renditions.hevc]
vcodec = "h265"
s = "x180"
crf = 30
ab = 128000

[profiles.cmaf.renditions.av1]
vcodec = "av1"
s = "x180"
ab = 128000
"""
RENDITIONS = ("avc", "hevc", "av1")
REORDER_DELAY = {"avc": 2, "hevc": 2, "av1": 0}  # frames: x264/x265 defaults (B-frames on); SVT-AV1 shows none
TITLE_FRAMES = 120  # t = 4 s at 30 fps: segments of 30, 30, 45 and 15 frames
ORDERS = ("init first", "init last", "all at once")


@dataclass
class Made:
    master: str
    media: dict[str, str]  # rendition -> media playlist text
    init: dict[str, bytes]
    segments: dict[str, list[bytes]]  # by index
    types: dict[str, set[str]]  # rendition -> Content-Types served


async def _serve(config: Path, media: Path, order: str, seed: int) -> Made:
    settings = app_settings(config, LIVETX_TRANSCODE_WORKERS="2", LIVETX_STORAGE_URI=str(media), LIVETX_CACHE_LOOKAHEAD="false")
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        signer = make_signer(client.server.app[SETTINGS])
        base = "/hls/cmaf/a.mp4/"
        master_url, _ = signed_url(signer, "", base + "master.m3u8", 60)
        master = await (await client.get(master_url)).text()
        made = Made(master, {}, {}, {}, {})
        uris: dict[str, tuple[str, list[str]]] = {}
        for variant in m3u8.loads(master).playlists:
            name = variant.uri.split(".m3u8")[0]
            text = await (await client.get(base + variant.uri)).text()
            playlist = m3u8.loads(text)
            made.media[name] = text
            uris[name] = (playlist.segment_map[0].uri, [s.uri for s in playlist.segments])
            made.types[name] = set()

        async def get(name: str, uri: str) -> bytes:
            response = await client.get(base + uri)
            assert response.status == 200, (uri, response.status, await response.text())
            made.types[name].add(response.headers["Content-Type"])
            return await response.read()

        rng = random.Random(seed)
        for name, (init_uri, segment_uris) in uris.items():
            order_of = list(range(len(segment_uris)))
            rng.shuffle(order_of)
            if order == "all at once":
                init, *bodies = await asyncio.gather(get(name, init_uri), *(get(name, segment_uris[i]) for i in order_of))
                made.init[name] = init
                got = dict(zip(order_of, bodies, strict=True))
            else:
                if order == "init first":
                    made.init[name] = await get(name, init_uri)
                got = {i: await get(name, segment_uris[i]) for i in order_of}
                if order == "init last":
                    made.init[name] = await get(name, init_uri)
            made.segments[name] = [got[i] for i in range(len(segment_uris))]
        return made
    finally:
        await client.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> dict[str, Made]:
    """The title made three times, from fresh storage each time, in the three ORDERS."""
    home = tmp_path_factory.mktemp("fmp4")
    config = home / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + PROFILE)
    out = {}
    for seed, order in enumerate(ORDERS, start=1):
        media = home / f"media{seed}"
        media.mkdir()
        shutil.copy(sources["mp4-30"].path, media / "a.mp4")
        out[order] = asyncio.run(_serve(config, media, order, seed))
    return out


@pytest.fixture(scope="module")
def made(runs: dict[str, Made]) -> Made:
    return runs["init first"]


def _joined(made: Made, name: str) -> av.container.InputContainer:
    return open_fmp4(made.init[name], made.segments[name])


def _windows(made: Made, name: str) -> list[tuple[int, int]]:
    """(first frame, frame count) of each segment, from the EXTINF durations (30 fps)."""
    out, first = [], 0
    for segment in m3u8.loads(made.media[name]).segments:
        count = round(Fraction(str(segment.duration)) * 30)
        out.append((first, count))
        first += count
    return out


def test_media_playlist_has_the_init_segment_and_version_6(made: Made) -> None:
    for name in RENDITIONS:
        text = made.media[name]
        lines = text.splitlines()
        assert "#EXT-X-VERSION:6" in lines
        map_line = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-MAP:"))
        assert map_line < next(i for i, line in enumerate(lines) if line.startswith("#EXTINF"))
        assert f"{name}-" in lines[map_line] and "-init.mp4?" in lines[map_line]  # signed like every segment
        assert all(s.uri.split("?")[0].endswith(".m4s") for s in m3u8.loads(text).segments)


def test_segments_are_served_as_mp4(made: Made) -> None:
    for name in RENDITIONS:
        assert made.types[name] == {"video/mp4", "video/iso.segment"}


@pytest.mark.parametrize("name", RENDITIONS)
def test_every_frame_once_in_order(made: Made, sources: dict[str, Source], name: str) -> None:
    video = decode_video(_joined(made, name))
    assert video.indexes == list(range(TITLE_FRAMES))


@pytest.mark.parametrize("name", RENDITIONS)
def test_video_times_are_title_times_shown_the_reorder_delay_late(made: Made, name: str) -> None:
    """DTS (tfdt) are title time from 0, one frame apart across every join; FFmpeg shows PTS D later."""
    with _joined(made, name) as container:
        dts = [p.dts for p in container.demux(video=0) if p.size]
    assert dts == [k * CLOCK // 30 for k in range(len(dts))]  # strictly increasing, no step at a join
    video = decode_video(_joined(made, name))
    delay = video.pts[0]
    assert delay == REORDER_DELAY[name] * CLOCK // 30
    assert video.pts == [delay + k * CLOCK // 30 for k in range(len(video.pts))]


@pytest.mark.parametrize("name", RENDITIONS)
def test_each_segment_decodes_alone_from_a_keyframe_at_its_title_time(made: Made, name: str) -> None:
    for (first, count), data in zip(_windows(made, name), made.segments[name], strict=True):
        with av.open(io.BytesIO(made.init[name] + data), format="mp4") as container:
            first_dts = next(p.dts for p in container.demux(video=0) if p.size)
        video = decode_video(av.open(io.BytesIO(made.init[name] + data), format="mp4"))
        assert first_dts == first * CLOCK // 30  # tfdt: absolute title time
        assert video.keyframes[0] and video.indexes == list(range(first, first + count))


@pytest.mark.parametrize("name", RENDITIONS)
def test_audio_joins_are_continuous_and_the_tone_unbroken(made: Made, sources: dict[str, Source], name: str) -> None:
    audio = decode_audio(_joined(made, name))
    step = 1024 * CLOCK / audio.sample_rate
    assert audio.pts[0] == 0  # audio is not shifted: title time 0
    assert max(abs(b - a - step) for a, b in zip(audio.pts, audio.pts[1:], strict=False)) <= 90  # 1 ms
    report = check_tone(audio, sources["mp4-30"].spec.tone_hz, skip_tail=3, offset=Fraction(0))
    assert report.worst_phase < 0.05, report
    assert residual_peaks(audio, sources["mp4-30"].spec.tone_hz, offset=Fraction(0))[2048:-4096].max() < 0.05


def test_init_segments_are_identical_whichever_is_made_first(runs: dict[str, Made]) -> None:
    for name in RENDITIONS:
        inits = {order: run.init[name] for order, run in runs.items()}
        assert len(set(inits.values())) == 1, name


def test_init_holds_the_sample_entries_the_codecs_attribute_names(made: Made) -> None:
    master = m3u8.loads(made.master)
    codecs = {p.uri.split(".m3u8")[0]: p.stream_info.codecs for p in master.playlists}
    avc = made.init["avc"]
    record = avc[avc.index(b"avcC") + 4 :]  # configurationVersion, profile, compatibility, level
    assert codecs["avc"] == f"avc1.{record[1]:02x}{record[2]:02x}{record[3]:02x},mp4a.40.2"
    hevc = made.init["hevc"]
    assert b"hvc1" in hevc and b"hvcC" in hevc and b"hev1" not in hevc  # what Apple's players take
    record = hevc[hevc.index(b"hvcC") + 4 :]
    level = record[12]  # general_level_idc
    assert codecs["hevc"].startswith("hvc1.1.6.L") and codecs["hevc"].split(".")[3] == f"L{level}"
    av1 = made.init["av1"]
    assert b"av01" in av1
    record = av1[av1.index(b"av1C") + 4 :]  # marker/version, profile + level, tier + depth + chroma
    profile, level, tier, high_bitdepth = record[1] >> 5, record[1] & 0x1F, record[2] >> 7, record[2] >> 6 & 1
    assert codecs["av1"] == f"av01.{profile}.{level:02d}{'HM'[tier ^ 1]}.{10 if high_bitdepth else 8:02d},mp4a.40.2"


def test_the_master_leads_with_h264_and_every_variant_is_sdr(made: Made) -> None:
    variants = m3u8.loads(made.master).playlists
    assert variants[0].stream_info.codecs.startswith("avc1.")
    assert all(v.stream_info.video_range == "SDR" for v in variants)


def test_a_segment_is_sealed_with_a_free_box_and_a_damaged_copy_is_refused(made: Made) -> None:
    data = made.segments["avc"][0]  # as served: sealed
    assert data[-87:-79] == b"\x00\x00\x00\x57free" and is_sealed(data)
    assert is_sealed(made.init["avc"])
    damaged = bytearray(data)
    damaged[100] ^= 1
    assert not is_sealed(bytes(damaged)) and not is_sealed(data[:-1]) and not is_sealed(data + b"\x00")
