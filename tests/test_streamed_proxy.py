"""Streamed segments behind a real nginx: the claims of the README's "Behind a proxy or a CDN".

One nginx for the module (tests/fleet.render_front renders deploy/nginx.conf for loopback)
with four servers in front of the same origin port, where each test's in-process app listens
in turn:
- `shipped`: the server of deploy/nginx.conf as it is (HTTP/1.1 to the origin, proxy_buffering off);
- `cached`: the same plus proxy_cache, proxy_cache_valid 200 1h and an X-Cache-Status header,
  with proxy_buffering on, which nginx's cache needs;
- `cached_unbuffered`: the same with proxy_buffering off (nginx then streams but stores nothing);
- `http10`: the shipped server without `proxy_http_version 1.1`: nginx's default, HTTP/1.0.
Every test asks for its own title (its own source key), so none finds another's segment cached.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.cache.seal import is_sealed
from livetx.web.keys import POOL, SEGMENTS
from tests.conftest import app_settings, free_port
from tests.fleet import NGINX_CONF, nginx_binary, render_front, stop_process, wait_port
from tests.test_streamed_segments import CDN, PULL, QUIET, long_segment, long_source

__all__ = ["long_source"]  # the sample fixture of test_streamed_segments.py, used here too

TIMEOUT = aiohttp.ClientTimeout(total=120)
CACHE_LINES = """
            proxy_cache segments;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status $upstream_cache_status always;
"""


@dataclass
class Fronts:
    """One nginx, its servers' base URLs, and the origin port they all proxy to."""

    origin: int
    shipped: str
    cached: str
    cached_unbuffered: str
    http10: str


def server_block(conf: str) -> str:
    """The `server { ... }` block of the rendered deploy/nginx.conf (indented 4, closed at 4)."""
    found = re.search(r"(?ms)^    server \{\n.*?^    \}\n", conf)
    assert found is not None, "deploy/nginx.conf: no server block"
    return found.group(0)


def variant(block: str, port: int, *, cache: bool = False, buffering: str = "off", http11: bool = True) -> str:
    """The shipped server block listening on `port`, with caching added, buffering set, or the
    HTTP/1.1 lines removed (so that nginx speaks its default HTTP/1.0 to the origin)."""
    text = once(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", block)
    text = once(r"proxy_buffering off;", f"proxy_buffering {buffering};", text)
    if cache:
        text = once(r"proxy_pass http://livetx;\n", "proxy_pass http://livetx;\n" + CACHE_LINES.lstrip("\n"), text)
    if not http11:
        text = once(r"(?m)^\s*proxy_http_version 1\.1;\n", "", text)
        text = once(r'(?m)^\s*proxy_set_header Connection "";\n', "", text)
    return text


def once(pattern: str, replacement: str, text: str) -> str:
    """`text` with the one match of `pattern` replaced: a deploy/nginx.conf that no longer has
    the line fails here, rather than leaving a test to check a front that isn't the one named."""
    changed, count = re.subn(pattern, lambda _: replacement, text)
    assert count == 1, f"deploy/nginx.conf: expected one {pattern!r} in its server block, found {count}"
    return changed


def fronts_conf(home: Path, origin: int, ports: dict[str, int]) -> str:
    """deploy/nginx.conf rendered for loopback (tests/fleet.render_front), with the variants as
    further servers of its http block and a cache zone for the caching ones."""
    shipped = render_front(NGINX_CONF.read_text(), [origin], ports["shipped"], home)
    block = server_block(shipped)
    extra = [
        variant(block, ports["cached"], cache=True, buffering="on"),
        variant(block, ports["cached_unbuffered"], cache=True, buffering="off"),
        variant(block, ports["http10"], http11=False),
    ]
    zone = f"    proxy_cache_path {home / 'cache'} levels=1:2 keys_zone=segments:1m;\n"
    head, tail = shipped.split(block)
    return head + zone + block + "".join(extra) + tail


@pytest.fixture(scope="module")
def fronts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronts]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx not found (Debian: apt-get install nginx-light)")
    home = tmp_path_factory.mktemp("nginx")
    ports = {name: free_port() for name in ("shipped", "cached", "cached_unbuffered", "http10")}
    origin = free_port()
    conf = home / "nginx.conf"
    conf.write_text(fronts_conf(home, origin, ports))
    log = home / "nginx.log"
    with open(log, "wb") as out:
        # as root, nginx's workers run as nobody, who can't enter pytest's private temp folders:
        # keep them as the user that runs the tests (the cache and buffered responses need files)
        user = " user root;" if os.geteuid() == 0 else ""
        cmd = [binary, "-c", str(conf), "-p", str(home), "-e", "stderr", "-g", "daemon off;" + user]
        process = subprocess.Popen(cmd, stdout=out, stderr=out)
    try:
        for port in ports.values():
            wait_port(port, process, "nginx", log)
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        yield Fronts(origin, **urls)
    finally:
        stop_process(process, signal.SIGQUIT)


