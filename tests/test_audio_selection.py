"""Audio track selection (issue 16): the grammar of the title's `audio` (one spec: parsing, error
texts and the OpenAPI schema agree), what each selection picks from the multitrack source, the
muxed track of a title that cannot separate its audio, the 6-channel bitrate rule, and the
playlist APIs: an IMM request with a MasterURI gets its selected tracks as renditions next to the
master (`AudioTracks`, a livetx extension: IMM and OSS define no audio selection), one without
plays the selection's default track muxed, and OSS `hls/m3u8` refuses `audio`."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.contract import spec_of
from livetx.errors import ParameterError
from livetx.jobs import IMM_REQUEST
from livetx.layout import claim_key
from livetx.media.model import AudioSpec, AudioTrack
from livetx.media.params import TitleParams, parse_rendition_params, parse_title_params, resolve_surround_audio
from livetx.media.probe import probe
from livetx.settings import Settings
from livetx.storage.base import ObjectInfo
from livetx.titles import Title, build_title, parse_profile
from livetx.web.keys import SEGMENTS
from livetx.web.openapi import document
from tests.checker import check_tone, decode_audio, open_joined
from tests.conftest import app_settings
from tests.multitrack import TRACKS, MultiTrackSpec, write_multitrack

SOURCE = "tracks.mkv"
SEGMENTING = {"st": 5000, "initial_segments": [1000, 1000, 1500], "initd": 0}
API_KEY = "backend-" + "s" * 40
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SCHEMA = spec_of(TitleParams, "audio").schema()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("selection") / SOURCE
    write_multitrack(path, MultiTrackSpec(seconds=4.0))
    return path


# ---- the grammar -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        pytest.param("auto", "auto", id="auto"),
        pytest.param("ALL", "all", id="keyword-any-case"),
        pytest.param("default", "default", id="default"),
        pytest.param("muxed", "muxed", id="muxed"),
        pytest.param("i2", "i2", id="index"),
        pytest.param("I2.fr", "i2,fr", id="dots-as-oss-writes-them"),
        pytest.param("fre,en-US,pt-br", "fre,en-us,pt-br", id="languages"),
        pytest.param("fr,fr", "fr", id="each-once"),
        pytest.param(["de", "i3"], "de,i3", id="a-list"),
    ],
)
def test_valid_selections_and_their_normal_form(value: Any, normal: str) -> None:
    assert parse_title_params({"audio": value}).audio == normal
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(value)  # the schema takes what parsing takes


@pytest.mark.parametrize(
    ("value", "named"),
    [
        pytest.param("fr,,de", "''", id="empty-selector"),
        pytest.param("all,fr", "'all' is not a selector; keywords stand alone", id="keyword-in-a-list"),
        pytest.param("f", "'f'", id="one-letter"),
        pytest.param("english", "'english'", id="a-name-not-a-code"),
        pytest.param("i1234", "'i1234'", id="index-too-long"),
        pytest.param("fr;de", "'fr;de'", id="other-separator"),
        pytest.param("en_US", "'en_US'", id="underscore"),
        pytest.param(",".join(["fr"] * 17), "up to 16", id="too-many"),
        pytest.param(42, "one of auto, muxed, all, default", id="a-number"),
        pytest.param(["fr", 1], "one of auto, muxed, all, default", id="a-list-with-a-number"),
        pytest.param(["all"], "keywords stand alone", id="a-keyword-is-text"),
    ],
)
def test_invalid_selections_name_the_selector(value: Any, named: str) -> None:
    with pytest.raises(ParameterError) as refused:
        parse_title_params({"audio": value})
    assert refused.value.name == "audio" and named in refused.value.details["allowed"], refused.value.details
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(value)


def test_the_openapi_documents_the_selection_and_the_imm_extensions() -> None:
    schemas = document(Settings())["components"]["schemas"]
    assert {k: v for k, v in schemas["HlsParameters"]["properties"]["audio"].items() if k != "description"} == {
        **SCHEMA,
        "default": "auto",
    }
    assert schemas["HlsParameters"]["properties"]["surround"]["enum"] == [0, 1]
    request = schemas["PlaylistRequest"]["properties"]
    assert request["AudioTracks"]["oneOf"] == SCHEMA["oneOf"] and "livetx extension" in request["AudioTracks"]["description"]
    assert request["Surround"]["enum"] == [0, 1]
    assert IMM_REQUEST.fields["AudioTracks"].spec.allowed == spec_of(TitleParams, "audio").allowed


# ---- what a selection picks --------------------------------------------------------------------


def _title(source: Path, source_key: str | None = None, master_key: str | None = None, **title: Any) -> Title:
    profile = parse_profile("t", {**SEGMENTING, **title, "renditions": {"v": {"preset": "ultrafast", "ab": 128000}}})
    profile = replace(profile, source_key=source_key, master_key=master_key, track_prefix="out/master-" if master_key else None)
    return build_title(ObjectInfo(source.name, source.stat().st_size, "etag"), probe(str(source)), profile)


@pytest.mark.parametrize(
    ("audio", "names"),
    [
        pytest.param("all", ["a1", "a2", "a3", "a4"], id="all"),
        pytest.param("default", ["a1"], id="default"),
        pytest.param("fr", ["a2"], id="iso-639-1"),
        pytest.param("fre", ["a2"], id="bibliographic-code-matches-fra"),
        pytest.param("FRA", ["a2"], id="any-case"),
        pytest.param("en", ["a1", "a3"], id="a-language-with-two-tracks"),
        pytest.param("i4.en", ["a1", "a3", "a4"], id="stream-order-kept"),
        pytest.param("de,i4", ["a4"], id="one-track-once"),
    ],
)
def test_a_selection_picks_its_tracks(source: Path, audio: str, names: list[str]) -> None:
    title = _title(source, audio=audio)
    assert [r.name for r in title.audio_renditions] == names
    assert title.renditions[0].audio is None  # video-only variants
    everything = {r.name: r.spec_id for r in _title(source, audio="all").audio_renditions}
    assert all(everything[r.name] == r.spec_id for r in title.audio_renditions)  # a track's segments whatever the selection


@pytest.mark.parametrize("selector", ["ja", "i0", "i9", "en-us", "und"])
def test_a_selector_that_matches_no_track_is_refused_by_name(source: Path, selector: str) -> None:
    with pytest.raises(ParameterError) as refused:
        _title(source, audio=f"fr,{selector}")
    allowed = refused.value.details["allowed"]
    assert refused.value.name == "audio" and f"'{selector}' matches none" in allowed and "i1 en, i2 fr, i3 en, i4 de" in allowed


def test_without_a_master_a_selection_plays_its_default_track_muxed(source: Path) -> None:
    alone = _title(source, source_key=SOURCE, audio="fr,i3")  # an API target without MasterURI
    [variant] = alone.renditions
    assert variant.audio is not None and alone.muxed_track is not None and alone.muxed_track.index == 2  # the first chosen
    assert alone.job(variant, 0, "src").audio_stream == 2
    first = _title(source, source_key=SOURCE, audio="default")  # the first stream is the default: as muxed
    assert first.muxed_track is None and first.renditions == _title(source, source_key=SOURCE, audio="muxed").renditions
    assert variant.spec_id != first.renditions[0].spec_id  # another track, other segments
    with_master = _title(source, source_key=SOURCE, master_key="out/master.m3u8", audio="fr", subtitles="none")
    assert [(r.name, r.object_prefix) for r in with_master.renditions] == [("v", None), ("a2", "out/master-a2")]


@pytest.mark.parametrize(
    ("ab", "aq", "source_rate", "expected"),
    [
        pytest.param(None, None, None, 384000, id="default-3x128k"),
        pytest.param(96000, None, None, 288000, id="3x-ab"),
        pytest.param(None, 50, None, 528000, id="3x-what-aq-gives-a-pair"),
        pytest.param(200000, None, 448000, 448000, id="capped-at-the-source"),
    ],
)
def test_the_six_channel_bitrate_is_three_times_the_stereo(ab: int | None, aq: int | None, source_rate: int | None, expected: int) -> None:
    params = parse_rendition_params({"ab": ab, "aq": aq})
    track = AudioTrack(1, "ac3", 6, "5.1(side)", 48000, bit_rate=source_rate)
    assert resolve_surround_audio(params, track) == AudioSpec(48000, 6, expected)


# ---- the playlist APIs ---------------------------------------------------------------------------


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, source: Path) -> TestClient[Any, Any]:
    media = tmp_path / "media"
    media.mkdir()
    (media / SOURCE).write_bytes(source.read_bytes())
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_API_KEYS=f"backend:{API_KEY}",
        LIVETX_CACHE_LOOKAHEAD="false",
        LIVETX_TRANSCODE_WORKERS="2",
    )
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


def imm(**fields: Any) -> dict[str, Any]:
    target = {"URI": "oss://local/out/v", "Duration": 5, "InitialSegments": [1, 1, 1.5], "InitialTranscode": 0}
    return {"SourceURI": f"oss://local/{SOURCE}", "Targets": [target], **fields}


async def _get(client: TestClient[Any, Any], path: str) -> bytes:
    response = await client.get(path)
    assert response.status == 200, (path, response.status, await response.text())
    return await response.read()


async def _rendition(client: TestClient[Any, Any], master_path: str, uri: str) -> list[bytes]:
    """Every segment of the master's rendition `uri`, through the origin, as a player fetches them."""
    folder = master_path.rsplit("/", 1)[0] + "/"
    media = m3u8.loads((await _get(client, folder + uri)).decode())
    return [await _get(client, folder + s.uri) for s in media.segments]


