"""livetx with S3 (SeaweedFS on loopback) as source and output store.

Measures, for a source of 500 MB or more (MPEG-TS at a fixed mux rate, made by the ffmpeg CLI):
  - bytes read from S3 to make one 10 s segment mid-title (ranged GETs), against the file size;
  - cold and warm master-playlist latency against S3 (HEAD + ranged probe, then cached);
  - time from the master request to segment 0's last byte, pre-transcode on and off, for a
    player that asks at once and one that presses play 3 s later.
Writes benchmarks/results/s3_origin.json. Not a pass/fail test; needs the ffmpeg CLI.

    python benchmarks/s3_origin.py [--seconds 280] [--muxrate 16M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import m3u8
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from livetx.app import create_app
from livetx.factories import open_storages
from livetx.settings import load_settings
from livetx.web.keys import SEGMENTS
from tests.s3server import BUCKET, SeaweedS3

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CDN = "b" * 40


def make_source(path: Path, seconds: int, muxrate: str) -> None:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-f", "lavfi", "-i", "sine=f=440:r=48000"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-c:a", "aac"]
    cmd += ["-f", "mpegts", "-muxrate", muxrate, str(path)]
    subprocess.run(cmd, check=True)


def settings(s3: SeaweedS3, tmp: Path, prefix: str, **env: str) -> Any:
    return load_settings(
        ROOT / "conf" / "livetx.toml",
        {
            **s3.env,
            "LIVETX_STORAGE_URI": f"s3://{BUCKET}/{prefix}",
            "LIVETX_SIGNING_KEYS": "b:" + "cd" * 32,
            "LIVETX_SIGNING_KEY_FILE": "",
            "LIVETX_API_KEY_FILE": "",
            "LIVETX_CDN_ORIGIN_SECRET": CDN,
            "LIVETX_CACHE_LOCAL_DIR": str(tmp / f"tier-{time.monotonic_ns()}"),  # every run starts cold
            **env,
        },
    )


async def serve(config: Any) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def get(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url, headers={"X-Livetx-Origin-Auth": CDN}) as response:
        response.raise_for_status()
        return await response.read()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        s3 = SeaweedS3(tmp / "s3")
        s3.start()
        os.environ.update({k: v for k, v in s3.env.items() if k.startswith("AWS_")})
        try:
            source = tmp / "big.ts"
            make_source(source, args.seconds, args.muxrate)
            size = source.stat().st_size
            async with open_storages(settings(s3, tmp, "src")) as (store, _):
                await store.write("big.ts", source.read_bytes())
            results: dict[str, Any] = {"source_bytes": size, "source_seconds": args.seconds}

            # bytes read for one 10 s segment, and playlist latency
            runner, base = await serve(settings(s3, tmp, "src", LIVETX_PROFILES_DEFAULT_INITD="0", LIVETX_CACHE_LOOKAHEAD="false"))
            async with aiohttp.ClientSession() as session:
                began = time.perf_counter()
                master = m3u8.loads((await get(session, f"{base}/hls/default/big.ts/master.m3u8")).decode())
                results["master_cold_s"] = time.perf_counter() - began
                warm = []
                for _ in range(20):
                    began = time.perf_counter()
                    await get(session, f"{base}/hls/default/big.ts/master.m3u8")
                    warm.append(time.perf_counter() - began)
                results["master_warm_median_s"] = sorted(warm)[len(warm) // 2]
                media = m3u8.loads((await get(session, f"{base}/hls/default/big.ts/{master.playlists[0].uri}")).decode())
                mid = len(media.segments) // 2
                service = runner.app[SEGMENTS]
                before = service.stats.source_bytes
                began = time.perf_counter()
                await get(session, f"{base}/hls/default/big.ts/{media.segments[mid].uri}")
                results["segment_10s_seconds"] = time.perf_counter() - began
                results["segment_10s_duration"] = media.segments[mid].duration
                results["segment_10s_source_bytes"] = service.stats.source_bytes - before
                results["segment_10s_share_of_file"] = results["segment_10s_source_bytes"] / size
            await runner.cleanup()

            # time to first segment, pre-transcode on and off
            for initd in ("6000", "0"):
                for delay in (0.0, 3.0):
                    config = settings(s3, tmp, "src", LIVETX_PROFILES_DEFAULT_INITD=initd, LIVETX_CACHE_LOOKAHEAD="false")
                    runner, base = await serve(config)
                    async with aiohttp.ClientSession() as session:
                        began = time.perf_counter()
                        master = m3u8.loads((await get(session, f"{base}/hls/default/big.ts/master.m3u8")).decode())
                        await asyncio.sleep(delay)
                        media = m3u8.loads((await get(session, f"{base}/hls/default/big.ts/{master.playlists[0].uri}")).decode())
                        asked = time.perf_counter()
                        await get(session, f"{base}/hls/default/big.ts/{media.segments[0].uri}")
                        done = time.perf_counter()
                    results[f"first_segment_initd{initd}_delay{delay:g}_s"] = done - asked
                    await runner.cleanup()
                    async with open_storages(settings(s3, tmp, "src")) as (_, output):  # cold again for the next run
                        for segment in media.segments:
                            await output.delete(f"big.ts/default/{segment.uri.split('?')[0]}")
        finally:
            s3.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=280)
    parser.add_argument("--muxrate", default="16M")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "s3_origin.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
