"""The playlist APIs in the request shapes of IMM GenerateVideoPlaylist and OSS hls/m3u8,
against a real S3 server (SeaweedFS) whose buckets carry the names of the documented samples."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.cache.seal import is_sealed
from livetx.crypto import aes
from livetx.factories import open_storages
from livetx.jobs import parse_imm
from livetx.layout import claim_key, record_key
from livetx.media.sample import SampleSpec, write_sample
from livetx.web.keys import CATALOG, SEGMENTS, SETTINGS
from tests.checker import decode_video, open_joined
from tests.conftest import Source, app_settings
from tests.s3server import SeaweedS3
from tests.support import IMM_SAMPLE

API_KEY = "backend-" + "k" * 40
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def avi(tmp_path_factory: pytest.TempPathFactory) -> Source:
    spec = SampleSpec(seconds=12.0, width=320, height=240, fps=Fraction(25), vcodec="mpeg4", acodec="libmp3lame", video_bitrate=800_000)
    path = tmp_path_factory.mktemp("avi") / "test.avi"
    write_sample(path, spec)
    return Source(path, spec)


@pytest.fixture
def make_client(aiohttp_client: Any, s3: SeaweedS3, tmp_path: Path, avi: Source, monkeypatch: pytest.MonkeyPatch) -> MakeClient:
    for name, value in s3.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)

    def settings(**env: str) -> Any:
        return app_settings(
            **{
                **s3.env,
                "LIVETX_STORAGE_URI": "s3://bucket",
                "LIVETX_STORAGE_OUTPUT_URI": "s3://bucket",
                "LIVETX_API_KEYS": f"backend:{API_KEY}",
                "LIVETX_CACHE_LOCAL_DIR": str(tmp_path / "tier"),
                "LIVETX_CACHE_LOOKAHEAD": "false",
                "LIVETX_TRANSCODE_WORKERS": "2",
                **env,
            },
        )

    async def make(**env: str) -> TestClient[Any, Any]:
        async with open_storages(settings(**env)) as (sources, _):
            if await sources.stat("test.avi") is None:
                await sources.write("test.avi", avi.path.read_bytes())
            if await sources.stat("sub.srt") is None:  # the documented sample's SourceSubtitles
                await sources.write("sub.srt", b"1\n00:00:01,000 --> 00:00:02,000\nsub\n")
        return await aiohttp_client(create_app(settings(**env)))  # type: ignore[no-any-return]

    return make


def frames_of(segments: list[bytes], format: str = "mpegts") -> list[int]:
    """The source frames shown, in order, each once. A frame may be held over two output
    slots here: PyAV's AVI/mpeg4 sample skips a tick after frame 0, and MP3 runs a frame past
    the video (the title lasts as long as its longest stream)."""
    indexes = decode_video(open_joined(segments, format=format)).indexes
    return [i for n, i in enumerate(indexes) if n == 0 or i != indexes[n - 1]]


async def play(client: TestClient[Any, Any], url: str) -> list[bytes]:
    """Every segment of the first variant behind a signed master URL."""
    parts = urlsplit(url)
    master = m3u8.loads(await (await client.get(f"{parts.path}?{parts.query}")).text())
    folder = parts.path.rsplit("/", 1)[0] + "/"
    media = m3u8.loads(await (await client.get(folder + master.playlists[0].uri)).text())
    out = []
    for segment in media.segments:
        response = await client.get(folder + segment.uri)
        assert response.status == 200
        out.append(await response.read())
    return out


async def play_fmp4(client: TestClient[Any, Any], url: str, variant: int = 0) -> tuple[m3u8.M3U8, list[bytes]]:
    """The master behind a signed URL, and the init and media segments of one of its variants."""
    parts = urlsplit(url)
    master = m3u8.loads(await (await client.get(f"{parts.path}?{parts.query}")).text())
    folder = parts.path.rsplit("/", 1)[0] + "/"
    media = m3u8.loads(await (await client.get(folder + master.playlists[variant].uri)).text())
    out = []
    for uri in [media.segment_map[0].uri, *(s.uri for s in media.segments)]:
        response = await client.get(folder + uri)
        assert response.status == 200
        out.append(await response.read())
    return master, out


async def test_imm_targets_take_their_container_from_the_request(make_client: MakeClient, avi: Source) -> None:
    """`Container` (a livetx extension) makes an H.264 target fMP4; an AV1 target is fMP4 by default."""
    h264 = {**IMM_SAMPLE["Targets"][0], "URI": "oss://bucket/cmaf/avc", "InitialTranscode": 0, "Container": "fmp4"}  # type: ignore[index]
    av1 = {**h264, "URI": "oss://bucket/cmaf/av1", "Video": {"TranscodeVideo": {"Codec": "AV1", "CRF": 35}}}
    del av1["Container"]
    body = {**IMM_SAMPLE, "MasterURI": "oss://bucket/cmaf/master.m3u8", "Targets": [av1, h264]}
    client = await make_client()
    response = await client.post("/api/v1/playlists", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    output = client.server.app[SEGMENTS].output
    for playlist in answer["VideoPlaylist"]:
        name = playlist["URI"].rsplit("/", 1)[1].removesuffix(".m3u8")
        media = m3u8.loads((await output.read(playlist["URI"].removeprefix("oss://bucket/"))).decode())
        assert media.version == 6 and media.segment_map[0].uri == f"{name}-{playlist['Token']}-init.mp4"
        assert media.segments[0].uri == f"{name}-{playlist['Token']}-0.m4s"
    master = m3u8.loads((await output.read("cmaf/master.m3u8")).decode())
    assert [p.uri for p in master.playlists] == ["avc.m3u8", "av1.m3u8"]  # H.264 leads
    assert master.playlists[1].stream_info.codecs.startswith("av01.0.")
    for variant in (0, 1):
        _, segments = await play_fmp4(client, answer["PlaybackURL"], variant)
        assert frames_of(segments, format="mp4") == list(range(avi.frames))


async def test_oss_takes_the_container_parameter(make_client: MakeClient, avi: Source) -> None:
    client = await make_client()
    process = f"hls/m3u8,initd_0,container_fmp4,s_x240|sys/saveas,o_{b64('oss/media')},b_{b64('bucket')}"
    response = await client.post("/test.avi?x-oss-process", data={"x-oss-process": process}, headers=AUTH)
    assert response.status == 200, await response.text()
    token = (await response.json())["VideoPlaylist"][0]["Token"]
    media = m3u8.loads((await client.server.app[SEGMENTS].output.read("oss/media.m3u8")).decode())
    assert media.segment_map[0].uri == f"media-{token}-init.mp4" and media.segments[0].uri == f"media-{token}-0.m4s"
    _, segments = await play_fmp4(client, (await response.json())["PlaybackURL"])
    assert frames_of(segments, format="mp4") == list(range(avi.frames))


async def test_imm_sample_request_as_documented(make_client: MakeClient, avi: Source) -> None:
    client = await make_client()
    response = await client.post("/api/v1/playlists", json=IMM_SAMPLE, headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["MasterURI"] == "oss://bucket/output/master.m3u8" and answer["RequestId"]
    assert answer["Duration"] == pytest.approx(12.0, abs=0.05)
    [playlist] = answer["VideoPlaylist"]
    assert playlist["URI"] == "oss://bucket/output/720p/720p.m3u8"
    assert playlist["Resolution"] == "320x240" and playlist["FrameRate"] == "25"  # 1280x capped: no upscale
    token = playlist["Token"]
    output = client.server.app[SEGMENTS].output
    media = m3u8.loads((await output.read("output/720p/720p.m3u8")).decode())
    assert [s.uri for s in media.segments][:2] == [f"720p-{token}-0.ts", f"720p-{token}-1.ts"]
    durations = [s.duration for s in media.segments]
    assert durations[:3] == [2, 2, 2] and len(durations) == 4  # 2,2,2, then one 10 s segment cut at the end
    assert sum(durations) == pytest.approx(answer["Duration"], abs=0.001)
    master = m3u8.loads((await output.read("output/master.m3u8")).decode())
    assert master.playlists[0].uri == "720p/720p.m3u8"
    segments = await play(client, answer["PlaybackURL"])
    assert frames_of(segments) == list(range(avi.frames))
    service = client.server.app[SEGMENTS]
    await service.wait_idle()
    for i, data in enumerate(segments):  # the segments sit where the API said they would
        assert await output.read(f"output/720p/720p-{token}-{i}.ts") == data


async def test_same_request_same_answer_on_another_origin(make_client: MakeClient) -> None:
    first = await make_client()
    a = await (await first.post("/api/v1/playlists", json=IMM_SAMPLE, headers=AUTH)).json()
    second = await make_client()  # another origin: knows the job from its record in storage
    segments = await play(second, a["PlaybackURL"])
    assert segments
    tagged = {**IMM_SAMPLE, "UserData": "order 17", "Tags": {"team": "a"}}  # echoed; no part of the job
    b = await (await second.post("/api/v1/playlists", json=tagged, headers=AUTH)).json()
    assert (a["Token"], a["VideoPlaylist"]) == (b["Token"], b["VideoPlaylist"])
    assert (b["UserData"], b["Tags"]) == ("order 17", {"team": "a"}) and "UserData" not in a


async def test_oss_sample_request_as_documented(make_client: MakeClient, avi: Source) -> None:
    client = await make_client(LIVETX_STORAGE_OUTPUT_URI="s3://outbucket")
    process = f"hls/m3u8,st_10000,initd_0,vcodec_h264,s_x240|sys/saveas,o_{b64('outobjprefix/media')},b_{b64('outbucket')}"
    response = await client.post("/test.avi?x-oss-process", data={"x-oss-process": process}, headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    [playlist] = answer["VideoPlaylist"]
    assert playlist["URI"] == "oss://outbucket/outobjprefix/media.m3u8"
    assert playlist["Resolution"] == "320x240" and answer["Duration"] == pytest.approx(12.0, abs=0.05)
    output = client.server.app[SEGMENTS].output
    media = m3u8.loads((await output.read("outobjprefix/media.m3u8")).decode())
    assert media.segments[0].uri == f"media-{playlist['Token']}-0.ts"
    segments = await play(client, answer["PlaybackURL"])
    assert frames_of(segments) == list(range(avi.frames))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"SourceURI": None}, "SourceURI", id="no-source"),
        pytest.param({"SourceURI": "http://bucket/test.avi"}, "SourceURI", id="source-scheme"),
        pytest.param({"SourceURI": "oss://otherbucket/test.avi"}, "SourceURI", id="source-elsewhere"),
        pytest.param({"MasterURI": "oss://bucket/output/master.txt"}, "MasterURI", id="master-not-m3u8"),
        pytest.param({"Targets": []}, "Targets", id="no-targets"),
        pytest.param({"Bogus": 1}, "Bogus", id="unknown-field"),
        pytest.param({"Targets": [{"URI": "oss://outbucket/x"}]}, "Targets[0].URI", id="target-elsewhere"),
        pytest.param({"Targets": [{"URI": "oss://bucket/o/../x"}]}, "Targets[0].URI", id="target-traversal"),
        pytest.param({"Targets": [{"URI": "oss://bucket/x", "Duration": 3}]}, "Targets[0].Duration", id="duration-range"),
        pytest.param(
            {"Targets": [{"URI": "oss://bucket/x", "Video": {"TranscodeVideo": {"Codec": "vp9"}}}]},
            "Targets[0].Video.TranscodeVideo.Codec",
            id="codec",
        ),
        pytest.param(
            {"Targets": [{"URI": "oss://bucket/x", "Video": {"TranscodeVideo": {"Resolution": "1281x720"}}}]},
            "Targets[0].Video.TranscodeVideo.Resolution",
            id="odd-resolution",
        ),
        pytest.param(
            {"Targets": [{"URI": "oss://bucket/x", "Audio": {"TranscodeAudio": {"SampleRate": 12345}}}]},
            "Targets[0].Audio.TranscodeAudio.SampleRate",
            id="sample-rate",
        ),
        pytest.param({"Targets": [{"URI": "oss://bucket/x"}, {"URI": "oss://bucket/x"}]}, "Targets[1].URI", id="same-uri-twice"),
        pytest.param(
            {"Targets": [{"URI": "oss://bucket/x", "Container": "ts", "Video": {"TranscodeVideo": {"Codec": "av1"}}}]},
            "Targets[0].Container",
            id="av1-in-ts",
        ),
    ],
)
async def test_invalid_imm_requests_name_the_field(make_client: MakeClient, change: dict[str, Any], field: str) -> None:
    client = await make_client()
    body = {k: v for k, v in {**IMM_SAMPLE, **change}.items() if v is not None}
    response = await client.post("/api/v1/playlists", json=body, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == field, error


async def test_unknown_source_is_404_and_api_needs_its_key(make_client: MakeClient) -> None:
    client = await make_client()
    missing = await client.post("/api/v1/playlists", json={**IMM_SAMPLE, "SourceURI": "oss://bucket/none.avi"}, headers=AUTH)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "source_not_found"
    anonymous = await client.post("/api/v1/playlists", json=IMM_SAMPLE)
    assert anonymous.status == 401
    oss_anonymous = await client.post("/test.avi?x-oss-process", data={"x-oss-process": "hls/m3u8"})
    assert oss_anonymous.status == 401


@pytest.mark.parametrize(
    ("process", "field"),
    [
        pytest.param("hls/sign,live_1", "x-oss-process", id="other-operation"),
        pytest.param(f"hls/m3u8,st_100|sys/saveas,o_{b64('o')},b_{b64('bucket')}", "st", id="st-range"),
        pytest.param(f"hls/m3u8,bogus_1|sys/saveas,o_{b64('o')},b_{b64('bucket')}", "bogus", id="unknown-param"),
        pytest.param("hls/m3u8,st_10000", "sys/saveas", id="no-saveas"),
        pytest.param(f"hls/m3u8|sys/saveas,o_{b64('o')},b_{b64('elsewhere')}", "sys/saveas", id="other-bucket"),
        pytest.param("hls/m3u8|sys/saveas,o_***,b_***", "sys/saveas.b", id="not-base64"),
    ],
)
async def test_invalid_oss_requests_name_the_parameter(make_client: MakeClient, process: str, field: str) -> None:
    client = await make_client()
    response = await client.post("/test.avi?x-oss-process", data={"x-oss-process": process}, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == field, error


async def play_encrypted(client: TestClient[Any, Any], url: str) -> tuple[m3u8.M3U8, list[bytes]]:
    """The first variant's media playlist behind a signed master URL, and its segments, each
    fetched as served and decrypted with the key its EXT-X-KEY names (fetched with the token the
    playlist handed on; IV: the segment's sequence number, livetx/crypto/aes.py)."""
    parts = urlsplit(url)
    master = m3u8.loads(await (await client.get(f"{parts.path}?{parts.query}")).text())
    folder = parts.path.rsplit("/", 1)[0] + "/"
    media = m3u8.loads(await (await client.get(folder + master.playlists[0].uri)).text())
    keys: dict[str, bytes] = {}
    out = []
    for n, segment in enumerate(media.segments):
        assert segment.key is not None and segment.key.method == "AES-128" and segment.key.iv is None
        if segment.key.uri not in keys:
            response = await client.get(folder + segment.key.uri)
            assert response.status == 200 and response.headers["Cache-Control"] == "private, no-store"
            keys[segment.key.uri] = await response.read()
        encrypted = await (await client.get(folder + segment.uri)).read()
        clear = aes.decrypt(keys[segment.key.uri], aes.sequence_iv(n), encrypted)
        assert clear is not None and is_sealed(clear)
        out.append(clear)
    assert all(len(key) == 16 for key in keys.values())
    return media, out


def stored_keys(text: str) -> list[str]:
    """The EXT-X-KEY URIs of a media playlist, in order."""
    return [key.uri for key in m3u8.loads(text).keys if key is not None]


async def test_an_imm_encrypted_target_plays_with_its_keys(make_client: MakeClient, avi: Source) -> None:
    """`Targets[].Encryption` (a livetx extension): the PlaybackURL's media playlist has an
    EXT-X-KEY per key period, each key URL answers with the token the playlist handed on, and
    the segments decrypt to the whole title. The stored playlist names the keys on the origin,
    without a token: they answer 401 there."""
    body = own_outputs("encrypted")  # its own URIs: the S3 server is the whole session's
    body["Targets"][0]["Encryption"] = {"Method": "AES-128", "KeyRotation": 2}
    client = await make_client(LIVETX_SERVER_BASE_URL="https://origin.example/")
    response = await client.post("/api/v1/playlists", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    media, segments = await play_encrypted(client, answer["PlaybackURL"])
    assert len(media.segments) == 4 and len(media.keys) == 2  # 2,2,2,6 s: keys of segments 0-1 and 2-3
    assert frames_of(segments) == list(range(avi.frames))
    stored = (await client.server.app[SEGMENTS].output.read("encrypted/v.m3u8")).decode()
    served_names = [key.uri.split("?")[0] for key in media.keys]
    title = urlsplit(answer["PlaybackURL"]).path.removesuffix("master.m3u8")
    assert stored_keys(stored) == [f"https://origin.example{title}{name}" for name in served_names]
    anonymous = await client.get(urlsplit(stored_keys(stored)[0]).path)
    assert anonymous.status == 401 and (await anonymous.json())["error"]["code"] == "token_missing"


async def test_oss_takes_encryption_and_key_rotation(make_client: MakeClient) -> None:
    client = await make_client()
    options = "initd_0,s_x240,encryption_aes-128,key_rotation_3"
    process = f"hls/m3u8,{options}|sys/saveas,o_{b64('enc/media')},b_{b64('bucket')}"
    response = await client.post("/test.avi?x-oss-process", data={"x-oss-process": process}, headers=AUTH)
    assert response.status == 200, await response.text()
    stored = (await client.server.app[SEGMENTS].output.read("enc/media.m3u8")).decode()
    public = client.server.app[SETTINGS].server.public_url  # no server.base_url: http://host:port
    assert len(stored_keys(stored)) == 2 and all(uri.startswith(f"{public}/hls/j-") for uri in stored_keys(stored))
    media, segments = await play_encrypted(client, (await response.json())["PlaybackURL"])
    assert [key.uri.split("?")[0] for key in media.keys] == [uri.rsplit("/", 1)[1] for uri in stored_keys(stored)]
    assert len(segments) == len(media.segments)


async def test_an_encrypted_request_without_a_master_key_is_refused_and_writes_nothing(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_ENCRYPTION_KEYS="")
    catalog = client.server.app[CATALOG]
    body = own_outputs("nokey")
    body["Targets"][0]["Encryption"] = {"Method": "AES-128"}
    job = parse_imm(body, catalog.sources.key_for_uri, catalog.output.key_for_uri)
    response = await client.post("/api/v1/playlists", json=body, headers=AUTH)
    error = (await response.json())["error"]
    assert response.status == 400 and error["parameter"] == "Targets[0].Encryption.Method", error
    assert "no encryption master key" in error["message"]
    assert await catalog.output.stat(record_key(job.id)) is None
    assert all([await catalog.output.stat(key) is None for key in job.claims()])


def own_outputs(prefix: str, crf: int = 26) -> dict[str, Any]:
    target = {**IMM_SAMPLE["Targets"][0], "URI": f"oss://bucket/{prefix}/v", "InitialTranscode": 0}  # type: ignore[index]
    target["Video"] = {"TranscodeVideo": {"Codec": "h264", "CRF": crf}}
    return {**IMM_SAMPLE, "MasterURI": f"oss://bucket/{prefix}/master.m3u8", "Targets": [target]}


async def test_another_origin_sees_a_jobs_claims(make_client: MakeClient) -> None:
    first = await make_client()
    mine = own_outputs("claimed")
    response = await first.post("/api/v1/playlists", json=mine, headers=AUTH)
    assert response.status == 200, await response.text()
    second = await make_client()  # knows the claims from output storage only
    taken = await second.post("/api/v1/playlists", json=own_outputs("claimed", crf=30), headers=AUTH)
    error = (await taken.json())["error"]
    assert taken.status == 409 and error["code"] == "output_claimed" and error["parameter"] == "MasterURI"
    again = await second.post("/api/v1/playlists", json=mine, headers=AUTH)
    assert again.status == 200 and (await again.json())["Token"] == (await response.json())["Token"]


async def test_a_job_may_not_write_over_an_object_it_did_not_make(make_client: MakeClient) -> None:
    client = await make_client()
    output = client.server.app[SEGMENTS].output
    await output.write("foreign/master.m3u8", b"#EXTM3U\n")  # an operator's, or a pre-existing object
    taken = await client.post("/api/v1/playlists", json=own_outputs("foreign"), headers=AUTH)
    assert taken.status == 409 and (await taken.json())["error"]["parameter"] == "MasterURI"
    assert await output.read("foreign/master.m3u8") == b"#EXTM3U\n"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"SourceURI": "oss://bucket/none.avi"}, id="missing-source"),
        pytest.param({"MasterURI": "oss://bucket/test.avi/default/master.m3u8"}, id="profile-area"),
    ],
)
async def test_a_failed_request_writes_no_job_record(make_client: MakeClient, change: dict[str, str]) -> None:
    client = await make_client()
    catalog = client.server.app[CATALOG]
    assert catalog.output is not None
    body = {**own_outputs("failed"), **change}
    job = parse_imm(body, catalog.sources.key_for_uri, catalog.output.key_for_uri)
    response = await client.post("/api/v1/playlists", json=body, headers=AUTH)
    assert response.status in (404, 422)
    assert await catalog.output.stat(record_key(job.id)) is None
    assert all([await catalog.output.stat(claim_key(key)) is None for key in job.claims()])
