"""Audio renditions (issue 16, the title's `audio`) through the real app: the master lists every
selected audio track of the multitrack source as an EXT-X-MEDIA rendition of group "aac", the
video variants carry no audio, and each audio rendition's segments, fetched in a shuffled order,
decode back to back as that track's tone with clean joins, in MPEG-TS and in fMP4. A selection
by index or language serves the tracks it names; `surround=1` adds a 6-channel rendition in
group "aac-6ch", each of whose channels decodes as the source channel's own tone, and lists each
variant once per group. The default (`auto`) keeps a single-track source muxed, and its spec ids."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from livetx.app import create_app
from livetx.dash.manifest import mpd, mpd_text
from livetx.errors import ConfigError
from livetx.media.model import AudioSpec
from livetx.media.probe import probe
from livetx.media.transcode import AAC_FRAME, TS_OFFSET
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, estimate_bandwidth, parse_profile
from tests.checker import check_tone, decode_audio, open_fmp4, open_joined, residual_peaks
from tests.conftest import ROOT, app_settings
from tests.multitrack import SURROUND_TONES, TRACKS, MultiTrackSpec, ToneTrack, write_multitrack

SECRET = "p" * 40
PULL = {"X-Livetx-Origin-Auth": SECRET}
SEGMENTING = {"st": 5000, "initial_segments": [1000, 1000, 1500], "initd": 0}
PROFILES = {"septs": "ts", "sepfmp4": "fmp4"}  # audio=all, over SOURCE
SURROUND = {"surts": "ts", "surfmp4": "fmp4"}  # surround=1 (and audio left at auto), over SURROUND_SOURCE
CHOSEN = {"pick": "fr.I3", "deflt": "default"}  # selections (MPEG-TS), over SOURCE
SOURCE = "tracks.mkv"
SURROUND_SOURCE = "surround.mkv"
SURROUND_TRACKS = (  # source streams 1 and 2
    ToneTrack(440.0, "eng", disposition=("default",)),
    ToneTrack(SURROUND_TONES[2], "deu", "Deutsch 5.1", channels=6, channel_tones=SURROUND_TONES),
)


def _profile(name: str, container: str, **title: str) -> str:
    lines = "".join(f"{key} = {value}\n" for key, value in title.items())
    return f"""
