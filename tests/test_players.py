"""The player matrix: hls.js, Shaka Player and video.js each play the shipped fMP4 H.264 ladder (three
transcoded rungs and the source's copy, `original`) in
Chromium from the real server, and Shaka Player and dash.js its DASH manifest (manifest.mpd,
over the very same segments), and hls.js and Shaka the shipped AV1 profile, with no error event
of any kind.

Each player runs once per protocol (a module-scoped fixture per case): it plays the title from the start to
the end at PLAYBACK_RATE, then from a seek to 50 % to the end again, recording every error event
it and the video element raise (hls.js's non-fatal ones too, bufferSeekOverHole among them) and
what it has buffered. The tests then read that record, one behaviour each. The players come from
npm into git-ignored folders (.ci/run installs them: hls.js into var/test-hlsjs, Shaka and
video.js and dash.js into var/test-players); a player that is not installed skips with the reason. Pages and
scripts are answered by Playwright from the local files at the server's origin, so only
127.0.0.1 is reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import m3u8
import pytest

from tests.conftest import Server, Source
from tests.player_pages import ENGINE, chromium, installed, page_html, serve_page, state
from tests.support import get_url as fetch
from tests.support import wait_until

# (player, protocol): the ladder's master playlist (hls) or its DASH manifest (dash)
CASES = [
    ("hls.js", "hls"),
    ("shaka", "hls"),
    ("video.js", "hls"),
    ("shaka", "dash"),
    ("dash.js", "dash"),
    ("hls.js", "hls-av1"),  # the shipped av1 profile: AV1 in fMP4, which Chromium decodes
    ("shaka", "hls-av1"),
]
# at 4x on a loaded 2-core machine hls.js reports a stall at 0 (bufferStalledError, 4 s buffered)
# while Chromium starts decoding
PLAYBACK_RATE = 2
SOURCE = "mp4-30"  # 7 s, 320x180, H.264 in MP4: the ladder's x180, x144 and x90 rungs, and the source's copy
PAGE_PREFIX = "/__players__/"  # answered by the browser's route, never by the server


@dataclass
class Played:
    player: str
    protocol: str
    duration: float
    buffered_at_start: list[list[float]]
    first_pass_ended: bool
    first_pass_time: float
    seek_target: float
    after_seek_time: float
    second_pass_ended: bool
    errors: list[dict[str, Any]]
    frames: dict[str, int]
    engine: str  # what played it: the player's MSE engine, not Chromium's native HLS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def warmed(server: Server, source: Source, profile: str, codec: str, variants: int) -> str:
    """The signed master URL of `profile`'s title, every segment made before the players start:
    at PLAYBACK_RATE a cold title on a busy 2-core machine stalls them while segments are
    made, which hls.js reports (bufferStalledError)."""
    url = server.cli("url", source.key, "--profile", profile, "--base-url", server.base_url)
    master = m3u8.loads(fetch(url)[2].decode(), uri=url)
    assert len(master.playlists) == variants
    for variant in master.playlists:  # what the players meet: fMP4 renditions of one codec
        assert variant.stream_info.codecs.startswith(codec), variant.stream_info.codecs
        media = m3u8.loads(fetch(variant.absolute_uri)[2].decode(), uri=variant.absolute_uri)
        assert media.segment_map[0].uri.split("?")[0].endswith("-init.mp4")
        for uri in [media.segment_map[0].absolute_uri, *(s.absolute_uri for s in media.segments)]:
            assert fetch(uri)[0] == 200, uri
    return url


@pytest.fixture(scope="module")
def ladder_url(server: Server, sources: dict[str, Source]) -> str:
    return warmed(server, sources[SOURCE], "ladder", "avc1.", 4)


@pytest.fixture(scope="module")
def av1_url(server: Server, sources: dict[str, Source]) -> str:
    return warmed(server, sources[SOURCE], "av1", "av01.", 1)


@pytest.fixture(scope="module")
def mpd_url(server: Server, ladder_url: str) -> str:
    """The ladder's DASH manifest, signed as its master playlist is; its segments are the ones
    `ladder_url` has made already (the same URLs)."""
    path = urlsplit(ladder_url).path.removesuffix("master.m3u8") + "manifest.mpd"
    url = server.cli("sign", path, "--base-url", server.base_url)
    status, headers, body = fetch(url)
    assert status == 200 and headers["Content-Type"].startswith("application/dash+xml"), body
    return url


@pytest.fixture(scope="module", params=CASES, ids=[f"{player}-{protocol}" for player, protocol in CASES])
def played(request: pytest.FixtureRequest, browser: Any, server: Server, ladder_url: str) -> Played:
    player, protocol = request.param
    script = installed(player)
    src = ladder_url if protocol == "hls" else request.getfixturevalue({"dash": "mpd_url", "hls-av1": "av1_url"}[protocol])
    page = browser.new_page()
    serve_page(page, server.base_url, PAGE_PREFIX, page_html(player, src, PLAYBACK_RATE), script)
    try:
        page.goto(f"{server.base_url}{PAGE_PREFIX}{player}.html")
        wait_until(lambda: state(page)["t"] > 0.5, 60, f"{player} to start playing")
        buffered = page.evaluate("ranges()")
        wait_until(lambda: state(page)["ended"], 60, f"{player} to play to the end")
        first = state(page)
        target = first["duration"] / 2
        page.evaluate(f"media.currentTime = {target}; start()")
        wait_until(lambda: state(page)["t"] > target + 0.5, 60, f"{player} to play on after the seek")
        after_seek = state(page)["t"]
        wait_until(lambda: state(page)["ended"], 60, f"{player} to play to the end after the seek")
        quality = page.evaluate(
            "(() => { const q = media.getVideoPlaybackQuality(); return {total: q.totalVideoFrames, dropped: q.droppedVideoFrames}; })()"
        )
        engine = page.evaluate(ENGINE)
        out = Played(
            player,
            protocol,
            first["duration"],
            buffered,
            first["ended"],
            first["t"],
            target,
            after_seek,
            state(page)["ended"],
            page.evaluate("errors"),
            quality,
            engine,
        )
    finally:
        page.close()
    print(f"{player} ({protocol}): {out}")
    return out


def test_plays_from_the_start_with_a_buffer_from_zero(played: Played, sources: dict[str, Source]) -> None:
    assert played.engine.split()[0] in ("hls.js", "shaka", "video.js", "dash.js"), played.engine  # MSE, not native HLS
    assert played.duration == pytest.approx(sources[SOURCE].spec.seconds, abs=0.05)
    assert played.buffered_at_start and played.buffered_at_start[0][0] == pytest.approx(0, abs=0.001), played.buffered_at_start


def test_plays_to_the_end(played: Played) -> None:
    assert played.first_pass_ended and played.first_pass_time == pytest.approx(played.duration, abs=0.05)


def test_plays_on_after_a_seek_to_half_and_to_the_end(played: Played) -> None:
    assert played.after_seek_time > played.seek_target + 0.5 and played.second_pass_ended
    assert played.frames["total"] > 0


def test_no_error_event_of_any_kind(played: Played) -> None:
    assert played.errors == []
