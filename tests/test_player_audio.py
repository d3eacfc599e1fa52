"""Audio renditions in real players (issue 16): hls.js, Shaka Player and video.js in Chromium
(their MSE engines, never native HLS), and FFmpeg's HLS demuxer, on an `audio = "all"` title
of the multitrack source (four tracks, each a pure tone), in MPEG-TS and in fMP4.

Each player loads the page once per container and, while playing, starts on the default track
and switches to each other track in turn, then back to the default (tests/audio_switching.py
runs it). Per switch: the player reports that track active; the audio segments it fetches
after the switch are that track's rendition (`a<index>-...`, Playwright's request events), and
those segments, fetched again here and decoded, hold that track's tone (FFT peak); and the tone
that actually plays, read by a WebAudio AnalyserNode on the video element (headless Chromium
feeds it), is that track's. The titles are made before the players start, so the run measures the
players, not the transcoder.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.audio_switching import Run, Session, ffmpeg_audio_streams, profiles_toml, tracks_of, warm
from tests.conftest import ROOT, Server, launch_server
from tests.multitrack import MultiTrackSpec, write_multitrack
from tests.support import CHROMIUM, SCRIPTS

PROFILES = {"tracks": ("all", "ts"), "tracksfmp4": ("all", "fmp4")}
SOURCE = "tracks.mkv"
PLAYERS = ("hls.js", "shaka", "video.js")
LISTED = [("English", "en"), ("Français", "fr"), ("Director's commentary", "en"), ("Deutsch 5.1", "de")]  # (NAME, LANGUAGE)
ORDER = (0, 1, 2, 3, 0)  # the default (as loaded), each other track, the default again


@pytest.fixture(scope="module")
def tracks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the shipped config plus the two `audio = "all"` profiles."""
    home = tmp_path_factory.mktemp("player-audio")
    media = home / "media"
    media.mkdir()
    write_multitrack(media / SOURCE, MultiTrackSpec(seconds=12.0))
    config = home / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + profiles_toml(PROFILES))
    with launch_server(home, media, LIVETX_CONFIG=str(config)) as server:
        yield server


@pytest.fixture(scope="module")
def masters(tracks_server: Server) -> dict[str, str]:
    """Container -> the signed master URL of its title, every segment made."""
    out = {}
    for profile, (_, container) in PROFILES.items():
        url = tracks_server.cli("url", SOURCE, "--profile", profile, "--base-url", tracks_server.base_url)
        warm(url)
        out[container] = url
    return out


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


CASES = [(player, container) for player in PLAYERS for container in ("ts", "fmp4")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{player}-{container}" for player, container in CASES])
def session(request: pytest.FixtureRequest, browser: Any, tracks_server: Server, masters: dict[str, str]) -> Session:
    player, container = request.param
    if not SCRIPTS[player].exists():
        pytest.skip(f"{player} is not installed at {SCRIPTS[player]} (.ci/run installs it with npm)")
    url = masters[container]
    tracks = tracks_of(warm(url))
    run = Run(browser, tracks_server.base_url, player, url)
    try:
        played = run.play(tracks, ORDER)
    finally:
        run.close()
    print(f"{player} ({container}): {played.engine}; listed {played.listed}; errors {played.errors}")
    for phase in played.phases:
        print("  " + phase.summary())
    return played


def test_plays_in_the_players_engine(session: Session) -> None:
    assert session.failure is None
    assert session.engine.split()[0] in PLAYERS, session.engine  # MSE, not Chromium's native HLS


def test_lists_every_audio_track_with_its_name_and_language(session: Session) -> None:
    assert sorted((t["label"], t["language"]) for t in session.listed) == sorted(LISTED)


def test_no_fatal_error(session: Session) -> None:
    assert session.fatal == []


def test_each_switch_is_reported_fetched_and_heard(session: Session) -> None:
    """The player reports the track active, fetches its rendition, and its tone plays."""
    assert [p.track.name for p in session.phases] == [LISTED[i][0] for i in ORDER]
    assert [p.summary() for p in session.phases if p.failure] == []


def test_segments_fetched_after_each_switch_are_that_tracks(session: Session) -> None:
    for phase in session.phases:
        assert phase.requested and not phase.stray, phase.summary()


def test_those_segments_hold_that_tracks_tone(session: Session) -> None:
    for phase in session.phases:
        assert phase.segment_tones and all(abs(hz - phase.track.tone_hz) < 2 for hz in phase.segment_tones.values()), phase.summary()


# ---- FFmpeg's HLS demuxer ------------------------------------------------------------------


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_ffmpeg_lists_every_audio_stream_with_its_language(masters: dict[str, str], container: str) -> None:
    streams = ffmpeg_audio_streams(masters[container])
    assert [s.get("language") for s in streams] == [language for _, language in LISTED]
    assert all(int(s["variant_bitrate"]) > 0 for s in streams), streams


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_ffprobe_lists_every_audio_stream_with_its_language(masters: dict[str, str], container: str) -> None:
    """Debian's ffprobe (FFmpeg 5.1): a second, independent build of the demuxer."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("no ffprobe (apt-get install ffmpeg; .ci/run does)")
    done = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a", "-show_entries", "stream_tags=language", "-of", "csv=p=0", masters[container]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == [language for _, language in LISTED], done.stderr
