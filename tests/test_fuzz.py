"""Fuzzing the parsers that take outside input: any input gives a result or a named LivetxError
(a 4xx in the API), never another exception.

The default run tries a few hundred cases per target. The fuzz run takes the count from the
environment: `make fuzz` (LIVETX_FUZZ_EXAMPLES=20000 for each of the 7 parser tests: 140k generated cases; it prints
the counts; it also runs the subtitle file fuzz test of tests/test_subtitles.py).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import string
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livetx.app import create_app
from livetx.errors import LivetxError
from livetx.factories import make_signer
from livetx.jobs import parse_imm, parse_oss
from livetx.media.params import parse_rendition_params, parse_title_params
from livetx.settings import SigningKey
from livetx.signing import Signer
from livetx.storage.base import check_key, check_source_key
from livetx.storage.local import LocalStorage
from livetx.subtitles.names import parse_sidecar_name, request_name
from livetx.urls import parse_sign_request, signed_url
from livetx.web.body import parse_json
from livetx.web.keys import SETTINGS
from tests.conftest import app_settings
from tests.support import IMM_SAMPLE, hls, readers

EXAMPLES = int(os.environ.get("LIVETX_FUZZ_EXAMPLES", "300"))
# the default run is the same every time (CI); a fuzz run explores afresh
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize="LIVETX_FUZZ_EXAMPLES" not in os.environ,
)
CASES: Counter[str] = Counter()  # generated cases per test, reported at the end of a fuzz run
CALLS: Counter[str] = Counter()  # parser calls per parser

STORE = LocalStorage(Path("/nonexistent-fuzz-store"))
SIGNER = Signer([SigningKey("k1", b"s" * 32)], SigningKey("k1", b"s" * 32))

json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
PARAMS = ["s", "vcodec", "fps", "vb", "crf", "st", "ss", "t", "initd", "ta", "sopt", "vbopt", "abopt", "fpsopt", "ab", "ar", "ac"]
PARAMS += ["acodec", "pixfmt", "scaletype", "arotate", "aq", "preset", "g", "maxrate", "bufsize", "initial_segments", "x", ""]
PARAMS += ["container", "audio", "surround", "subtitles"]
param_value = st.sampled_from(["0", "1", "-1", "720", "x720", "1280x", "1280x720", "h264", "h265", "aac", "25", "29.97", "1e9", "", "_"])
# track selections (audio, subtitles): keywords, selectors, and near misses
param_value |= st.sampled_from(["auto", "all", "none", "default", "muxed", "i2,fr", "fr.i3", "en-US", "s5", "pt-br,s12", "i", "i-1"])
param_value |= st.lists(st.sampled_from(["i1", "fr", "und", "x-klingon", "ALL", ",", ".", "i99999999999"]), max_size=6).map(",".join)
param_value |= st.text(alphabet=string.printable, max_size=12) | st.integers(-(10**12), 10**12).map(str)
# numbers that Python's own parsers take too long over, or take at all
HOSTILE_NUMBERS = ["1e6000000", "-1e999999", "9" * 5000, "9" * 4000 + "/1", "1/" + "9" * 4000, "nan", "NaN", "inf", "-inf"]
HOSTILE_NUMBERS += ["1_000", " 25", "+25", "0x19", "٢٥", "25.", ".5", "1e3", "0000000000025", "2" * 13, "30000/0"]
param_value |= st.sampled_from(HOSTILE_NUMBERS) | st.floats() | st.integers(-(10**40), 10**40)
SLOW_CALL = 0.25  # CPU seconds: a parser that takes longer holds the event loop (it runs there)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@st.composite
def oss_process(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.text(max_size=200))
    options = draw(st.lists(st.tuples(st.sampled_from(PARAMS), param_value), max_size=8))
    head = draw(st.sampled_from(["hls/m3u8", "hls/m3u8", "hls/sign", "", "HLS/M3U8"]))
    text = ",".join([head, *(f"{k}_{v}" for k, v in options)])
    saveas = draw(st.sampled_from(["", "|sys/saveas", "|sys/saveas,o_{o},b_{b}", "|sys/saveas,o_{o}", "|x|y"]))
    bucket = draw(st.sampled_from([b64("local"), b64("bucket"), "not base64!", "", b64("../x")]))
    prefix = draw(st.sampled_from([b64("out/a"), b64("../../etc"), b64(""), "%%%", b64("a" * 2000)]))
    return text + saveas.format(o=prefix, b=bucket)


def mutated_imm(draw: st.DrawFn) -> Any:
    body: Any = {k: v for k, v in IMM_SAMPLE.items()}
    body["SourceURI"] = "oss://local/test.avi"
    body["MasterURI"] = "oss://local/output/master.m3u8"
    target: dict[str, Any] = {**IMM_SAMPLE["Targets"][0], "URI": "oss://local/output/720p/720p"}  # type: ignore[index]
    body["Targets"] = [target]
    where = draw(st.sampled_from(["body", "target", "video", "audio"]))
    field = draw(st.text(max_size=12) | st.sampled_from([*target, "Codec", "Bitrate", "CRF", "FrameRate", "Resolution"]))
    value = draw(json_value | st.sampled_from(HOSTILE_NUMBERS))
    if where == "body":
        body[field] = value
    elif where == "target":
        target[field] = value
    elif where == "video":
        target["Video"] = {"TranscodeVideo": {**target["Video"]["TranscodeVideo"], field: value}}
    else:
        target["Audio"] = {"TranscodeAudio": {**target["Audio"]["TranscodeAudio"], field: value}}
    return body


imm_body = st.composite(mutated_imm)() | json_value


def survives(target: str, call: Any, *args: Any) -> None:
    """The call returns or raises a LivetxError, within SLOW_CALL of this thread's CPU. The
    collector is held off meanwhile: late in a run a full collection of the suite's heap takes
    about as long, and once landed inside a 0.1 ms parse (0.28 s)."""
    CALLS[target] += 1
    gc.disable()
    began = time.thread_time()  # not process_time: other threads' CPU is not this call's
    try:
        call(*args)
    except LivetxError:
        pass
    finally:
        took = time.thread_time() - began
        gc.enable()
    assert took < SLOW_CALL, f"{target} took {took:.2f} s of CPU on {args!r:.200}"


@FUZZ
@given(process=oss_process(), key=st.sampled_from(["a.mp4", "dir/b.mkv"]))
def test_oss_process_strings(process: str, key: str) -> None:
    CASES["oss"] += 1
    survives("oss", parse_oss, key, process, STORE.key_for_uri)


@FUZZ
@given(body=imm_body)
def test_imm_request_bodies(body: Any) -> None:
    CASES["imm"] += 1
    survives("imm", parse_imm, body, STORE.key_for_uri, STORE.key_for_uri)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(PARAMS), param_value | json_leaf, max_size=8))
def test_transcode_parameters(params: dict[str, Any]) -> None:
    CASES["params"] += 1
    survives("params", parse_rendition_params, params)
    survives(
        "title params", parse_title_params, {k: v for k, v in params.items() if k in ("ss", "t", "st", "initd", "ta", "initial_segments")}
    )


sign_body = (
    st.fixed_dictionaries(
        {},
        optional={
            "path": st.text(max_size=60) | st.just("/hls/default/a.mp4/master.m3u8"),
            "key": st.text(max_size=30),
            "profile": st.sampled_from(["default", "ladder", "nope", ""]) | st.text(max_size=8),
            "ttl": json_leaf,
            "nbf": json_leaf,
            "ip": st.sampled_from(["127.0.0.1", "10.0.0.0/8", "::1", "x", "300.1.1.1", ""]) | st.text(max_size=20),
            "scope": st.sampled_from(["path", "title", "x"]) | json_leaf,
        },
    )
    | json_value
)


@FUZZ
@given(body=sign_body)
def test_signing_request_bodies(body: Any) -> None:
    CASES["sign"] += 1
    survives("sign", parse_sign_request, body, {"default": object(), "ladder": object()}, 3600)


PATH_PIECES = [*"/.%2eEfF0aA~_-\\\x00 ", "%2F", "%2e", "..", "//", "é", "e\u0301", "\u2028", "master.m3u8", "a.mp4"]
path_text = st.lists(st.sampled_from(PATH_PIECES), max_size=20).map("".join) | st.text(max_size=40)
query_values = st.dictionaries(
    st.sampled_from(["exp", "kid", "sig", "nbf", "ip", "scope", "x"]), st.lists(st.text(max_size=50), min_size=1, max_size=2)
)


@FUZZ
@given(path=path_text, query=query_values, now=st.integers(0, 2**40), ip=st.none() | st.text(max_size=40))
def test_paths_keys_and_tokens(path: str, query: dict[str, list[str]], now: int, ip: str | None) -> None:
    CASES["paths"] += 1
    survives("keys", check_key, path)
    survives("source keys", check_source_key, path.lstrip("/"))
    survives("tokens", SIGNER.verify, path, query, float(now), ip)
    # a token made for a path verifies for exactly that path
    try:
        now = 1_000_000_000 + now % 3_000_000_000  # unix seconds a token can carry
        token = SIGNER.sign_path("/hls/default/" + path.lstrip("/"), now + 60)
    except LivetxError:
        return
    SIGNER.verify("/hls/default/" + path.lstrip("/"), parse_qs(token.query_string()), float(now))


# ---- hostile container files: none may read outside its own object ----------------------------


def write_hostile_corpus(root: Path, outside: Path) -> tuple[dict[str, str], list[Path]]:
    """Files that make FFmpeg open other objects, as sources in `root`, with every reference
    aimed at a FIFO (outside the root, or beside the file) so that a reader shows. Returns
    {source key: what it tries} and the FIFOs."""
    far, near, frame = outside / "far.ts", root / "near.fifo", root / "img001.png"  # hls follows only media names
    fifos = [far, near, frame]
    for fifo in fifos:
        os.mkfifo(fifo)
    sdp = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    mpd = (
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S">'
        f'<Period><AdaptationSet><Representation id="1" bandwidth="1" mimeType="video/mp2t"><BaseURL>{far}</BaseURL>'
        "</Representation></AdaptationSet></Period></MPD>"
    )
    corpus = {
        "playlist.m3u8": (hls(str(far)), "an HLS playlist naming an absolute path outside the root"),
        "playlist.m3u": (hls(f"file://{far}"), "an HLS playlist naming a file: URL"),
        "huge.m3u8": (hls(str(far), 80_000), "an 80,000-entry HLS playlist"),
        "master.m3u8": ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nplaylist.m3u8\n", "a master playlist naming another playlist (nested)"),
        "hls.mp4": (hls(str(far)), "an HLS playlist named .mp4"),
        "hls.mkv": (hls(str(far)), "an HLS playlist named .mkv"),
        "list.ffconcat": ("ffconcat version 1.0\nfile near.fifo\n", "an ffconcat list"),
        "concat.mp4": ("ffconcat version 1.0\nfile near.fifo\nfile near.fifo\n", "an ffconcat list named .mp4"),
        "subfile.mov": (f"ffconcat version 1.0\nfile 'subfile,,start,0,end,9,,:{far}'\n", "a concat list using subfile"),
        "img%03d.png": ("not a picture", "an image2 pattern naming img001.png beside it"),
        "session.sdp": (sdp, "an SDP session (RTP over UDP)"),
        "manifest.mpd": (mpd, "a DASH manifest naming a path outside the root"),
        "data.avi": (hls("data:video/mp2t;base64,AAAA"), "an HLS playlist with a data: URI, named .avi"),
    }
    for key, (text, _) in corpus.items():
        (root / key).write_text(text)
    return {key: why for key, (_, why) in corpus.items()}, fifos


async def test_hostile_container_files_get_422_fast_and_read_nothing_else(aiohttp_client: Any, tmp_path: Path) -> None:
    root, outside = tmp_path / "media", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    corpus, fifos = write_hostile_corpus(root, outside)
    try:
        client = await aiohttp_client(create_app(app_settings(LIVETX_STORAGE_URI=str(root))))
        signer = make_signer(client.server.app[SETTINGS])
        for key, why in corpus.items():
            url, _ = signed_url(signer, "", f"/hls/default/{key}/master.m3u8", 60)
            try:  # a hang would end in a 504 after the 20 s probe limit: 10 s is a bound on it, not a speed claim
                response = await asyncio.wait_for(client.get(url), timeout=10)
            except TimeoutError:
                raise AssertionError(f"{key} ({why}): no answer in 10 s; readers: {readers(fifos)}") from None
            body = await response.json()
            assert response.status == 422, (key, why, response.status, body)
            assert body["error"]["code"] in ("source_type_refused", "source_unreadable"), (key, body)
            assert str(tmp_path) not in json.dumps(body), body
            assert readers(fifos) == [], f"{key} ({why}) opened another object"
    finally:
        readers(fifos)  # whatever opened a FIFO reads end-of-file and goes on


JSON_PIECES = ["{", "}", "[", "]", ",", ":", '"', '"a"', "\\", "\\u", "\\ud800", "\\udfff", "0", "-", "1e400", "1e-400", "1.5"]
JSON_PIECES += [
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 40,
    "9" * 5000,
    "true",
    "null",
    " ",
    "\n",
    "\x00",
    "é",
    "\u2028",
    "[" * 40,
    '{"a":' * 40,
]
json_text = (
    st.lists(st.sampled_from(JSON_PIECES), max_size=30).map("".join).map(str.encode)
    | json_value.map(lambda v: json.dumps(v, allow_nan=True).encode())
    | st.binary(max_size=64)
    | st.integers(1, 3000).map(lambda depth: (b"[" * depth) + (b"]" * depth))
)


# keys next to a source: sidecar-like names, tags and suffixes, and arbitrary text
name_part = st.sampled_from(["film", "Film", "film.mkv", "en", "pt-BR", "forced", "sdh", "default", "x", "", ".", "..", "\u00e9"])
name_part |= st.text(alphabet=string.printable + "\u00e9\u202e\x00", max_size=12)
sidecar_key = st.tuples(
    st.sampled_from(["", "dir/", "dir/sub/", "/", "other/", ".hidden/"]),
    st.lists(name_part, min_size=1, max_size=5).map(".".join),
    st.sampled_from([".srt", ".vtt", ".ass", ".ssa", ".SRT", ".txt", "", ".srt.", ".m3u8"]),
).map("".join)


@FUZZ
@given(key=sidecar_key | path_text, source=st.sampled_from(["dir/film.mkv", "film.mp4", "dir/sub/a.b.mkv"]))
def test_subtitle_file_names(key: str, source: str) -> None:
    """Any key read next to a source (a listing's names, an IMM SourceSubtitles URI) is a
    sidecar name or not one: never another exception, never a slow parse."""
    CASES["subtitle names"] += 1
    survives("subtitle names", parse_sidecar_name, source, key)
    survives("subtitle names", request_name, source, key)


@FUZZ
@given(raw=json_text)
def test_json_bodies(raw: bytes) -> None:
    """Any body of at most 16 KiB parses to JSON or is refused as `body`: never another
    exception (500), never a slow parse."""
    CASES["json"] += 1
    survives("json", parse_json, raw[: 16 * 1024])


def test_report_cases() -> None:
    """Runs last in this file: how many cases each target took (visible with -s)."""
    if EXAMPLES > 300:
        print(f"fuzz: {sum(CASES.values())} generated cases {dict(CASES)}; {sum(CALLS.values())} parser calls {dict(CALLS)}")
        assert sum(CASES.values()) >= 7 * EXAMPLES
