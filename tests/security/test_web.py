"""Attacks on the HTTP surface of the real `livetx serve`: malformed bodies, tokens smuggled
into logs by requests aiohttp's parser refuses, forged log lines, the pages (CSP, SRI,
Referrer-Policy, frame-ancestors, the player's `src`), CORS, /metrics, the Server header and
X-Request-Id."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import m3u8
import pytest
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.http_parser import HttpRequestParser

from livetx import logs
from livetx.settings import PlayerSettings
from tests.conftest import Server, Source, launch_server
from tests.security.conftest import api, call, watch
from tests.support import wait_until

METRICS_TOKEN = "metrics-" + "m" * 32
METRICS = {"Authorization": f"Bearer {METRICS_TOKEN}"}
CDN_ORIGIN = "https://cdn.example"
SECRET = "SECRETSIG" + "7" * 30  # what a signature looks like; it must never reach a log


def start(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source], **env: str) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("web")
    media = home / "media"
    media.mkdir()
    shutil.copy(sources["video-only"].path, media / "clip.mp4")
    with launch_server(
        home,
        media,
        LIVETX_SERVER_METRICS_TOKEN=METRICS_TOKEN,
        LIVETX_PLAYER_ALLOWED_SOURCES=CDN_ORIGIN,
        LIVETX_CACHE_LOOKAHEAD="false",
        **env,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[Server]:
    yield from start(tmp_path_factory, sources)


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[Server]:
    yield from start(tmp_path_factory, sources, LIVETX_SERVER_LOG_FORMAT="text")


@pytest.fixture(params=["json", "text"])
def any_server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue("web_server" if request.param == "json" else "text_server")  # type: ignore[no-any-return]


def port_of(server: Server) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def raw_request(server: Server, data: bytes) -> bytes:
    """Bytes as they are, on a fresh connection; the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def log_size(server: Server) -> int:
    return server.log.stat().st_size


def settle(server: Server, since: int = 0) -> str:
    """The log from byte `since` on, once every earlier request's lines are in: a request for
    a fresh path is sent, and the log read until that request's access line is there."""
    marker = f"/settle-{time.monotonic_ns()}"
    call(server, "GET", marker)

    def logged() -> str | None:
        with open(server.log, "rb") as fh:
            fh.seek(since)
            log = fh.read().decode(errors="replace")
        return log if marker in log else None

    return wait_until(logged, 10, "the access line of the settle request in the log", interval=0.02)


# ---- 1. malformed JSON: a 400 naming the problem, never a 500 ----------------------------

IMM = '{"SourceURI": "oss://local/clip.mp4", "Targets": [{"URI": "oss://local/out/t0", "Duration": %s}]}'
MALFORMED_JSON = [
    pytest.param("/api/v1/sign", b"[" * 8000 + b"]" * 8000, "nested deeper", id="deep-nesting"),
    pytest.param("/api/v1/playlists", (IMM % "NaN").encode(), "NaN", id="NaN"),
    pytest.param("/api/v1/playlists", (IMM % "Infinity").encode(), "Infinity", id="Infinity"),
    pytest.param("/api/v1/playlists", (IMM % "-Infinity").encode(), "-Infinity", id="-Infinity"),
    pytest.param("/api/v1/playlists", (IMM % "1e400").encode(), "out of range", id="1e400"),
    pytest.param("/api/v1/sign", b'{"path": "/hls/default/clip.mp4/master.m3u8", "ttl": ' + b"9" * 5000 + b"}", "digits", id="5000-digits"),
    pytest.param("/api/v1/sign", b'{"key": "clip\\ud800.mp4"}', "surrogate", id="lone-surrogate"),
    pytest.param("/api/v1/sign", b'{"\\udfff": 1}', "surrogate", id="lone-surrogate-key"),
]


