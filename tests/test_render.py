from __future__ import annotations

from fractions import Fraction

import m3u8
import pytest

from livetx.hls.model import MasterPlaylist, MediaPlaylist, MediaSegment, VariantStream
from livetx.hls.render import extinf, render_master, render_media


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
