"""Operations: metrics, health and readiness, HTTP caching semantics, CORS, JSON logs and a
graceful SIGTERM, against the real app (in-process on loopback, or `livetx serve`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import m3u8
import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.web.keys import POOL, SEGMENTS
from tests.conftest import Server, Source, app_settings, free_port, launch_server
from tests.support import samples, wait_for, wait_until

CDN = "c" * 40
PULL = {"X-Livetx-Origin-Auth": CDN}
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path, sources: dict[str, Source]) -> MakeClient:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")

    async def make(**env: str) -> TestClient[Any, Any]:
        settings = app_settings(
            **{"LIVETX_STORAGE_URI": str(media), "LIVETX_CDN_ORIGIN_SECRET": CDN, "LIVETX_TRANSCODE_WORKERS": "2", **env}
        )
        return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]

    return make


async def first_segment(client: TestClient[Any, Any]) -> str:
    base = "/hls/default/a.mp4/"
    master = m3u8.loads(await (await client.get(base + "master.m3u8", headers=PULL)).text())
    media = m3u8.loads(await (await client.get(base + master.playlists[0].uri, headers=PULL)).text())
    return base + media.segments[0].uri


async def test_metrics_count_requests_transcodes_and_cache(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false")
    segment = await first_segment(client)
    for _ in range(3):
        response = await client.get(segment, headers=PULL)
        assert response.status == 200
        await response.read()  # (the first is streamed as it is made: its headers come first)
    assert (await client.get("/hls/default/missing.mp4/master.m3u8", headers=PULL)).status == 404
    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    got = samples(await response.text())
    assert got[("livetx_http_requests_total", (("method", "GET"), ("route", "hls-segment"), ("status", "200")))] == 3
    assert got[("livetx_http_requests_total", (("method", "GET"), ("route", "hls-master"), ("status", "404")))] == 1
    assert got[("livetx_http_request_seconds_count", (("route", "hls-segment"),))] == 3
    assert got[("livetx_http_response_bytes_total", (("route", "hls-segment"),))] > 3 * 188
    assert got[("livetx_transcode_seconds_count", (("rendition", "main"),))] == 1
    assert got[("livetx_transcodes_total", ())] == 1 and got[("livetx_cache_misses_total", ())] == 1
    assert sum(got[("livetx_cache_hits_total", (("tier", tier),))] for tier in ("hot", "memory", "local", "storage")) == 2
    for name in (
        "livetx_transcode_queue_depth",
        "livetx_transcodes_in_flight",
        "livetx_singleflight_joins_total",
        "livetx_worker_restarts_total",
    ):
        assert (name, ()) in got, name
    assert got[("livetx_transcode_workers", ())] == 2


async def test_health_and_readiness(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"] == {"pool": "ok", "storage": "ok"}
    pool = client.server.app[POOL]
    os.kill(pool.worker_pids()[0], signal.SIGKILL)
    await wait_for(lambda: len(pool.worker_pids()) < pool.size, 10, "the killed worker to be seen dead")
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503 and (await not_ready.json())["checks"]["pool"] == "1 of 2 workers alive"


async def test_not_ready_when_storage_is_unreachable(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    client = await make_client(
        LIVETX_STORAGE_OUTPUT_URI="s3://nowhere/out",
        LIVETX_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        LIVETX_S3_REGION="us-east-1",
        LIVETX_S3_MAX_ATTEMPTS="1",
    )
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503 and body["checks"]["storage"].startswith("unreachable")


async def test_segment_etag_and_304_from_file_and_from_memory(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false")
    segment = await first_segment(client)
    fresh = await client.get(segment, headers=PULL)  # made now: sent from memory
    stored = await client.get(segment, headers=PULL)  # a hit: sent from the file
    assert fresh.headers["ETag"] == stored.headers["ETag"] and fresh.headers["ETag"].startswith('"')
    assert "immutable" in stored.headers["Cache-Control"] and "public" in stored.headers["Cache-Control"]
    again = await client.get(segment, headers={**PULL, "If-None-Match": stored.headers["ETag"]})
    assert again.status == 304 and again.headers["ETag"] == stored.headers["ETag"]
    other = await client.get(segment, headers={**PULL, "If-None-Match": '"nope"'})
    assert other.status == 200


async def test_playlists_and_unknown_sources_cache_headers(make_client: MakeClient) -> None:
    client = await make_client()
    playlist = await client.get("/hls/default/a.mp4/master.m3u8", headers=PULL)
    assert playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "no-store" in playlist.headers["Cache-Control"]
    missing = await client.get("/hls/default/missing.mp4/master.m3u8", headers=PULL)
    assert missing.status == 404 and missing.headers["Cache-Control"] == "public, max-age=10"


async def test_cors(make_client: MakeClient) -> None:
    client = await make_client(LIVETX_SERVER_CORS_ORIGINS="https://player.example")
    preflight = await client.options(
        "/hls/default/a.mp4/master.m3u8",
        headers={"Origin": "https://player.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"},
    )
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "https://player.example"
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]
    allowed = await client.get("/hls/default/a.mp4/master.m3u8", headers={**PULL, "Origin": "https://player.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://player.example"
    refused = await client.get("/hls/default/a.mp4/master.m3u8", headers={"Origin": "https://evil.example"})
    assert refused.status == 401 and "Access-Control-Allow-Origin" not in refused.headers
    anyone = await make_client()
    error = await anyone.get("/hls/default/a.mp4/master.m3u8", headers={"Origin": "https://x.example"})
    assert error.status == 401 and error.headers["Access-Control-Allow-Origin"] == "*"  # errors are readable too
    # only the streams: never the API, /metrics or the pages (their answers are not for other sites)
    for path in ("/api/v1/sources", "/metrics", "/player", "/healthz"):
        other = await anyone.get(path, headers={"Origin": "https://x.example"})
        assert "Access-Control-Allow-Origin" not in other.headers, path
    preflight = await anyone.options("/api/v1/sign", headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_logs_are_json_lines_with_request_ids(server: Server, sources: dict[str, Source]) -> None:
    url = server.cli("url", sources["mp4-30"].key, "--base-url", server.base_url)
    with urllib.request.urlopen(urllib.request.Request(url, headers={"X-Request-Id": "trace-42"}), timeout=60) as response:
        assert response.headers["X-Request-Id"] == "trace-42"

    def access_logged() -> list[str]:
        whole = server.log.read_text().split("\n")[:-1]  # complete lines only
        records = [line for line in whole if line.startswith("{")]
        return records if any('"access"' in line and '"trace-42"' in line for line in records) else []

    records = wait_until(access_logged, 10, "the access line of the request in the log")
    assert all(line.isascii() for line in records)  # one line each, whatever paths clients sent
    lines = [json.loads(line) for line in records]
    access = [entry for entry in lines if entry.get("event") == "access" and entry.get("request_id") == "trace-42"]
    assert access and access[0]["path"].endswith("/master.m3u8") and access[0]["status"] == 200
    assert all("sig=" not in json.dumps(entry) for entry in lines)


def test_sigterm_finishes_the_request_and_the_write_back(tmp_path: Path, sources: dict[str, Source]) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["ts-2997"].path, media / "t.ts")
    with launch_server(tmp_path, media, LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false") as server:
        url = server.cli("url", "t.ts", "--base-url", server.base_url)
        with urllib.request.urlopen(url, timeout=60) as response:
            master = m3u8.loads(response.read().decode(), uri=url)
        media_url = master.playlists[0].absolute_uri
        with urllib.request.urlopen(media_url, timeout=60) as response:
            playlist = m3u8.loads(response.read().decode(), uri=media_url)
        segment = playlist.segments[-1]
        result: dict[str, Any] = {}

        def fetch() -> None:
            with urllib.request.urlopen(segment.absolute_uri, timeout=60) as response:
                result["status"], result["body"] = response.status, response.read()

        client = threading.Thread(target=fetch)
        client.start()

        def under_way() -> bool:
            with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
                got = samples(response.read().decode())
            return got[("livetx_transcodes_in_flight", ())] >= 1 or "status" in result

        wait_until(under_way, 60, "the transcode of the last segment to be under way")
        server.process.send_signal(signal.SIGTERM)
        client.join(timeout=60)
        assert result["status"] == 200 and len(result["body"]) > 0
        assert server.process.wait(timeout=60) == 0
        stored = list((media / ".livetx").rglob(segment.uri.split("?")[0]))
        assert len(stored) == 1 and stored[0].read_bytes() == result["body"]


def test_log_lines_stay_one_line_whatever_the_path() -> None:
    import logging

    from livetx.logs import JsonFormatter

    record = logging.makeLogRecord({"msg": "GET /a\u2028b\x85c\nd\r", "event": "access", "path": "/x\u2029y"})
    line = JsonFormatter().format(record)
    assert line.isascii() and len(line.splitlines()) == 1 and json.loads(line)["path"] == "/x\u2029y"


class Requested:
    """What the access logger reads of a request and its response."""

    def __init__(self, path: str) -> None:
        self.remote, self.method, self.path, self.status, self.body_length = "127.0.0.1", "GET", path, 200, 1234

    def get(self, key: object) -> str:
        return "trace-42"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/hls/default/a.mp4/main-0123456789ab-3.ts", id="plain"),
        pytest.param("/hls/a?sig=SECRET&exp=1", id="query in the path"),
        pytest.param("/x/Bearer SECRET/b'raw'", id="credential-like"),
        pytest.param("/a\u2028b/\u00e9\x85", id="line breaks and non-ASCII"),
    ],
)
@pytest.mark.parametrize("process", [None, "1"], ids=["one process", "one of several"])
def test_an_access_line_written_directly_is_the_line_its_record_gives(path: str, process: str | None) -> None:
    """`serve`'s JSON handler writes access lines itself (`logs.direct`): the very line the
    record would give through logging's filters and formatter, redacted alike. When anything
    else would see the record, or lines are text, it goes through logging."""
    import io
    import logging
    import re

    from livetx import logs
    from livetx.app import AccessLogger

    root, logger = logging.getLogger(), logging.getLogger("aiohttp.access")
    saved = root.handlers[:], root.level
    out = io.StringIO()
    seen: Any = Requested(path)  # request and response alike
    access = AccessLogger(logger, "")
    try:
        logs.configure("text")
        assert logs.direct(logger) is None
        logs.configure("json", process=process)
        assert isinstance(root.handlers[0], logs.LineHandler)
        root.handlers[0].setStream(out)
        assert logs.direct(logger) is root.handlers[0]
        access.log(seen, seen, 0.01234)
        other = logging.NullHandler()
        logger.addHandler(other)
        assert logs.direct(logger) is None
        access.log(seen, seen, 0.01234)
        logger.removeHandler(other)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    direct, usual = out.getvalue().split("\n")[:2]
    stamp = re.compile(r'^\{"ts": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ')
    assert stamp.match(direct) and stamp.match(usual) and stamp.sub("", direct) == stamp.sub("", usual)
    entry = json.loads(direct)
    assert direct.isascii() and entry["status"] == 200 and entry["request_id"] == "trace-42" and entry["event"] == "access"
    assert "SECRET" not in out.getvalue()
    if process is not None:  # which of several processes wrote it
        assert (entry["proc"], entry["pid"]) == (process, os.getpid())


SEGMENT_ASKS = {
    "whole": ("GET", {}),
    "head": ("HEAD", {}),
    "range": ("GET", {"Range": "bytes=8-107"}),
    "head-range": ("HEAD", {"Range": "bytes=8-107"}),
    "suffix": ("GET", {"Range": "bytes=-100"}),
    "suffix-beyond-start": ("GET", {"Range": "bytes=-99999999"}),
    "open-end": ("GET", {"Range": "bytes=100-"}),
    "one-byte": ("GET", {"Range": "bytes=0-0"}),
    "end-beyond": ("GET", {"Range": "bytes=0-99999999"}),
    "start-beyond": ("GET", {"Range": "bytes=99999999-"}),
    "backwards": ("GET", {"Range": "bytes=5-2"}),
    "two-ranges": ("GET", {"Range": "bytes=0-1,4-5"}),
    "not-bytes": ("GET", {"Range": "pages=1"}),
    "if-none-match": ("GET", {"If-None-Match": "*"}),
}
COMPARED = ("Content-Type", "Content-Length", "Content-Range", "ETag", "Cache-Control", "Accept-Ranges")


async def test_a_hot_segment_is_answered_as_its_file_is(make_client: MakeClient) -> None:
    """A cached segment sent from memory (the hot tier) gets the answer `web.FileResponse`
    gives its file: status, body and headers, ranges (unsatisfiable and malformed ones too),
    HEAD and If-None-Match alike. (A 416 from memory also says Accept-Ranges and its empty
    body's Content-Length, where FileResponse's is chunked: only framing.)"""
    quiet = {"LIVETX_PROFILES_DEFAULT_INITD": "0", "LIVETX_CACHE_LOOKAHEAD": "false"}
    from_file = await make_client(**quiet, LIVETX_CACHE_HOT_MAX_BYTES="0")
    segment = await first_segment(from_file)
    await (await from_file.get(segment, headers=PULL)).read()
    await from_file.server.app[SEGMENTS].wait_idle()  # stored: from now on sent from its file
    from_memory = await make_client(**quiet)
    await (await from_memory.get(segment, headers=PULL)).read()  # found stored, and taken into memory
    service = from_memory.server.app[SEGMENTS]
    await service.wait_idle()
    assert len(service.hot) == 1
    for case, (method, headers) in SEGMENT_ASKS.items():
        answers = []
        for client in (from_file, from_memory):
            response = await client.request(method, segment, headers={**PULL, **headers})
            compared = COMPARED if response.status != 416 else COMPARED[:1] + COMPARED[2:5]
            answers.append((response.status, await response.read(), {name: response.headers.get(name) for name in compared}))
        assert answers[0] == answers[1], case
    assert from_file.server.app[SEGMENTS].stats.hits["hot"] == 0
    assert service.stats.hits["hot"] == len(SEGMENT_ASKS) - 1  # If-None-Match is answered before any lookup


async def test_access_lines_go_out_at_the_end_of_the_loop_turn_in_whole_line_writes() -> None:
    """On the event loop, one turn's access lines go out together, in writes of whole lines of
    at most WRITE_BYTES (atomic on a pipe); another record writes them first, keeping the order."""
    import io
    import logging

    from livetx import logs

    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def write(self, text: str) -> int:
            self.calls.append(text)
            return super().write(text)

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = Writes()
    try:
        logs.configure("json")
        handler = root.handlers[0]
        assert isinstance(handler, logs.LineHandler)
        handler.setStream(out)
        for n in range(40):
            handler.access("aiohttp.access", f"GET /{n:02d} " + "x" * 200, {"event": "access", "path": f"/{n:02d}"})
        assert out.calls == []  # not before the turn ends
        await asyncio.sleep(0)
        assert len(out.calls) > 1 and all(len(call) <= logs.WRITE_BYTES and call.endswith("\n") for call in out.calls)
        handler.access("aiohttp.access", "GET /last", {"event": "access", "path": "/last"})
        logging.getLogger("livetx.web").warning("after")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = out.getvalue().splitlines()
    assert [json.loads(line).get("path") for line in lines] == [f"/{n:02d}" for n in range(40)] + ["/last", None]
    assert json.loads(lines[-1])["message"] == "after"


@pytest.mark.parametrize(
    "value",
    [True, False, 0, -7, 2**70, 0.1, 1e-7, 1e22, float("nan"), float("-inf"), 200.0, None, 'é\u2028"\\', Path("/p?sig=x"), ("a", 1)],
)
def test_access_fields_are_written_as_a_record_would_be(value: object) -> None:
    import io
    import logging
    import re
    from http import HTTPStatus

    from livetx import logs

    root, logger = logging.getLogger(), logging.getLogger("aiohttp.access")
    saved = root.handlers[:], root.level
    out = io.StringIO()
    fields = {"event": "access", "x": value, "status": HTTPStatus.OK}
    try:
        logs.configure("json")
        handler = root.handlers[0]
        assert isinstance(handler, logs.LineHandler)
        handler.setStream(out)
        handler.access(logger.name, "GET /a", fields)
        logger.info("%s", "GET /a", extra=fields)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    direct, usual = (re.sub(r'^\{"ts": "[^"]*", ', "", line) for line in out.getvalue().split("\n")[:2])
    assert direct == usual


def test_request_metrics_are_the_families_prometheus_counters_would_give() -> None:
    """HttpCounts (plain numbers, made into families when scraped) exposes what prometheus'
    Counter and Histogram would for the same requests: names, labels, buckets, sums, counts."""
    import re

    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from livetx.web.metrics import LATENCY_BUCKETS, Metrics

    registry = CollectorRegistry()
    labels = ["route", "method", "status"]
    requests = Counter("livetx_http_requests", "HTTP requests by route, method and status", labels, registry=registry)
    buckets = LATENCY_BUCKETS
    latency = Histogram("livetx_http_request_seconds", "Time to the response, by route", ["route"], buckets=buckets, registry=registry)
    sent = Counter("livetx_http_response_bytes", "Response body bytes sent, by route", ["route"], registry=registry)
    metrics = Metrics()
    seen = [("hls-media", "GET", 200, 0.003), ("hls-media", "GET", 200, 0.001), ("hls-segment", "HEAD", 304, 0.0025)]
    seen += [("hls-media", "GET", 403, 70.0), ("unmatched", "GET", 404, 0.0), ("hls-media", "GET", 200, 60)]
    for route, method, status, seconds in seen:
        metrics.observe_request(route, method, status, seconds)
        requests.labels(route=route, method=method, status=str(status)).inc()
        latency.labels(route=route).observe(seconds)
    for route, size in (("hls-media", 100), ("hls-segment", 7), ("hls-media", 5)):
        metrics.count_bytes(route, size)
        sent.labels(route=route).inc(size)

    def http(text: bytes) -> list[str]:
        lines = [line for line in text.decode().splitlines() if "livetx_http_" in line]
        return [re.sub(r"(_created(\{[^}]*\})?) \S+$", r"\1 <time>", line) for line in lines]

    assert http(generate_latest(metrics.registry)) == http(generate_latest(registry))


def test_new_request_ids_are_distinct_hex_and_drawn_again_in_a_forked_child() -> None:
    import re

    from livetx.web.middleware import REQUEST_IDS

    ids = [REQUEST_IDS.new() for _ in range(1000)]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{32}", one) for one in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out at once
        os.write(write, REQUEST_IDS.new().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child) and child[:16] != ids[0][:16]
