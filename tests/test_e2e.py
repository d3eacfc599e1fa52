"""The real server (`livetx serve` in a subprocess) played by FFmpeg's own HLS demuxer."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from fractions import Fraction
from urllib.parse import urljoin

import av
import m3u8
import pytest

from livetx.cache.seal import is_sealed
from livetx.crypto import aes
from livetx.factories import make_signer
from livetx.settings import PlayerSettings, load_settings
from livetx.urls import master_path
from tests.checker import check_tone, decode_audio, decode_video
from tests.conftest import Server, Source
from tests.support import get_url as fetch


@pytest.fixture(scope="module")
def master_url(server: Server, sources: dict[str, Source]) -> str:
    return server.cli("url", sources["mp4-30"].key, "--base-url", server.base_url)


def test_cli_url_plays_end_to_end(master_url: str, sources: dict[str, Source]) -> None:
    src = sources["mp4-30"]
    with av.open(master_url, options={"protocol_whitelist": "http,tcp"}) as container:
        video = decode_video(container)
    assert video.indexes == list(range(src.frames))
    assert Fraction(len(video.indexes)) / src.spec.fps == Fraction(src.spec.seconds)
    with av.open(master_url) as container:
        audio = decode_audio(container)
    assert len(audio.samples) / audio.sample_rate == pytest.approx(src.spec.seconds, abs=0.05)
    report = check_tone(audio, src.spec.tone_hz, skip_tail=3)
    assert report.worst_phase < 0.05, report


def test_playlists_are_signed_and_exact(master_url: str, sources: dict[str, Source]) -> None:
    status, headers, body = fetch(master_url)
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    master = m3u8.loads(body.decode())
    assert master.is_variant and len(master.playlists) == 1
    info = master.playlists[0].stream_info
    assert info.resolution == (320, 180) and info.codecs.startswith("avc1.64")
    media_url = urljoin(master_url, master.playlists[0].uri)
    assert "sig=" in media_url
    status, _, body = fetch(media_url)
    assert status == 200
    media = m3u8.loads(body.decode())
    assert media.is_endlist and all("sig=" in s.uri for s in media.segments)
    total = sum(Fraction(str(s.duration)) for s in media.segments)
    assert total == Fraction(sources["mp4-30"].spec.seconds)
    assert [s.duration for s in media.segments][:2] == [2, 2]


def test_segment_is_cached_and_served_again(master_url: str, server: Server) -> None:
    media_url = urljoin(master_url, m3u8.loads(fetch(master_url)[2].decode()).playlists[0].uri)
    seg_url = urljoin(media_url, m3u8.loads(fetch(media_url)[2].decode()).segments[1].uri)
    status, headers, first = fetch(seg_url)
    assert status == 200 and headers["Content-Type"] == "video/mp2t" and "immutable" in headers["Cache-Control"]
    name = seg_url.split("?")[0].rsplit("/", 1)[1]  # <rendition>-<spec id>-1.ts: this title's, not another test's on the shared server
    cached = list((server.media / ".livetx").rglob(name))
    assert len(cached) == 1, f"segment {name} was not written back to storage (once)"
    status, _, second = fetch(seg_url)
    assert status == 200 and second == first == cached[0].read_bytes()


@pytest.mark.parametrize(
    ("mangle", "status", "code"),
    [
        pytest.param(lambda u: u.split("?")[0], 401, "token_missing", id="unsigned"),
        pytest.param(lambda u: u.replace("sig=", "sig=A"), 403, "token_bad_signature", id="tampered"),
        pytest.param(lambda u: u.replace("mp4-30.mp4", "mkv-25-44k.mkv"), 403, "token_bad_signature", id="other-path"),
        pytest.param(lambda u: u.replace("kid=", "kid=x"), 403, "token_unknown_key", id="unknown-kid"),
    ],
)
def test_bad_tokens_refused_with_json(master_url: str, mangle: object, status: int, code: str) -> None:
    got, headers, body = fetch(mangle(master_url))  # type: ignore[operator]
    assert got == status
    payload = json.loads(body)
    assert payload["error"]["code"] == code and payload["request_id"] == headers["X-Request-Id"]


def test_expired_url_refused(server: Server, sources: dict[str, Source]) -> None:
    path = master_path("default", sources["mp4-30"].key)
    token = make_signer(load_settings(None, server.env)).sign_path(path, int(time.time()) - 3600)
    status, _, body = fetch(f"{server.base_url}{path}?{token.query_string()}")
    assert status == 403 and json.loads(body)["error"]["code"] == "token_expired"


def test_signing_api_and_cli_give_the_same_answer(server: Server, sources: dict[str, Source]) -> None:
    key = sources["mp4-30"].key
    body = json.dumps({"key": key, "ttl": 900, "scope": "title", "ip": "127.0.0.1"}).encode()
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    request = urllib.request.Request(server.base_url + "/api/v1/sign", data=body, headers=headers)
    began = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        api = json.loads(response.read())
    options = ["--ttl", "900", "--scope", "title", "--ip", "127.0.0.1", "--json"]
    cli = json.loads(server.cli("url", key, "--base-url", server.base_url, *options))
    # both expire 900 s after they signed: apart by at most the time between the two (a CLI
    # process starts slowly on a loaded machine), and a second of rounding
    apart = time.monotonic() - began + 1
    assert set(api) == set(cli) and abs(api["expires"] - cli["expires"]) <= apart
    assert {k: v for k, v in api.items() if k not in ("url", "expires", "expires_at")} == {
        k: v for k, v in cli.items() if k not in ("url", "expires", "expires_at")
    }
    status, _, playlist = fetch(api["url"])
    assert status == 200 and playlist.startswith(b"#EXTM3U")
    status, _, spec = fetch(server.base_url + "/api/openapi.json")
    assert status == 200 and "/api/v1/sign" in json.loads(spec)["paths"]


def test_sign_api_and_cli_urls_reach_an_encrypted_titles_keys(server: Server, sources: dict[str, Source]) -> None:
    """`POST /api/v1/sign` (title scope) and `livetx url` (a path token) work unchanged for an
    encrypted title (the shipped `secure` profile, AES-128): the media playlist each URL leads
    to hands its token on to the key URL, which answers the key (not without the token), and a
    segment decrypts with it to a sealed MPEG-TS segment."""
    key = sources["mp4-30"].key
    body = json.dumps({"key": key, "profile": "secure", "scope": "title", "ttl": 900}).encode()
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    request = urllib.request.Request(server.base_url + "/api/v1/sign", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        api_url = json.loads(response.read())["url"]
    cli_url = server.cli("url", key, "--profile", "secure", "--base-url", server.base_url)
    for master_url in (api_url, cli_url):
        media_url = urljoin(master_url, m3u8.loads(fetch(master_url)[2].decode()).playlists[0].uri)
        segment = m3u8.loads(fetch(media_url)[2].decode()).segments[1]
        assert segment.key is not None and segment.key.method == "AES-128" and "sig=" in segment.key.uri
        status, headers_, content_key = fetch(urljoin(media_url, segment.key.uri))
        assert status == 200 and len(content_key) == 16 and headers_["Cache-Control"] == "private, no-store"
        assert fetch(urljoin(media_url, segment.key.uri.split("?")[0]))[0] == 401
        status, _, data = fetch(urljoin(media_url, segment.uri))
        clear = aes.decrypt(content_key, aes.sequence_iv(1), data)
        assert status == 200 and clear is not None and is_sealed(clear) and clear[0] == 0x47


def test_unknown_source_is_404_json(server: Server) -> None:
    url = server.cli("url", "missing.mp4", "--base-url", server.base_url)
    status, _, body = fetch(url)
    assert status == 404 and json.loads(body)["error"]["code"] == "source_not_found"


def test_sign_any_path(server: Server, sources: dict[str, Source]) -> None:
    url = server.cli("sign", f"/hls/default/{sources['ts-2997'].key}/main.m3u8", "--base-url", server.base_url)
    status, _, body = fetch(url)
    assert status == 200 and body.startswith(b"#EXTM3U")


def test_player_page_loads_configured_hls_js(server: Server) -> None:
    status, headers, body = fetch(server.base_url + "/player")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    pinned = PlayerSettings()
    assert f'<script src="{pinned.hls_js_url}" integrity="{pinned.hls_js_integrity}" crossorigin="anonymous">'.encode() in body


def test_probe_cli_describes_a_source(server: Server, sources: dict[str, Source]) -> None:
    info = json.loads(server.cli("probe", sources["mkv-25-44k"].key))
    assert info["video"]["width"] == 320 and info["video"]["fps"] == 25
    assert info["audio"]["sample_rate"] == 44100


def test_logs_carry_no_tokens(server: Server, master_url: str) -> None:
    fetch(master_url)
    log = server.log.read_text()
    assert "/master.m3u8" in log  # requests are logged...
    assert "sig=" not in log and master_url.split("sig=")[1] not in log  # ...without their tokens


def test_start_banner_points_at_the_demo_page_without_the_api_key(server: Server) -> None:
    log = server.log.read_text()
    assert f"demo page:       {server.base_url}/ " in log
    assert server.api_key not in log


def test_codecs_attribute_matches_the_encoded_stream(master_url: str) -> None:
    master = m3u8.loads(fetch(master_url)[2].decode())
    media_url = urljoin(master_url, master.playlists[0].uri)
    seg_url = urljoin(media_url, m3u8.loads(fetch(media_url)[2].decode()).segments[0].uri)
    data = fetch(seg_url)[2]
    with av.open(io.BytesIO(data), format="mpegts") as container:
        first = next(p for p in container.demux(video=0) if p.size)
    raw = bytes(first)
    sps = raw.index(b"\x00\x00\x01\x67") + 4  # Annex B start code + SPS NAL header
    profile_idc, constraints, level_idc = raw[sps], raw[sps + 1], raw[sps + 2]
    avc1 = f"avc1.{profile_idc:02x}{constraints:02x}{level_idc:02x}"
    assert master.playlists[0].stream_info.codecs.split(",") == [avc1, "mp4a.40.2"]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe CLI not installed (.ci/run installs Debian's ffmpeg)")
def test_independent_ffmpeg_build_counts_every_frame(master_url: str, sources: dict[str, Source]) -> None:
    """A second, separately built FFmpeg (Debian's CLI) reads the stream through its HLS demuxer."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"]
    done = subprocess.run([*cmd, "-of", "csv=p=0", master_url], capture_output=True, text=True, timeout=300, check=True)
    counts = {int(line) for line in done.stdout.split()}  # one line per program that holds the stream
    assert counts == {sources["mp4-30"].frames}


@pytest.fixture(scope="module")
def ladder_master(server: Server, sources: dict[str, Source]) -> str:
    return server.cli("url", sources["ts-10h"].key, "--profile", "ladder", "--base-url", server.base_url)


def test_ffmpeg_plays_every_ladder_rendition_from_the_start_and_from_a_seek(ladder_master: str, sources: dict[str, Source]) -> None:
    src = sources["ts-10h"]
    master = m3u8.loads(fetch(ladder_master)[2].decode(), uri=ladder_master)
    assert len(master.playlists) >= 2
    for variant in master.playlists:
        url = variant.absolute_uri
        with av.open(url, options={"protocol_whitelist": "http,tcp"}) as container:
            whole = decode_video(container, src.spec.width)
        assert whole.indexes == list(range(src.frames)), variant.uri
        # FFmpeg's HLS seek plays from the first keyframe whose DTS is at or after the target: aim
        # at the last segment's start, whose opening IDR must be exactly that frame.
        media = m3u8.loads(fetch(url)[2].decode())
        assert media.segment_map[0].uri.split("?")[0].endswith("-init.mp4")  # the shipped ladder is fMP4
        last_start = sum(Fraction(str(seg.duration)) for seg in media.segments[:-1])
        with av.open(url, options={"protocol_whitelist": "http,tcp"}) as container:
            first = container.start_time or 0
            container.seek(first + int(last_start * 1_000_000))
            after = decode_video(container, src.spec.width).indexes
        expected_first = round(last_start * src.spec.fps)
        assert expected_first > 0
        assert after == list(range(expected_first, src.frames)), variant.uri


FMP4_PROFILES = {  # shipped fMP4 profile -> the video codec of each variant, in master order
    "ladder": ("h264",) * 4,
    "universal": ("h264", "hevc", "h264"),
    "av1": ("av1",),
}


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe CLI not installed (.ci/run installs Debian's ffmpeg)")
@pytest.mark.parametrize("profile", list(FMP4_PROFILES))
def test_independent_ffmpeg_build_reads_fmp4_titles_end_to_end(server: Server, sources: dict[str, Source], profile: str) -> None:
    """Debian's ffprobe (FFmpeg 5.1) reads every fMP4 rendition (EXT-X-MAP init, then .m4s) of
    the shipped H.264, H.264+HEVC and AV1 profiles through the signed master URL, and counts
    every source frame in each."""
    src = sources["ts-10h"]
    url = server.cli("url", src.key, "--profile", profile, "--base-url", server.base_url)
    variants = m3u8.loads(fetch(url)[2].decode()).playlists
    entries = "stream=index,codec_name,nb_read_frames"
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v", "-count_frames", "-show_entries", entries]
    done = subprocess.run([*cmd, "-of", "csv=p=0", url], capture_output=True, text=True, timeout=300, check=True)
    # a stream is listed under its program and again on its own: one per variant, by index
    streams = {index: (codec, int(frames)) for index, codec, frames in (line.split(",") for line in done.stdout.split())}
    expected = [codec for codec in FMP4_PROFILES[profile]][: len(variants)]  # rungs above the source are dropped
    assert list(streams.values()) == [(codec, src.frames) for codec in expected], done.stdout + done.stderr
    assert done.stderr == "", done.stderr
