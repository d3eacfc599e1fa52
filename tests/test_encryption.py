"""Encrypted HLS (issue 18), server side: AES-128 renditions through the real app and the real
server, against clear twins.

Four profiles share one source and every parameter: `encts` and `encfm` encrypt (AES-128, a new
key every KEY_ROTATION segments) what `clearts` and `clearfm` leave clear, in MPEG-TS and fMP4.
They are made once (`made`), and every test reads them: an encrypted segment is noise without
its key, and decrypted with the key from its key URL it is, byte for byte, its clear twin as
served (seal included). FFmpeg's HLS demuxer plays the encrypted titles from a real server.
The key URL answers only a viewer's token; the stored copies are checked through the
encryption; a master key rotation keeps old playlists playing while the old key is configured.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import m3u8
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from livetx.app import create_app
from livetx.cache.envelope import CLEAR, Aes128, envelope_for
from livetx.cache.keys import strong_etag
from livetx.cache.seal import is_sealed, seal
from livetx.crypto import aes
from livetx.crypto.keys import KEY_BYTES, VERSION_HEX, Derived, KeyName, period_of, version_tag
from livetx.errors import ConfigError
from livetx.factories import make_signer
from livetx.layout import segment_key
from livetx.media.model import INIT
from livetx.settings import Settings, load_settings
from livetx.signing import Signer
from livetx.urls import title_prefix
from livetx.web.keys import CATALOG, CONTENT_KEYS, SEGMENTS, SETTINGS
from tests.checker import TS_OFFSET, check_tone, decode_audio, decode_video
from tests.conftest import ROOT, TEST_MASTER_KEYS, Server, Source, app_settings, launch_server
from tests.s3server import BUCKET, SeaweedS3
from tests.support import get_url, samples, wait_for

KEY_ROTATION = 2  # segments per content key: 6 segments, 3 keys
PROFILE = """
[profiles.{name}]
st = 5000
initial_segments = [1000, 1000, 1000, 1000, 1000]
initd = 0
encryption = "{encryption}"
key_rotation = {rotation}

[profiles.{name}.renditions.v]
container = "{container}"
s = "x180"
preset = "ultrafast"
ab = 128000
"""
ENCRYPTED = {"ts": "encts", "fmp4": "encfm"}  # container -> encrypted profile
CLEAR_TWIN = {"encts": "clearts", "encfm": "clearfm"}  # ... and its clear twin
CONTAINERS = list(ENCRYPTED)
SOURCE = "a.mp4"  # the `mp4-30` test source: 7 s, 210 frames
SEGMENTS_PER_TITLE = 6
M1_SECRET = TEST_MASTER_KEYS.split(":", 1)[1]
M2 = "m2:" + "ef" * 32
QUIET = {"LIVETX_CACHE_LOOKAHEAD": "false"}  # segments are made only when asked for
CDN_SECRET = "o" * 40
REPLACED = "r.mp4"  # a source the shared app's test replaces
SHARED = pytest.mark.asyncio(loop_scope="module")  # tests of the shared app run on its loop


def profiles_text() -> str:
    out = ""
    for container, name in ENCRYPTED.items():
        out += PROFILE.format(name=name, encryption="aes-128", rotation=KEY_ROTATION, container=container)
        out += PROFILE.format(name=CLEAR_TWIN[name], encryption="none", rotation=0, container=container)
    return out


@dataclass
class Served:
    """One title as a viewer got it: the media playlist and every URI's bytes."""

    media: str  # the media playlist's text, URIs signed
    segment_uris: list[str]  # paths with their token
    segments: list[bytes]
    init: bytes | None = None
    key_uris: dict[int, str] = field(default_factory=dict)  # key period -> path with token
    keys: dict[int, bytes] = field(default_factory=dict)  # key period -> the 16 bytes served


@dataclass
class Made:
    home: Path
    config: Path
    media: Path  # the source store; the output store is its `.livetx` folder
    titles: dict[str, Served]  # profile -> title


def entropy(data: bytes) -> float:
    """Shannon entropy of the byte distribution, bits per byte (8: every byte value equally likely)."""
    counts = Counter(data)
    return -sum(n / len(data) * math.log2(n / len(data)) for n in counts.values())


def settings_for(made: Made, media: Path | None = None, **env: str) -> Settings:
    return app_settings(made.config, LIVETX_STORAGE_URI=str(media or made.media), **{**QUIET, **env})


@asynccontextmanager
async def running(made: Made, media: Path | None = None, **env: str) -> AsyncIterator[TestClient[Any, Any]]:
    """The app on the made titles' stores (or on `media`), with `env` on top."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings_for(made, media, **env))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def signer_of(client: TestClient[Any, Any]) -> Signer:
    return make_signer(client.server.app[SETTINGS])


def title_token(client: TestClient[Any, Any], profile: str, key: str = SOURCE, ttl: int = 600, **claims: Any) -> str:
    """The query of a viewer's token for the whole title."""
    return signer_of(client).sign_prefix(title_prefix(profile, key), int(time.time()) + ttl, **claims).query_string()


