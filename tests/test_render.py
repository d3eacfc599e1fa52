from __future__ import annotations

from fractions import Fraction

import m3u8
import pytest

from livetx.hls.model import MasterPlaylist, MediaPlaylist, MediaSegment, VariantStream
from livetx.hls.render import extinf, render_master, render_media
from livetx.media.model import AudioInfo, MediaInfo, VideoInfo
from livetx.playlists import master_text
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        pytest.param(Fraction(1001, 100), "10.01", id="ntsc-10s"),
        pytest.param(Fraction(2002, 1000), "2.002", id="ntsc-2s"),
        pytest.param(Fraction(10), "10", id="whole"),
        pytest.param(Fraction(1001, 30000), "0.033367", id="one-ntsc-frame"),
    ],
)
def test_extinf_is_exact(duration: Fraction, text: str) -> None:
    assert extinf(duration) == text


def test_media_playlist_round_trips() -> None:
    segments = tuple(MediaSegment(f"r-{i}.ts?exp=1&kid=k&sig=s", Fraction(1001, 100)) for i in range(3))
    text = render_media(MediaPlaylist(segments, target_duration=10))
    parsed = m3u8.loads(text)
    assert parsed.is_endlist and parsed.playlist_type == "vod" and parsed.target_duration == 10
    assert [s.uri for s in parsed.segments] == [s.uri for s in segments]
    assert [s.duration for s in parsed.segments] == [10.01] * 3


def test_master_playlist_round_trips() -> None:
    variant = VariantStream("main.m3u8?exp=1", 3_000_000, 2_000_000, "avc1.64001f,mp4a.40.2", (1280, 720), Fraction(30000, 1001))
    parsed = m3u8.loads(render_master(MasterPlaylist((variant,))))
    assert parsed.is_variant and parsed.is_independent_segments
    info = parsed.playlists[0].stream_info
    assert (info.bandwidth, info.average_bandwidth, info.resolution) == (3_000_000, 2_000_000, (1280, 720))
    assert info.codecs == "avc1.64001f,mp4a.40.2" and info.frame_rate == pytest.approx(29.97)


def test_master_playlist_writes_video_range() -> None:
    variant = VariantStream("main.m3u8", 3_000_000, None, "hvc1.1.6.L93.90", (1280, 720), Fraction(30), video_range="SDR")
    text = render_master(MasterPlaylist((variant,)))
    assert 'CODECS="hvc1.1.6.L93.90",VIDEO-RANGE=SDR' in text
    assert m3u8.loads(text).playlists[0].stream_info.video_range == "SDR"


MIXED = {  # HEVC listed first: the master still leads with H.264, which every player starts on
    "renditions": {
        "hevc1080": {"vcodec": "h265", "s": "x1080"},
        "avc720": {"s": "x720"},
        "av1720": {"vcodec": "av1", "s": "x720"},
        "avc360": {"s": "x360", "preset": "ultrafast"},
        "hevc720": {"vcodec": "h265", "s": "x720", "pixfmt": "yuv420p10le"},
    }
}
SOURCE = MediaInfo(
    "mp4",
    Fraction(60),
    Fraction(0),
    VideoInfo(0, "h264", 1920, 1080, Fraction(30), "yuv420p", Fraction(0)),
    AudioInfo(1, "aac", 48000, 2, Fraction(0)),
)


def test_a_mixed_ladder_master_leads_with_h264_and_names_every_variant_exactly() -> None:
    title = build_title(ObjectInfo("a.mp4", 1, "e"), SOURCE, parse_profile("mixed", MIXED))
    variants = m3u8.loads(master_text(title)).playlists
    by_name = {v.uri.removesuffix(".m3u8"): v.stream_info for v in variants}
    assert variants[0].uri == "avc720.m3u8"  # the profile's first H.264 rendition
    assert {name: info.codecs for name, info in by_name.items()} == {
        "hevc1080": "hvc1.1.6.L120.90,mp4a.40.2",
        "avc720": "avc1.64001f,mp4a.40.2",
        "av1720": "av01.0.05M.08,mp4a.40.2",
        "avc360": "avc1.42c01e,mp4a.40.2",
        "hevc720": "hvc1.2.4.L93.90,mp4a.40.2",
    }
    assert all(info.video_range == "SDR" for info in by_name.values())
    # after the first, by bandwidth
    rest = [v.stream_info.bandwidth for v in variants[1:]]
    assert rest == sorted(rest, reverse=True)


def test_rungs_capped_to_the_source_drop_per_codec() -> None:
    """Above the source, a rung capped to a size its codec already has is dropped; another
    codec's rung of that size stays (the player picks by CODECS)."""
    renditions = {"avc": {"s": "x2160"}, "avc2": {"s": "x1440"}, "hevc": {"vcodec": "h265", "s": "x2160"}}
    title = build_title(ObjectInfo("a.mp4", 1, "e"), SOURCE, parse_profile("capped", {"renditions": renditions}))
    assert [(r.name, r.video.width, r.video.height) for r in title.variants if r.video] == [("avc", 1920, 1080), ("hevc", 1920, 1080)]


