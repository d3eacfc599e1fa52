"""The origin under load, on loopback, against anchors in the same run.

  - coalescing: N concurrent cold requests for one segment -> transcodes made, p50/p99 latency;
  - warm playlists: media-playlist latency and throughput at 200 concurrent clients;
  - cached segments: throughput of livetx against nginx serving the same files, both under the
    same bounded load (64 connections);
  - playback simulation: clients that fetch segments at 1x real time from a cold cache, with
    lookahead on and off; a stall is a segment that arrives after its playback deadline.

Writes benchmarks/results/origin_load.json. Not a pass/fail test. nginx is optional
(apt-get install nginx-light); without it that anchor is left out.

    python benchmarks/origin_load.py [--clients 200] [--coalesce 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import m3u8
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from livetx.app import create_app
from livetx.media.sample import SampleSpec, write_sample
from livetx.settings import load_settings
from livetx.web.keys import SEGMENTS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CDN = "b" * 40
PULL = {"X-Livetx-Origin-Auth": CDN}


def settings(media: Path, **env: str) -> Any:
    return load_settings(
        ROOT / "conf" / "livetx.toml",
        {
            "LIVETX_STORAGE_URI": str(media),
            "LIVETX_SIGNING_KEYS": "b:" + "cd" * 32,
            "LIVETX_SIGNING_KEY_FILE": "",
            "LIVETX_API_KEY_FILE": "",
            "LIVETX_CDN_ORIGIN_SECRET": CDN,
            "LIVETX_SERVER_LOG_FORMAT": "text",
            **env,
        },
    )


async def serve(config: Any) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes]:
    began = time.perf_counter()
    async with session.get(url, headers=PULL) as response:
        response.raise_for_status()
        body = await response.read()
    return time.perf_counter() - began, body


async def playlist_urls(session: aiohttp.ClientSession, base: str, key: str) -> tuple[str, list[tuple[str, float]]]:
    master = m3u8.loads((await timed_get(session, f"{base}/hls/default/{key}/master.m3u8"))[1].decode())
    media_url = f"{base}/hls/default/{key}/{master.playlists[0].uri}"
    media = m3u8.loads((await timed_get(session, media_url))[1].decode())
    return media_url, [(f"{base}/hls/default/{key}/{s.uri}", float(s.duration)) for s in media.segments]


async def coalescing(media: Path, count: int) -> dict[str, Any]:
    runner, base = await serve(settings(media, LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false"))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            _, segments = await playlist_urls(session, base, "title.mp4")
            url = segments[len(segments) // 2][0]
            service = runner.app[SEGMENTS]
            before = service.stats.transcodes
            results = await asyncio.gather(*(timed_get(session, url) for _ in range(count)))
        times = [t for t, _ in results]
        return {
            "requests": count,
            "transcodes": service.stats.transcodes - before,
            "identical_bodies": len({b for _, b in results}) == 1,
            "p50_s": percentile(times, 0.5),
            "p99_s": percentile(times, 0.99),
        }
    finally:
        await runner.cleanup()


async def hammer(urls: list[str], clients: int, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    """`clients` loops fetching `urls` round robin for `seconds`: requests/s, MB/s, latencies."""
    latencies: list[float] = []
    sent = 0
    stop = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal sent
        i = offset
        while time.perf_counter() < stop:
            began = time.perf_counter()
            async with session.get(urls[i % len(urls)], headers=headers) as response:
                body = await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - began)
            sent += len(body)
            i += 1

    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(session, n) for n in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "requests_per_s": len(latencies) / elapsed,
        "mb_per_s": sent / elapsed / 1e6,
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


async def warm_playlists(media: Path, clients: int, seconds: float) -> dict[str, float]:
    process, base = serve_process(media, LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false")
    try:
        async with aiohttp.ClientSession() as session:
            media_url, _ = await playlist_urls(session, base, "title.mp4")
        return await hammer([media_url], clients, seconds, PULL)
    finally:
        process.terminate()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        return None
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # cached files are 0600, like livetx's own
        + f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types {{ video/mp2t ts; }}
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    )
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (process, f"http://127.0.0.1:{port}") if listening(process, port, 5.0) else None


def listening(process: subprocess.Popen[bytes], port: int, seconds: float) -> bool:
    """Wait until `process` accepts connections on `port`; kill it if it doesn't in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    process.kill()
    return False


