"""Media playlists of a long title under load: `livetx serve` against a minimal aiohttp anchor.

The title is a real 2-hour movie as the planner sees it (723 segments under the default
profile): a tiny sparse rawvideo Matroska file with two frames 2 h apart. wrk drives one
`livetx serve` process with the title's media playlist:

  - title token: the URL carries a token scoped to the title (what the demo page and
    `scope: "title"` sign), so every URI in the answer carries the same token;
  - path token: the URL carries a token for that one playlist path, so every segment URI in
    the answer gets its own signature;

while a thread polls /healthz every 10 ms (its p99 is the latency any other client sees).
The anchor is an aiohttp process whose one handler answers the same playlist text from
memory: the best a Python origin on this runtime can do per request. The event-loop lag
histogram of the server (`livetx_event_loop_lag_seconds`) gives the worst lag of each run.

    python benchmarks/playlist_load.py [--hours 2] [--connections 16] [--duration 5]

Needs wrk (apt-get install wrk). Writes benchmarks/results/playlist_load.json. Not a
pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import free_port, launch_server
from tests.security.conftest import lag_buckets, over

RESULTS = Path(__file__).resolve().parent / "results"


def sparse_title(path: Path, hours: float) -> None:
    """A 64x64 grey rawvideo Matroska at 25 fps with one frame at 0 and one `hours` later:
    a few kilobytes that probe and plan as a title of that length."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "gray"
        for pts in (0, int(hours * 3600 * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64), 128, np.uint8), format="gray")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)


def api(base: str, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()  # type: ignore[no-any-return]


def lag_over(base: str, bound: float) -> tuple[float, float]:
    """(observations, observations above `bound`) of the server's loop-lag histogram."""
    buckets = lag_buckets(base)
    return buckets[float("inf")], over(buckets, bound)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run (one thread: the other core is the server's): requests/s and latencies."""
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url], capture_output=True, text=True, check=True
    )
    out: dict[str, float] = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)[1])}  # type: ignore[index]
    for share, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", done.stdout, re.M):
        out[f"p{share}_ms"] = float(value) * _UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    out["non_2xx"] = float(errors[1]) if errors else 0.0
    return out


def under_load(base: str, url: str, connections: int, seconds: float) -> dict[str, float]:
    """wrk against `url` while a thread polls /healthz; the loop lag the server saw meanwhile."""
    healthz: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            fetch(base + "/healthz")
            healthz.append(time.perf_counter() - began)
            stop.wait(0.01)

    seen, lagged = lag_over(base, 0.05)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        result = wrk(url, connections, seconds)
    finally:
        stop.set()
        poller.join()
    seen_after, over_after = lag_over(base, 0.05)
    result["healthz_p50_ms"] = 1000 * percentile(healthz, 0.5)
    result["healthz_p99_ms"] = 1000 * percentile(healthz, 0.99)
    result["lag_observations"] = seen_after - seen
    result["lag_over_50ms"] = over_after - lagged
    return result


ANCHOR = """
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def playlist(request):
    return web.Response(body=body, content_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "private, no-store"})
async def healthz(request):
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_get("/{tail:.+}.m3u8", playlist)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def anchor(text: bytes, tmp: Path, connections: int, seconds: float) -> dict[str, float]:
    """The same playlist bytes from a one-handler aiohttp process."""
    (tmp / "anchor.m3u8").write_bytes(text)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", ANCHOR, str(port), str(tmp / "anchor.m3u8")])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"http://127.0.0.1:{port}/x.m3u8")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return wrk(f"http://127.0.0.1:{port}/x.m3u8", connections, seconds)
    finally:
        process.terminate()
        process.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="livetx-playlists-") as name:
        tmp = Path(name)
        media = tmp / "media"
        media.mkdir()
        sparse_title(media / "movie.mkv", args.hours)
        # the machine may be shared: how busy it was says how far to trust the run
        results: dict[str, Any] = {"hours": args.hours, "connections": args.connections, "load_before": os.getloadavg()[0]}
        env = {"LIVETX_PROFILES_DEFAULT_INITD": "0", "LIVETX_CACHE_LOOKAHEAD": "false"}
        with launch_server(tmp / "home", media, **env) as server:
            base, key = server.base_url, server.api_key
            title = api(base, key, "/api/v1/sign", {"key": "movie.mkv", "scope": "title", "ttl": 3600})["url"]
            media_url = title.replace("/master.m3u8?", "/main.m3u8?")
            path = api(base, key, "/api/v1/sign", {"path": "/hls/default/movie.mkv/main.m3u8", "ttl": 3600})["url"]
            text = fetch(media_url)
            results["segments"] = text.count(b"#EXTINF")
            results["playlist_bytes"] = len(text)
            fetch(path)
            results["title_token"] = under_load(base, media_url, args.connections, args.duration)
            results["path_token"] = under_load(base, path, args.connections, args.duration)
        results["anchor_aiohttp"] = anchor(text, tmp, args.connections, args.duration)
        results["load_after"] = os.getloadavg()[0]
        results["title_token_over_anchor"] = results["title_token"]["requests_per_s"] / results["anchor_aiohttp"]["requests_per_s"]
        results["path_token_over_anchor"] = results["path_token"]["requests_per_s"] / results["anchor_aiohttp"]["requests_per_s"]
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0, help="length of the sparse title")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk: apt-get install wrk")
    results = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "playlist_load.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