def test_a_profile_without_h264_keeps_its_first_rendition_first() -> None:
    profile = parse_profile("hevc", {"renditions": {"small": {"vcodec": "h265", "s": "x360"}, "big": {"vcodec": "h265", "s": "x1080"}}})
    title = build_title(ObjectInfo("a.mp4", 1, "e"), SOURCE, profile)
    assert [v.uri for v in m3u8.loads(master_text(title)).playlists] == ["small.m3u8", "big.m3u8"]


# an H.264 source a copy rendition takes (High 4.2, a keyframe every 2 s, in MP4) at a film's bitrate
COPYABLE = MediaInfo(
    "mov,mp4,m4a,3gp,3g2,mj2",
    Fraction(60),
    Fraction(0),
    VideoInfo(
        0,
        "h264",
        1920,
        1080,
        Fraction(30),
        "yuv420p",
        Fraction(0),
        end=Fraction(60),
        bit_rate=40_000_000,
        profile="High",
        level=42,
        keyframes=tuple(Fraction(2 * k) for k in range(30)),
    ),
    AudioInfo(1, "aac", 48000, 2, Fraction(0)),
)


def _variant_names(title_text: str) -> list[str]:
    return [v.uri.removesuffix(".m3u8") for v in m3u8.loads(title_text).playlists]


def test_a_copy_listed_first_does_not_lead_the_master() -> None:
    """The copy of a 40 Mbit/s source is no variant to start on: the first transcoded H.264 rung
    leads, and the copy follows by its bandwidth (the highest)."""
    renditions = {"original": {"vcodec": "copy"}, "p360": {"s": "x360"}, "p720": {"s": "x720"}}
    title = build_title(ObjectInfo("a.mp4", 1, "e"), COPYABLE, parse_profile("copyfirst", {"renditions": renditions}))
    assert [r.name for r in title.variants] == ["original", "p360", "p720"] and title.left_out == ()
    assert _variant_names(master_text(title)) == ["p360", "original", "p720"]


def test_a_copy_listed_first_gives_way_to_an_hevc_rung_without_h264() -> None:
    renditions = {"original": {"vcodec": "copy"}, "hevc": {"vcodec": "h265", "s": "x720"}}
    title = build_title(ObjectInfo("a.mp4", 1, "e"), COPYABLE, parse_profile("copyhevc", {"renditions": renditions}))
    assert _variant_names(master_text(title)) == ["hevc", "original"]


def test_a_title_of_copies_alone_leads_with_its_copy() -> None:
    title = build_title(ObjectInfo("a.mp4", 1, "e"), COPYABLE, parse_profile("copyonly", {"renditions": {"original": {"vcodec": "copy"}}}))
    assert _variant_names(master_text(title)) == ["original"]


def m3u8_media(playlist: MediaPlaylist) -> str:
    """The same playlist through the m3u8 package (how livetx wrote media playlists before)."""
    doc = m3u8.M3U8()
    doc.version = playlist.version
    doc.target_duration = playlist.target_duration
    doc.media_sequence = playlist.media_sequence
    doc.playlist_type = "vod"
    doc.is_independent_segments = True
    doc.is_endlist = True
    for seg in playlist.segments:
        doc.segments.append(m3u8.Segment(uri=seg.uri, duration=extinf(seg.duration)))
    return str(doc.dumps())


DURATIONS = [Fraction(2), Fraction(1001, 100), Fraction(1001, 30000), Fraction(123456789, 1000), Fraction(1, 3), Fraction(0)]


@pytest.mark.parametrize(
    "playlist",
    [
        pytest.param(MediaPlaylist((), target_duration=1), id="no segments"),
        pytest.param(MediaPlaylist((MediaSegment("a.ts", Fraction(2)),), target_duration=2), id="one"),
        pytest.param(
            MediaPlaylist(tuple(MediaSegment(f"r-{i}.ts?exp=1&sig=x", d) for i, d in enumerate(DURATIONS)), target_duration=123456789),
            id="every kind of duration",
        ),
        pytest.param(MediaPlaylist((MediaSegment("a.ts", Fraction(4)),), target_duration=4, media_sequence=7, version=4), id="sequence"),
        pytest.param(MediaPlaylist((MediaSegment("", Fraction(4)), MediaSegment("b.ts", Fraction(4))), target_duration=4), id="no uri"),
    ],
)
def test_media_playlist_is_what_the_m3u8_package_writes(playlist: MediaPlaylist) -> None:
    assert render_media(playlist) == m3u8_media(playlist)
