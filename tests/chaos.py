"""Chaos run: players play while segments are deleted, workers are killed and S3 restarts.

Everything is real and on loopback: SeaweedFS as S3 (sources and output), `livetx serve` as a
subprocess, and player threads that fetch master, media playlists and segments at a multiple
of real time, seek now and then, switch renditions, and retry as hls.js does. A chaos thread
meanwhile deletes random segment objects, SIGKILLs transcode workers and restarts S3.

Afterwards, with the chaos stopped and the write-backs landed, every segment object in S3 is
checked: whole (its seal), decodable to the end, and timed as its stored media playlist says
(first PTS at the segment's start, frame count times frame duration equal to its EXTINF).
The report gives what the players saw (requests, errors by kind, retries) and what was
verified; the exit status is 1 if any object is wrong or any player error was not recovered.

    python -m tests.chaos [--seconds 90] [--players 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import av
import botocore.session
import m3u8
from botocore.config import Config

from livetx.cache.seal import is_sealed
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import launch_server
from tests.s3server import BUCKET, SeaweedS3

TS_OFFSET = Fraction(7, 5)  # the constant offset of title time in every segment (1.4 s)
SOURCES = {
    "chaos/a.mp4": SampleSpec(seconds=150.0, width=320, height=180, preset="ultrafast"),
    "chaos/b.mkv": SampleSpec(seconds=120.0, width=320, height=240, container="matroska", preset="ultrafast"),
    "chaos/c.ts": SampleSpec(seconds=90.0, width=320, height=180, container="mpegts", preset="ultrafast"),
}


@dataclass
class Seen:
    """What the players saw."""

    requests: int = 0
    segments: int = 0
    retries: int = 0  # failed answers (5xx, no connection) that were retried
    errors: Counter[str] = field(default_factory=Counter)  # by status or exception, after the retries
    bad_bodies: int = 0  # a 200 whose segment was not whole (must stay 0)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def fetch(url: str, seen: Seen, tries: int = 7) -> bytes | None:
    """GET like hls.js's default load policy: up to 6 retries of a 5xx or a failed connection,
    waiting 1, 2, 4, 8, 8, 8 s (or longer if Retry-After says so): about 31 s in all."""
    for attempt in range(tries):
        seen.add(requests=1)
        wait = min(2.0**attempt, 8.0)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            retry_after = float(exc.headers.get("Retry-After") or 0)
            try:
                code = json.loads(exc.read())["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "?"
            if exc.code >= 500 and attempt < tries - 1:
                seen.add(retries=1)
                time.sleep(max(wait, retry_after))
                continue
            seen.error(f"HTTP {exc.code} {code}")
            return None
        except (urllib.error.URLError, OSError) as exc:
            if attempt < tries - 1:
                seen.add(retries=1)
                time.sleep(wait)
                continue
            seen.error(type(exc).__name__)
            return None
    return None


def player(master_url: str, speed: float, until: float, seen: Seen, rng: random.Random) -> None:
    while time.monotonic() < until:
        body = fetch(master_url, seen)
        if body is None:
            time.sleep(1)
            continue
        master = m3u8.loads(body.decode(), uri=master_url)
        variants = [urljoin(master_url, v.uri) for v in master.playlists]
        media: dict[str, list[tuple[str, float]]] = {}
        current = rng.choice(variants)
        index = 0
        while time.monotonic() < until:
            if current not in media:
                text = fetch(current, seen)
                if text is None:
                    break
                playlist = m3u8.loads(text.decode())
                media[current] = [(urljoin(current, s.uri), float(s.duration)) for s in playlist.segments]
            segments = media[current]
            if index >= len(segments):
                break  # played to the end: start over with another title
            url, duration = segments[index]
            body = fetch(url, seen)
            if body is not None:
                seen.add(segments=1)
                if not is_sealed(body):
                    seen.add(bad_bodies=1)
            time.sleep(duration / speed)
            roll = rng.random()
            if roll < 0.1:
                index = rng.randrange(len(segments))  # a seek
            else:
                index += 1
            if roll > 0.9 and len(variants) > 1:
                current = rng.choice(variants)  # an ABR switch


def worker_pids(server_pid: int) -> list[int]:
    """The server's transcode workers (its spawned children; not the spawn helper itself)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(server_pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "multiprocessing.spawn" in line and "resource_tracker" not in line]


def chaos(s3: SeaweedS3, client: Any, server_pid: int, until: float, events: Counter[str], rng: random.Random) -> None:
    while time.monotonic() < until:
        time.sleep(rng.uniform(1.0, 3.0))
        what = rng.choice(["delete", "delete", "kill", "kill", "s3"])
        if what == "delete":
            try:
                keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=OUTPUT).get("Contents", [])]
            except Exception:  # noqa: BLE001 - S3 may be down right now
                continue
            segments = [k for k in keys if k.endswith(".ts")]
            for key in rng.sample(segments, k=min(rng.randint(1, 3), len(segments))):
                try:
                    client.delete_object(Bucket=BUCKET, Key=key)
                    events["segments deleted"] += 1
                except Exception:  # noqa: BLE001
                    pass
        elif what == "kill":
            pids = worker_pids(server_pid)
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
                events["workers killed"] += 1
        elif time.monotonic() < until - 10:
            s3.stop()
            time.sleep(rng.uniform(1.0, 4.0))
            s3.start()
            events["S3 restarts"] += 1