def serve_process(media: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`livetx serve` in its own process, so the load generator doesn't share its event loop."""
    port = free_port()
    full = {
        **os.environ,
        "LIVETX_CONFIG": str(ROOT / "conf" / "livetx.toml"),
        "LIVETX_SERVER_PORT": str(port),
        "LIVETX_STORAGE_URI": str(media),
        "LIVETX_SIGNING_KEYS": "b:" + "cd" * 32,
        "LIVETX_SIGNING_KEY_FILE": "",
        "LIVETX_API_KEY_FILE": "",
        "LIVETX_CDN_ORIGIN_SECRET": CDN,
        **env,
    }
    process = subprocess.Popen([sys.executable, "-m", "livetx", "serve"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not listening(process, port, 30.0):
        raise RuntimeError("livetx serve did not start")
    return process, f"http://127.0.0.1:{port}"


async def cached_segments(media: Path, tmp: Path, clients: int, seconds: float) -> dict[str, Any]:
    """livetx (1 process, as shipped) and nginx (1 worker) serving the same cached segment files,
    each in its own process, driven by the same client."""
    process, base = serve_process(media, LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false")
    try:
        async with aiohttp.ClientSession() as session:
            _, segments = await playlist_urls(session, base, "title.mp4")
            urls = [u for u, _ in segments[:6]]
            for url in urls:
                await timed_get(session, url)
        await asyncio.sleep(1.0)  # write-backs land
        out: dict[str, Any] = {"livetx": await hammer(urls, clients, seconds, PULL)}
    finally:
        process.terminate()
        process.wait()
    files = sorted((media / ".livetx").rglob("*.ts"))[:6]
    nginx = start_nginx(media / ".livetx", tmp / "nginx")
    if nginx is not None:
        process, nginx_base = nginx
        try:
            nginx_urls = [f"{nginx_base}/{f.relative_to(media / '.livetx').as_posix()}" for f in files]
            out["nginx"] = await hammer(nginx_urls, clients, seconds, {})
        finally:
            process.terminate()
            process.wait()
        out["throughput_ratio_livetx_over_nginx"] = out["livetx"]["mb_per_s"] / out["nginx"]["mb_per_s"]
    return out


async def playback(media: Path, lookahead: bool, players: int) -> dict[str, Any]:
    """Players start together on a cold cache and fetch each segment when playback needs it
    (1x real time, with the first segment fetched at once); a stall is a late segment."""
    for folder in (media / ".livetx",):
        shutil.rmtree(folder, ignore_errors=True)
    env = {"LIVETX_CACHE_LOOKAHEAD": "true" if lookahead else "false", "LIVETX_PROFILES_DEFAULT_INITD": "0"}
    runner, base = await serve(settings(media, **env))
    try:
        async with aiohttp.ClientSession() as session:
            _, segments = await playlist_urls(session, base, "title.mp4")

            async def player(offset: int) -> tuple[int, float]:
                """Plays from `offset`: starts when the first segment arrives, then asks for
                each next segment when one segment of buffer is left."""
                stalls, stalled = 0, 0.0
                deadline: float | None = None  # when playback runs out of what has arrived
                for url, duration in segments[offset:]:
                    await timed_get(session, url)
                    now = time.perf_counter()
                    if deadline is None:
                        deadline = now
                    elif now > deadline:
                        stalls += 1
                        stalled += now - deadline
                        deadline = now
                    deadline += duration
                    await asyncio.sleep(max(0.0, deadline - duration - time.perf_counter()))
                return stalls, stalled

            began = time.perf_counter()
            results = await asyncio.gather(*(player(n * 2) for n in range(players)))
        return {
            "players": players,
            "stalls": sum(s for s, _ in results),
            "stalled_s": sum(t for _, t in results),
            "seconds": time.perf_counter() - began,
            "transcodes": runner.app[SEGMENTS].stats.transcodes,
        }
    finally:
        await runner.cleanup()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        media = tmp / "media"
        write_sample(media / "title.mp4", SampleSpec(seconds=args.seconds, width=1280, height=720, fps=Fraction(30)))
        results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
        results["coalescing"] = await coalescing(media, args.coalesce)
        results["warm_playlists"] = await warm_playlists(media, args.clients, args.duration)
        results["cached_segments"] = await cached_segments(media, tmp, 64, args.duration)
        results["playback_lookahead_on"] = await playback(media, True, args.players)
        results["playback_lookahead_off"] = await playback(media, False, args.players)
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic 720p title")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--coalesce", type=int, default=50)
    parser.add_argument("--players", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each load run")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "origin_load.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