async def serve_playlist(client: TestClient[Any, Any], profile: str, key: str = SOURCE) -> Served:
    """Master, media playlist and keys of the title, as a player fetches them."""
    base = title_prefix(profile, key)
    query = title_token(client, profile, key)

    async def get(uri: str) -> bytes:
        response = await client.get(base + uri)
        assert response.status == 200, (uri, response.status, await response.text())
        return await response.read()

    master = m3u8.loads((await get("master.m3u8?" + query)).decode())
    text = (await get(master.playlists[0].uri)).decode()
    playlist = m3u8.loads(text)
    served = Served(text, [base + s.uri for s in playlist.segments], [])
    for index, segment in enumerate(playlist.segments):  # (m3u8 gives each segment the key that applies to it)
        if segment.key is not None and segment.key.uri:
            served.key_uris.setdefault(period_of(index, KEY_ROTATION), base + segment.key.uri)
    served.keys = {p: await get(uri.removeprefix(base)) for p, uri in served.key_uris.items()}
    if playlist.segment_map:
        served.init = await get(playlist.segment_map[0].uri)
    return served


async def serve_title(client: TestClient[Any, Any], profile: str, key: str = SOURCE) -> Served:
    """The title's playlists, keys and every segment, as a player fetches them."""
    served = await serve_playlist(client, profile, key)
    served.segments = list(await asyncio.gather(*(fetch(client, uri) for uri in served.segment_uris)))
    return served


async def fetch(client: TestClient[Any, Any], uri: str, **headers: str) -> bytes:
    response = await client.get(uri, headers=headers)
    assert response.status == 200, (uri, response.status, await response.text())
    return await response.read()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def made(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Made:
    """The four titles, made once, in one app; their segments stay in the output store."""
    home = tmp_path_factory.mktemp("encryption")
    media = home / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / SOURCE)
    config = home / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + profiles_text())
    made = Made(home, config, media, {})
    async with running(made, LIVETX_TRANSCODE_WORKERS="2") as client:
        names = [*ENCRYPTED.values(), *CLEAR_TWIN.values()]
        made.titles = dict(zip(names, await asyncio.gather(*(serve_title(client, n) for n in names)), strict=True))
        await client.server.app[SEGMENTS].wait_idle()  # every write-back is in the store
    return made


def copy_media(made: Made, to: Path) -> Path:
    """A copy of the made titles' stores, for a test that changes them."""
    shutil.copytree(made.media, to)
    return to


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(made: Made) -> AsyncIterator[TestClient[Any, Any]]:
    """The app the in-process tests share (starting one costs seconds), on a copy of the made
    stores, with a CDN origin secret. Its hot tier starts empty: a segment's first request is
    answered from its stored file. Each test reads segments no other test of this app reads."""
    media = copy_media(made, made.home / "shared")
    shutil.copy(made.media / SOURCE, media / REPLACED)
    async with running(made, media, LIVETX_CDN_ORIGIN_SECRET=CDN_SECRET) as client:
        yield client


def app_media(app: TestClient[Any, Any]) -> Path:
    return Path(app.server.app[SETTINGS].storage.uri)


# ---- content keys and the envelope, alone ------------------------------------------------


def _hkdf_sha256(secret: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with no salt (a zero-filled one), written out: what crypto/keys.py says it does."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def test_content_keys_are_hkdf_of_the_master_key_and_the_key_name() -> None:
    """Every origin derives the same key from the same facts (no key is stored): the derivation
    is HKDF-SHA256 over the key's name, and must never change (it would strand every stored
    encrypted segment)."""
    secret = bytes.fromhex(M1_SECRET)
    name = KeyName("m1", version_tag("secure", "movies/a.mp4", '"etag"'), 3)
    key = Derived({"m1": secret}).key(name)
    info = b"\n".join((b"livetx-content-key-v1", b"m1", name.version.encode(), b"3"))
    assert key.key == _hkdf_sha256(secret, info, KEY_BYTES)
    assert len(key.key) == len(key.key_id) == len(key.constant_iv) == KEY_BYTES
    assert len({key.key, key.key_id, key.constant_iv}) == 3  # the key id and the IV reveal nothing of the key
    assert key.key.hex() not in repr(key) and key.constant_iv.hex() not in repr(key)
    assert Derived({"m1": secret}).key(name) == key  # derived again: the same


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(KeyName("m1", version_tag("secure", "movies/a.mp4", '"etag"'), 4), id="next-period"),
        pytest.param(KeyName("m1", version_tag("secure", "movies/a.mp4", '"etag2"'), 3), id="replaced-source"),
        pytest.param(KeyName("m1", version_tag("secure", "movies/b.mp4", '"etag"'), 3), id="other-source"),
        pytest.param(KeyName("m1", version_tag("other", "movies/a.mp4", '"etag"'), 3), id="other-profile"),
        pytest.param(KeyName("m2", version_tag("secure", "movies/a.mp4", '"etag"'), 3), id="other-master-key"),
    ],
)
def test_every_fact_of_a_key_name_changes_the_key(other: KeyName) -> None:
    source = Derived({"m1": bytes.fromhex(M1_SECRET), "m2": bytes.fromhex(M2.split(":")[1])})
    name = KeyName("m1", version_tag("secure", "movies/a.mp4", '"etag"'), 3)
    assert source.key(other).key != source.key(name).key
    assert source.key(other).key_id != source.key(name).key_id