OUTPUT = "chaos/.livetx/"


def cached_objects(client: Any, tier: Path) -> list[tuple[str, str, bytes]]:
    """(where, key under the output root, bytes) of every segment in S3 and in the local tier."""
    found = []
    for item in client.list_objects_v2(Bucket=BUCKET, Prefix=OUTPUT).get("Contents", []):
        if item["Key"].endswith(".ts"):
            key = item["Key"][len(OUTPUT) :]
            found.append(("s3", key, client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()))
    for path in sorted(p for p in tier.rglob("*.ts") if p.is_file()):
        found.append(("tier", path.relative_to(tier).as_posix(), path.read_bytes()))
    return found


def verify(client: Any, tier: Path) -> tuple[Counter[str], list[str]]:
    """Every cached segment: sealed, decodable to the end, timed as its playlist says."""
    problems: list[str] = []
    checked: Counter[str] = Counter()
    playlists: dict[str, list[Fraction]] = {}
    for where, key, data in cached_objects(client, tier):
        match = re.fullmatch(r"(.+)/([^/]+)-([0-9a-f]+)-(\d+)\.ts", key)
        assert match, key
        folder, rendition, index = match.group(1), match.group(2), int(match.group(4))
        name = f"{folder}/{rendition}"
        if name not in playlists:
            text = client.get_object(Bucket=BUCKET, Key=f"{OUTPUT}{name}.m3u8")["Body"].read().decode()
            playlists[name] = [Fraction(str(s.duration)) for s in m3u8.loads(text).segments]
        durations = playlists[name]
        checked[where] += 1
        key = f"{where}:{key}"
        if not is_sealed(data):
            problems.append(f"{key}: not whole")
            continue
        try:
            with av.open(io.BytesIO(data), format="mpegts") as container:
                stream = container.streams.video[0]
                rate = stream.average_rate
                pts = [frame.pts for frame in container.decode(stream)]
        except av.FFmpegError as exc:
            problems.append(f"{key}: does not decode ({exc})")
            continue
        start = TS_OFFSET + sum(durations[:index], Fraction(0))
        first = Fraction(pts[0], 90000)
        length = len(pts) / Fraction(rate)
        if abs(first - start) > Fraction(1, 1000) or abs(length - durations[index]) > Fraction(1, 1000):
            said = f"{float(start):.4f} + {float(durations[index]):.4f}"
            problems.append(f"{key}: starts {float(first):.4f} s for {float(length):.4f} s, playlist says {said}")
    return checked, problems


def metric(base_url: str, name: str) -> float:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--players", type=int, default=6)
    parser.add_argument("--speed", type=float, default=4.0, help="playback speed, in multiples of real time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="livetx-chaos-") as tmp_name:
        tmp = Path(tmp_name)
        s3 = SeaweedS3(tmp / "s3")
        s3.start()
        try:
            session = botocore.session.get_session()
            client = session.create_client(
                "s3",
                endpoint_url=s3.endpoint,
                region_name="us-east-1",
                aws_access_key_id=s3.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=s3.env["AWS_SECRET_ACCESS_KEY"],
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
            )
            for key, spec in SOURCES.items():
                path = tmp / Path(key).name
                write_sample(path, spec)
                client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
            env = {**s3.env, "LIVETX_STORAGE_URI": f"s3://{BUCKET}/chaos", "LIVETX_TRANSCODE_WORKERS": "2"}
            with launch_server(tmp / "server", Path("unused"), **env) as server:
                masters = [server.cli("url", key.split("/", 1)[1], "--profile", profile, "--base-url", server.base_url)
                           for key in SOURCES for profile in ("default", "ladder")]  # fmt: skip
                seen, events = Seen(), Counter[str]()
                until = time.monotonic() + args.seconds
                threads = [
                    threading.Thread(target=player, args=(masters[i % len(masters)], args.speed, until, seen, random.Random(i)))
                    for i in range(args.players)
                ]
                threads.append(threading.Thread(target=chaos, args=(s3, client, server.process.pid, until, events, rng)))
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                deadline = time.monotonic() + 120
                while metric(server.base_url, "livetx_writebacks_pending") > 0 and time.monotonic() < deadline:
                    time.sleep(0.5)
                writeback_failures = metric(server.base_url, "livetx_writeback_failures_total")
                corrupt = metric(server.base_url, "livetx_corrupt_segments_total")
                restarts = metric(server.base_url, "livetx_worker_restarts_total")
                retried = metric(server.base_url, "livetx_transcode_retries_total")
                failed = metric(server.base_url, "livetx_transcode_failures_total")
                transcodes = metric(server.base_url, "livetx_transcodes_total")
                checked, problems = verify(client, tmp / "server" / "tier")
        finally:
            s3.stop()
    report = {
        "seconds": args.seconds,
        "players": args.players,
        "speed": args.speed,
        "chaos": dict(events),
        "player_requests": seen.requests,
        "segments_received": seen.segments,
        "retried_answers": seen.retries,
        "player_errors": dict(seen.errors),
        "bad_segments_served": seen.bad_bodies,
        "server": {
            "transcodes": transcodes,
            "worker_restarts": restarts,
            "jobs_run_again_after_a_kill": retried,
            "transcode_failures": failed,
            "writeback_failures": writeback_failures,
            "corrupt_found": corrupt,
        },
        "objects_verified": dict(checked),
        "object_problems": problems,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if problems or seen.bad_bodies or seen.errors or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