[profiles.{name}]
st = 5000
initial_segments = [1000, 1000, 1500]
initd = 0
subtitles = "none"
{lines}
[profiles.{name}.renditions.v]
preset = "ultrafast"
container = "{container}"
ab = 128000
"""


CONFIG = "".join(
    [
        *(_profile(name, container, audio='"all"') for name, container in PROFILES.items()),
        *(_profile(name, container, surround="1") for name, container in SURROUND.items()),
        *(_profile(name, "ts", audio=f'"{selection}"') for name, selection in CHOSEN.items()),
    ]
)
SERVED = {**dict.fromkeys([*PROFILES, *CHOSEN], SOURCE), **dict.fromkeys(SURROUND, SURROUND_SOURCE)}  # profile -> source


@dataclass
class Served:
    master: m3u8.M3U8
    video_media: m3u8.M3U8
    video_segment: bytes  # the variant's segment 1 (with the init segment before it, fMP4)
    audio: dict[str, tuple[bytes | None, list[bytes]]]  # a<index> -> (init, segments in order)


async def _serve(config: Path, media: Path) -> dict[str, Served]:
    settings = app_settings(
        config, LIVETX_TRANSCODE_WORKERS="2", LIVETX_STORAGE_URI=str(media), LIVETX_CACHE_LOOKAHEAD="false", LIVETX_CDN_ORIGIN_SECRET=SECRET
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    rng = random.Random(16)

    async def get(path: str) -> bytes:
        response = await client.get(path, headers=PULL)
        assert response.status == 200, (path, response.status, await response.text())
        return await response.read()

    async def rendition(base: str, uri: str) -> tuple[m3u8.M3U8, bytes | None, list[bytes]]:
        playlist = m3u8.loads((await get(base + uri)).decode())
        init = await get(base + playlist.segment_map[0].uri) if playlist.segment_map else None
        order = list(range(len(playlist.segments)))
        rng.shuffle(order)
        got = {i: await get(base + playlist.segments[i].uri) for i in order}
        return playlist, init, [got[i] for i in range(len(order))]

    out = {}
    try:
        for profile, source in SERVED.items():
            base = f"/hls/{profile}/{source}/"
            master = m3u8.loads((await get(base + "master.m3u8")).decode())
            video = m3u8.loads((await get(base + master.playlists[0].uri)).decode())
            segment = await get(base + video.segments[1].uri)
            if video.segment_map:
                segment = await get(base + video.segment_map[0].uri) + segment
            audio = {}
            for uri in dict.fromkeys(m.uri for m in audio_media(master)):  # (a stereo rendition may be in two groups)
                _, init, segments = await rendition(base, uri)
                audio[uri.removesuffix(".m3u8")] = (init, segments)
            out[profile] = Served(master, video, segment, audio)
    finally:
        await client.close()
    return out


def audio_media(master: m3u8.M3U8) -> list[m3u8.Media]:
    """The master's audio renditions (the source's subtitle tracks are renditions too: tests/test_subtitle_renditions.py)."""
    return [m for m in master.media if m.type == "AUDIO"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    media = tmp_path_factory.mktemp("audio-media")
    write_multitrack(media / SOURCE, MultiTrackSpec())
    write_multitrack(media / SURROUND_SOURCE, MultiTrackSpec(seconds=4.0, tracks=SURROUND_TRACKS))
    return media / SOURCE


@pytest.fixture(scope="module")
def one_track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("one-track") / "one.mkv"
    write_multitrack(path, MultiTrackSpec(seconds=2.0, tracks=TRACKS[:1]))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, source: Path) -> dict[str, Served]:
    config = tmp_path_factory.mktemp("audio-config") / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + CONFIG)
    return asyncio.run(_serve(config, source.parent))


# ---- the master ---------------------------------------------------------------------------

EXPECTED_MEDIA = [  # (URI, LANGUAGE, NAME, DEFAULT, AUTOSELECT, CHARACTERISTICS)
    ("a1.m3u8", "en", "English", "YES", "YES", None),
    ("a2.m3u8", "fr", "Français", "NO", "YES", None),
    ("a3.m3u8", "en", "Director's commentary", "NO", "NO", None),
    ("a4.m3u8", "de", "Deutsch 5.1", "NO", "YES", "public.accessibility.describes-video"),
]


@pytest.mark.parametrize("profile", PROFILES)
def test_master_lists_every_audio_track_once_in_one_group(served: dict[str, Served], profile: str) -> None:
    master = served[profile].master
    got = [(m.uri, m.language, m.name, m.default, m.autoselect, m.characteristics) for m in audio_media(master)]
    assert got == EXPECTED_MEDIA
    assert {(m.group_id, m.channels) for m in audio_media(master)} == {("aac", "2")}  # the 5.1 track: stereo


@pytest.mark.parametrize("profile", PROFILES)
def test_every_variant_names_the_audio_group_and_both_codecs(served: dict[str, Served], profile: str) -> None:
    variants = served[profile].master.playlists
    assert variants
    for variant in variants:
        assert variant.stream_info.audio == "aac"
        video, audio = variant.stream_info.codecs.split(",")
        assert video.startswith("avc1.") and audio == "mp4a.40.2"


@pytest.mark.parametrize("profile", PROFILES)
def test_video_variant_has_no_audio(served: dict[str, Served], profile: str) -> None:
    data = served[profile].video_segment
    with av.open(io.BytesIO(data), format="mpegts" if PROFILES[profile] == "ts" else "mp4") as one:
        assert len(one.streams.video) == 1 and not one.streams.audio


# ---- the audio renditions ------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("index", [1, 2, 3, 4])
def test_audio_rendition_is_its_track_with_clean_joins(served: dict[str, Served], profile: str, index: int) -> None:
    init, segments = served[profile].audio[f"a{index}"]
    fmp4 = PROFILES[profile] == "fmp4"
    assert (init is not None) == fmp4 and len(segments) == len(served[profile].video_media.segments)  # the video's windows
    with open_fmp4(init, segments) if init is not None else open_joined(segments) as joined:
        assert not joined.streams.video and joined.streams.audio[0].codec_context.channels == 2
        audio = decode_audio(joined)
    step = AAC_FRAME * 90000 / audio.sample_rate
    assert max(abs(b - a - step) for a, b in zip(audio.pts, audio.pts[1:], strict=False)) <= 90  # joins within 1 ms
    offset = Fraction(0) if fmp4 else TS_OFFSET
    track = TRACKS[index - 1]
    surround = track.channels > 2  # the downmix sets its own level
    report = check_tone(audio, track.tone_hz, skip_tail=3, offset=offset, relative=surround)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report  # this track's tone, phase constant
    if not surround:
        assert residual_peaks(audio, track.tone_hz, offset=offset)[2048 : -3 * 2048].max() < 0.05  # no click


def _tone_of(served: Served, name: str, tone_hz: float) -> None:
    _, segments = served.audio[name]
    with open_joined(segments) as joined:
        report = check_tone(decode_audio(joined), tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, (name, report)


def test_a_selection_serves_the_tracks_it_names_in_stream_order(served: dict[str, Served]) -> None:
    picked = served["pick"]  # "fr.I3": the French track (fra) and stream 3
    got = [(m.uri, m.language, m.name, m.default, m.autoselect) for m in picked.master.media]
    assert got == [("a2.m3u8", "fr", "Français", "YES", "YES"), ("a3.m3u8", "en", "Director's commentary", "NO", "NO")]
    _tone_of(picked, "a2", TRACKS[1].tone_hz)
    _tone_of(picked, "a3", TRACKS[2].tone_hz)
    assert all(v.stream_info.audio == "aac" for v in picked.master.playlists)


def test_default_serves_the_flagged_track_alone(served: dict[str, Served]) -> None:
    chosen = served["deflt"]
    assert [(m.uri, m.language, m.default) for m in chosen.master.media] == [("a1.m3u8", "en", "YES")]
    _tone_of(chosen, "a1", TRACKS[0].tone_hz)


# ---- surround ------------------------------------------------------------------------------


def _channels(init: bytes | None, segments: list[bytes]) -> tuple[np.ndarray, int, list[int]]:
    """Every channel of a rendition's segments decoded back to back: (channels x samples, rate, frame PTS)."""
    with open_fmp4(init, segments) if init is not None else open_joined(segments) as joined:
        frames = [(f.to_ndarray(), f.sample_rate, f.pts * f.time_base) for f in joined.decode(joined.streams.audio[0])]
    return np.concatenate([f[0] for f in frames], axis=1), frames[0][1], [round(f[2] * 90000) for f in frames]