def test_unknown_master_keys_give_no_key() -> None:
    source = Derived({"m1": bytes.fromhex(M1_SECRET)})
    assert source.kids == ("m1",) and source.knows("m1") and not source.knows("m2")
    with pytest.raises(KeyError):
        source.key(KeyName("m2", "0" * 12, 0))
    assert M1_SECRET not in repr(source)


@pytest.mark.parametrize(("index", "rotation", "period"), [(0, 0, 0), (99, 0, 0), (0, 2, 0), (1, 2, 0), (2, 2, 1), (5, 2, 2), (30, 30, 1)])
def test_key_periods(index: int, rotation: int, period: int) -> None:
    assert period_of(index, rotation) == period


def test_the_aes_envelope_holds_only_its_own_sealed_ciphertext() -> None:
    made = (b"\x47" + bytes(range(187))) * 50  # an MPEG-TS segment as the pool makes it: whole packets
    key, other_key = bytes(range(16)), bytes(range(1, 17))
    envelope = Aes128(key, aes.sequence_iv(7))
    stored = envelope.close(made)
    assert stored != seal(made) and len(stored) % aes.BLOCK == 0
    assert envelope.holds(stored) and envelope.open(stored) == seal(made)
    assert aes.decrypt(key, (7).to_bytes(16, "big"), stored) == seal(made)  # IV: the sequence number, 128-bit big-endian
    middle = len(stored) // 2
    bad = {
        "a byte flipped": stored[:middle] + bytes([stored[middle] ^ 1]) + stored[middle + 1 :],
        "cut by a block": stored[:-16],
        "cut mid-block": stored[:-5],
        "padded": stored + bytes(16),
        "empty": b"",
        "clear and sealed": seal(made),
        "another key's": Aes128(other_key, aes.sequence_iv(7)).close(made),
        "another segment's IV": Aes128(key, aes.sequence_iv(8)).close(made),
        "encrypted unsealed": aes.encrypt(key, aes.sequence_iv(7), made),
    }
    for what, data in bad.items():
        assert not envelope.holds(data), what
    assert CLEAR.holds(seal(made)) and not CLEAR.holds(stored)


# ---- 1. a segment without its key; with it ----------------------------------------------


@pytest.mark.parametrize("container", CONTAINERS)
def test_the_media_playlist_names_one_key_per_period_before_its_first_segment(made: Made, container: str) -> None:
    """EXT-X-KEY (RFC 8216 4.3.2.4) before segments 0, 2 and 4, AES-128, without an IV attribute
    (the IV is the media sequence number, which starts at 0), its URI signed like the
    segments'; fMP4's EXT-X-MAP comes first (the init segment is clear). The clear twin has none."""
    lines = made.titles[ENCRYPTED[container]].media.splitlines()
    keys = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-KEY:")]
    segments = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    assert [segments.index(k + 2) for k in keys] == list(range(0, SEGMENTS_PER_TITLE, KEY_ROTATION))  # KEY, EXTINF, URI
    for period, k in enumerate(keys):
        attributes = lines[k].removeprefix("#EXT-X-KEY:")
        method, uri = attributes.split(",", 1)
        assert method == "METHOD=AES-128" and "IV=" not in attributes
        name = uri.removeprefix('URI="').split("?")[0]
        assert name.startswith("key-m1-") and name.endswith(f"-{period}.key") and len(name.split("-")[2]) == VERSION_HEX
        assert "sig=" in uri
    assert not any(line.startswith("#EXT-X-MEDIA-SEQUENCE:") and line != "#EXT-X-MEDIA-SEQUENCE:0" for line in lines)
    if container == "fmp4":
        assert next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-MAP:")) < keys[0]
    assert "#EXT-X-KEY" not in made.titles[CLEAR_TWIN[ENCRYPTED[container]]].media


@SHARED
async def test_each_part_of_an_encrypted_rendition_has_its_envelope(made: Made, app: TestClient[Any, Any]) -> None:
    """Media segment n: AES-128 under its period's key (the key URL's), IV n; the init segment
    and a clear rendition's segments: sealed only."""
    keys = app.server.app[CONTENT_KEYS]
    rendition = (await app.server.app[CATALOG].title("encfm", SOURCE)).renditions[0]
    assert envelope_for(rendition, INIT, keys) is CLEAR
    for index in range(SEGMENTS_PER_TITLE):
        envelope = envelope_for(rendition, index, keys)
        assert isinstance(envelope, Aes128)
        assert envelope.key == made.titles["encfm"].keys[period_of(index, KEY_ROTATION)] and envelope.iv == index.to_bytes(16, "big")
    clear = (await app.server.app[CATALOG].title("clearfm", SOURCE)).renditions[0]
    assert all(envelope_for(clear, index, keys) is CLEAR for index in (INIT, 0, 5))


def decoded_frames(data: bytes, init: bytes | None) -> int:
    """Video frames FFmpeg finds in the bytes (after the init segment, fMP4); 0 if it gives up."""
    try:
        with av.open(io.BytesIO((init or b"") + data), format="mp4" if init is not None else "mpegts") as container:
            if not container.streams.video:
                return 0
            return sum(1 for _ in container.decode(container.streams.video[0]))
    except av.FFmpegError:
        return 0


