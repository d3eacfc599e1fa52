"""Audio and subtitle renditions in real players (issue 16): hls.js, Shaka Player and video.js
in Chromium (their MSE engines, never native HLS), and FFmpeg's HLS demuxer, on an
`audio = "all"` title of the multitrack source (four audio tracks, each a pure tone; SubRip and
ASS tracks; an SRT and a WebVTT sidecar next to it), in MPEG-TS and in fMP4.

Each player loads the page once per container (tests/player_tracks.py runs it).

Audio: while playing, it starts on the default track and switches to each other track in turn,
then back to the default. Per switch: the player reports that track active; the audio segments
it fetches after the switch are that track's rendition (`a<index>-...`, Playwright's request
events), and those segments, fetched again here and decoded, hold that track's tone (FFT peak);
and the tone that actually plays, read by a WebAudio AnalyserNode on the video element
(headless Chromium feeds it), is that track's.

Subtitles: every cue's text is its intended start (`t=4.480`). Paused, subtitles off, the page
seeks to 7 s and shows each subtitle track in turn, so its first segments are loaded after the
seek; then it seeks back to 0 and does the same for the earlier cues. Each cue the player
exposes (`textTracks[i].cues`) starts within one frame of its intended time, and at one frame
before its start it is not in `activeCues`, at one frame after it is.

The titles are made before the players start, so the run measures the players, not the
transcoder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from tests.conftest import ROOT, Server, launch_server
from tests.multitrack import MultiTrackSpec, write_multitrack
from tests.player_pages import chromium, installed
from tests.player_tracks import Run, Session, ffmpeg_streams, profiles_toml, tracks_of, warm

PROFILES = {"tracks": ("all", "ts"), "tracksfmp4": ("all", "fmp4")}
SOURCE = "tracks.mkv"
FRAME = 1 / MultiTrackSpec.fps  # the source's frame: the cue timing tolerance
SEEK = 7.0  # s: where the subtitle checks start (segment 3 of 0-2, 2-4, ... 10-12)
# cue starts (s): the embedded tracks' (0.8 s each; 1.96 spans the 2 s boundary), the SRT
# sidecar's (0.6 s; across 6 and 10 s) and the WebVTT sidecar's (0.6 s; one starting on 6 s)
EMBEDDED = (0.52, 1.96, 4.48, 6.1, 8.04, 10.5)
SIDECAR_SRT = (0.3, 3.0, 5.92, 7.5, 9.96, 11.2)
SIDECAR_VTT = (1.0, 2.5, 6.0, 8.8, 11.0)
SUBTITLES = {"English": EMBEDDED, "Forcés": EMBEDDED, "German": SIDECAR_SRT, "Spanish": SIDECAR_VTT}  # NAME -> cue starts
SUBTITLE_LANGUAGES = {"English": "en", "Forcés": "fr", "German": "de", "Spanish": "es"}
PLAYERS = ("hls.js", "shaka", "video.js")
LISTED = [("English", "en"), ("Français", "fr"), ("Director's commentary", "en"), ("Deutsch 5.1", "de")]  # (NAME, LANGUAGE)
ORDER = (0, 1, 2, 3, 0)  # the default (as loaded), each other track, the default again


def _time(seconds: float, comma: str) -> str:
    """An SRT (`,`) or WebVTT (`.`) timestamp."""
    ms = round(seconds * 1000)
    return f"00:{ms // 60000:02d}:{ms // 1000 % 60:02d}{comma}{ms % 1000:03d}"


@pytest.fixture(scope="module")
def tracks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the shipped config plus the two `audio = "all"` profiles."""
    home = tmp_path_factory.mktemp("player-audio")
    media = home / "media"
    media.mkdir()
    cues = tuple((Fraction(str(t)), Fraction(str(t)) + Fraction(4, 5)) for t in EMBEDDED)
    write_multitrack(media / SOURCE, MultiTrackSpec(seconds=12.0, cues=cues))
    srt = (f"{i}\n{_time(t, ',')} --> {_time(t + 0.6, ',')}\nt={t:.3f}\n" for i, t in enumerate(SIDECAR_SRT, 1))
    (media / "tracks.de.srt").write_text("\n".join(srt))
    vtt = (f"{_time(t, '.')} --> {_time(t + 0.6, '.')}\nt={t:.3f}\n" for t in SIDECAR_VTT)
    (media / "tracks.es.vtt").write_text("WEBVTT\n\n" + "\n".join(vtt))
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
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


CASES = [(player, container) for player in PLAYERS for container in ("ts", "fmp4")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{player}-{container}" for player, container in CASES])
def session(request: pytest.FixtureRequest, browser: Any, tracks_server: Server, masters: dict[str, str]) -> Session:
    player, container = request.param
    installed(player)
    url = masters[container]
    tracks = tracks_of(warm(url))
    run = Run(browser, tracks_server.base_url, player, url)
    try:
        played = run.play(tracks, ORDER)
        if played.failure is None:
            run.check_cues(played, SUBTITLES, SEEK, FRAME)
    finally:
        run.close()
    print(f"{player} ({container}): {played.engine}; listed {played.listed}; errors {played.errors}")
    for phase in played.phases:
        print("  " + phase.summary())
    for check in played.cues:
        print("  " + check.summary(FRAME))
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


# ---- subtitles -------------------------------------------------------------------------------


def test_lists_every_subtitle_track_with_its_name_and_language(session: Session) -> None:
    assert sorted((t["label"], t["language"]) for t in session.subtitles) == sorted(SUBTITLE_LANGUAGES.items())


def test_every_cue_starts_within_a_frame_of_its_time(session: Session) -> None:
    assert [c.label for c in session.cues] == list(SUBTITLES) * 2
    for check in session.cues:
        assert not check.timed_out and not check.missing and not check.off(FRAME), check.summary(FRAME)


def test_a_cue_is_active_from_its_start_not_a_frame_before(session: Session) -> None:
    for check in session.cues:
        assert not check.early and not check.late, check.summary(FRAME)


def test_a_cue_across_a_segment_boundary_is_shown_once(session: Session) -> None:
    """Such a cue is in both segments (as the HLS spec has it); the player keeps one."""
    for check in session.cues:
        assert not check.duplicates, check.summary(FRAME)


# ---- FFmpeg's HLS demuxer ------------------------------------------------------------------


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_ffmpeg_lists_every_audio_and_subtitle_stream_with_its_language(masters: dict[str, str], container: str) -> None:
    streams = ffmpeg_streams(masters[container])
    audio = [metadata for kind, metadata in streams if kind == "audio"]
    assert [s.get("language") for s in audio] == [language for _, language in LISTED]
    assert all(int(s["variant_bitrate"]) > 0 for s in audio), audio
    subtitles = sorted(metadata.get("language", "") for kind, metadata in streams if kind == "subtitle")
    assert subtitles == sorted(SUBTITLE_LANGUAGES.values()), streams


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_ffprobe_lists_every_audio_stream_with_its_language(masters: dict[str, str], container: str) -> None:
    """Debian's ffprobe (FFmpeg 5.1): a second, independent build of the demuxer. Its HLS
    demuxer takes no subtitle rendition ("Can't support the subtitle"; FFmpeg 8's does, above)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("no ffprobe (apt-get install ffmpeg; .ci/run does)")
    done = subprocess.run(
        [ffprobe, "-v", "error", "-show_entries", "stream=codec_type:stream_tags=language", "-of", "json", masters[container]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    streams = json.loads(done.stdout)["streams"]
    assert [s["tags"]["language"] for s in streams if s["codec_type"] == "audio"] == [language for _, language in LISTED], streams
