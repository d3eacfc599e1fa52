"""Overload: many concurrent cold requests for distinct segments against `livetx serve`.

With 2 workers and `transcode.max_queue` small, a burst of N distinct cold segment requests
must split into answers (200) and quick refusals (503 with Retry-After), with the server's
memory flat. Then each refused client retries after its Retry-After, as a player does, until
every segment has been served. Reports the split, the latencies of both kinds, the number of
retries, the time until all were served, and the server's peak RSS (sampled every 50 ms).

    python benchmarks/overload.py [--requests 78] [--max-queue 8]

Writes benchmarks/results/overload.json. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import m3u8

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import launch_server

RESULTS = Path(__file__).resolve().parent / "results"


def get(url: str) -> tuple[int, float, float]:
    """(status, seconds, Retry-After)."""
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            response.read()
            return response.status, time.perf_counter() - began, 0.0
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, time.perf_counter() - began, float(exc.headers.get("Retry-After") or 0)


def rss_kib(pid: int) -> int:
    """Resident memory of the server and its workers."""
    out = subprocess.run(["ps", "-o", "rss=", "--pid", str(pid), "--ppid", str(pid)], capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split())


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=78)
    parser.add_argument("--max-queue", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="livetx-overload-") as tmp_name:
        tmp = Path(tmp_name)
        media = tmp / "media"
        media.mkdir()
        for i in range(6):
            write_sample(media / f"s{i}.mp4", SampleSpec(seconds=60.0, width=640, height=360, preset="ultrafast"))
        env = {
            "LIVETX_TRANSCODE_WORKERS": "2",
            "LIVETX_TRANSCODE_MAX_QUEUE": str(args.max_queue),
            "LIVETX_PROFILES_DEFAULT_ST": "5000",
            "LIVETX_PROFILES_DEFAULT_INITD": "0",
            "LIVETX_CACHE_LOOKAHEAD": "false",
        }
        with launch_server(tmp / "home", media, **env) as server:
            urls = []
            for i in range(6):
                master_url = server.cli("url", f"s{i}.mp4", "--base-url", server.base_url)
                with urllib.request.urlopen(master_url) as response:
                    master = m3u8.loads(response.read().decode(), uri=master_url)
                media_url = urljoin(master_url, master.playlists[0].uri)
                with urllib.request.urlopen(media_url) as response:
                    playlist = m3u8.loads(response.read().decode())
                urls += [urljoin(media_url, s.uri) for s in playlist.segments]
            urls = urls[: args.requests]
            peak = [rss_kib(server.process.pid)]
            idle_rss = peak[0]
            sampling = True

            def sample() -> None:
                while sampling:
                    peak.append(rss_kib(server.process.pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(urls)) as pool:
                first = list(pool.map(get, urls))
            burst_s = time.perf_counter() - began
            retries = 0
            pending = [(u, r) for u, r in zip(urls, first, strict=True) if r[0] != 200]

            def until_served(item: tuple[str, tuple[int, float, float]]) -> int:
                url, (status, _, retry_after) = item
                tries = 0
                while status != 200:
                    time.sleep(max(retry_after, 0.5))
                    status, _, retry_after = get(url)
                    tries += 1
                return tries

            with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
                retries = sum(pool.map(until_served, pending))
            all_served_s = time.perf_counter() - began
            sampling = False
            sampler.join()
    served = [s for status, s, _ in first if status == 200]
    refused = [s for status, s, _ in first if status == 503]
    result = {
        "requests": len(urls),
        "workers": 2,
        "max_queue": args.max_queue,
        "first_answers": {str(code): sum(1 for s, _, _ in first if s == code) for code in sorted({s for s, _, _ in first})},
        "served_p50_s": statistics.median(served) if served else None,
        "served_p99_s": pct(served, 0.99),
        "refused_p50_ms": statistics.median(refused) * 1000 if refused else None,
        "refused_p99_ms": pct(refused, 0.99) * 1000,
        "retry_after_s": sorted({r for s, _, r in first if s == 503}),
        "burst_s": burst_s,
        "retries_until_all_served": retries,
        "all_served_s": all_served_s,
        "server_rss_idle_mib": idle_rss / 1024,
        "server_rss_peak_mib": max(peak) / 1024,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overload.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