@pytest.mark.parametrize(("path", "body", "named"), MALFORMED_JSON)
def test_malformed_json_is_a_400_naming_the_problem(web_server: Server, path: str, body: bytes, named: str) -> None:
    with watch(web_server, metrics_headers=METRICS):
        status, answer = api(web_server, path, raw=body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_parameter" and answer["error"]["parameter"] == "body"
    assert named in answer["error"]["message"]


MALFORMED_FORMS = [
    pytest.param("multipart/form-data", b"garbage", id="multipart-without-boundary"),
    pytest.param("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n", id="nameless-field"),
    pytest.param(
        "multipart/form-data; boundary=zz",
        b'--zz\r\nContent-Disposition: form-data; name="x-oss-process"\r\n\r\nhls',
        id="cut-short",
    ),
    pytest.param("application/x-www-form-urlencoded; charset=bogus", b"x-oss-process=hls/m3u8", id="unknown-charset"),
    pytest.param("application/x-www-form-urlencoded", b"x-oss-process=\xff\xfe", id="not-utf8"),
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED_FORMS)
def test_malformed_oss_form_is_a_400(web_server: Server, content_type: str, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {web_server.api_key}", "Content-Type": content_type}
    status, _, answer = call(web_server, "POST", "/clip.mp4?x-oss-process", headers=headers, raw=body)
    assert status == 400, answer
    assert json.loads(answer)["error"]["parameter"] == "body"


# ---- 2. logs: no token on any path; no forged lines ------------------------------------

REFUSED_BY_THE_PARSER = [
    pytest.param(f"GET /hls/default/clip.mp4/master.m3u8?exp=1&sig={SECRET}\xff HTTP/1.1\r\nHost: x\r\n\r\n", id="0xff-in-query"),
    pytest.param(f"GET /hls/default/clip.mp4/\xffmaster.m3u8?kid=k1&sig={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n", id="0xff-in-path"),
    pytest.param(f"GET /hls/default/clip.mp4/master.m3u8?sig={SECRET} HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n", id="bad-header"),
    pytest.param(f"GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\x7f\r\n\r\n", id="bad-header-value"),
    pytest.param(f"G\xffET /hls/default/clip.mp4/master.m3u8?sig={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n", id="0xff-in-method"),
    pytest.param(f"{'GET' * 40} /hls/a.m3u8?sig={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n", id="absurd-method"),
    pytest.param(f"GET /hls/a.m3u8?sig={SECRET} HTTP/9.9\r\nHost: x\r\n\r\n", id="bad-version"),
    pytest.param(f"GET /hls/a.m3u8?sig={SECRET}{'A' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n", id="line-too-long"),
    pytest.param(f"GET /hls/a.m3u8?sig={SECRET} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", id="bad-content-length"),
]


@pytest.mark.parametrize("request_bytes", REFUSED_BY_THE_PARSER)
def test_requests_the_parser_refuses_log_no_token(any_server: Server, request_bytes: str) -> None:
    since = log_size(any_server)
    answer = raw_request(any_server, request_bytes.encode("latin-1"))
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
    log = settle(any_server, since)
    assert "Error handling request" in log or "UNKNOWN" in log  # the refusal was logged...
    assert SECRET not in log  # ...without the token
    assert "SECRETSIG" not in log


def test_tokens_in_valid_requests_and_headers_are_not_logged(any_server: Server) -> None:
    url = any_server.cli("url", "clip.mp4", "--base-url", any_server.base_url)
    signature = url.split("sig=")[1]
    since = log_size(any_server)
    # the token in a query string with a bad signature, in a path, and in an Authorization header
    call(any_server, "GET", f"/hls/default/clip.mp4/master.m3u8?exp=1&kid=k1&sig={SECRET}")
    call(any_server, "GET", f"/hls/default/{quote('clip.mp4?sig=' + SECRET, safe='')}/master.m3u8")
    call(any_server, "GET", "/api/v1/sources", headers={"Authorization": f"Bearer {SECRET}"})
    call(any_server, "GET", url.removeprefix(any_server.base_url))
    log = settle(any_server, since)
    assert "/master.m3u8" in log
    assert SECRET not in log and signature not in log


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_debug_and_traceback_records_carry_no_token(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The paths a server at INFO does not show: aiohttp logs a refused first request (a bad
    method) at DEBUG with the parser's exception, which quotes the raw request line. And a
    traceback whose exception text holds a URL."""
    parser = HttpRequestParser(None, asyncio.get_running_loop(), 2**16)  # type: ignore[arg-type]
    with pytest.raises(BadHttpMethod) as refused:
        parser.feed_data(f"G\xffET /hls/a.m3u8?sig={SECRET} HTTP/1.1\r\n\r\n".encode("latin-1"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(fmt, logging.DEBUG)
        server = logging.getLogger("aiohttp.server")
        server.debug("Error handling request from %s", "127.0.0.1", exc_info=refused.value)
        try:
            raise RuntimeError(f"fetch http://127.0.0.1/hls/a.m3u8?exp=1&sig={SECRET} failed")
        except RuntimeError:
            logging.getLogger("livetx.web").exception("unhandled error")
        logging.getLogger("livetx.web").info("header %s", {"Authorization": f"Bearer {SECRET}"}, stack_info=True)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "BadHttpMethod" in err and "RuntimeError" in err  # logged...
    assert "SECRETSIG" not in err  # ...without the token
    assert len(err.splitlines()) == 3  # one line per record, tracebacks included


FORGED = "2099-01-01 00:00:00,000 ERROR livetx.web FORGED"


@pytest.mark.parametrize(
    "separator",
    [
        pytest.param("%0A", id="LF"),
        pytest.param("%0D", id="CR"),
        pytest.param("%C2%85", id="NEL"),
        pytest.param("%E2%80%A8", id="U+2028"),
        pytest.param("%0B", id="VT"),
        pytest.param("%1E", id="RS"),
    ],
)
def test_text_log_lines_cannot_be_forged(text_server: Server, separator: str) -> None:
    marker = f"{FORGED}-{separator}"
    call(text_server, "GET", "/nothing-here" + separator + quote(marker))
    log = settle(text_server)
    lines = [line for line in log.splitlines() if f"FORGED-{separator}" in line]
    assert lines, "the request was not logged"
    for line in lines:
        assert not line.startswith("2099"), f"a forged line: {line!r}"
        assert " INFO aiohttp.access " in line


# ---- 3, 4. pages: CSP with a nonce, SRI, Referrer-Policy, frame-ancestors, nosniff ---------


def csp(headers: dict[str, str]) -> dict[str, list[str]]:
    out = {}
    for directive in headers["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        out[name] = values
    return out


@pytest.mark.parametrize("page", ["/player", "/"])
def test_pages_send_a_strict_policy(web_server: Server, page: str) -> None:
    status, headers, body = call(web_server, "GET", page)
    assert status == 200
    policy = csp(headers)
    nonces = [v for v in policy["script-src"] if v.startswith("'nonce-")]
    assert len(nonces) == 1
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert set(policy["script-src"]) == {"'self'", nonces[0], PlayerSettings.hls_js_url}
    assert policy["frame-ancestors"] == ["'self'"] and policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"  # the page's URL holds a signed playlist URL
    # every inline script carries this response's nonce; the only other script is hls.js, pinned
    nonce = nonces[0].removeprefix("'nonce-").removesuffix("'")
    text = body.decode()
    for tag in re.findall(r"<script\b[^>]*>", text):
        if "src=" in tag:
            assert f'src="{PlayerSettings.hls_js_url}"' in tag
            assert f'integrity="{PlayerSettings.hls_js_integrity}"' in tag and 'crossorigin="anonymous"' in tag
        elif 'type="application/json"' not in tag:
            assert f'nonce="{nonce}"' in tag, tag
    assert call(web_server, "GET", page)[1]["Content-Security-Policy"] != headers["Content-Security-Policy"]  # fresh nonce


def test_hls_js_is_one_exact_version_with_its_hash() -> None:
    assert re.search(r"/hls\.js@\d+\.\d+\.\d+/dist/hls\.min\.js$", PlayerSettings.hls_js_url)
    assert re.fullmatch(r"sha384-[A-Za-z0-9+/]{64}", PlayerSettings.hls_js_integrity)
    conf = (Path(__file__).parents[2] / "conf" / "livetx.toml").read_text()
    assert f'hls_js_url = "{PlayerSettings.hls_js_url}"' in conf and f'hls_js_integrity = "{PlayerSettings.hls_js_integrity}"' in conf


# ---- 5. /player?src= only plays this server's playlists, or allowed origins' --------------


@pytest.mark.parametrize(
    "src",
    [
        pytest.param("https://evil.example/hls/default/clip.mp4/master.m3u8", id="other-origin"),
        pytest.param("//evil.example/master.m3u8", id="scheme-relative"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("https://cdn.example.evil.example/master.m3u8", id="allowed-as-prefix"),
    ],
)
def test_player_refuses_a_foreign_src(web_server: Server, src: str) -> None:
    status, _, body = call(web_server, "GET", "/player?src=" + quote(src, safe=""))
    assert status == 400
    assert json.loads(body)["error"]["parameter"] == "src"


@pytest.mark.parametrize("src", ["/hls/default/clip.mp4/master.m3u8", "{base}/hls/default/clip.mp4/master.m3u8", f"{CDN_ORIGIN}/x.m3u8"])
def test_player_plays_its_own_and_allowed_origins(web_server: Server, src: str) -> None:
    status, headers, _ = call(web_server, "GET", "/player?src=" + quote(src.format(base=web_server.base_url), safe=""))
    assert status == 200
    policy = csp(headers)
    # and the browser itself refuses to fetch or play from anywhere else
    assert policy["connect-src"] == ["'self'", CDN_ORIGIN]
    assert set(policy["media-src"]) == {"'self'", "blob:", CDN_ORIGIN}


# ---- 6. CORS only for the streams -----------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/sources", "/api/openapi.json", "/player", "/", "/healthz"])
def test_no_cors_outside_the_streams(web_server: Server, path: str) -> None:
    origin = {"Origin": "https://evil.example"}
    _, headers, _ = call(web_server, "GET", path, headers={**origin, **METRICS, "Authorization": f"Bearer {web_server.api_key}"})
    assert "Access-Control-Allow-Origin" not in headers
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    _, headers, _ = call(web_server, "OPTIONS", path, headers=preflight)
    assert "Access-Control-Allow-Origin" not in headers


def test_cors_still_on_the_streams(web_server: Server) -> None:
    status, headers, _ = call(web_server, "GET", "/hls/default/clip.mp4/master.m3u8", headers={"Origin": "https://player.example"})
    assert status == 401 and headers["Access-Control-Allow-Origin"] == "*"


# ---- 7. /metrics behind a bearer token -------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        pytest.param({}, 401, "metrics_token_missing", id="none"),
        pytest.param({"Authorization": "Bearer " + "m" * 40}, 403, "metrics_token_invalid", id="wrong"),
        pytest.param({"Authorization": METRICS_TOKEN}, 401, "metrics_token_missing", id="no-scheme"),
        pytest.param({"Authorization": f"Basic {METRICS_TOKEN}"}, 401, "metrics_token_missing", id="basic"),
    ],
)
def test_metrics_need_the_token(web_server: Server, headers: dict[str, str], status: int, code: str) -> None:
    got, _, body = call(web_server, "GET", "/metrics", headers=headers)
    assert got == status and json.loads(body)["error"]["code"] == code
    assert METRICS_TOKEN not in body.decode()


def test_metrics_with_the_token(web_server: Server) -> None:
    status, _, body = call(web_server, "GET", "/metrics", headers=METRICS)
    assert status == 200 and b"livetx_http_requests" in body


# ---- 8. Server: livetx, on every answer ------------------------------------------------


def test_server_header_names_no_version(web_server: Server) -> None:
    url = web_server.cli("url", "clip.mp4", "--base-url", web_server.base_url)
    answers = {
        "healthz": call(web_server, "GET", "/healthz"),
        "404": call(web_server, "GET", "/nothing"),
        "401": call(web_server, "GET", "/hls/default/clip.mp4/master.m3u8"),
        "metrics 401": call(web_server, "GET", "/metrics"),
        "page": call(web_server, "GET", "/player"),
        "master": call(web_server, "GET", url.removeprefix(web_server.base_url)),
    }
    master = m3u8.loads(answers["master"][2].decode(), uri=url)
    media_url = master.playlists[0].absolute_uri
    media = m3u8.loads(urllib.request.urlopen(media_url, timeout=60).read().decode(), uri=media_url)
    segment = media.segments[0].absolute_uri.removeprefix(web_server.base_url)
    answers["segment"] = first = call(web_server, "GET", segment)
    answers["segment again (a file)"] = call(web_server, "GET", segment)
    answers["304"] = call(web_server, "GET", segment, headers={"If-None-Match": first[1]["ETag"]})
    assert answers["304"][0] == 304
    for name, (_, headers, _) in answers.items():
        assert headers["Server"] == "livetx", (name, headers["Server"])
    refused = raw_request(web_server, b"G\xffT / HTTP/1.1\r\n\r\n")
    assert b"\r\nServer: livetx\r\n" in refused


# ---- 9. X-Request-Id: an id, or replaced ------------------------------------------------


def test_a_good_request_id_is_kept(web_server: Server) -> None:
    _, headers, _ = call(web_server, "GET", "/healthz", headers={"X-Request-Id": "trace-42.a:b_c"})
    assert headers["X-Request-Id"] == "trace-42.a:b_c"


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("x" * 65, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param("id;sig=" + SECRET, id="token-like"),
        pytest.param("a\tb", id="tab"),
    ],
)
def test_a_bad_request_id_is_replaced_never_echoed_or_logged(web_server: Server, presented: str) -> None:
    since = log_size(web_server)
    _, headers, body = call(web_server, "GET", "/nothing", headers={"X-Request-Id": presented})
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"])
    assert json.loads(body)["request_id"] == headers["X-Request-Id"]
    assert presented not in settle(web_server, since)


def test_a_non_ascii_request_id_is_replaced(web_server: Server) -> None:
    since = log_size(web_server)
    head = b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    answer = raw_request(web_server, head + b"X-Request-Id: zyx\xc3\xa9\xe2\x80\xa8id\r\n\r\n")
    request_id = re.search(rb"\r\nX-Request-Id: ([^\r]*)\r\n", answer)
    assert request_id and re.fullmatch(rb"[0-9a-f]{32}", request_id.group(1))
    assert "zyx" not in settle(web_server, since)
