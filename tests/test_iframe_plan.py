"""The I-frame rendition as planned and rendered: pure, no server."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from itertools import pairwise
from typing import Any

import m3u8
import pytest

from livetx.hls.model import IFrameStream, MasterPlaylist, VariantStream
from livetx.hls.render import render_master
from livetx.media.model import AudioInfo, MediaInfo, VideoInfo
from livetx.playlists import master_text, media_text
from livetx.storage.base import ObjectInfo
from livetx.titles import IFRAME_RENDITION, Title, build_title, parse_profile

SOURCE = MediaInfo(
    "mp4",
    Fraction(61, 2),
    Fraction(0),
    VideoInfo(0, "h264", 1920, 1080, Fraction(30000, 1001), "yuv420p", Fraction(0)),
    AudioInfo(1, "aac", 48000, 2, Fraction(0)),
)
OBJECT = ObjectInfo("a.mp4", 1, "e")


def title_of(table: dict[str, Any], info: MediaInfo = SOURCE) -> Title:
    return build_title(OBJECT, info, parse_profile("p", table))


def test_one_entry_a_second_covering_the_title() -> None:
    title = title_of({"renditions": {"hd": {"s": "x720"}, "sd": {"s": "x480"}}})
    [iframe] = title.iframe_renditions
    assert iframe.name == IFRAME_RENDITION and iframe not in title.variants
    assert iframe.audio is None and iframe.container == "ts" and iframe.initd == 0
    # 30000/1001 fps: 30 frames an entry (1.001 s), the last shorter; no gap, no overlap
    windows = iframe.windows
    assert [w.end - w.first for w in windows[:-1]] == [30] * (len(windows) - 1)
    assert all(a.end == b.first for a, b in pairwise(windows))
    assert windows[0].first == 0 and windows[-1].stop == title.variants[0].windows[-1].stop


def test_its_job_is_one_frame_without_audio() -> None:
    title = title_of({})
    [iframe] = title.iframe_renditions
    job = title.job(iframe, 3, "file:///a.mp4")
    assert job.audio is None and job.audio_stream is None and job.video is not None
    assert job.start == iframe.windows[3].start and job.stop - job.start == 1 / job.video.fps


@pytest.mark.parametrize(
    ("renditions", "codec", "size"),
    [
        pytest.param({"hd": {"s": "x1080"}, "sd": {"s": "x480"}}, "h264", (640, 360), id="lowest-h264-scaled"),
        pytest.param({"tiny": {"s": "x240"}}, "h264", (426, 240), id="below-the-limit-kept"),
        pytest.param({"hevc": {"vcodec": "h265", "s": "x240"}, "avc": {"s": "x1080"}}, "h264", (640, 360), id="h264-before-hevc"),
        pytest.param({"hevc": {"vcodec": "h265", "s": "x720", "pixfmt": "yuv420p10le"}}, "h265", (640, 360), id="hevc-only"),
    ],
)
def test_its_base_is_the_lowest_h264_rendition(renditions: dict[str, Any], codec: str, size: tuple[int, int]) -> None:
    title = title_of({"renditions": renditions})
    [iframe] = title.iframe_renditions
    assert iframe.video is not None and iframe.video.codec == codec and (iframe.video.width, iframe.video.height) == size
    if codec == "h265":  # its pixel format and container follow the base rendition's
        assert iframe.video.pix_fmt == "yuv420p10le" and iframe.container == "fmp4" and iframe.codecs.startswith("hvc1.2.4")


@pytest.mark.parametrize(
    "table",
    [
        pytest.param({"iframes": 0}, id="off"),
        pytest.param({"renditions": {"av1": {"vcodec": "av1"}}}, id="av1-only"),
    ],
)
def test_no_iframe_rendition(table: dict[str, Any]) -> None:
    assert title_of(table).iframe_renditions == ()


def test_no_iframe_rendition_without_video() -> None:
    audio = MediaInfo("mp4", Fraction(30), Fraction(0), None, SOURCE.audio)
    assert title_of({}, audio).iframe_renditions == ()


def test_iframe_height_sets_its_size() -> None:
    [iframe] = title_of({"iframe_height": 144}).iframe_renditions
    assert iframe.video is not None and (iframe.video.width, iframe.video.height) == (256, 144)


def test_its_spec_id_is_its_own() -> None:
    title = title_of({"renditions": {"sd": {"s": "x360"}}})
    [iframe] = title.iframe_renditions
    assert iframe.spec_id not in {r.spec_id for r in title.variants}
    assert title_of({"renditions": {"sd": {"s": "x360"}}, "iframe_height": 180}).iframe_renditions[0].spec_id != iframe.spec_id


@pytest.mark.parametrize(("container", "version"), [("ts", 4), ("fmp4", 5)])
def test_media_playlist_is_iframes_only(container: str, version: int) -> None:
    title = title_of({"renditions": {"main": {"container": container}}})
    [iframe] = title.iframe_renditions
    parsed = m3u8.loads(media_text(iframe))
    assert parsed.is_i_frames_only and parsed.version == version and parsed.target_duration == 1
    init = f"iframe-{iframe.spec_id}-init.mp4" if container == "fmp4" else None
    assert (parsed.segment_map[0].uri if parsed.segment_map else None) == init
    assert sum(s.duration for s in parsed.segments) == pytest.approx(float(sum(w.duration for w in iframe.windows)), abs=1e-4)


def test_master_lists_it_after_the_variants() -> None:
    title = title_of({"renditions": {"hd": {"s": "x720"}, "sd": {"s": "x480"}}})
    parsed = m3u8.loads(master_text(title))
    assert [p.uri for p in parsed.playlists] == ["hd.m3u8", "sd.m3u8"]
    [stream] = parsed.iframe_playlists
    info = stream.iframe_stream_info
    assert stream.uri == "iframe.m3u8" and info.resolution == (640, 360) and info.codecs == "avc1.64001e" and info.bandwidth > 0


def test_iframe_stream_round_trips() -> None:
    variant = VariantStream("main.m3u8", 3_000_000, None, "avc1.64001f", (1280, 720), Fraction(30))
    stream = IFrameStream("iframe.m3u8?sig=s", 200_000, 100_000, "avc1.64001e", (640, 360), "SDR")
    text = render_master(MasterPlaylist((variant,), iframe_streams=(stream,)))
    assert text.index("#EXT-X-STREAM-INF") < text.index("#EXT-X-I-FRAME-STREAM-INF")
    info = m3u8.loads(text).iframe_playlists[0].iframe_stream_info
    assert (info.bandwidth, info.average_bandwidth, info.codecs, info.resolution) == (200_000, 100_000, "avc1.64001e", (640, 360))


def test_no_iframe_rendition_for_encrypted_or_api_made_titles() -> None:
    """Clear I-frames would show what the encrypted renditions hide; an API-made title's jobs
    make every rendition's segments."""
    encrypted = build_title(OBJECT, SOURCE, parse_profile("p", {"encryption": "aes-128"}), master_kid="k1")
    assert encrypted.iframe_renditions == ()
    api = replace(parse_profile("p", {}), source_key=OBJECT.key)
    assert build_title(OBJECT, SOURCE, api).iframe_renditions == ()
