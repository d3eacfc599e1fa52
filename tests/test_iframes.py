"""I-frame playlists (EXT-X-I-FRAME-STREAM-INF) on the real server: every entry is one IDR frame,
the one its time implies, and FFmpeg reads the playlist."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from typing import Any
from urllib.parse import urljoin

import av
import m3u8
import pytest

from livetx.media.model import INIT
from livetx.media.probe import probe
from livetx.media.sample import read_index
from livetx.media.timeline import TS_OFFSET
from livetx.media.transcode import init_segment, transcode_segment
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile
from tests.checker import open_joined
from tests.conftest import Server, Source
from tests.support import get_url, wait_until

FFMPEG = shutil.which("ffmpeg")
SOURCE = "mp4-30"  # 7 s at 30 fps, 320x180: seven entries


def _get(url: str) -> bytes:
    status, _, body = get_url(url)
    assert status == 200, (url, status, body[:200])
    return body


def master_of(server: Server, source: Source, profile: str) -> tuple[str, m3u8.M3U8]:
    url = server.cli("sign", f"/hls/{profile}/{source.key}/master.m3u8", "--base-url", server.base_url)
    return url, m3u8.loads(_get(url).decode())


def iframe_playlist(server: Server, source: Source, profile: str) -> tuple[str, m3u8.M3U8, Any]:
    url, master = master_of(server, source, profile)
    assert len(master.iframe_playlists) == 1
    stream = master.iframe_playlists[0]
    playlist_url = urljoin(url, stream.uri)
    return playlist_url, m3u8.loads(_get(playlist_url).decode()), stream.iframe_stream_info


def entry_times(playlist: m3u8.M3U8) -> list[Fraction]:
    times, t = [], Fraction(0)
    for segment in playlist.segments:
        times.append(t)
        t += Fraction(str(segment.duration))
    return times


def decode_entry(data: bytes, container: str, drawn_width: int) -> list[tuple[int, Fraction, bool]]:
    """(frame index, PTS in seconds, key frame) of each video frame of one I-frame segment."""
    out = []
    with open_joined([data], format="mpegts" if container == "ts" else "mp4") as media:
        assert not media.streams.audio, "an I-frame segment has no audio"
        for frame in media.decode(media.streams.video[0]):
            height = round(frame.height * drawn_width / frame.width / 2) * 2
            index = read_index(frame.to_ndarray(format="gray", width=drawn_width, height=height))
            assert frame.pts is not None and frame.time_base is not None
            out.append((index, frame.pts * frame.time_base, bool(frame.key_frame)))
    return out


@pytest.mark.parametrize(
    ("profile", "container", "codec", "resolution"),
    [
        pytest.param("default", "ts", "avc1.", (320, 180), id="ts"),
        # the ladder's lowest rung (x90 on the test server) is the I-frame rendition's base
        pytest.param("ladder", "fmp4", "avc1.", (160, 90), id="fmp4"),
    ],
)
def test_every_entry_is_one_keyframe_at_its_time(
    server: Server, sources: dict[str, Source], profile: str, container: str, codec: str, resolution: tuple[int, int]
) -> None:
    src = sources[SOURCE]
    playlist_url, playlist, info = iframe_playlist(server, src, profile)
    assert info.bandwidth > 0 and info.codecs.startswith(codec) and info.resolution == resolution
    assert "sig=" in playlist_url
    assert playlist.is_i_frames_only and playlist.is_endlist
    assert playlist.version == (5 if container == "fmp4" else 4)
    times = entry_times(playlist)
    assert len(times) == 7 and sum(Fraction(str(s.duration)) for s in playlist.segments) == Fraction(src.spec.seconds)
    init = b""
    if container == "fmp4":
        assert playlist.segment_map and playlist.segment_map[0].uri
        init = _get(urljoin(playlist_url, playlist.segment_map[0].uri))
    for segment, t in zip(playlist.segments, times, strict=True):
        assert "sig=" in segment.uri
        frames = decode_entry(init + _get(urljoin(playlist_url, segment.uri)), container, src.spec.width)
        assert len(frames) == 1, f"entry at {t} s holds {len(frames)} frames"
        index, pts, key = frames[0]
        assert key and index == t * src.spec.fps
        # absolute: where the regular renditions show that frame (MPEG-TS: + TS_OFFSET; fMP4: tfdt is title time)
        assert pts == (TS_OFFSET + t if container == "ts" else t)


def test_master_keeps_its_variants(server: Server, sources: dict[str, Source]) -> None:
    """The I-frame rendition is listed after the variants, never as one of them."""
    _, master = master_of(server, sources[SOURCE], "default")
    assert [p.uri.split("?")[0] for p in master.playlists] == ["main.m3u8"]
    assert master.iframe_playlists[0].uri.split("?")[0] == "iframe.m3u8"


def test_pyav_reads_the_iframe_playlist(server: Server, sources: dict[str, Source]) -> None:
    src = sources[SOURCE]
    playlist_url, playlist, _ = iframe_playlist(server, src, "default")
    with av.open(playlist_url, options={"protocol_whitelist": "http,tcp"}) as media:
        indexes = [read_index(f.to_ndarray(format="gray")) for f in media.decode(media.streams.video[0])]
    assert indexes == [t * src.spec.fps for t in entry_times(playlist)]


@pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg CLI")
@pytest.mark.parametrize("profile", ["default", "ladder"])
def test_ffmpeg_reads_the_iframe_playlist(server: Server, sources: dict[str, Source], profile: str) -> None:
    playlist_url, playlist, _ = iframe_playlist(server, sources[SOURCE], profile)
    assert FFMPEG is not None
    done = subprocess.run(
        [FFMPEG, "-v", "error", "-protocol_whitelist", "http,tcp", "-i", playlist_url, "-map", "0:v", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    frames = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    assert len(frames) == len(playlist.segments), done.stderr


def test_iframe_segments_are_made_only_when_asked(server: Server, sources: dict[str, Source]) -> None:
    """Pre-transcode and lookahead make the regular segments, never I-frame ones."""
    src = sources["mkv-25-44k"]  # (no other test here plays it)
    url, master = master_of(server, src, "default")
    media_url = urljoin(url, master.playlists[0].uri)
    media = m3u8.loads(_get(media_url).decode())
    _get(urljoin(media_url, media.segments[0].uri))  # lookahead: the rest of the title
    stored = server.media / ".livetx"
    names = [s.uri.split("?")[0] for s in media.segments]
    wait_until(lambda: all(any(stored.rglob(n)) for n in names), 60, "the regular segments made ahead")
    iframe_url = urljoin(url, master.iframe_playlists[0].uri)
    iframe_names = [s.uri.split("?")[0] for s in m3u8.loads(_get(iframe_url).decode()).segments]
    assert not [n for n in iframe_names if any(stored.rglob(n))]


def test_an_entry_past_the_end_is_404(server: Server, sources: dict[str, Source]) -> None:
    src = sources[SOURCE]
    _, playlist, _ = iframe_playlist(server, src, "default")
    last = playlist.segments[-1].uri.split("?")[0]  # iframe-<spec id>-6.ts
    past = last.rsplit("-", 1)[0] + f"-{len(playlist.segments)}.ts"
    status, _, body = get_url(server.cli("sign", f"/hls/default/{src.key}/{past}", "--base-url", server.base_url))
    assert status == 404 and b"past the title" in body


@pytest.mark.parametrize("container", ["fmp4", "ts"])
def test_an_hevc_only_title_gets_hevc_iframes(sources: dict[str, Source], container: str) -> None:
    """Made by the worker as the pool makes them: one HEVC key frame each, PTS exact, the first
    one too (no B-frames: no reorder delay to push a lone frame's DTS below zero)."""
    src = sources[SOURCE]
    profile = parse_profile("hevc", {"renditions": {"h": {"vcodec": "h265", "s": "x180", "container": container}}})
    title = build_title(ObjectInfo(src.key, 1, "e"), probe(str(src.path)), profile)
    [iframe] = title.iframe_renditions
    assert iframe.codecs.startswith("hvc1.") and iframe.container == container
    init = init_segment(title.job(iframe, INIT, "")) if container == "fmp4" else b""
    for n in (0, 4):
        t = iframe.windows[n].start
        frames = decode_entry(init + transcode_segment(title.job(iframe, n, str(src.path))).data, container, src.spec.width)
        assert frames == [(t * src.spec.fps, TS_OFFSET + t if container == "ts" else t, True)]
