"""Audio renditions (issue 16, `audio=all`) through the real app: the master lists every audio
track of the multitrack source as an EXT-X-MEDIA rendition of group "aac", the video variants
carry no audio, and each audio rendition's segments, fetched in a shuffled order, decode back to
back as that track's tone with clean joins, in MPEG-TS and in fMP4. A title left at the default
(`audio=muxed`) keeps its spec ids."""

from __future__ import annotations

import asyncio
import io
import random
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import pytest
from aiohttp.test_utils import TestClient, TestServer

from livetx.app import create_app
from livetx.dash.manifest import mpd
from livetx.errors import ParameterError
from livetx.media.probe import probe
from livetx.media.transcode import AAC_FRAME, TS_OFFSET
from livetx.settings import load_settings
from livetx.storage.base import ObjectInfo
from livetx.titles import build_title, parse_profile
from tests.checker import check_tone, decode_audio, open_fmp4, open_joined, residual_peaks
from tests.conftest import ROOT, TEST_SIGNING_KEYS
from tests.multitrack import TRACKS, MultiTrackSpec, write_multitrack

SECRET = "p" * 40
PULL = {"X-Livetx-Origin-Auth": SECRET}
SEGMENTING = {"st": 5000, "initial_segments": [1000, 1000, 1500], "initd": 0}
PROFILES = {"septs": "ts", "sepfmp4": "fmp4"}
CONFIG = "".join(
    f"""
[profiles.{name}]
st = 5000
initial_segments = [1000, 1000, 1500]
initd = 0
audio = "all"

[profiles.{name}.renditions.v]
preset = "ultrafast"
container = "{container}"
ab = 128000
"""
    for name, container in PROFILES.items()
)
SOURCE = "tracks.mkv"


@dataclass
class Served:
    master: m3u8.M3U8
    video_media: m3u8.M3U8
    video_segment: bytes  # the variant's segment 1 (with the init segment before it, fMP4)
    audio: dict[str, tuple[bytes | None, list[bytes]]]  # a<index> -> (init, segments in order)


async def _serve(config: Path, media: Path) -> dict[str, Served]:
    env = {
        "LIVETX_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "LIVETX_SIGNING_KEY_FILE": "",
        "LIVETX_API_KEY_FILE": "",
        "LIVETX_TRANSCODE_WORKERS": "2",
        "LIVETX_STORAGE_URI": str(media),
        "LIVETX_CACHE_LOOKAHEAD": "false",
        "LIVETX_CDN_ORIGIN_SECRET": SECRET,
    }
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(load_settings(config, env))))
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
        for profile in PROFILES:
            base = f"/hls/{profile}/{SOURCE}/"
            master = m3u8.loads((await get(base + "master.m3u8")).decode())
            video = m3u8.loads((await get(base + master.playlists[0].uri)).decode())
            segment = await get(base + video.segments[1].uri)
            if video.segment_map:
                segment = await get(base + video.segment_map[0].uri) + segment
            audio = {}
            for medium in audio_media(master):
                _, init, segments = await rendition(base, medium.uri)
                audio[medium.uri.removesuffix(".m3u8")] = (init, segments)
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
    return media / SOURCE


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


# ---- planning: spec ids, DASH --------------------------------------------------------------


def _title(source: Path, **title: Any) -> Any:
    rendition = {"preset": "ultrafast", "ab": 128000, "container": title.pop("container", "ts")}
    profile = parse_profile("t", {**SEGMENTING, **title, "renditions": {"v": rendition}})
    return build_title(ObjectInfo(source.name, source.stat().st_size, "etag"), probe(str(source)), profile)


def test_muxed_is_the_default_and_keeps_the_spec_ids(source: Path) -> None:
    default, muxed, separate = _title(source), _title(source, audio="muxed"), _title(source, audio="all")
    assert default == replace(muxed, profile=default.profile)
    assert [r.name for r in default.renditions] == ["v", "s5", "s6"] and default.renditions[0].audio is not None  # s: subtitles
    assert [r.name for r in separate.renditions] == ["v", "a1", "a2", "a3", "a4", "s5", "s6"]
    ids = [r.spec_id for r in separate.renditions]
    assert default.renditions[0].spec_id not in ids and len(set(ids)) == len(ids)
    assert separate.renditions[0].audio is None and all(r.windows == separate.renditions[0].windows for r in separate.renditions)


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


def test_api_made_playlists_refuse_separate_audio(source: Path) -> None:
    profile = replace(parse_profile("t", {**SEGMENTING, "audio": "all", "renditions": {"v": {}}}), source_key=source.name)
    with pytest.raises(ParameterError) as refused:
        build_title(ObjectInfo(source.name, source.stat().st_size, "etag"), probe(str(source)), profile)
    assert refused.value.name == "audio"
