"""Colour on the real server, measured: a colour chart made into sources of every kind a user
uploads (tests/colour_checks.py: HLG and PQ HDR10 HEVC, BT.601 SD, full range, plain BT.709,
BT.2020 SDR, and a phone's rotated VFR HLG MOV), played through livetx, decoded as a player
decodes (from the output's tags, with the test's own matrix maths), and compared patch by patch
with what it should show: mean ΔE2000 <= 3, worst patch <= 6. For an HDR source the reference is
the chart through the BT.2390 tone curve, computed by the test's own code.

Also: segments made in any order join without a brightness step; the HDR renditions keep the
source's signal, tags and metadata (read back by ffprobe); hls.js and Shaka play the SDR
renditions of an HDR phone video in Chromium without an error.
"""

from __future__ import annotations

import io
import itertools
import json
import random
import shutil
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import av
import m3u8
import numpy as np
import pytest
from PIL import Image

from tests import colour_checks as cc
from tests.conftest import Server
from tests.player_pages import chromium, play_through
from tests.support import get_url

MAKERS = {
    "hlg": lambda p: cc.make_hlg(p / "hlg.mp4"),
    "pq": lambda p: cc.make_pq(p / "pq.mp4"),
    "bt601": lambda p: cc.make_bt601(p / "bt601.mp4"),
    "full-range": lambda p: cc.make_full_range(p / "full.mp4"),
    "bt709": lambda p: cc.make_bt709(p / "bt709.mp4"),
    "bt2020-sdr": lambda p: cc.make_bt2020_sdr(p / "bt2020sdr.mp4"),
    "phone": lambda p: cc.make_phone(p / "phone.mov"),
}
FRAME = 12  # the frame of segment 0 measured (0.5 s in: past the encoder's first frames)
PLAYBACK_RATE = 2
FFPROBE = shutil.which("ffprobe")


@dataclass(frozen=True)
class Uploaded:
    source: cc.ChartSource
    key: str  # in the server's store


@pytest.fixture(scope="module")
def uploaded(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Uploaded]:
    """Every chart source, made once and put in the server's store under colour/."""
    cc.need_ffmpeg()
    made = tmp_path_factory.mktemp("colour")
    (server.media / "colour").mkdir(exist_ok=True)
    out = {}
    for name, make in MAKERS.items():
        source = make(made)
        shutil.copy(source.path, server.media / "colour" / source.path.name)
        out[name] = Uploaded(source, f"colour/{source.path.name}")
    return out


def _get(url: str) -> bytes:
    status, _, body = get_url(url)
    assert status == 200, (url, status, body[:300])
    return body


def _master(server: Server, key: str, profile: str = "default") -> tuple[str, m3u8.M3U8]:
    url = server.cli("url", key, "--profile", profile, "--base-url", server.base_url)
    return url, m3u8.loads(_get(url).decode(), uri=url)


def _media(master_url: str, variant: Any) -> tuple[str, m3u8.M3U8]:
    url = urljoin(master_url, variant.uri)
    return url, m3u8.loads(_get(url).decode(), uri=url)


def _segment(media_url: str, media: m3u8.M3U8, index: int) -> bytes:
    """Segment `index` of a media playlist, with its init segment in front (fMP4)."""
    init = _get(urljoin(media_url, media.segment_map[0].uri)) if media.segment_map else b""
    return init + _get(urljoin(media_url, media.segments[index].uri))


def _sdr_segment(server: Server, upload: Uploaded, index: int = 0) -> bytes:
    url, master = _master(server, upload.key)
    media_url, media = _media(url, master.playlists[0])
    return _segment(media_url, media, index)


# ---- SDR renditions: measured colours -------------------------------------------------------


@pytest.mark.parametrize("name", list(MAKERS))
def test_sdr_rendition_shows_the_charts_colours(server: Server, uploaded: dict[str, Uploaded], name: str) -> None:
    upload = uploaded[name]
    frame = cc.decode_as_player(_sdr_segment(server, upload), FRAME)
    # tagged BT.709, limited range, whatever the source was
    assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range) == (1, 1, 1, 1)
    assert frame.bits == 8
    source = upload.source
    rects = source.display_rects or source.rects  # livetx turns a rotated source upright
    assert frame.codes.shape[1::-1] == source.display_size
    delta_e = cc.delta_e(source.ref_codes, cc.patch_codes(frame.codes, rects))
    print(f"{name}: mean ΔE2000 {delta_e.mean():.2f}, worst {delta_e.max():.2f} (patch {int(delta_e.argmax())})")
    assert delta_e.mean() <= 3 and delta_e.max() <= 6, np.round(delta_e, 2)