@dataclass
class Seen:
    """What reached the origin: (path, HTTP version) of every segment request, as it arrived."""

    requests: list[tuple[str, str]] = field(default_factory=list)

    def count(self, path: str) -> int:
        return sum(1 for seen, _ in self.requests if seen == path)


Origin = Callable[[str], Awaitable[tuple[TestClient[Any, Any], Seen]]]


@pytest.fixture
def origin(aiohttp_client: Any, tmp_path: Path, long_source: Path, fronts: Fronts) -> Origin:
    """The app on the port the fronts proxy to, with the LONG sample as `key`."""
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)

    async def make(key: str) -> tuple[TestClient[Any, Any], Seen]:
        shutil.copy(long_source, media / key)
        settings = app_settings(
            **{"LIVETX_STORAGE_URI": str(media), "LIVETX_CDN_ORIGIN_SECRET": CDN, "LIVETX_TRANSCODE_WORKERS": "1", **QUIET}
        )
        app = create_app(settings)
        seen = Seen()

        @web.middleware
        async def note(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            """Counts a request when it arrives (before any answer), so that a count read after a
            response through nginx can't race the origin's own bookkeeping."""
            if request.path.endswith((".ts", ".m4s")):
                seen.requests.append((request.path, f"{request.version.major}.{request.version.minor}"))
            return await handler(request)

        app.middlewares.insert(0, note)
        client = await aiohttp_client(app, server_kwargs={"port": fronts.origin})
        return client, seen

    return make


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        yield http


def kill_worker(client: TestClient[Any, Any]) -> None:
    (pid,) = client.app[POOL].worker_pids()
    os.kill(pid, signal.SIGKILL)


async def cold_get(session: aiohttp.ClientSession, url: str, client: TestClient[Any, Any]) -> tuple[aiohttp.ClientResponse, bytes]:
    """The response to a GET of a segment no one has made, and its first bytes, read while the
    origin is still making it (the check that they came early)."""
    response = await session.get(url, headers=PULL)
    assert response.status == 200
    first = await response.content.readany()
    assert first and len(client.app[SEGMENTS].live) == 1  # the segment is still being made
    return response, first


async def test_the_shipped_front_streams_a_cold_segment_as_it_is_made(
    origin: Origin, fronts: Fronts, session: aiohttp.ClientSession
) -> None:
    client, seen = await origin("shipped.mp4")
    url = await long_segment(client, key="shipped.mp4")
    response, first = await cold_get(session, fronts.shipped + url, client)
    assert response.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in response.headers
    body = first + await response.read()
    assert len(first) < len(body) // 2 and is_sealed(body)
    kept = await session.get(fronts.shipped + url, headers=PULL)
    assert kept.headers["Content-Length"] == str(len(body)) and await kept.read() == body
    assert seen.requests == [(url, "1.1"), (url, "1.1")]  # no cache in the shipped front


async def test_the_shipped_front_passes_a_cut_off_on_as_a_cut_off(origin: Origin, fronts: Fronts, session: aiohttp.ClientSession) -> None:
    client, _ = await origin("shipped-cut.mp4")
    url = await long_segment(client, key="shipped-cut.mp4")
    response, _ = await cold_get(session, fronts.shipped + url, client)
    kill_worker(client)
    with pytest.raises(aiohttp.ClientPayloadError):  # nginx closed without the terminating chunk
        await response.read()
    assert client.app[SEGMENTS].stats.streams_aborted == 1
    again = await session.get(fronts.shipped + url, headers=PULL)
    assert again.status == 200 and is_sealed(await again.read())


@pytest.mark.parametrize(("front", "second"), [("cached", "HIT"), ("cached_unbuffered", "MISS")])
async def test_a_caching_front_stores_a_whole_streamed_segment_only_when_buffering(
    origin: Origin, fronts: Fronts, session: aiohttp.ClientSession, front: str, second: str
) -> None:
    """proxy_cache with proxy_buffering on: the first bytes still reach the client while the
    segment is made (nginx writes what it reads on at once, and to the cache file), and the
    whole response is stored. With proxy_buffering off nginx streams it but never stores it."""
    key = f"{front}.mp4"
    client, seen = await origin(key)
    base = getattr(fronts, front)
    url = await long_segment(client, key=key)
    response, first = await cold_get(session, base + url, client)
    assert response.headers["X-Cache-Status"] == "MISS" and response.headers.get("Transfer-Encoding") == "chunked"
    body = first + await response.read()
    assert len(first) < len(body) // 2 and is_sealed(body)
    again = await session.get(base + url, headers=PULL)
    assert again.headers["X-Cache-Status"] == second and await again.read() == body
    if second == "HIT":  # stored with the origin's headers: no length, so sent chunked again
        assert again.headers.get("Transfer-Encoding") == "chunked"
    assert seen.count(url) == (1 if second == "HIT" else 2)


async def test_a_caching_front_does_not_store_a_cut_off(origin: Origin, fronts: Fronts, session: aiohttp.ClientSession) -> None:
    client, seen = await origin("cached-cut.mp4")
    url = await long_segment(client, key="cached-cut.mp4")
    response, _ = await cold_get(session, fronts.cached + url, client)
    assert response.headers["X-Cache-Status"] == "MISS"
    kill_worker(client)
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    again = await session.get(fronts.cached + url, headers=PULL)  # not stored: nginx asks the origin again
    body = await again.read()
    assert again.headers["X-Cache-Status"] == "MISS" and is_sealed(body) and seen.count(url) == 2
    third = await session.get(fronts.cached + url, headers=PULL)  # the whole one was stored
    assert third.headers["X-Cache-Status"] == "HIT" and await third.read() == body and seen.count(url) == 2
    assert client.app[SEGMENTS].stats.streams_aborted == 1


async def test_http10_to_the_origin_gets_the_whole_segment_with_its_length(
    origin: Origin, fronts: Fronts, session: aiohttp.ClientSession
) -> None:
    """nginx's default proxy_http_version 1.0: the origin can't stream (no chunks in HTTP/1.0),
    so it waits for the whole segment and answers it with its length."""
    client, seen = await origin("http10.mp4")
    service = client.app[SEGMENTS]
    url = await long_segment(client, key="http10.mp4")
    response = await session.get(fronts.http10 + url, headers=PULL)
    assert len(service.live) == 0 and service.stats.transcodes == 1  # headers only once it was made
    body = await response.read()
    assert response.headers["Content-Length"] == str(len(body)) and "Transfer-Encoding" not in response.headers
    assert is_sealed(body) and seen.requests == [(url, "1.0")]
    assert service.stats.streamed == 1  # it found the segment being made, and waited for it whole
