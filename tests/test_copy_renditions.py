"""Copy ("remux") renditions on the real server: the shipped `remux` profile's `original` rung for a source
that qualifies (an H.264 MP4 with a keyframe every second), left out with its reason for one that
does not (MPEG-TS: no keyframe index in its headers). Every rendition of the title is cut at the
source's keyframes; the copy's segments carry the source's packets bit-exact; a player switching
between the copy and a transcoded rung every segment sees every frame once, in order."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from typing import Any
from urllib.parse import urljoin

import av
import m3u8
import pytest

from tests.checker import decode_switching, open_fmp4
from tests.conftest import Server, Source
from tests.player_pages import chromium, play_through
from tests.support import get_url

SOURCE = "mp4-30"  # 7 s at 30 fps, 320x180, a keyframe every 30 frames
PLAYBACK_RATE = 2


def _get(url: str) -> bytes:
    status, _, body = get_url(url)
    assert status == 200, (url, status, body[:300])
    return body


@pytest.fixture(scope="module")
def ladder(server: Server, sources: dict[str, Source]) -> tuple[str, m3u8.M3U8]:
    url = server.cli("url", sources[SOURCE].key, "--profile", "remux", "--base-url", server.base_url)
    return url, m3u8.loads(_get(url).decode(), uri=url)


def _rendition(ladder: tuple[str, m3u8.M3U8], name: str) -> tuple[str, m3u8.M3U8]:
    url, master = ladder
    variant = next(v for v in master.playlists if v.uri.split("?")[0].endswith(f"{name}.m3u8"))
    media_url = urljoin(url, variant.uri)
    return media_url, m3u8.loads(_get(media_url).decode(), uri=media_url)


def _pieces(media_url: str, media: m3u8.M3U8) -> tuple[bytes, list[bytes]]:
    init = _get(urljoin(media_url, media.segment_map[0].uri))
    return init, [_get(urljoin(media_url, s.uri)) for s in media.segments]


def _source_packets(source: Source) -> list[tuple[Fraction, bytes, bool]]:
    with av.open(str(source.path)) as src:
        stream = src.streams.video[0]
        assert stream.time_base is not None
        return [(p.pts * stream.time_base, bytes(p), p.is_keyframe) for p in src.demux(stream) if p.size and p.pts is not None]


def test_the_ladder_lists_the_source_as_it_is(ladder: tuple[str, m3u8.M3U8]) -> None:
    _, master = ladder
    original = [v for v in master.playlists if v.uri.split("?")[0].endswith("original.m3u8")]
    assert len(original) == 1
    info = original[0].stream_info
    assert info.codecs.startswith("avc1.64") and info.resolution == (320, 180)  # the source's High profile, its size
    assert not master.playlists[0].uri.split("?")[0].endswith("original.m3u8")  # players start on the first H.264 rung


def test_every_rendition_is_cut_at_the_sources_keyframes(ladder: tuple[str, m3u8.M3U8], sources: dict[str, Source]) -> None:
    keyframes = {t for t, _, key in _source_packets(sources[SOURCE]) if key}
    _, master = ladder
    durations = []
    for variant in master.playlists:
        name = variant.uri.split("?")[0].rsplit("/", 1)[-1].removesuffix(".m3u8")
        _, media = _rendition(ladder, name)
        durations.append([Fraction(str(s.duration)) for s in media.segments])
    assert all(d == durations[0] for d in durations)  # the same boundaries in every rendition
    starts = [sum(durations[0][:n], Fraction(0)) for n in range(len(durations[0]))]
    assert set(starts) <= keyframes


def test_the_copy_carries_the_source_packets_bit_exact(ladder: tuple[str, m3u8.M3U8], sources: dict[str, Source]) -> None:
    init, segments = _pieces(*_rendition(ladder, "original"))
    with open_fmp4(init, segments) as container:
        copied = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    assert copied == [data for _, data, _ in _source_packets(sources[SOURCE])]


def test_switching_between_the_copy_and_a_transcoded_rung_every_segment_shows_each_frame_once(ladder: tuple[str, m3u8.M3U8]) -> None:
    copy_init, copies = _pieces(*_rendition(ladder, "original"))
    p720_init, p720 = _pieces(*_rendition(ladder, "p720"))
    pieces = [(copy_init, c) if n % 2 == 0 else (p720_init, t) for n, (c, t) in enumerate(zip(copies, p720, strict=True))]
    video = decode_switching(pieces)
    assert video.indexes == list(range(len(video.indexes))) and len(video.indexes) == 210


def test_a_source_without_a_keyframe_index_leaves_the_copy_out_with_the_reason(server: Server, sources: dict[str, Source]) -> None:
    key = sources["ts-2997"].key
    request = urllib.request.Request(f"{server.base_url}/api/v1/titles/remux/{key}", headers={"Authorization": f"Bearer {server.api_key}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        state: dict[str, Any] = json.loads(response.read())
    assert [r["name"] for r in state["left_out"]] == ["original"]
    assert "no keyframe index in an MPEG-TS source" in state["left_out"][0]["reason"]
    assert "original" not in [r["name"] for r in state["renditions"]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.mark.parametrize("player", ["hls.js", "shaka", "video.js"])
def test_players_play_the_copy(server: Server, browser: Any, ladder: tuple[str, m3u8.M3U8], player: str) -> None:
    """Each player is given the copy's own media playlist (so it plays that rendition, not
    whichever its bandwidth estimate picks), every segment made before it starts."""
    media_url, media = _rendition(ladder, "original")
    _pieces(media_url, media)
    played = play_through(browser, server.base_url, player, media_url, PLAYBACK_RATE)
    assert not played["engine"].startswith("native"), played["engine"]
    assert played["errors"] == []
    assert played["frames"] > 0