def test_an_untreated_hlg_source_would_fail_the_chart(uploaded: dict[str, Uploaded]) -> None:
    """The measure can fail: the HLG source's own code values, shown as if they were SDR (what
    livetx did before colour handling), are far from the chart."""
    source = uploaded["hlg"].source
    frame = cc.decode_as_player(source.path, FRAME)
    delta_e = cc.delta_e(source.ref_codes, cc.patch_codes(frame.codes, source.rects))
    assert delta_e.mean() > 6


# ---- joins --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_hlg(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 7 s HLG source: the default profile cuts it at 2, 4 and 6 s."""
    cc.need_ffmpeg()
    path = tmp_path_factory.mktemp("colour-long") / "hlg-long.mp4"
    cc.make_source("hlg", path, duration=7.0)
    (server.media / "colour").mkdir(exist_ok=True)
    shutil.copy(path, server.media / "colour" / path.name)
    return f"colour/{path.name}"


def _lumas(data: bytes) -> list[float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return [float(f.to_ndarray()[: f.height].mean()) for f in container.decode(stream)]


def test_segments_made_in_any_order_join_without_a_brightness_step(server: Server, long_hlg: str) -> None:
    url, master = _master(server, long_hlg)
    media_url, media = _media(url, master.playlists[0])
    order = list(range(len(media.segments)))
    assert len(order) >= 3
    random.Random(5).shuffle(order)
    made = {index: _segment(media_url, media, index) for index in order}  # each made cold, in this order
    lumas = [_lumas(made[index]) for index in range(len(order))]
    within = max(abs(a - b) for seg in lumas for a, b in itertools.pairwise(seg))
    joins = [abs(lumas[n][-1] - lumas[n + 1][0]) for n in range(len(lumas) - 1)]
    print(f"mean luma steps: at the joins {np.round(joins, 3)}, largest within a segment {within:.3f}")
    assert max(joins) <= within + 0.25


# ---- HDR renditions -----------------------------------------------------------------------


@dataclass(frozen=True)
class HdrRendition:
    variant: Any
    data: bytes  # init + segment 0


def _name(variant: Any) -> str:
    """A variant's rendition name, from its URI."""
    return str(variant.uri).split("?")[0].rsplit("/", 1)[-1].removesuffix(".m3u8")


def _hdr_rendition(server: Server, upload: Uploaded) -> HdrRendition:
    """The ladder's `hdr` rung (HEVC Main 10, re-encoded). The source's copy (`original`: an HLG
    or PQ HEVC in MP4 qualifies) is HDR too, the only other HDR variant."""
    url, master = _master(server, upload.key, "ladder")
    hdr = {_name(v): v for v in master.playlists if v.stream_info.video_range not in (None, "SDR")}
    assert sorted(hdr) == ["hdr", "original"], [(_name(v), v.stream_info.video_range) for v in master.playlists]
    media_url, media = _media(url, hdr["hdr"])
    return HdrRendition(hdr["hdr"], _segment(media_url, media, 0))


@pytest.fixture(scope="module")
def hdr_renditions(server: Server, uploaded: dict[str, Uploaded]) -> dict[str, HdrRendition]:
    return {name: _hdr_rendition(server, uploaded[name]) for name in ("hlg", "pq")}


@pytest.mark.parametrize(("name", "video_range"), [("hlg", "HLG"), ("pq", "PQ")])
def test_the_copy_of_an_hdr_source_is_listed_as_hdr(server: Server, uploaded: dict[str, Uploaded], name: str, video_range: str) -> None:
    """The copy carries the source's own signal, so the master says its range (players on an SDR
    screen leave it out, as they leave out `hdr`), and CODECS says HEVC Main 10 at the source's level."""
    _, master = _master(server, uploaded[name].key, "ladder")
    (original,) = [v for v in master.playlists if _name(v) == "original"]
    assert original.stream_info.video_range == video_range
    assert original.stream_info.codecs.startswith("hvc1.2.4.L") and original.stream_info.codecs.endswith(",mp4a.40.2")
    assert original.stream_info.resolution == uploaded[name].source.display_size
    assert _name(master.playlists[0]) != "original" and master.playlists[0].stream_info.video_range == "SDR"  # players start on SDR


@pytest.mark.parametrize(("name", "video_range", "transfer"), [("hlg", "HLG", 18), ("pq", "PQ", 16)])
def test_the_hdr_rendition_keeps_the_signal_and_says_so(
    hdr_renditions: dict[str, HdrRendition], uploaded: dict[str, Uploaded], name: str, video_range: str, transfer: int
) -> None:
    rendition = hdr_renditions[name]
    info = rendition.variant.stream_info
    assert info.video_range == video_range
    assert info.codecs.startswith("hvc1.2.4.")  # HEVC Main 10, tagged hvc1
    frame = cc.decode_as_player(rendition.data, FRAME, raw=True)
    assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range, frame.bits) == (9, transfer, 9, 1, 10)
    # the signal is the source's: undone by the test's own inverse, it is the chart again
    source = uploaded[name].source
    shown = cc.decode_signal(cc.patch_codes(frame.codes, source.rects) / 255, source.kind)
    assert cc.delta_e(np.array(cc.PATCHES, dtype=np.float64), shown).mean() <= 1.5


