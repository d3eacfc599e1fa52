"""The cached hot path (issue 17): one cached segment and its media playlist under wrk, livetx
against nginx and a minimal aiohttp handler, all in one run.

The title is a synthetic 720p60 clip of 30 s planned as 2-2-2-12-12 s segments, so its media
playlist has 5 segments and the segment under load (the 4th, 12 s) is a real livetx segment
of about 780 KB, made and cached by livetx itself. Every request carries a title-scoped token
(what the demo page and `scope: "title"` sign), so each one is verified.

  - cached segment, 64 connections: livetx (1 process) against nginx (1 worker, sendfile, the
    same file) and aiohttp's minimal handlers: the bytes from memory, and `web.FileResponse`
    on aiohttp's default event loop (which has sendfile) and on uvloop (which has not: aiohttp
    then reads the file in a thread, 256 KiB at a time);
  - warm media playlist, 200 connections: livetx against an aiohttp process whose one handler
    answers the same bytes from memory (the target's ceiling), and nginx serving them as a file;
  - the same two with `livetx serve --processes N` against nginx with N workers, when this
    livetx accepts `--processes` (else reported as not available).

One process each is pinned to core 0 and wrk to core 1 (`taskset`), so the client never takes
the server's core; the N-process runs leave scheduling to the kernel (wrk shares the cores).
Each server's CPU seconds per request (from /proc) are reported beside req/s: on a shared
machine they move less than throughput does.

    python benchmarks/hot_path.py [--duration 5] [--processes 2]

Needs wrk (apt-get install wrk); nginx (apt-get install nginx-light) is optional, its rows are
left out without it. Writes benchmarks/results/hot_path.json. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import ROOT, free_port
from tests.support import cpu_seconds as process_cpu_seconds

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEGMENT_CLIENTS = 64
PLAYLIST_CLIENTS = 200
SEGMENT_INDEX = 3  # the first 12 s segment
SIGNING_KEYS = "b:" + "cd" * 32
API_KEY = "ef" * 32
TITLE = "title.mp4"
# 2-2-2 s, then 12 s segments: a 30 s 720p60 clip has 5, and its 12 s ones are ~780 KB
LIVETX_ENV = {
    "LIVETX_PROFILES_DEFAULT_ST": "12000",
    "LIVETX_PROFILES_DEFAULT_INITD": "0",
    "LIVETX_CACHE_LOOKAHEAD": "false",
    "LIVETX_TRANSCODE_WORKERS": "1",
}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


# ---- wrk ---------------------------------------------------------------------------------


def wrk(url: str, connections: int, seconds: float, cpu: int | None, server: Sequence[int]) -> dict[str, float]:
    """One wrk run (one thread, on core `cpu` if given): req/s, MB/s, p50/p99 latency, and the
    CPU seconds the server processes `server` (and their children) used per request."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    before = cpu_seconds(server)
    done = subprocess.run(
        [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url], capture_output=True, text=True, check=True
    )
    used = cpu_seconds(server) - before
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None:
        raise RuntimeError("wrk printed no Requests/sec:\n" + done.stdout + done.stderr)
    out: dict[str, float] = {"requests_per_s": float(found[1])}
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", done.stdout)
    if transfer:
        out["mb_per_s"] = float(transfer[1]) * {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[transfer[2]] * 1.048576
    for share, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", done.stdout, re.M):
        out[f"p{share}_ms"] = float(value) * _UNITS[unit]
    total = re.search(r"(\d+) requests in", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    out["non_2xx"] = float(errors[1]) if errors else 0.0
    socket_errors = re.search(r"Socket errors: (.*)", done.stdout)
    if socket_errors:
        out["socket_errors"] = float(sum(int(n) for n in re.findall(r"\d+", socket_errors[1])))
    if total and int(total[1]) and server:
        out["server_cpu_us_per_request"] = 1e6 * used / int(total[1])
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of `pids` and all their descendants (0 where /proc is not)."""
    total = 0.0
    for pid in descendants(pids):
        try:
            total += process_cpu_seconds(pid)
        except (OSError, IndexError):  # ended meanwhile
            continue
    return total


def descendants(pids: Sequence[int]) -> list[int]:
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


# ---- servers -----------------------------------------------------------------------------


def wait_listening(process: subprocess.Popen[bytes], port: int, seconds: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}" + (":\n" + log.read_text()[-3000:] if log else ""))
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start" + (":\n" + log.read_text()[-3000:] if log else ""))


@contextmanager
def running(argv: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(process, port, 60.0, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def pinned(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def livetx_serve(tmp: Path, media: Path, port: int, processes: int | None, cpu: int | None) -> tuple[list[str], dict[str, str]]:
    """`livetx serve` (with `--processes N` when `processes` is given), its argv and environment."""
    env = {
        **os.environ,
        "LIVETX_CONFIG": str(ROOT / "conf" / "livetx.toml"),
        "LIVETX_SERVER_PORT": str(port),
        "LIVETX_STORAGE_URI": str(media),
        "LIVETX_SIGNING_KEYS": SIGNING_KEYS,
        "LIVETX_SIGNING_KEY_FILE": "",
        "LIVETX_API_KEYS": f"bench:{API_KEY}",
        "LIVETX_API_KEY_FILE": "",
        "LIVETX_CACHE_LOCAL_DIR": str(tmp / "tier"),
        "LIVETX_SERVER_PROCESSES": str(processes or 1),
        "PYTHONPATH": str(ROOT),
        **LIVETX_ENV,
    }
    argv = [*pinned(cpu), sys.executable, "-m", "livetx", "serve"]
    if processes is not None:
        argv += ["--processes", str(processes)]
    return argv, env


def accepts_processes() -> bool:
    """Whether this livetx has `serve --processes` (issue 17's multi-process serving)."""
    done = subprocess.run([sys.executable, "-m", "livetx", "serve", "--help"], capture_output=True, text=True, cwd=ROOT)
    return "--processes" in done.stdout


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()  # type: ignore[no-any-return]


def signed_urls(base: str) -> tuple[str, str]:
    """(media playlist URL, the segment's URL), both with the title-scoped token."""
    body = json.dumps({"key": TITLE, "scope": "title", "ttl": 7 * 24 * 3600}).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    master = json.loads(fetch(base + "/api/v1/sign", headers, body))["url"]
    fetch(master)
    media = master.replace("/master.m3u8?", "/main.m3u8?")
    uris = [line for line in fetch(media).decode().splitlines() if line and not line.startswith("#")]
    return media, media.rsplit("/", 1)[0] + "/" + uris[SEGMENT_INDEX]


def warm(base: str, media: Path) -> tuple[str, str, Path, bytes]:
    """Make the segment, wait for its write-back, and request both URLs until served from
    cache: (playlist URL, segment URL, the segment's file, the playlist's bytes)."""
    playlist_url, segment_url = signed_urls(base)
    stored = stored_segment(segment_url, media)
    for _ in range(20):
        fetch(segment_url)
        text = fetch(playlist_url)
    return playlist_url, segment_url, stored, text


def stored_segment(url: str, media: Path, timeout: float = 120) -> Path:
    """Request the segment at `url` (it is made) and wait, polling, for its write-back to land
    in the output store under `media`: the stored file."""
    fetch(url)
    name = url.rsplit("/", 1)[1].split("?")[0]
    deadline = time.monotonic() + timeout
    while not (found := list((media / ".livetx").rglob(name))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"segment {name} never reached output storage")
        time.sleep(0.1)
    return found[0]


def livetx_runs(tmp: Path, media: Path, seconds: float, processes: int | None, cpu: tuple[int, int] | None) -> dict[str, Any]:
    port = free_port()
    argv, env = livetx_serve(tmp, media, port, processes, cpu[0] if cpu else None)
    with running(argv, port, env, tmp / f"livetx-{processes or 1}.log") as process:
        base = f"http://127.0.0.1:{port}"
        playlist_url, segment_url, segment_file, text = warm(base, media)
        client = cpu[1] if cpu else None
        return {
            "segment": wrk(segment_url, SEGMENT_CLIENTS, seconds, client, [process.pid]),
            "playlist": wrk(playlist_url, PLAYLIST_CLIENTS, seconds, client, [process.pid]),
            "segment_bytes": segment_file.stat().st_size,
            "segment_file": str(segment_file),
            "playlist_text": text.decode(),
        }


NGINX_CONF = """{user}worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types {{ video/mp2t ts; application/vnd.apple.mpegurl m3u8; }}
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


def nginx_runs(root: Path, work: Path, workers: int, seconds: float, cpu: tuple[int, int] | None) -> dict[str, Any] | None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        return None
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""  # the cached files may be 0600
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, workers=workers, work=work, port=port, root=root))
    with running([*pinned(cpu[0] if cpu else None), binary, "-c", str(conf), "-p", str(work)], port) as process:
        base = f"http://127.0.0.1:{port}"
        client = cpu[1] if cpu else None
        return {
            "segment": wrk(f"{base}/segment.ts", SEGMENT_CLIENTS, seconds, client, [process.pid]),
            "playlist": wrk(f"{base}/main.m3u8", PLAYLIST_CLIENTS, seconds, client, [process.pid]),
        }


# the anchor: aiohttp as shipped, one handler per way of answering, nothing else
ANCHOR = """
import sys
from aiohttp import web
port, playlist_file, segment_file, loop_name = sys.argv[1:5]
playlist = open(playlist_file, "rb").read()
segment = open(segment_file, "rb").read()
async def playlist_bytes(request):
    return web.Response(body=playlist, content_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "private, no-store"})
async def segment_bytes(request):
    return web.Response(body=segment, content_type="video/mp2t")
async def segment_file_response(request):
    return web.FileResponse(segment_file, headers={"Content-Type": "video/mp2t"})
app = web.Application()
app.router.add_get("/main.m3u8", playlist_bytes)
app.router.add_get("/bytes.ts", segment_bytes)
app.router.add_get("/file.ts", segment_file_response)
loop = None
if loop_name == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
web.run_app(app, host="127.0.0.1", port=int(port), access_log=None, print=None, loop=loop)
"""


def aiohttp_runs(root: Path, loop: str, seconds: float, cpu: tuple[int, int] | None, cases: Sequence[str]) -> dict[str, Any]:
    port = free_port()
    files = [str(root / "main.m3u8"), str(root / "segment.ts")]
    argv = [*pinned(cpu[0] if cpu else None), sys.executable, "-c", ANCHOR, str(port), *files, loop]
    out: dict[str, Any] = {}
    with running(argv, port) as process:
        base = f"http://127.0.0.1:{port}"
        client = cpu[1] if cpu else None
        for case in cases:
            clients = PLAYLIST_CLIENTS if case == "main.m3u8" else SEGMENT_CLIENTS
            out[case] = wrk(f"{base}/{case}", clients, seconds, client, [process.pid])
    return out


# ---- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    cpu = (0, 1) if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else None
    with tempfile.TemporaryDirectory(prefix="livetx-hot-") as name:
        tmp = Path(name)
        media = tmp / "media"
        write_sample(media / TITLE, SampleSpec(seconds=30, width=1280, height=720, fps=Fraction(60)))
        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]},
            "how": {
                "client": "wrk -t1 --latency, one run per row and round",
                "segment_connections": SEGMENT_CLIENTS,
                "playlist_connections": PLAYLIST_CLIENTS,
                "seconds": args.duration,
                "rounds": args.rounds,
                "pinning": "server on core 0, wrk on core 1 (1-process rows); none for N processes" if cpu else "none",
                "figures": "each the median over the rounds; ratios: the median of each round's ratio",
            },
        }
        files = tmp / "files"
        rounds = [one_round(tmp, media, files, args, cpu, results) for _ in range(args.rounds)]
        if not accepts_processes():
            results["processes_missing"] = "this livetx has no `serve --processes`: the N-process rows are left out"
        if not any("nginx" in measured for measured in rounds):
            results["nginx_missing"] = "nginx is not installed (apt-get install nginx-light): its rows are left out"
        results["machine"]["load_after"] = os.getloadavg()[0]
        for server in rounds[0]:
            if server != "ratios":
                results[server] = {case: medians([r[server][case] for r in rounds]) for case in rounds[0][server]}
        results["ratios"] = {key: round(value, 3) for key, value in medians([r["ratios"] for r in rounds]).items()}
        results["rounds"] = rounds
        return results


def one_round(
    tmp: Path, media: Path, files: Path, args: argparse.Namespace, cpu: tuple[int, int] | None, results: dict[str, Any]
) -> dict[str, Any]:
    """Every row once: livetx, then the anchors serving the very bytes it served (its cached
    segment file, its playlist text), then the N-process rows."""
    measured: dict[str, Any] = {}
    one = livetx_runs(tmp, media, args.duration, None, cpu)
    files.mkdir(exist_ok=True)
    shutil.copy(one.pop("segment_file"), files / "segment.ts")
    (files / "main.m3u8").write_text(one.pop("playlist_text"))
    results["segment_bytes"] = one.pop("segment_bytes")
    results["playlist_bytes"] = (files / "main.m3u8").stat().st_size
    measured["livetx"] = one
    nginx = nginx_runs(files, tmp / "nginx-1", 1, args.duration, cpu)
    if nginx is not None:
        measured["nginx"] = nginx
    measured["aiohttp"] = aiohttp_runs(files, "asyncio", args.duration, cpu, ["main.m3u8", "bytes.ts", "file.ts"])
    measured["aiohttp_uvloop"] = aiohttp_runs(files, "uvloop", args.duration, cpu, ["main.m3u8", "bytes.ts", "file.ts"])
    if accepts_processes():
        n = args.processes
        measured[f"livetx_{n}_processes"] = many = livetx_runs(tmp, media, args.duration, n, None)
        for drop in ("segment_file", "playlist_text", "segment_bytes"):
            many.pop(drop)
        nginx_n = nginx_runs(files, tmp / f"nginx-{n}", n, args.duration, None)
        if nginx_n is not None:
            measured[f"nginx_{n}_workers"] = nginx_n
    measured["ratios"] = ratios(measured, args.processes)
    return measured


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each key's median over `rows` (the keys all of them have)."""
    return {key: statistics.median(row[key] for row in rows) for key in rows[0] if all(key in row for row in rows)}


def ratios(results: dict[str, Any], n: int) -> dict[str, float]:
    """livetx's req/s over each anchor's, same case, same round; and each anchor's server CPU
    per request over livetx's (which moves less than throughput on a shared machine)."""
    out: dict[str, float] = {}
    seg, pl = results["livetx"]["segment"], results["livetx"]["playlist"]
    anchors = {"nginx_1_worker": results.get("nginx"), "aiohttp": results["aiohttp"]}
    for anchor, row in anchors.items():
        if row is None:
            continue
        segment_anchor = row["segment"] if "segment" in row else row["bytes.ts"]
        playlist_anchor = row["playlist"] if "playlist" in row else row["main.m3u8"]
        suffix = "" if anchor != "aiohttp" else "_bytes"
        out[f"segment_over_{anchor}{suffix}"] = seg["requests_per_s"] / segment_anchor["requests_per_s"]
        out[f"playlist_over_{anchor}"] = pl["requests_per_s"] / playlist_anchor["requests_per_s"]
        out[f"segment_cpu_{anchor}{suffix}_over_livetx"] = segment_anchor["server_cpu_us_per_request"] / seg["server_cpu_us_per_request"]
        out[f"playlist_cpu_{anchor}_over_livetx"] = playlist_anchor["server_cpu_us_per_request"] / pl["server_cpu_us_per_request"]
    out["segment_over_aiohttp_file"] = seg["requests_per_s"] / results["aiohttp"]["file.ts"]["requests_per_s"]
    many, nginx_n = results.get(f"livetx_{n}_processes"), results.get(f"nginx_{n}_workers")
    if many and nginx_n:
        out[f"segment_{n}_processes_over_nginx_{n}_workers"] = many["segment"]["requests_per_s"] / nginx_n["segment"]["requests_per_s"]
        out[f"playlist_{n}_processes_over_nginx_{n}_workers"] = many["playlist"]["requests_per_s"] / nginx_n["playlist"]["requests_per_s"]
    return {key: round(value, 3) for key, value in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--processes", type=int, default=2, help="livetx processes and nginx workers of the N-process rows")
    parser.add_argument("--rounds", type=int, default=3, help="every row this many times (the machine may be shared): medians")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("hot_path.py skipped: it needs wrk (apt-get install wrk; `make bench` installs it when run as root)")
        return
    results = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hot_path.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