async def test_imm_with_a_master_writes_the_selected_tracks_next_to_it(api: TestClient[Any, Any]) -> None:
    body = imm(MasterURI="oss://local/out/master.m3u8", AudioTracks="fr,de", SubtitleTracks="none")  # (subtitles: test_api_subtitles.py)
    response = await api.post("/api/v1/playlists", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert [p["URI"] for p in answer["VideoPlaylist"]] == ["oss://local/out/v.m3u8"]  # the targets only
    output = api.server.app[SEGMENTS].output
    master = m3u8.loads((await output.read("out/master.m3u8")).decode())
    assert [(m.uri, m.language, m.default) for m in master.media] == [("master-a2.m3u8", "fr", "YES"), ("master-a4.m3u8", "de", "NO")]
    assert [(p.uri, p.stream_info.audio) for p in master.playlists] == [("v.m3u8", "aac")]
    stored = m3u8.loads((await output.read("out/master-a2.m3u8")).decode())
    assert stored.segments[0].uri.startswith("master-a2-") and stored.segments[0].uri.endswith("-0.ts")
    for key in ("out/master.m3u8", "out/v.m3u8", "out/master-a2.m3u8", "out/master-a4.m3u8"):
        assert await output.stat(claim_key(key)) is not None, key  # claimed: no other job may write there
    playback = urlsplit(answer["PlaybackURL"])
    served = m3u8.loads((await _get(api, f"{playback.path}?{playback.query}")).decode())
    french = next(m.uri for m in served.media if m.language == "fr")
    with open_joined(await _rendition(api, playback.path, french)) as joined:
        report = check_tone(decode_audio(joined), TRACKS[1].tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report


async def test_imm_without_a_master_plays_the_chosen_track_muxed(api: TestClient[Any, Any]) -> None:
    response = await api.post("/api/v1/playlists", json=imm(AudioTracks="fr"), headers=AUTH)
    assert response.status == 200, await response.text()
    playback = urlsplit((await response.json())["PlaybackURL"])
    master = m3u8.loads((await _get(api, f"{playback.path}?{playback.query}")).decode())
    assert not master.media
    with open_joined(await _rendition(api, playback.path, master.playlists[0].uri)) as joined:
        assert joined.streams.video and joined.streams.audio
        report = check_tone(decode_audio(joined), TRACKS[1].tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report  # the French track, muxed


@pytest.mark.parametrize(
    ("fields", "field", "allowed"),
    [
        pytest.param({"AudioTracks": "fr,ja"}, "AudioTracks", "'ja' matches none", id="matches-no-track"),
        pytest.param({"AudioTracks": "fr;de"}, "AudioTracks", "'fr;de' is not a selector", id="not-a-selector"),
        pytest.param({"Surround": 2}, "Surround", "one of 0, 1", id="surround"),
    ],
)
async def test_imm_selection_errors_name_the_field(api: TestClient[Any, Any], fields: dict[str, Any], field: str, allowed: str) -> None:
    response = await api.post("/api/v1/playlists", json=imm(MasterURI="oss://local/out/master.m3u8", **fields), headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == field and allowed in error["allowed"], error
    assert not await api.server.app[SEGMENTS].output.stat("out/master.m3u8")  # nothing written


async def test_a_target_may_not_take_an_audio_renditions_place(api: TestClient[Any, Any]) -> None:
    body = imm(MasterURI="oss://local/out/master.m3u8")
    body["Targets"].append({"URI": "oss://local/out/master-a2", "InitialTranscode": 0})
    response = await api.post("/api/v1/playlists", json=body, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == "Targets[1].URI", error


@pytest.mark.parametrize("option", ["audio_fr", "surround_1"])
async def test_oss_defines_no_audio_selection(api: TestClient[Any, Any], option: str) -> None:
    b64 = base64.urlsafe_b64encode(b"local").decode().rstrip("=")
    process = f"hls/m3u8,{option}|sys/saveas,o_{base64.urlsafe_b64encode(b'oss/x').decode().rstrip('=')},b_{b64}"
    response = await api.post(f"/{SOURCE}?x-oss-process", data={"x-oss-process": process}, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == option.split("_")[0], error
