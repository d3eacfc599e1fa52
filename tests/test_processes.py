"""`livetx serve --processes N`: server processes on one port under a supervisor, sharing the
host's transcode slots; SIGTERM drains them all; one that dies is replaced.

One transcode per segment across the processes is the coordination engine's (issue 17, branch
coord: lock files in cluster.lock_dir): its test goes with it. Until then, each process has
its own singleflight, so the tests here ask each process for distinct segments or count
transcodes per process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import m3u8
import pytest

from tests.conftest import ANNOUNCED, Server, Source, launch_server
from tests.support import alive, child_pids, cpu_seconds, cpu_used_ns, descendants, get_url, samples, thread_cpu_ns, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux /proc")

WINDOW = 0.02  # seconds: the windows the host's transcodes are counted in
BUSY_NS = 2_000_000  # CPU time (ns) in a window that says a worker is at work on a job
RUN = 3  # windows in a row a worker is busy in to count as at work all through them
ONE_MOMENT = 0.001  # seconds within which a reading of all the workers counts as taken at once
SERVER = "spawn_main"  # in the command line of a spawned process (a server process, a worker)
# small, fast segments; made only when asked for (no pre-transcode, no lookahead)
ENV = {
    "LIVETX_TRANSCODE_WORKERS": "1",  # the host's bound: one transcode at a time, for both processes
    "LIVETX_PROFILES_DEFAULT_INITD": "0",
    "LIVETX_CACHE_LOOKAHEAD": "false",
    "LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_S": "x180",
    "LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_PRESET": "ultrafast",
}


def copy_sources(media: Path, sources: dict[str, Source], names: list[str]) -> list[str]:
    media.mkdir()
    for name in names:
        shutil.copy(sources[name].path, media / sources[name].key)
    return [sources[name].key for name in names]


def segment_urls(server: Server, key: str) -> list[str]:
    signing = urllib.request.Request(
        server.base_url + "/api/v1/sign",
        data=json.dumps({"key": key}).encode(),
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(signing, timeout=30) as response:
        master_url = json.loads(response.read())["url"]
    master = m3u8.loads(get_url(master_url)[2].decode(), uri=master_url)
    media_url = master.playlists[0].absolute_uri
    return [segment.absolute_uri for segment in m3u8.loads(get_url(media_url)[2].decode(), uri=media_url).segments]


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        return samples(response.read().decode())


def total(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """A sample summed over the server processes (and any labels not given)."""
    return sum(value for (sample, have), value in scraped.items() if sample == name and set(labels.items()) <= set(have))


def servers(server: Server) -> list[int]:
    return child_pids(server.process.pid, SERVER)


def access_pids(server: Server, prefix: str) -> set[int]:
    """Process ids in the access lines of requests whose id starts with `prefix`."""
    lines = [line for line in server.log.read_text().split("\n")[:-1] if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    return {e["pid"] for e in entries if e.get("event") == "access" and str(e.get("request_id", "")).startswith(prefix)}


def served_by_all(server: Server, prefix: str, pids: list[int]) -> None:
    """Requests on fresh connections until each process has answered one (the kernel spreads them)."""
    count = iter(range(10**6))

    def all_answered() -> bool:
        request = urllib.request.Request(server.base_url + "/healthz", headers={"X-Request-Id": f"{prefix}{next(count)}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        return access_pids(server, prefix) >= set(pids)

    wait_until(all_answered, 60, f"a request answered by each of {pids}")


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Source]) -> Iterator[tuple[Server, list[str]]]:
    """Two server processes, one transcode at a time for the host; the source keys."""
    home = tmp_path_factory.mktemp("two")
    keys = copy_sources(home / "media", sources, ["mp4-30", "mkv-25-44k", "ts-2997", "video-only", "ts-10h"])
    with launch_server(home, home / "media", processes=2, **ENV) as server:
        yield server, keys


def test_both_processes_serve_and_each_scrape_sees_both(two: tuple[Server, list[str]]) -> None:
    server, _ = two
    assert server.log.read_text().count(ANNOUNCED) == 1  # once, when both listen
    pids = servers(server)
    assert len(pids) == 2
    served_by_all(server, "both-", pids)
    lines = [json.loads(line) for line in server.log.read_text().split("\n")[:-1] if line.startswith("{")]
    assert {line["proc"] for line in lines} >= {"0", "1"}  # each line says which process wrote it
    scraped = scrape(server)
    assert scraped[("livetx_server_process_up", (("process", "0"),))] == 1
    assert scraped[("livetx_server_process_up", (("process", "1"),))] == 1
    for process in ("0", "1"):  # each process's own counts, whichever process answered the scrape
        assert total(scraped, "livetx_http_requests_total", route="healthz", process=process) >= 1


def test_the_host_never_runs_more_transcodes_than_its_workers(two: tuple[Server, list[str]]) -> None:
    server, keys = two
    # before any request: each server process's only child is its one transcode worker
    # (probe workers start with the first probe)
    workers = [pid for parent in servers(server) for pid in child_pids(parent, SERVER)]
    assert len(workers) == 2
    urls = [url for key in keys for url in segment_urls(server, key)]
    assert len(urls) >= 12
    cpu_before = {pid: cpu_seconds(pid) for pid in workers}

    # watch the workers' CPU time while the burst runs, in short windows: a worker that used
    # CPU (more than the few microseconds that follow its reply) in RUN windows in a row was
    # at work all through the moments between them, so those seen so were at work together. A
    # job handed from one worker to another shows one in each window, never both in all of
    # them. (Two windows in a row, once in three CI runs of the whole suite, saw both: the
    # worker handing over used over 2 ms of CPU in the window after its job's hand-over. A
    # transcode here takes tens of windows, so overlapping ones still show in three.)
    burst_over = threading.Event()
    most = [0]
    trace: list[dict[int, int]] = []  # CPU ns per worker in each window read at one moment

    def read() -> tuple[dict[int, dict[int, int]], bool]:
        """Every worker's threads' CPU times, and whether they were read at one moment (a
        reading the watcher was descheduled in the middle of ends the windows)."""
        began = time.monotonic()
        reading = {pid: thread_cpu_ns(pid) for pid in workers}
        return reading, time.monotonic() - began < ONE_MOMENT

    def watch() -> None:
        reading, _ = read()
        recent: list[set[int]] = []  # the busy workers of the last RUN windows
        while not burst_over.is_set():
            time.sleep(WINDOW)  # a measuring window, not a wait for an event
            now, at_once = read()
            used = {pid: cpu_used_ns(reading[pid], now[pid]) for pid in workers}
            trace.append(used if at_once else {})
            busy = {pid for pid in workers if used[pid] > BUSY_NS} if at_once else set()
            recent = [*recent, busy][-RUN:]
            if len(recent) == RUN:
                most[0] = max(most[0], len(set.intersection(*recent)))
            reading = now

    statuses: list[int] = []

    def fetch(url: str) -> None:
        statuses.append(get_url(url)[0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=fetch, args=(url,)) for url in urls]  # one connection each
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=120)
    burst_over.set()
    watcher.join()
    assert statuses == [200] * len(urls)
    assert most[0] == 1, f"both at work at once; CPU ns per window: {trace}"  # never both at once
    # and both processes transcoded (each worker worked): the bound held across processes
    assert all(cpu_seconds(pid) - cpu_before[pid] > 0.05 for pid in workers), "one process made every segment"
    scraped = scrape(server)
    assert total(scraped, "livetx_transcodes_total") == len(urls)
    assert total(scraped, "livetx_host_slot_waits_total") >= 1


def test_a_killed_process_is_replaced_and_the_port_keeps_answering(two: tuple[Server, list[str]]) -> None:
    server, _ = two
    before = servers(server)
    victim = before[0]
    its_workers = descendants(victim)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not alive(victim), 10, "the killed process to be gone")
    answered = []

    def replaced() -> bool:
        status, _, _ = get_url(server.base_url + "/healthz")  # a fresh connection each time
        answered.append(status)
        now = servers(server)
        return len(now) == 2 and victim not in now and "process_restarted" in server.log.read_text()

    wait_until(replaced, 60, "a new server process in place of the killed one")
    assert answered and set(answered) == {200}  # the other process answered meanwhile
    wait_until(lambda: not any(alive(pid) for pid in its_workers), 10, "the killed process's workers to exit")
    assert '"process_died"' in server.log.read_text()
    served_by_all(server, "after-kill-", servers(server))


def test_sigterm_drains_every_process(tmp_path: Path, sources: dict[str, Source]) -> None:
    keys = copy_sources(tmp_path / "media", sources, ["mp4-30"])
    with launch_server(tmp_path, tmp_path / "media", processes=2, **ENV) as server:
        urls = [url for key in keys for url in segment_urls(server, key)]
        tree = descendants(server.process.pid)
        results: dict[str, tuple[int, bytes, float]] = {}

        def fetch(url: str) -> None:
            status, _, body = get_url(url)
            results[url] = (status, body, time.monotonic())

        clients = [threading.Thread(target=fetch, args=(url,)) for url in urls]
        for client in clients:
            client.start()
        # every request is being served (its transcode started, or waits for the host's slot)
        wait_until(lambda: total(scrape(server), "livetx_cache_misses_total") == len(urls), 60, "every request to be in a server")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for client in clients:
            client.join(timeout=90)
        assert server.process.wait(timeout=90) == 0
        assert [results[url][0] for url in urls] == [200] * len(urls)
        assert any(done > signalled for _, _, done in results.values()), "every request had finished before SIGTERM"
        for url in urls:  # each segment was stored (the write-backs landed) as it was served
            _, profile, key, name = urllib.parse.urlsplit(url).path.rsplit("/", 3)
            assert (tmp_path / "media" / ".livetx" / key / profile / name).read_bytes() == results[url][1]
        wait_until(lambda: not any(alive(pid) for pid in tree), 10, "every process of the server to be gone")
        assert '"stopped"' in server.log.read_text()


def test_a_process_that_fails_to_start_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "not-a-folder").write_text("")  # cluster.lock_dir: the host slots cannot be made
    with pytest.raises(RuntimeError, match="server exited") as info:
        with launch_server(tmp_path, tmp_path / "media", processes=2, LIVETX_CLUSTER_LOCK_DIR=str(tmp_path / "not-a-folder"), **ENV):
            pass
    log = str(info.value)
    assert "before it listened" in log and '"start_failed"' in log and ANNOUNCED not in log


def test_server_processes_end_with_their_supervisor(two: tuple[Server, list[str]]) -> None:
    """Last of the tests on `two`: it ends that server."""
    server, _ = two
    tree = descendants(server.process.pid)
    assert len(servers(server)) == 2 and len(tree) > 2
    server.process.kill()  # no SIGTERM to pass on: each process sees its pipe to it close
    server.process.wait(timeout=10)
    wait_until(lambda: not any(alive(pid) for pid in tree), 60, "the server processes and their workers to end")
    assert server.log.read_text().count('"supervisor_gone"') == 2
