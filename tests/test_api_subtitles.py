"""Subtitles in playlists made through the APIs (issue 16): an IMM request with a MasterURI gets
its `SourceSubtitles` (in request order) and the source's embedded text tracks (`SubtitleTracks`,
a livetx extension: the title's `subtitles`) as WebVTT renditions next to the master, written to
output storage and claimed like its audio renditions, and served through the origin with their
cues on the media timeline. Without a master there are none (a 400 when asked for); a named file
that is unreadable is a 422 naming it, with nothing written; OSS `hls/m3u8` defines no subtitles.

The source is the multitrack MKV (tests/multitrack.py: SubRip `s5` and ASS `s6`, one cue each at
1-2 s); the sidecars are `tracks.en.srt` (tests/test_subtitle_renditions.py's) and a WebVTT file.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.layout import claim_key
from livetx.settings import Settings
from livetx.storage.base import Storage
from livetx.subtitles.cues import Cue
from livetx.web.keys import SEGMENTS
from livetx.web.openapi import document
from tests.conftest import app_settings
from tests.multitrack import MultiTrackSpec, write_multitrack
from tests.test_subtitle_renditions import CUES, MPEGTS, SRT, first_video_pts, read_vtt, x

SOURCE = "tracks.mkv"
API_KEY = "backend-" + "u" * 40
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MASTER = "oss://local/out/master.m3u8"
SIDECARS = ("tracks.en.srt", "tracks.fr.vtt")
VTT = b"WEBVTT\n\n00:00:01.500 --> 00:00:02.500\nbonjour\n\n00:00:03.000 --> 00:00:03.800 line:0\nau revoir\n"
VTT_CUES = [(1500, 2500, "bonjour"), (3000, 3800, "au revoir")]  # (start, end, text), ms
BROKEN = b"1\n00:00:xx,000 --> soon\nno valid time\n\n2\nnot even a timing line\n"
EMBEDDED = ["s5", "s6"]  # SubRip eng (default), ASS fra (forced)
FILES = [x(key) for key in SIDECARS]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-subtitles") / SOURCE
    write_multitrack(path, MultiTrackSpec(seconds=4.0))
    return path


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, source: Path) -> TestClient[Any, Any]:
    media, output = tmp_path / "media", tmp_path / "output"
    media.mkdir()
    output.mkdir()
    (media / SOURCE).write_bytes(source.read_bytes())
    (media / "tracks.en.srt").write_bytes(SRT)
    (media / "tracks.fr.vtt").write_bytes(VTT)
    (media / "broken.en.srt").write_bytes(BROKEN)
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_STORAGE_OUTPUT_URI=str(output),
        LIVETX_API_KEYS=f"backend:{API_KEY}",
        LIVETX_CACHE_LOOKAHEAD="false",
    )
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


def imm(*subtitles: str, **fields: Any) -> dict[str, Any]:
    """Windows 0-1, 1-2, 2-3.5, 3.5-4 s; the audio muxed (audio renditions are test_audio_selection.py's)."""
    target = {"URI": "oss://local/out/v", "Duration": 5, "InitialSegments": [1, 1, 1.5], "InitialTranscode": 0}
    target["Video"] = {"TranscodeVideo": {"Resolution": "x72"}}
    body = {"SourceURI": f"oss://local/{SOURCE}", "Targets": [target], "AudioTracks": "muxed", **fields}
    if subtitles:
        body["SourceSubtitles"] = [{"URI": f"oss://local/{key}"} for key in subtitles]
    return body


async def post(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post("/api/v1/playlists", json=body, headers=AUTH)
    return response.status, await response.json()


async def get(client: TestClient[Any, Any], path: str) -> bytes:
    response = await client.get(path)
    body = await response.read()
    assert response.status == 200, (path, response.status, body[:300])
    return body


def output_of(client: TestClient[Any, Any]) -> Storage:
    return client.server.app[SEGMENTS].output


def subtitles_of(master: m3u8.M3U8) -> list[tuple[str, str]]:
    return [(m.uri, m.language) for m in master.media if m.type == "SUBTITLES"]


async def served_cues(client: TestClient[Any, Any], folder: str, uri: str, zero: int) -> list[tuple[Fraction, Fraction, list[Cue]]]:
    """Each segment of the served subtitle rendition `uri`: its window (s) and its cues, moved by
    its X-TIMESTAMP-MAP onto title time (the first video frame's media time is `zero`, 90 kHz)."""
    playlist = m3u8.loads((await get(client, folder + uri)).decode())
    out = []
    start = Fraction(0)
    for segment in playlist.segments:
        vtt = read_vtt((await get(client, folder + segment.uri)).decode())
        assert vtt.mpegts == MPEGTS["ts"] == zero and vtt.local == 0
        shift = (vtt.mpegts - zero) // 90 - vtt.local
        stop = start + Fraction(str(segment.duration))
        out.append((start, stop, [replace(c, start=c.start + shift, end=c.end + shift) for c in vtt.cues]))
        start = stop
    return out


async def test_a_master_lists_them_and_the_origin_serves_their_cues(api: TestClient[Any, Any]) -> None:
    status, answer = await post(api, imm(*SIDECARS, MasterURI=MASTER))
    assert status == 200, answer
    assert [p["URI"] for p in answer["VideoPlaylist"]] == ["oss://local/out/v.m3u8"]  # the targets only
    output = output_of(api)
    stored = m3u8.loads((await output.read("out/master.m3u8")).decode())
    names = [*EMBEDDED, *FILES]  # embedded in stream order, then the request's files in its order
    assert subtitles_of(stored) == [(f"master-{n}.m3u8", lang) for n, lang in zip(names, ["en", "fr", "en", "fr"], strict=True)]
    assert [p.stream_info.subtitles for p in stored.playlists] == ["subs"]
    for name in names:  # each media playlist next to the master, claimed by the job
        key = f"out/master-{name}.m3u8"
        playlist = m3u8.loads((await output.read(key)).decode())
        assert playlist.segments[0].uri.startswith(f"master-{name}-") and playlist.segments[0].uri.endswith("-0.vtt")
        assert await output.stat(claim_key(key)) is not None, key

    playback = urlsplit(answer["PlaybackURL"])
    folder = playback.path.rsplit("/", 1)[0] + "/"
    served = m3u8.loads((await get(api, f"{playback.path}?{playback.query}")).decode())
    uris = {m.uri.split("?")[0].removesuffix(".m3u8"): m.uri for m in served.media if m.type == "SUBTITLES"}
    assert list(uris) == names
    video = m3u8.loads((await get(api, folder + served.playlists[0].uri)).decode())
    zero = first_video_pts(None, await get(api, folder + video.segments[0].uri))  # title time 0, 90 kHz

    english = await served_cues(api, folder, uris[FILES[0]], zero)
    for start, stop, cues in english:  # every cue overlapping the window, whole
        assert cues == [c for c in CUES if c.start < stop * 1000 and c.end > start * 1000], (start, stop)
    french = await served_cues(api, folder, uris[FILES[1]], zero)
    for start, stop, cues in french:
        assert [(c.start, c.end, c.text) for c in cues] == [c for c in VTT_CUES if c[0] < stop * 1000 and c[1] > start * 1000]
    assert {(c.start, c.end, c.text) for _, _, cues in french for c in cues} == set(VTT_CUES)

    embedded = await served_cues(api, folder, uris["s5"], zero)  # made by the pool, stored next to the master
    found = {n: [(c.start, c.end, c.text) for c in cues] for n, (_, _, cues) in enumerate(embedded) if cues}
    assert found == {1: [(1000, 2000, "t=1.000")]}
    await api.server.app[SEGMENTS].wait_idle()
    segment = m3u8.loads((await output.read("out/master-s5.m3u8")).decode()).segments[1].uri
    assert read_vtt((await output.read(f"out/{segment}")).decode()).cues  # the stored playlist names it where it is
    sidecar = m3u8.loads((await output.read(f"out/master-{FILES[0]}.m3u8")).decode()).segments[0].uri
    assert await output.stat(f"out/{sidecar}") is None  # a file's segments are made per request, never stored


@pytest.mark.parametrize(
    ("selection", "embedded"),
    [
        pytest.param("none", [], id="none"),
        pytest.param("FR", ["s6"], id="a-language"),
        pytest.param("s5", ["s5"], id="a-stream"),
    ],
)
async def test_subtitle_tracks_selects_the_embedded_ones(api: TestClient[Any, Any], selection: str, embedded: list[str]) -> None:
    status, answer = await post(api, imm(*SIDECARS, MasterURI=MASTER, SubtitleTracks=selection))
    assert status == 200, answer
    master = m3u8.loads((await output_of(api).read("out/master.m3u8")).decode())
    assert [uri for uri, _ in subtitles_of(master)] == [f"master-{n}.m3u8" for n in [*embedded, *FILES]]  # the files always


async def test_without_source_subtitles_the_embedded_tracks_play(api: TestClient[Any, Any]) -> None:
    status, answer = await post(api, imm(MasterURI=MASTER))
    assert status == 200, answer
    master = m3u8.loads((await output_of(api).read("out/master.m3u8")).decode())
    assert subtitles_of(master) == [("master-s5.m3u8", "en"), ("master-s6.m3u8", "fr")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(imm(*SIDECARS), "SourceSubtitles", id="source-subtitles"),
        pytest.param(imm(SubtitleTracks="en"), "SubtitleTracks", id="subtitle-tracks"),
    ],
)
async def test_without_a_master_asking_for_subtitles_is_a_400(api: TestClient[Any, Any], body: dict[str, Any], field: str) -> None:
    status, answer = await post(api, body)
    error = answer["error"]
    assert status == 400 and error["parameter"] == field and "needs MasterURI" in error["allowed"], error
    status, answer = await post(api, imm(SubtitleTracks="none"))  # what plays without a master anyway
    assert status == 200, answer
    playback = urlsplit(answer["PlaybackURL"])
    assert "SUBTITLES" not in (await get(api, f"{playback.path}?{playback.query}")).decode()


async def test_an_unreadable_subtitle_file_is_a_422_naming_it_and_writes_nothing(api: TestClient[Any, Any], tmp_path: Path) -> None:
    status, answer = await post(api, imm("tracks.en.srt", "broken.en.srt", MasterURI=MASTER))
    error = answer["error"]
    assert status == 422 and error["code"] == "subtitle_unreadable" and error["parameter"] == "SourceSubtitles[1].URI", error
    assert "broken.en.srt" in error["message"] and error["track"] == "broken.en.srt"
    assert [p for p in (tmp_path / "output").rglob("*") if p.is_file()] == []  # no playlist, claim or record


async def test_a_target_may_not_take_a_subtitle_renditions_place(api: TestClient[Any, Any]) -> None:
    body = imm(*SIDECARS, MasterURI=MASTER)
    body["Targets"].append({"URI": f"oss://local/out/master-{FILES[1]}", "InitialTranscode": 0})
    status, answer = await post(api, body)
    assert status == 400 and answer["error"]["parameter"] == "Targets[1].URI", answer
    assert await output_of(api).stat("out/master.m3u8") is None


async def test_oss_defines_no_subtitles(api: TestClient[Any, Any]) -> None:
    b64 = base64.urlsafe_b64encode(b"local").decode().rstrip("=")
    process = f"hls/m3u8,subtitles_en|sys/saveas,o_{base64.urlsafe_b64encode(b'oss/x').decode().rstrip('=')},b_{b64}"
    response = await api.post(f"/{SOURCE}?x-oss-process", data={"x-oss-process": process}, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == "subtitles", error


def test_the_openapi_documents_subtitle_tracks() -> None:
    request = document(Settings())["components"]["schemas"]["PlaylistRequest"]["properties"]
    hls = document(Settings())["components"]["schemas"]["HlsParameters"]["properties"]["subtitles"]
    assert request["SubtitleTracks"]["pattern"] == hls["pattern"] and "livetx extension" in request["SubtitleTracks"]["description"]
