"""SAMPLE-AES (CMAF 'cbcs') renditions through the real app (issue 18): what FFmpeg makes of them.

One app, two titles of one source with the same parameters, but one clear and one with
`encryption = "sample-aes"`. Each title's init segment is fetched first, then its media
segments one by one in a shuffled order (each made as it is asked for), and the key from the
URL its media playlist names. FFmpeg's mp4 demuxer, given that key (`decryption_key`),
decrypts the samples as it reads them: the decrypted title must be the clear one, packet for
packet and so pixel for pixel and sample for sample (x264 makes the same bytes from the same
spec; the packets' equality checks it), and pass the fidelity checker across the joins.
Without the key nothing decodes as the clear title does.

The init segment declares the protection with the key id and constant IV the server derives
for the title (crypto/keys.py); the playlist has one key, `METHOD=SAMPLE-AES` with KEYFORMAT
identity. What sample-aes cannot be combined with (MPEG-TS, a key rotation, AV1) is accepted
in the config file (each combination depends on the values a rendition resolves to for its
source) and refused by the first request of the title: 400, naming the parameter.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import m3u8
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from livetx.app import create_app
from livetx.cache.seal import is_sealed
from livetx.crypto.cbcs import COMMON_SYSTEM_ID, SCHEME
from livetx.crypto.keys import ContentKey, KeyName
from livetx.errors import ConfigError
from livetx.factories import make_signer
from livetx.urls import signed_url
from livetx.web.keys import CONTENT_KEYS, SETTINGS
from tests.checker import check_tone, decode_audio, decode_video, in_own_process, open_fmp4, residual_peaks
from tests.conftest import ROOT, Source, app_settings

CLOCK = 90000
TITLE_FRAMES = 120  # t = 4 s at 30 fps: segments of 30, 30, 45 and 15 frames
SAMPLE_AES = 'encryption = "sample-aes"'
FMP4 = 'container = "fmp4"'
TITLES = {"clear": ("", FMP4), "cbcs": (SAMPLE_AES, FMP4)}  # profile: (title lines, rendition lines)
REFUSALS = {  # profile: (title lines, rendition lines, the parameter named, what its message says it conflicts with)
    "cbcsts": (SAMPLE_AES, 'container = "ts"', "encryption", "with container=ts"),
    "cbcsdefault": (SAMPLE_AES, "", "encryption", "with container=ts"),  # H.264's default container is MPEG-TS
    "cbcsrotating": (f"{SAMPLE_AES}\nkey_rotation = 2", FMP4, "key_rotation", "with encryption=sample-aes"),
    "cbcsav1": (SAMPLE_AES, 'vcodec = "av1"', "encryption", "with vcodec=av1"),  # fMP4 by default
}
KEY_URI = re.compile(r'URI="(?P<uri>key-(?P<kid>[A-Za-z0-9_]+)-(?P<version>[0-9a-f]+)-(?P<period>\d+)\.key\?[^"]*)"')


def profile_toml(name: str, title: str, rendition: str) -> str:
    """One H.264 + AAC rendition `v` (B-frames on), 4 s of the source in four segments."""
    return f"""
[profiles.{name}]
t = 4000
st = 5000
initial_segments = [1000, 1000, 1500]
initd = 0
{title}