@pytest.mark.parametrize("container", CONTAINERS)
def test_a_segment_without_its_key_is_noise(made: Made, container: str) -> None:
    encrypted = made.titles[ENCRYPTED[container]]
    clear = made.titles[CLEAR_TWIN[ENCRYPTED[container]]]
    assert len(encrypted.segments) == SEGMENTS_PER_TITLE
    for index, data in enumerate(encrypted.segments):
        assert entropy(data) > 7.9, index
        assert entropy(clear.segments[index]) < 7.9, index  # (what the measure tells apart)
        assert decoded_frames(data, encrypted.init) == 0, index
        assert decoded_frames(clear.segments[index], clear.init) > 0, index


@pytest.mark.parametrize("container", CONTAINERS)
def test_a_segment_decrypted_with_the_key_of_its_key_url_is_its_clear_twin(made: Made, container: str) -> None:
    """IV = the segment's media sequence number (its index), 16 bytes big-endian; the plaintext is
    the clear profile's segment as served, seal included: the seal is inside the encryption."""
    encrypted = made.titles[ENCRYPTED[container]]
    clear = made.titles[CLEAR_TWIN[ENCRYPTED[container]]]
    assert sorted(encrypted.keys) == list(range(SEGMENTS_PER_TITLE // KEY_ROTATION))
    assert len(set(encrypted.keys.values())) == len(encrypted.keys)  # a new key each period
    for index, data in enumerate(encrypted.segments):
        key = encrypted.keys[period_of(index, KEY_ROTATION)]
        assert aes.decrypt(key, index.to_bytes(16, "big"), data) == clear.segments[index], index
        assert is_sealed(clear.segments[index])
        wrong_iv = aes.decrypt(key, (index + 1).to_bytes(16, "big"), data)
        assert wrong_iv != clear.segments[index]
        other_key = encrypted.keys[(period_of(index, KEY_ROTATION) + 1) % len(encrypted.keys)]
        assert aes.decrypt(other_key, index.to_bytes(16, "big"), data) != clear.segments[index]
    if container == "fmp4":
        assert encrypted.init == clear.init and is_sealed(encrypted.init or b"")  # no media in it: clear


# ---- 2. FFmpeg's HLS demuxer, from the real server ----------------------------------------


@pytest.fixture(scope="module")
def server(made: Made) -> Iterator[Server]:
    """`livetx serve` with the profiles of `made`, on its stores (the titles are made already)."""
    home = made.home / "server"
    home.mkdir()
    with launch_server(home, made.media, LIVETX_CONFIG=str(made.config), **QUIET) as running_server:
        yield running_server


def access_lines(server: Server) -> list[dict[str, Any]]:
    """The server's access log lines (JSON), as written so far."""
    lines = (json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == "access"]


@pytest.mark.parametrize("container", CONTAINERS)
def test_ffmpeg_decrypts_and_plays_an_encrypted_title_across_its_key_rotations(
    server: Server, sources: dict[str, Source], container: str
) -> None:
    """A stock FFmpeg 8 (PyAV's 8.1) plays it with no option. Its hls demuxer checks
    `allowed_extensions` only for file: URLs (so `allowed_extensions=m3u8` still plays these
    http ones); with `extension_picky` (on by default) it checks each media segment URL, the
    query after it ignored, against `allowed_segment_extensions`, whose default holds ts and m4s
    (`allowed_segment_extensions=mp4` refuses this playlist, `extension_picky=0` lifts that). A
    key URL is never checked: `.key` is in neither default list, and the keys are fetched."""
    src = sources["mp4-30"]
    profile = ENCRYPTED[container]
    url = server.cli("url", SOURCE, "--profile", profile, "--base-url", server.base_url)
    master = m3u8.loads(get_url(url)[2].decode(), uri=url)
    media = m3u8.loads(get_url(master.playlists[0].absolute_uri)[2].decode())
    key_uris = [k.uri.split("?")[0] for k in media.keys if k is not None]
    assert len(set(key_uris)) == SEGMENTS_PER_TITLE // KEY_ROTATION and all(k.method == "AES-128" for k in media.keys if k)
    with av.open(url) as playing:
        video = decode_video(playing)
    assert video.indexes == list(range(src.frames))  # every frame once, in order, across each key change
    with av.open(url) as playing:
        audio = decode_audio(playing)
    offset = TS_OFFSET if container == "ts" else Fraction(0)
    report = check_tone(audio, src.spec.tone_hz, skip_tail=3, offset=offset)
    assert report.worst_phase < 0.05, report
    assert len(audio.samples) / audio.sample_rate == pytest.approx(src.spec.seconds, abs=0.05)
    served = {(line["path"], line["status"]) for line in access_lines(server)}
    for key in key_uris:  # FFmpeg fetched every key of the title
        assert (title_prefix(profile, SOURCE) + key, 200) in served, key


# ---- 3. the key URL ---------------------------------------------------------------------


def key_forms(key: bytes) -> list[bytes]:
    """The ways 16 key bytes could be written out: raw, hex, base64 (standard and URL-safe,
    with and without padding), Python's repr."""
    b64, url64 = base64.b64encode(key), base64.urlsafe_b64encode(key)
    return [key, key.hex().encode(), key.hex().upper().encode(), b64, b64.rstrip(b"="), url64, url64.rstrip(b"="), repr(key).encode()]


def holds_no_key(text: bytes, keys: list[bytes]) -> bool:
    return not any(form in text for key in keys for form in key_forms(key))


def key_path(made: Made, profile: str = "encts", period: int = 0) -> str:
    """A key URL's path (no token)."""
    return made.titles[profile].key_uris[period].split("?")[0]


def all_keys(made: Made) -> list[bytes]:
    return [key for title in made.titles.values() for key in title.keys.values()]


@SHARED
async def test_the_key_url_answers_a_viewer_token_with_the_key_never_kept_by_a_cache(made: Made, app: TestClient[Any, Any]) -> None:
    for period, uri in made.titles["encts"].key_uris.items():
        response = await app.get(uri)
        assert response.status == 200
        assert await response.read() == made.titles["encts"].keys[period] and response.content_length == KEY_BYTES
        assert response.headers["Cache-Control"] == "private, no-store"
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert "ETag" not in response.headers and "Last-Modified" not in response.headers


def _token(client: TestClient[Any, Any], case: str, path: str) -> str:
    now = int(time.time())
    signer = signer_of(client)
    if case == "expired":
        return signer.sign_prefix(title_prefix("encts", SOURCE), now - 3600).query_string()
    if case == "other title":
        return title_token(client, "encts", "b.mp4")
    if case == "other profile":
        return title_token(client, "clearts")
    if case == "wrong IP":
        return title_token(client, "encts", ip="10.9.8.7")
    if case == "another key's path token":
        return signer.sign_path(path.replace("-0.key", "-1.key"), now + 600).query_string()
    raise AssertionError(case)


@SHARED
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        pytest.param("no token", 401, "token_missing", id="no-token"),
        pytest.param("expired", 403, "token_expired", id="expired"),
        pytest.param("other title", 403, "token_scope_mismatch", id="other-title"),
        pytest.param("other profile", 403, "token_scope_mismatch", id="other-profile"),
        pytest.param("wrong IP", 403, "token_ip_mismatch", id="wrong-ip"),
        pytest.param("another key's path token", 403, "token_bad_signature", id="path-token-of-another-key"),
    ],
)
async def test_the_key_url_refuses_a_token_that_does_not_cover_it(
    made: Made, app: TestClient[Any, Any], case: str, status: int, code: str
) -> None:
    path = key_path(made)
    url = path if case == "no token" else f"{path}?{_token(app, case, path)}"
    response = await app.get(url)
    body = await response.read()
    assert response.status == status and json.loads(body)["error"]["code"] == code
    assert holds_no_key(body, all_keys(made))


