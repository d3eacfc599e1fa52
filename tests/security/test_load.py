"""Long titles must not let any viewer stall the server (issue 13, item 3).

A 44-hour title (a sparse file: two frames 44 h apart, 15,843 segments) under the default
profile. Viewers ask for its media playlist over and over, with a title-scoped token (one
query on every URI) and with a path token (one signature per URI), while an API client polls
its status view. Before the fix each playlist request rendered and signed every segment on
the event loop (0.6-1.3 s each) and each status call stat'ed every segment file on it (2 s):
/healthz waited behind them. Now every request holds the loop a few milliseconds at most.
"""

from __future__ import annotations

import multiprocessing
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from tests.conftest import Server, launch_server
from tests.security.conftest import api, call, watch
from tests.support import raw_mkv, wait_for_quiet_cpu

HOURS = 44
SEGMENTS = 3 + (HOURS * 3600 - 6) // 10 + 1  # 2-2-2 s, then 10 s segments, the last one shorter
KEY = "long.mkv"
MEDIA = f"/hls/default/{KEY}/main.m3u8"
SECONDS = 2.0  # of each attack
ATTEMPTS = 3
CLIENTS = 1  # of each kind, back to back (the 2 cores are shared: the load must leave the server CPU)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("load")
    media = home / "media"
    media.mkdir()
    raw_mkv(media / KEY, 64, [0, HOURS * 3600 * 25])
    env = {"LIVETX_PROFILES_DEFAULT_INITD": "0", "LIVETX_CACHE_LOOKAHEAD": "false"}
    with launch_server(home, media, **env) as running:
        yield running


def signed(server: Server, body: dict[str, object]) -> str:
    status, answer = api(server, "/api/v1/sign", body)
    assert status == 200, answer
    url: str = answer["url"]
    return url[len(server.base_url) :]


def client(base_url: str, path: str, headers: dict[str, str], expect: bytes, seconds: float) -> tuple[int, list[str]]:
    """Ask for `path` back to back for `seconds`; (answers, what was wrong). `expect` is what
    each answer must hold SEGMENTS times."""
    stop = time.monotonic() + seconds
    answers, wrong = 0, []
    while time.monotonic() < stop:
        request = urllib.request.Request(base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            wrong.append(f"{path.split('?')[0]}: {exc.code}")
            continue
        answers += 1
        if body.count(expect) != SEGMENTS:
            wrong.append(f"{path.split('?')[0]}: {body.count(expect)} of {SEGMENTS} segments")
    return answers, wrong


def attack(base_url: str, clients: list[tuple[str, dict[str, str], bytes]], seconds: float) -> list[tuple[int, list[str]]]:
    """The clients side by side, in threads of this (separate) process."""
    with ThreadPoolExecutor(len(clients)) as threads:
        return list(threads.map(lambda c: client(base_url, *c, seconds), clients))


def test_long_title_playlists_and_status_keep_the_loop_free(server: Server) -> None:
    title_url = signed(server, {"key": KEY, "scope": "title", "ttl": 600}).replace("/master.m3u8?", "/main.m3u8?")
    path_url = signed(server, {"path": MEDIA, "ttl": 600})
    auth = {"Authorization": f"Bearer {server.api_key}"}
    # Not what's tested: planning the title and writing its playlists to storage, once per
    # source version, on the first request (the catalog's work, about 0.1 s on the loop for 44 h).
    # The /healthz after it is answered once that is done, so watch() starts after it.
    assert call(server, "GET", title_url.replace("/main.m3u8?", "/master.m3u8?"))[0] == 200
    assert call(server, "GET", "/healthz")[0] == 200
    clients = [
        (title_url, {}, b"#EXTINF:"),  # a title token: the same query on every URI
        (path_url, {}, b"#EXTINF:"),  # a path token: one signature per URI
        (f"/api/v1/titles/default/{KEY}", auth, b'"state": "none"'),  # the status view
    ] * CLIENTS
    # The clients run in their own process: in this one, their reading of 2.7 MB answers would
    # hold the GIL against watch()'s /healthz poller and count as the server's latency.
    # The machine's 2 cores are shared: an idle server there fails watch() now and then (a
    # 100 ms scheduling gap), so up to ATTEMPTS runs of the attack; one clean run passes.
    # Before the fix no run can: every playlist request held the loop 0.6-1.3 s.
    misses = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process:
        assert process.submit(client, server.base_url, "/healthz", {}, b"", 0).result() == (0, [])  # started
        for _ in range(ATTEMPTS):
            # the suite's other servers may still be making segments in the background (earlier
            # tests' pre-transcodes): on 2 shared cores that starves this server's loop, not its code
            wait_for_quiet_cpu()
            results: list[tuple[int, list[str]]] = []
            try:
                with watch(server) as seen:
                    results = process.submit(attack, server.base_url, clients, SECONDS).result(timeout=120)
            except AssertionError as exc:
                misses.append(str(exc).splitlines()[0])
                continue
            finally:
                assert results and not [w for _, wrong in results for w in wrong], results
                assert all(count for count, _ in results), results
            break
        else:
            pytest.fail(f"every run stalled the server: {misses}")
    print(f"answers {[count for count, _ in results]}, healthz p99 {seen.healthz_p99 * 1000:.1f} ms, runs missed: {misses}")


def test_status_poll_without_change_is_a_304(server: Server) -> None:
    """The demo page's poll: If-None-Match with the last ETag answers 304 until something changes."""
    auth = {"Authorization": f"Bearer {server.api_key}"}
    status, headers, body = call(server, "GET", f"/api/v1/titles/default/{KEY}", headers=auth)
    assert status == 200 and headers["ETag"]
    again = call(server, "GET", f"/api/v1/titles/default/{KEY}", headers={**auth, "If-None-Match": headers["ETag"]})
    assert again[0] == 304 and again[1]["ETag"] == headers["ETag"] and again[2] == b""
    stale = call(server, "GET", f"/api/v1/titles/default/{KEY}", headers={**auth, "If-None-Match": '"other"'})
    assert stale[0] == 200 and stale[2] == body


def test_demo_page_polls_gently(server: Server) -> None:
    """The demo page asks for the status every few seconds, only while visible and playing,
    with If-None-Match (it used to ask every second, whatever the tab was doing)."""
    status, _, page = call(server, "GET", "/")
    text = page.decode()
    assert status == 200 and "setInterval(refresh, 1000)" not in text
    assert "const POLL_MS = 2500" in text and 'document.visibilityState === "visible"' in text and "If-None-Match" in text