[profiles.{name}.renditions.v]
s = "x180"
ab = 128000
{rendition}
"""


@dataclass
class Made:
    media: str  # the media playlist
    init: bytes
    segments: list[bytes]  # by index, made in a shuffled order


@dataclass
class Served:
    titles: dict[str, Made]
    key: bytes  # what the cbcs title's key URL answered
    content_key: ContentKey  # what the server derives for that key's name


async def _serve(config: Path, media: Path, seed: int) -> Served:
    settings = app_settings(config, LIVETX_TRANSCODE_WORKERS="2", LIVETX_STORAGE_URI=str(media), LIVETX_CACHE_LOOKAHEAD="false")
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        signer = make_signer(client.server.app[SETTINGS])
        rng = random.Random(seed)

        async def get(url: str) -> bytes:
            response = await client.get(url)
            assert response.status == 200, (url, response.status, await response.text())
            return await response.read()

        titles = {}
        for profile in TITLES:
            base = f"/hls/{profile}/a.mp4/"
            master = m3u8.loads((await get(signed_url(signer, "", base + "master.m3u8", 60)[0])).decode())
            (variant,) = master.playlists
            text = (await get(base + variant.uri)).decode()
            playlist = m3u8.loads(text)
            init = await get(base + playlist.segment_map[0].uri)
            order = list(range(len(playlist.segments)))
            rng.shuffle(order)
            made = {i: await get(base + playlist.segments[i].uri) for i in order}
            titles[profile] = Made(text, init, [made[i] for i in range(len(order))])
        found = KEY_URI.search(titles["cbcs"].media)
        assert found is not None, titles["cbcs"].media
        key = await get("/hls/cbcs/a.mp4/" + found["uri"])
        content_key = client.server.app[CONTENT_KEYS].key(KeyName(found["kid"], found["version"], int(found["period"])))
        return Served(titles, key, content_key)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Served:
    home = tmp_path_factory.mktemp("sample-aes")
    config = home / "livetx.toml"
    tables = "".join(profile_toml(name, title, rendition) for name, (title, rendition) in TITLES.items())
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + tables)
    media = home / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    return asyncio.run(_serve(config, media, seed=18))


@pytest.fixture(scope="module")
def clear(served: Served) -> Made:
    return served.titles["clear"]


@pytest.fixture(scope="module")
def cbcs(served: Served) -> Made:
    return served.titles["cbcs"]


def packets(made: Made, key: bytes | None) -> dict[str, list[bytes]]:
    """Each stream type's packets, in order, as the demuxer hands them (decrypted, given the key)."""
    with open_fmp4(made.init, made.segments, key) as container:
        out: dict[str, list[bytes]] = {stream.type: [] for stream in container.streams}
        for packet in container.demux():
            if packet.size:
                out[packet.stream.type].append(bytes(packet))
    return out


def frames(made: Made, key: bytes | None) -> dict[str, list[np.ndarray | None]]:
    """Each stream type's decoded frames, in order; None where the decoder refused a packet."""
    with open_fmp4(made.init, made.segments, key) as container:
        out: dict[str, list[np.ndarray | None]] = {stream.type: [] for stream in container.streams}
        for packet in container.demux():
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                out[packet.stream.type].append(None)
                continue
            out[packet.stream.type] += [frame.to_ndarray() for frame in decoded if isinstance(frame, VideoFrame | AudioFrame)]
    return out


def boxes_named(data: bytes, kind: bytes) -> list[bytes]:
    """The bodies (after size and type) of every box of type `kind` in `data`, at any depth (found
    by their type, preceded by their size: enough for livetx's init segments)."""
    out = []
    for found in re.finditer(re.escape(kind), data):
        (size,) = struct.unpack_from(">I", data, found.start() - 4)
        out.append(data[found.end() : found.start() - 4 + size])
    return out


def test_the_media_playlist_has_one_sample_aes_key_after_the_map(cbcs: Made, clear: Made) -> None:
    lines = cbcs.media.splitlines()
    keys = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-KEY:")]
    assert len(keys) == 1, keys
    key = lines[keys[0]]
    assert key.startswith('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="key-') and key.endswith(',KEYFORMAT="identity"'), key
    assert "IV=" not in key  # 'cbcs' has a constant IV: the init segment's tenc holds it
    map_line = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-MAP:"))
    assert map_line < keys[0] < next(i for i, line in enumerate(lines) if line.startswith("#EXTINF"))  # the map stays clear
    assert "#EXT-X-VERSION:6" in lines
    assert "#EXT-X-KEY" not in clear.media


def test_the_key_url_answers_the_content_key_the_server_derives(served: Served) -> None:
    assert len(served.key) == 16 and served.key == served.content_key.key
    assert served.content_key.name.period == 0  # one key for the title


def test_the_init_segment_declares_cbcs_with_the_derived_key_id_and_constant_iv(served: Served, cbcs: Made, clear: Made) -> None:
    init, content_key = cbcs.init, served.content_key
    assert b"encv" in init and b"enca" in init
    assert [frma[:4] for frma in boxes_named(init, b"frma")] == [b"avc1", b"mp4a"]  # the original formats
    assert [schm[4:8] for schm in boxes_named(init, b"schm")] == [SCHEME, SCHEME]
    tenc = boxes_named(init, b"tenc")
    assert len(tenc) == 2  # one per track: video and audio
    for body in tenc:
        assert body[6] == 1 and body[7] == 0  # protected; no per-sample IV: the constant IV follows
        assert body[8:24] == content_key.key_id
        assert body[24] == 16 and body[25:41] == content_key.constant_iv
    (pssh,) = boxes_named(init, b"pssh")
    assert pssh[0] == 1 and pssh[4:20] == COMMON_SYSTEM_ID and pssh[20:24] == b"\x00\x00\x00\x01" and pssh[24:40] == content_key.key_id
    assert not any(kind in clear.init for kind in (b"encv", b"enca", b"sinf", b"tenc", b"pssh"))