@SHARED
async def test_the_cdn_origin_secret_alone_does_not_unlock_a_key(made: Made, app: TestClient[Any, Any]) -> None:
    """A CDN pulling with the origin secret gets segments without a viewer token (its edge
    checked one), never a key: the edge must forward the viewer's token."""
    origin = {"X-Livetx-Origin-Auth": CDN_SECRET}
    segment = await app.get(made.titles["encts"].segment_uris[0].split("?")[0], headers=origin)
    assert segment.status == 200  # the secret is accepted ...
    refused = await app.get(key_path(made), headers=origin)
    body = await refused.read()
    assert refused.status == 401 and json.loads(body)["error"]["code"] == "token_missing"  # ... but not for a key
    assert holds_no_key(body, all_keys(made))
    forwarded = await app.get(made.titles["encts"].key_uris[0], headers=origin)
    assert forwarded.status == 200 and await forwarded.read() == made.titles["encts"].keys[0]


@SHARED
@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(lambda v: f"key-m1-{v}-{SEGMENTS_PER_TITLE // KEY_ROTATION}.key", "past the title", id="period-past-the-end"),
        pytest.param(lambda v: f"key-m9-{v}-0.key", "no longer configured", id="unknown-master-key"),
        pytest.param(lambda v: "key-m1-0123456789ab-0.key", "older version", id="other-title-version"),
    ],
)
async def test_a_key_url_naming_no_key_of_the_title_is_404(made: Made, app: TestClient[Any, Any], name: Any, message: str) -> None:
    version = key_path(made).rsplit("/", 1)[1].split("-")[2]
    path = title_prefix("encts", SOURCE) + name(version)
    response = await app.get(f"{path}?{title_token(app, 'encts')}")
    body = await response.read()
    error = json.loads(body)["error"]
    assert response.status == 404 and error["code"] == "key_not_found" and message in error["message"]
    assert holds_no_key(body, all_keys(made))
    clear = title_prefix("clearts", SOURCE) + name(version)  # a clear title has no keys at all
    response = await app.get(f"{clear}?{title_token(app, 'clearts')}")
    assert response.status == 404 and (await response.json())["error"]["code"] == "key_not_found"