def _levels(samples: np.ndarray, rate: int, tones: tuple[float, ...] = SURROUND_TONES) -> np.ndarray:
    """The amplitude of each tone in each channel (least squares over all but the first and last 0.1 s)."""
    x = samples[:, rate // 10 : -rate // 10].astype(np.float64)
    n = np.arange(x.shape[1])
    basis = np.concatenate([np.stack([np.sin(2 * np.pi * hz * n / rate), np.cos(2 * np.pi * hz * n / rate)], 1) for hz in tones], 1)
    fit, *_ = np.linalg.lstsq(basis, x.T, rcond=None)  # (2 x tones) x channels
    return np.hypot(fit[0::2], fit[1::2]).T  # channels x tones


@pytest.mark.parametrize("profile", SURROUND)
def test_surround_adds_a_six_channel_group_offering_every_track(served: dict[str, Served], profile: str) -> None:
    master = served[profile].master
    got = [(m.group_id, m.uri, m.name, m.channels, m.default) for m in master.media]
    assert got == [
        ("aac", "a1.m3u8", "English", "2", "YES"),
        ("aac", "a2.m3u8", "Deutsch 5.1", "2", "NO"),
        ("aac-6ch", "a1.m3u8", "English", "2", "YES"),  # a stereo track keeps its place in the 6-channel group
        ("aac-6ch", "a2c6.m3u8", "Deutsch 5.1", "6", "NO"),
    ]
    variants = [(v.uri, v.stream_info.audio, v.stream_info.bandwidth) for v in master.playlists]
    assert [v[:2] for v in variants] == [("v.m3u8", "aac"), ("v.m3u8", "aac-6ch")]  # every variant once per group
    stereo, six = (estimate_bandwidth(None, AudioSpec(48000, n, rate))[0] for n, rate in ((2, 128000), (6, 384000)))
    assert variants[1][2] - variants[0][2] == six - stereo  # each counts its group's highest audio


@pytest.mark.parametrize("profile", SURROUND)
def test_six_channel_rendition_keeps_every_channel_apart(served: dict[str, Served], profile: str) -> None:
    init, segments = served[profile].audio["a2c6"]
    assert len(segments) == len(served[profile].video_media.segments)  # the video's windows
    samples, rate, pts = _channels(init, segments)
    step = AAC_FRAME * 90000 / rate
    assert max(abs(b - a - step) for a, b in itertools.pairwise(pts)) <= 90  # joins within 1 ms
    levels = _levels(samples, rate)
    assert levels.shape == (6, 6)
    assert np.abs(np.diag(levels) - 0.5).max() < 0.03, levels  # FL FR FC LFE BL BR: each its own tone
    assert (levels - np.diag(np.diag(levels))).max() < 0.01, levels  # and nothing of another's


@pytest.mark.parametrize("profile", SURROUND)
def test_stereo_rendition_of_a_surround_track_is_its_downmix(served: dict[str, Served], profile: str) -> None:
    init, segments = served[profile].audio["a2"]
    samples, rate, _ = _channels(init, segments)
    left, right = _levels(samples, rate)
    fl, fr, fc, lfe, bl, br = range(6)
    for side, own, other in ((left, [fl, bl], [fr, br]), (right, [fr, br], [fl, bl])):
        assert side[[*other, lfe]].max() < 0.01, side  # nothing of the other side, nor the LFE
        front, back = side[own]
        assert abs(side[fc] / front - 0.7071) < 0.05 and abs(back / front - 0.7071) < 0.05, side  # centre and surround at -3 dB


# ---- planning: spec ids, DASH --------------------------------------------------------------


def _title(source: Path, **title: Any) -> Any:
    rendition = {"preset": "ultrafast", "ab": 128000, "container": title.pop("container", "ts")}
    profile = parse_profile("t", {**SEGMENTING, "subtitles": "none", **title, "renditions": {"v": rendition}})
    return build_title(ObjectInfo(source.name, source.stat().st_size, "etag"), probe(str(source)), profile)


def test_auto_is_the_default_muxed_for_one_track_with_its_spec_ids_and_separate_for_more(source: Path, one_track: Path) -> None:
    default, muxed = _title(one_track), _title(one_track, audio="muxed")
    assert default == replace(muxed, profile=default.profile)  # one audio track: muxed, with the ids it had
    assert [r.name for r in default.renditions] == ["v", "iframe"] and default.renditions[0].audio is not None
    assert _title(one_track, audio="all").renditions[0].spec_id != default.renditions[0].spec_id
    auto, muxed, separate = _title(source), _title(source, audio="muxed"), _title(source, audio="all")
    assert auto == replace(separate, profile=auto.profile)  # four: each its own rendition
    assert [r.name for r in separate.renditions] == ["v", "a1", "a2", "a3", "a4", "iframe"]  # (I-frames: last, video only)
    ids = [r.spec_id for r in separate.renditions]
    assert muxed.renditions[0].spec_id not in ids and len(set(ids)) == len(ids)
    assert separate.renditions[0].audio is None and all(r.windows == separate.renditions[0].windows for r in separate.renditions[:-1])


def test_surround_leaves_the_stereo_renditions_as_they_were(source: Path) -> None:
    plain, surround = _title(source.parent / SURROUND_SOURCE), _title(source.parent / SURROUND_SOURCE, surround=1)
    assert [r.name for r in surround.renditions] == ["v", "a1", "a2", "a2c6", "iframe"]
    # same specs and spec ids: the same segments
    assert surround.renditions[:3] == plain.renditions[:3] and surround.renditions[-1] == plain.renditions[-1]
    assert surround.rendition("a2c6").audio == AudioSpec(48000, 6, 384000)  # 3 x ab
    assert [r.name for r in _title(source, surround=1).audio_renditions] == ["a1", "a2", "a3", "a4", "a4c6"]  # 5.1 only


def test_dash_has_one_audio_set_per_language_and_role(source: Path) -> None:
    manifest = mpd(_title(source, audio="all", container="fmp4"))
    sets = [(s.content_type, s.lang, s.role, s.describes_video, [r.id for r in s.representations]) for s in manifest.adaptation_sets]
    assert sets == [
        ("video", None, None, False, ["v"]),
        ("audio", "en", "main", False, ["a1"]),
        ("audio", "fr", "alternate", False, ["a2"]),
        ("audio", "en", "commentary", False, ["a3"]),
        ("audio", "de", "alternate", True, ["a4"]),
    ]
    assert manifest.adaptation_sets[0].representations[0].codecs.startswith("avc1.")


def test_dash_gives_six_channels_a_set_of_their_own(source: Path) -> None:
    title = _title(source.parent / SURROUND_SOURCE, container="fmp4", surround=1)
    sets = [(s.lang, s.role, [(r.id, r.audio_channels) for r in s.representations]) for s in mpd(title).adaptation_sets[1:]]
    assert sets == [("en", "main", [("a1", 2)]), ("de", "alternate", [("a2", 2)]), ("de", "alternate", [("a2c6", 6)])]
    assert 'schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="6"' in mpd_text(title)


@pytest.mark.parametrize("name", ["audio", "surround"])
def test_the_audio_layout_is_the_profiles_not_a_renditions(name: str) -> None:
    with pytest.raises(ConfigError, match=f"'{name}' is the profile's, not rendition 'v'"):
        parse_profile("t", {"renditions": {"v": {name: "1" if name == "surround" else "all"}}})
