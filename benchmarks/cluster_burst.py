"""Cluster burst: 300 concurrent cold requests for 30 distinct segments, spread round-robin over
1 origin and over 3 origins sharing a valkey-server (and, as the anchor, 3 origins without it).

Reports transcodes per distinct segment (target exactly 1.00: one transcode per segment
cluster-wide) and the p50/p99 latency of the 300 requests, each timed from the burst's start
to its last body byte. Everything is real and on loopback (tests/fleet.py): SeaweedFS as S3,
valkey-server, `livetx serve` processes with 2 transcode workers each.

The client is aiohttp in this process, not a C load generator: this is latency under one burst
of 300 requests whose answers take transcodes (around a second each), not throughput, and the
client's own cost (well under a millisecond a request) does not show at that scale.

Writes benchmarks/results/cluster_burst.json. Not a pass/fail test.

    python benchmarks/cluster_burst.py [--requests 300] [--segments 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import m3u8

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from livetx.media.sample import SampleSpec, write_sample
from tests.fleet import CDN_HEADERS, Fleet
from tests.s3server import SeaweedS3

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# 2, 2, 2, 10 and 10 s windows of the default profile (720p asked, capped to the 180p source)
SOURCE = SampleSpec(seconds=26.0, width=320, height=180, fps=Fraction(30), gop=60, preset="ultrafast")
PER_TITLE = 5
# nothing made ahead of a request: the segments asked for are exactly the segments made
ON_REQUEST = {"LIVETX_PROFILES_DEFAULT_INITD": "0", "LIVETX_CACHE_LOOKAHEAD": "false"}
SCENARIOS = {  # name: (origins, shared Redis)
    "1 origin": (1, False),
    "3 origins, Valkey": (3, True),
    "3 origins, no Valkey": (3, False),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_get(session: aiohttp.ClientSession, url: str, began: float) -> tuple[int, float]:
    async with session.get(url, headers=CDN_HEADERS) as response:
        await response.read()
        return response.status, time.perf_counter() - began


async def segment_paths(session: aiohttp.ClientSession, base_url: str, key: str) -> list[str]:
    base = f"/hls/default/{key}/"
    async with session.get(base_url + base + "master.m3u8", headers=CDN_HEADERS) as response:
        master = m3u8.loads(await response.text())
    async with session.get(base_url + base + master.playlists[0].uri, headers=CDN_HEADERS) as response:
        return [base + s.uri for s in m3u8.loads(await response.text()).segments]


async def burst(fleet: Fleet, requests: int, segments: int) -> dict[str, Any]:
    bases = [o.base_url for o in fleet.origins]
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        paths = [p for n in range(segments // PER_TITLE) for p in await segment_paths(session, bases[0], f"t{n}.mp4")]
        before = fleet.transcodes()
        # consecutive requests ask for one segment on different origins
        urls = [bases[i % len(bases)] + paths[(i // len(bases)) % len(paths)] for i in range(requests)]
        began = time.perf_counter()
        answers = await asyncio.gather(*(timed_get(session, url, began) for url in urls))
        wall = time.perf_counter() - began
    transcodes = fleet.transcodes() - before
    times = [t for _, t in answers]
    return {
        "requests": requests,
        "distinct_segments": len(paths),
        "statuses": {str(s): sum(1 for status, _ in answers if status == s) for s in sorted({s for s, _ in answers})},
        "transcodes": transcodes,
        "transcodes_per_segment": transcodes / len(paths),
        "p50_s": percentile(times, 0.5),
        "p99_s": percentile(times, 0.99),
        "max_s": max(times),
        "burst_s": wall,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "source": f"{SOURCE.width}x{SOURCE.height} {SOURCE.seconds:g} s"}
    with tempfile.TemporaryDirectory(prefix="livetx-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.mp4"
        write_sample(source, SOURCE)
        s3 = SeaweedS3(tmp / "s3")
        s3.start()
        try:
            for n, (name, (origins, redis)) in enumerate(SCENARIOS.items()):
                home = tmp / f"scenario{n}"
                with Fleet(home, origins, redis=redis, s3=s3, sources=f"bench{n}", output=f"bench{n}-out", **ON_REQUEST) as fleet:
                    for title in range(args.segments // PER_TITLE):
                        fleet.upload(f"t{title}.mp4", source.read_bytes())
                    results[name] = asyncio.run(burst(fleet, args.requests, args.segments))
                print(name, json.dumps(results[name]), flush=True)
        finally:
            s3.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--segments", type=int, default=30, help=f"distinct segments (a multiple of {PER_TITLE})")
    args = parser.parse_args()
    results = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_burst.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'':22} {'transcodes/segment':>18} {'p50':>7} {'p99':>7}")
    for name in SCENARIOS:
        row = results[name]
        print(f"{name:22} {row['transcodes_per_segment']:18.2f} {row['p50_s']:6.2f}s {row['p99_s']:6.2f}s")


if __name__ == "__main__":
    main()