@SHARED
async def test_the_key_url_of_a_replaced_source_is_404(app: TestClient[Any, Any], sources: dict[str, Source]) -> None:
    old = await serve_playlist(app, "encts", REPLACED)
    assert (await app.get(old.key_uris[0])).status == 200
    shutil.copy(sources["video-only"].path, app_media(app) / REPLACED)  # another file under the same key
    app.server.app[CATALOG].forget(REPLACED)  # (rather than wait out cache.stat_ttl)
    response = await app.get(old.key_uris[0])
    body = await response.read()
    assert response.status == 404 and json.loads(body)["error"]["code"] == "key_not_found"
    assert "older version" in json.loads(body)["error"]["message"] and holds_no_key(body, list(old.keys.values()))
    new = await serve_playlist(app, "encts", REPLACED)
    assert new.key_uris[0] != old.key_uris[0] and new.keys[0] != old.keys[0]  # the new version's own key


@SHARED
async def test_key_requests_are_limited_per_token_and_counted(made: Made, app: TestClient[Any, Any]) -> None:
    """`encryption.key_burst` requests of one token at once, then 429 until the bucket refills
    (`key_requests` a minute); /metrics counts what passed the token check."""
    burst = app.server.app[SETTINGS].encryption.key_burst
    before = samples(await (await app.get("/metrics")).text())
    one, other = title_token(app, "encts", ttl=900), title_token(app, "encts", ttl=901)  # two viewers' tokens
    path = key_path(made)
    for _ in range(burst):
        assert (await app.get(f"{path}?{one}")).status == 200
    limited = await app.get(f"{path}?{one}")
    body = await limited.read()
    assert limited.status == 429 and json.loads(body)["error"]["code"] == "key_rate_limited"
    assert int(limited.headers["Retry-After"]) == 1  # one request back within a second at 60 a minute
    assert holds_no_key(body, all_keys(made))
    assert (await app.get(f"{path}?{other}")).status == 200  # another viewer's token is not limited
    assert (await app.get(path)).status == 401  # refused before the handler: not counted
    after = samples(await (await app.get("/metrics")).text())

    def counted(result: str) -> float:
        name = ("livetx_key_requests_total", (("result", result),))
        return after.get(name, 0) - before.get(name, 0)

    assert counted("served") == burst + 1 and counted("limited") == 1


def test_no_key_material_reaches_the_server_log(made: Made, server: Server) -> None:
    """Keys served, refused, missing and rate-limited on the real server: its log names the key
    URLs (no token) and never holds a key, in any spelling, nor the master secret."""
    signer = make_signer(load_settings(None, server.env))
    prefix = title_prefix("encts", SOURCE)
    token = signer.sign_prefix(prefix, int(time.time()) + 1234).query_string()  # one viewer, this test's alone
    paths = [uri.split("?")[0] for uri in made.titles["encts"].key_uris.values()]
    served = [get_url(f"{server.base_url}{path}?{token}") for path in paths]
    assert [body for _, _, body in served] == list(made.titles["encts"].keys.values())  # the same keys as in-process
    wrong_ip = signer.sign_prefix(prefix, int(time.time()) + 600, ip="10.9.8.7").query_string()
    for url, status in (
        (server.base_url + paths[0], 401),
        (f"{server.base_url}{paths[0]}?{wrong_ip}", 403),
        (f"{server.base_url}{paths[0].replace('-0.key', '-9.key')}?{token}", 404),
    ):
        assert get_url(url)[0] == status, url
    burst = load_settings(None, server.env).encryption.key_burst
    statuses = [get_url(f"{server.base_url}{paths[0]}?{token}")[0] for _ in range(burst)]
    assert statuses[-1] == 429  # (burst - len(paths) served, then limited)
    log = server.log.read_bytes()
    assert paths[0].encode() in log and token.split("sig=")[1].encode() not in log
    assert holds_no_key(log, all_keys(made)) and M1_SECRET.encode() not in log


# ---- 4. Range requests -------------------------------------------------------------------


RANGES = ["bytes=100-999", "bytes=-500", "bytes=1000-", "bytes=0-0"]


def expected_slice(data: bytes, header: str) -> tuple[bytes, str]:
    """The bytes a Range header asks of `data`, and the Content-Range they come with."""
    first, last = header.removeprefix("bytes=").split("-")
    start = len(data) - int(last) if not first else int(first)
    stop = len(data) if not first or not last else int(last) + 1
    return data[start:stop], f"bytes {start}-{stop - 1}/{len(data)}"


async def check_range(app: TestClient[Any, Any], uri: str, header: str, full: bytes, etag: str) -> None:
    response = await app.get(uri, headers={"Range": header})
    body, content_range = expected_slice(full, header)
    assert response.status == 206, (header, response.status)
    assert await response.read() == body and response.headers["Content-Range"] == content_range, header
    assert response.headers["ETag"] == etag, header


async def segment_key_of(app: TestClient[Any, Any], profile: str, index: int) -> str:
    title = await app.server.app[CATALOG].title(profile, SOURCE)
    return segment_key(title, title.renditions[0], index)