def test_decrypted_the_packets_are_the_clear_titles_byte_for_byte(served: Served, cbcs: Made, clear: Made) -> None:
    """The same spec makes the same bytes (x264 and the AAC encoder are deterministic here), and
    decryption gives them back exactly; the segments as served differ."""
    ours, theirs = packets(clear, None), packets(cbcs, served.key)
    assert set(ours) == set(theirs) == {"video", "audio"}
    for kind in ours:
        assert len(ours[kind]) == len(theirs[kind]) and ours[kind] == theirs[kind], kind
    assert all(a != b for a, b in zip(clear.segments, cbcs.segments, strict=True))


def test_decrypted_the_frames_are_the_clear_titles_pixel_for_pixel(served: Served, cbcs: Made, clear: Made) -> None:
    ours, theirs = frames(clear, None), frames(cbcs, served.key)
    assert len(ours["video"]) == TITLE_FRAMES and len(ours["audio"]) >= 4 * 48000 // 1024 - 2
    for kind, decoded in ours.items():
        assert len(theirs[kind]) == len(decoded), kind
        for index, (a, b) in enumerate(zip(decoded, theirs[kind], strict=True)):
            assert a is not None and b is not None and np.array_equal(a, b), f"{kind} frame {index} differs"


def test_decrypted_every_frame_once_in_order_across_the_joins(served: Served, cbcs: Made) -> None:
    video = decode_video(open_fmp4(cbcs.init, cbcs.segments, served.key))
    assert video.indexes == list(range(TITLE_FRAMES))


def test_decrypted_the_audio_joins_are_continuous_and_the_tone_unbroken(served: Served, cbcs: Made, sources: dict[str, Source]) -> None:
    audio = decode_audio(open_fmp4(cbcs.init, cbcs.segments, served.key))
    step = 1024 * CLOCK / audio.sample_rate
    assert audio.pts[0] == 0
    assert max(abs(b - a - step) for a, b in zip(audio.pts, audio.pts[1:], strict=False)) <= 90  # 1 ms
    tone = sources["mp4-30"].spec.tone_hz
    report = check_tone(audio, tone, skip_tail=3, offset=Fraction(0))
    assert report.worst_phase < 0.05, report
    assert residual_peaks(audio, tone, offset=Fraction(0))[2048:-4096].max() < 0.05


def test_the_segments_are_sealed_as_served(cbcs: Made) -> None:
    """The seal (a trailing free box) is over the protected bytes: a damaged copy is refused."""
    assert is_sealed(cbcs.init) and all(is_sealed(segment) for segment in cbcs.segments)
    damaged = bytearray(cbcs.segments[0])
    damaged[len(damaged) // 2] ^= 1
    assert not is_sealed(bytes(damaged))


@pytest.mark.parametrize("key", [None, bytes(16)], ids=["no key", "another key"])
def test_without_the_key_nothing_decodes_as_the_clear_title(clear: Made, cbcs: Made, key: bytes | None) -> None:
    ours = frames(clear, None)
    try:
        garbled = in_own_process(frames, cbcs, key)  # (a crash is as good as a refusal: see in_own_process)
    except av.error.FFmpegError as exc:
        garbled = None
        print(f"refused outright: {exc!r}")
    if garbled is None:
        return
    for kind, decoded in ours.items():
        same = sum(1 for a, b in zip(decoded, garbled[kind], strict=False) if b is not None and np.array_equal(a, b))
        assert same == 0, f"{same} {kind} frames decoded without the key"


@pytest.mark.parametrize("profile", REFUSALS)
def test_what_sample_aes_cannot_protect_is_refused_naming_the_parameter(tmp_path: Path, profile: str) -> None:
    """Decided from the profile alone: the config does not load (an API request's is its 400,
    tests/test_jobs.py)."""
    title, rendition, parameter, conflict = REFUSALS[profile]
    config = tmp_path / "livetx.toml"
    config.write_text((ROOT / "conf" / "livetx.toml").read_text() + profile_toml(profile, title, rendition))
    with pytest.raises(ConfigError) as refused:
        app_settings(config)
    message = refused.value.message
    assert f"profile {profile!r}" in message and parameter in message and conflict in message, message