def _ffprobe_side_data(data: bytes, tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "hdr.mp4"
    path.write_bytes(data)
    out = subprocess.run(
        [
            FFPROBE or "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
    )
    return list(json.loads(out.stdout)["frames"][0].get("side_data_list", []))


@pytest.mark.skipif(FFPROBE is None, reason="no ffprobe (apt-get install ffmpeg; .ci/run does)")
def test_the_pq_rendition_carries_the_sources_mastering_display_and_light_level(
    hdr_renditions: dict[str, HdrRendition], tmp_path: Path
) -> None:
    """FFmpeg reads the PQ rendition's SEI: HDR10's mastering display and content light level,
    equal to the source's (tests/colour_checks.py HEVC_PQ)."""
    side = {entry["side_data_type"]: entry for entry in _ffprobe_side_data(hdr_renditions["pq"].data, tmp_path)}
    mastering = side["Mastering display metadata"]
    as_written = {"green_x": 13250, "green_y": 34500, "blue_x": 7500, "blue_y": 3000, "red_x": 34000, "red_y": 16000}
    for field, value in as_written.items():
        assert Fraction(mastering[field]) == Fraction(value, 50000), field
    assert (Fraction(mastering["white_point_x"]), Fraction(mastering["white_point_y"])) == (Fraction(15635, 50000), Fraction(16450, 50000))
    assert Fraction(mastering["max_luminance"]) == 1000 and Fraction(mastering["min_luminance"]) == Fraction(1, 10000)
    light = side["Content light level metadata"]
    assert (light["max_content"], light["max_average"]) == (1000, 400)


def test_an_sdr_source_gets_no_hdr_rendition(server: Server, uploaded: dict[str, Uploaded]) -> None:
    _, master = _master(server, uploaded["bt709"].key, "ladder")
    assert {v.stream_info.video_range for v in master.playlists} == {"SDR"}  # its copy (H.264 High in MP4) too
    _, hdr_master = _master(server, uploaded["hlg"].key, "ladder")
    assert sorted(map(_name, hdr_master.playlists)) == sorted([*map(_name, master.playlists), "hdr"])
    assert "original" in map(_name, master.playlists)


def test_the_dash_manifest_leaves_the_hdr_rendition_out(server: Server, uploaded: dict[str, Uploaded]) -> None:
    url, master = _master(server, uploaded["hlg"].key, "ladder")
    path = url.split("?")[0].split(server.base_url, 1)[1].removesuffix("master.m3u8") + "manifest.mpd"
    mpd = _get(server.cli("sign", path, "--base-url", server.base_url)).decode()
    # both HDR variants out, the `hdr` rung and the source's copy: the MPD holds the SDR rungs alone
    sdr = sorted(_name(v) for v in master.playlists if v.stream_info.video_range == "SDR")
    ids = sorted(rep.get("id", "") for rep in ET.fromstring(mpd).iter("{urn:mpeg:dash:schema:mpd:2011}Representation"))
    assert ids == sdr and len(sdr) == len(master.playlists) - 2 and "hvc1.2.4" not in mpd


# ---- the phone's video: rotated, VFR, HLG in MOV ----------------------------------------------


def test_the_phone_video_is_upright_on_a_regular_frame_grid(server: Server, uploaded: dict[str, Uploaded]) -> None:
    upload = uploaded["phone"]
    times = cc.frame_times(upload.source.path)
    assert len({b - a for a, b in itertools.pairwise(times)}) > 1  # the source is VFR
    with av.open(io.BytesIO(_sdr_segment(server, upload))) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert (frames[0].width, frames[0].height) == upload.source.display_size == (180, 320)
    steps = {b.pts - a.pts for a, b in itertools.pairwise(frames)}
    assert len(steps) == 1  # constant frame rate out


def test_the_phone_videos_ladder_leaves_the_copy_out_because_it_is_turned(server: Server, uploaded: dict[str, Uploaded]) -> None:
    """A copy cannot turn its frames: the phone's ladder is its transcoded rungs alone, and the title API says why."""
    request = urllib.request.Request(
        f"{server.base_url}/api/v1/titles/ladder/{uploaded['phone'].key}", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        state = json.loads(response.read())
    (left_out,) = state["left_out"]  # its display rotation, counter-clockwise
    assert left_out["name"] == "original" and "turned by 270 degrees" in left_out["reason"], left_out
    assert "original" not in [r["name"] for r in state["renditions"]]


@pytest.fixture(scope="module")
def phone_ladder(server: Server, uploaded: dict[str, Uploaded]) -> str:
    """The phone video's ladder master, every SDR rendition's segments made before the players
    start (a cold title stalls them at PLAYBACK_RATE on a busy 2-core machine)."""
    url, master = _master(server, uploaded["phone"].key, "ladder")
    for variant in master.playlists:
        if variant.stream_info.video_range == "SDR":
            media_url, media = _media(url, variant)
            for index in range(len(media.segments)):
                _segment(media_url, media, index)
    return url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.mark.parametrize("player", ["hls.js", "shaka"])
def test_players_play_the_sdr_renditions_of_an_hdr_phone_video(server: Server, browser: Any, phone_ladder: str, player: str) -> None:
    played = play_through(browser, server.base_url, player, phone_ladder, PLAYBACK_RATE)
    assert not played["engine"].startswith("native"), played["engine"]
    assert played["errors"] == []
    width, height = played["size"]
    assert height > width  # portrait: upright


def test_the_title_api_says_what_the_source_is_and_each_renditions_range(server: Server, uploaded: dict[str, Uploaded]) -> None:
    request = urllib.request.Request(
        f"{server.base_url}/api/v1/titles/ladder/{uploaded['pq'].key}", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        state = json.loads(response.read())
    assert state["colour"] == {
        "Primaries": "bt2020",
        "Transfer": "smpte2084",
        "Matrix": "bt2020nc",
        "Range": "limited",
        "DynamicRange": "PQ",
        "DolbyVision": None,
    }
    ranges = {r["name"]: r["video_range"] for r in state["renditions"]}
    assert ranges.pop("hdr") == ranges.pop("original") == "PQ"  # the HDR rung, and the source's copy
    assert set(ranges.values()) == {"SDR"} and "left_out" not in state  # nothing of the profile left out


def test_a_snapshot_of_an_hdr_source_shows_the_charts_colours(server: Server, uploaded: dict[str, Uploaded]) -> None:
    """Pictures are converted as an SDR rendition is: a PNG snapshot of the HLG source is the
    tone-mapped chart (a lossless picture: the same bound as the video)."""
    source = uploaded["hlg"].source
    url = server.cli("sign", f"/hls/default/{uploaded['hlg'].key}/snapshot.png", "--base-url", server.base_url)
    with Image.open(io.BytesIO(_get(url + "&t=500"))) as image:
        codes = np.asarray(image.convert("RGB"), dtype=np.float64)
    delta_e = cc.delta_e(source.ref_codes, cc.patch_codes(codes, source.rects))
    assert delta_e.mean() <= 3 and delta_e.max() <= 6, np.round(delta_e, 2)