@SHARED
@pytest.mark.parametrize("container", CONTAINERS)
async def test_range_requests_on_an_encrypted_segment_from_its_file_and_from_memory(
    made: Made, app: TestClient[Any, Any], container: str
) -> None:
    """A byte range of the ciphertext, the same whether the stored file (FileResponse) or the
    hot tier's copy (livetx/web/segments.py `_in_memory`) answers it, under one ETag."""
    profile = ENCRYPTED[container]
    service = app.server.app[SEGMENTS]
    title = made.titles[profile]
    spec = title.segment_uris[0].split("?")[0].rsplit("/", 1)[1].split("-")[1]  # <rendition>-<spec id>-<n>.ts
    # from the stored files: the first request of a segment (1, 2: read by no other test here)
    for index, header in ((1, RANGES[0]), (2, RANGES[1])):
        stored = service.stats.hits["storage"]
        await check_range(app, title.segment_uris[index], header, title.segments[index], strong_etag(spec, index))
        assert service.stats.hits["storage"] == stored + 1  # (not from memory)
    etag = strong_etag(spec, 1)
    # from memory, once the hot tier holds segment 1 (the first request offered it)
    key = await segment_key_of(app, profile, 1)
    await wait_for(lambda: service.hot.get(key) is not None, 30, "segment 1 in the hot tier")
    hot = service.stats.hits["hot"]
    for header in RANGES:
        await check_range(app, title.segment_uris[1], header, title.segments[1], etag)
    assert service.stats.hits["hot"] == hot + len(RANGES)
    whole = await app.get(title.segment_uris[1])
    assert await whole.read() == title.segments[1] and whole.headers["ETag"] == etag


# ---- 5. damaged stored copies -----------------------------------------------------------


def flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :]


@SHARED
@pytest.mark.parametrize(
    ("profile", "index", "damage"),
    [
        pytest.param("encts", 3, "a byte flipped", id="ts-byte-flipped"),
        pytest.param("encfm", 3, "a byte flipped", id="fmp4-byte-flipped"),
        pytest.param("encts", 4, "its clear twin", id="ts-stored-clear"),
        pytest.param("encts", 5, "cut by a block", id="ts-cut-by-a-block"),
    ],
)
async def test_a_damaged_stored_encrypted_segment_is_made_again(
    made: Made, app: TestClient[Any, Any], profile: str, index: int, damage: str
) -> None:
    """The seal is checked through the encryption: a stored copy that is changed, cut by whole
    cipher blocks (its padding then still reads right) or whole and sealed but clear fails,
    and the segment is made again; what is sent decrypts to a sealed segment."""
    service = app.server.app[SEGMENTS]
    good = made.titles[profile].segments[index]
    path = service.output.local_path(await segment_key_of(app, profile, index))
    assert path is not None and path.read_bytes() == good
    clear = made.titles[CLEAR_TWIN[profile]].segments[index]
    path.write_bytes({"a byte flipped": flipped(good), "its clear twin": clear, "cut by a block": good[:-16]}[damage])
    corrupt, transcodes = service.stats.corrupt, service.stats.transcodes
    served = await fetch(app, made.titles[profile].segment_uris[index])
    assert served == good
    assert service.stats.corrupt == corrupt + 1 and service.stats.transcodes == transcodes + 1
    key = made.titles[profile].keys[period_of(index, KEY_ROTATION)]
    assert is_sealed(aes.decrypt(key, aes.sequence_iv(index), served) or b"")
    await service.wait_idle()
    assert path.read_bytes() == good  # the damaged copy was replaced


async def test_a_damaged_encrypted_copy_in_the_local_tier_or_in_s3_is_refused(
    made: Made, s3: SeaweedS3, s3_env: None, tmp_path: Path
) -> None:
    """Output in S3 (real SeaweedFS) with the local tier in front of it: a tier copy that fails
    the seal check through the encryption is replaced from S3 (no transcode); an S3 object
    that fails it is made again and overwritten."""
    env = {**s3.env, "LIVETX_STORAGE_OUTPUT_URI": f"s3://{BUCKET}/{tmp_path.name}", "LIVETX_CACHE_LOCAL_DIR": str(tmp_path / "tier")}
    async with running(made, LIVETX_CACHE_HOT_MAX_BYTES="0", **env) as client:  # no hot copy in front of the stored ones
        service = client.server.app[SEGMENTS]
        title = made.titles["encts"]
        good = await fetch(client, title.segment_uris[0])
        assert good == title.segments[0]
        await service.wait_idle()
        key = await segment_key_of(client, "encts", 0)
        tier_file = service.tier.path(key) if service.tier is not None else None
        assert tier_file is not None and tier_file.read_bytes() == good and await service.output.read(key) == good
        tier_file.write_bytes(flipped(good))
        corrupt, transcodes = service.stats.corrupt, service.stats.transcodes
        assert await fetch(client, title.segment_uris[0]) == good
        assert service.stats.corrupt == corrupt + 1 and service.stats.transcodes == transcodes  # read again from S3
        assert tier_file.read_bytes() == good
        await service.output.write(key, flipped(good))
        tier_file.unlink()
        assert await fetch(client, title.segment_uris[0]) == good
        assert service.stats.corrupt == corrupt + 2 and service.stats.transcodes == transcodes + 1  # made again
        await service.wait_idle()
        assert await service.output.read(key) == good


# ---- 6. master key rotation -------------------------------------------------------------


def spec_of(uri: str) -> str:
    """The spec id in a segment URI `<rendition>-<spec id>-<n>.<ext>?<token>`."""
    return uri.split("?")[0].rsplit("/", 1)[1].split("-")[1]


async def test_a_master_key_rotation_keeps_old_playlists_playing_while_the_old_key_is_configured(made: Made, tmp_path: Path) -> None:
    """Restarted with `active_kid = m2` and both keys: a playlist fetched under m1 keeps playing
    (its segments, even one made only now, and its keys answer) while new playlists use m2.
    Once m1 is no longer configured, its keys and segments are 404: reload the playlist."""
    media = copy_media(made, tmp_path / "media")
    old = made.titles["encts"]  # fetched while m1 was the only master key
    async with running(made, media, LIVETX_ENCRYPTION_KEYS=f"{TEST_MASTER_KEYS},{M2}", LIVETX_ENCRYPTION_ACTIVE_KID="m2") as client:
        service = client.server.app[SEGMENTS]
        title = await client.server.app[CATALOG].title("encts", SOURCE)
        under_m1 = title.rendition_of_spec("v", spec_of(old.segment_uris[0]), ("m1", "m2"))
        assert under_m1.encryption is not None and under_m1.encryption.kid == "m1"
        unmade = service.output.local_path(segment_key(title, under_m1, 5))
        assert unmade is not None
        unmade.unlink()  # a segment of the old playlist nobody asked for before the rotation
        transcodes = service.stats.transcodes
        for index, uri in enumerate(old.segment_uris):
            assert await fetch(client, uri) == old.segments[index], index
        assert service.stats.transcodes == transcodes + 1  # made now, under m1: the same bytes
        for period, uri in old.key_uris.items():
            assert await fetch(client, uri) == old.keys[period]
        new = await serve_playlist(client, "encts")
        assert all("/key-m2-" in uri.split("?")[0] for uri in new.key_uris.values())
        assert spec_of(new.segment_uris[0]) != spec_of(old.segment_uris[0]) and not set(new.keys.values()) & set(old.keys.values())
        first = await fetch(client, new.segment_uris[0])
        assert aes.decrypt(new.keys[0], aes.sequence_iv(0), first) == made.titles["clearts"].segments[0]
    async with running(made, media, LIVETX_ENCRYPTION_KEYS=M2) as client:
        for uri in old.key_uris.values():
            response = await client.get(uri)
            error = (await response.json())["error"]
            assert response.status == 404 and error["code"] == "key_not_found" and "reload the playlist" in error["message"]
        for uri in old.segment_uris:
            response = await client.get(uri)
            error = (await response.json())["error"]
            assert response.status == 404 and error["code"] == "segment_not_found" and "reload the playlist" in error["message"]
        for period, uri in new.key_uris.items():  # the m2 playlist plays on
            assert await fetch(client, uri) == new.keys[period]
        assert await fetch(client, new.segment_uris[0]) == first


# ---- 7. configuration -------------------------------------------------------------------


def test_sample_aes_in_mpeg_ts_is_refused_as_the_config_is_loaded(made: Made, tmp_path: Path) -> None:
    """cbcs protects the samples of fMP4 segments: a profile asking it of MPEG-TS renditions
    is a config error naming `encryption` (before: a 400 on each of its playlist requests)."""
    config = tmp_path / "livetx.toml"
    for container, refused in (("ts", True), ("fmp4", False)):
        config.write_text(made.config.read_text() + PROFILE.format(name="cbcs", encryption="sample-aes", rotation=0, container=container))
        if not refused:
            assert app_settings(config).profiles["cbcs"].title.encryption == "sample-aes"
            continue
        with pytest.raises(ConfigError, match=r"profile 'cbcs'.*'encryption'.*container=ts"):
            app_settings(config)
    rendition_only = made.config.read_text() + PROFILE.format(name="cbcs", encryption="none", rotation=0, container="ts")
    config.write_text(rendition_only + 'encryption = "sample-aes"\n')  # the rendition's own
    with pytest.raises(ConfigError, match="'encryption'"):
        app_settings(config)


async def test_an_encrypting_profile_without_a_master_key_is_a_clear_server_error(made: Made) -> None:
    """No master key configured: the server still starts and serves its clear profiles; an
    encrypting profile's playlists answer 500 `encryption_not_configured` naming the setting
    (the operator's to fix, logged as an error; a 400 would blame the viewer)."""
    async with running(made, LIVETX_ENCRYPTION_KEYS="") as client:
        assert client.server.app[SETTINGS].encryption.keys == ()
        for path in ("master.m3u8", "v.m3u8", key_path(made).rsplit("/", 1)[1]):
            response = await client.get(f"{title_prefix('encts', SOURCE)}{path}?{title_token(client, 'encts')}")
            payload = await response.json()
            assert response.status == 500, path
            assert payload["error"]["code"] == "encryption_not_configured" and payload["error"]["parameter"] == "encryption"
            assert "encryption.key_file" in payload["error"]["message"] and "'encts'" in payload["error"]["message"]
        clear = await client.get(f"{title_prefix('clearts', SOURCE)}master.m3u8?{title_token(client, 'clearts')}")
        assert clear.status == 200
