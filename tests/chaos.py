"""Chaos run: players play while segments are deleted, workers and origins are killed and S3 restarts.

Everything is real and on loopback (tests/fleet.py): SeaweedFS as S3 (sources and output),
`livetx serve` as subprocesses (one origin, or with `--origins 3` a fleet sharing a
valkey-server for its segment leases, behind the nginx front of deploy/nginx.conf when nginx
is installed), and player threads that fetch master, media playlists and segments at a
multiple of real time, seek now and then, switch renditions, and retry as hls.js does
(through the front, or round-robin over the origins without one: each try goes to the next
origin). A chaos thread meanwhile deletes random segment objects, SIGKILLs transcode workers,
restarts S3 and, with several origins, SIGKILLs a whole origin (its workers too, as a host that
dies) and starts it again on the same port a moment later: its leases run out and the other
origins make its segments.

Afterwards, with the chaos stopped and the write-backs landed, every segment object in S3 and
in each origin's local tier is checked: whole (its seal), decodable to the end, and timed as
its stored media playlist says (first PTS at the segment's start, frame count times frame
duration equal to its EXTINF). The report gives what the players saw (requests, errors by
kind, retries) and what was verified; the exit status is 1 if any object is wrong or any
player error was not recovered.

    python -m tests.chaos [--seconds 90] [--players 6] [--origins 3 [--no-front]] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import av
import m3u8

from livetx.cache.seal import is_sealed
from livetx.media.sample import SampleSpec, write_sample
from tests.fleet import Fleet, Origin, nginx_binary
from tests.s3server import BUCKET
from tests.support import descendants

TS_OFFSET = Fraction(7, 5)  # the constant offset of title time in every segment (1.4 s)
SOURCE_PREFIX = "chaos"  # the sources' prefix in the bucket
OUTPUT = f"{SOURCE_PREFIX}/.livetx/"  # made segments and playlists (the default output: beside the sources)
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


Route = Callable[[str], str]  # where one try of a URL goes (the front, or the next origin)


class RoundRobin:
    """Each try to the next origin, as a client of a DNS name with several addresses would."""

    def __init__(self, bases: list[str]) -> None:
        self._next = itertools.cycle(bases)
        self._lock = threading.Lock()

    def __call__(self, url: str) -> str:
        parts = urlsplit(url)
        with self._lock:
            base = next(self._next)
        return base + url[len(f"{parts.scheme}://{parts.netloc}") :]


def as_is(url: str) -> str:
    return url


def fetch(url: str, seen: Seen, route: Route = as_is, tries: int = 7) -> bytes | None:
    """GET like hls.js's default load policy: up to 6 retries of a 5xx or a failed connection,
    waiting 1, 2, 4, 8, 8, 8 s (or longer if Retry-After says so): about 31 s in all."""
    for attempt in range(tries):
        seen.add(requests=1)
        wait = min(2.0**attempt, 8.0)
        try:
            with urllib.request.urlopen(route(url), timeout=60) as response:
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


def player(master_url: str, speed: float, until: float, seen: Seen, rng: random.Random, route: Route) -> None:
    while time.monotonic() < until:
        body = fetch(master_url, seen, route)
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
                text = fetch(current, seen, route)
                if text is None:
                    break
                playlist = m3u8.loads(text.decode())
                media[current] = [(urljoin(current, s.uri), float(s.duration)) for s in playlist.segments]
            segments = media[current]
            if index >= len(segments):
                break  # played to the end: start over with another title
            url, duration = segments[index]
            body = fetch(url, seen, route)
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
    """The server's transcode workers (spawned processes under it; not the spawn helper)."""
    return [pid for pid in descendants(server_pid) if b"spawn_main" in cmdline(pid)]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def chaos(fleet: Fleet, until: float, events: Counter[str], rng: random.Random) -> None:
    faults = ["delete", "delete", "kill", "kill", "s3"] + ["origin"] * (len(fleet.origins) > 1)
    client = fleet.s3_client
    while time.monotonic() < until:
        time.sleep(rng.uniform(1.0, 3.0))
        what = rng.choice(faults)
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
            pids = worker_pids(rng.choice(fleet.origins).pid)
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
                events["workers killed"] += 1
        elif time.monotonic() < until - 10:  # S3 or an origin: back well before the end
            if what == "s3":
                fleet.s3.stop()
                time.sleep(rng.uniform(1.0, 4.0))
                fleet.s3.start()
                events["S3 restarts"] += 1
            else:
                origin = rng.choice(fleet.origins)
                origin.kill()
                events["origins killed"] += 1
                time.sleep(rng.uniform(0.5, 3.0))
                origin.start()


def cached_objects(fleet: Fleet) -> list[tuple[str, str, bytes]]:
    """(where, key under the output root, bytes) of every segment in S3 and in the local tiers."""
    found = [("s3", key, data) for key, data in fleet.stored() if key.endswith(".ts")]
    for origin in fleet.origins:
        tier = origin.home / "tier"
        for path in sorted(p for p in tier.rglob("*.ts") if p.is_file()):
            found.append((f"tier of {origin.name}", path.relative_to(tier).as_posix(), path.read_bytes()))
    return found


def verify(fleet: Fleet) -> tuple[Counter[str], list[str]]:
    """Every cached segment: sealed, decodable to the end, timed as its playlist says."""
    client = fleet.s3_client
    problems: list[str] = []
    checked: Counter[str] = Counter()
    playlists: dict[str, list[Fraction]] = {}
    for where, key, data in cached_objects(fleet):
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


def total(fleet: Fleet, name: str) -> float:
    """`name` summed over the origins (counters restart at zero with a killed origin)."""
    return sum(fleet.metric(name).values())


def wait_writebacks(origins: list[Origin], timeout: float = 120) -> None:
    """Until no origin has a write-back pending (bounded: the report says what is left)."""
    deadline = time.monotonic() + timeout
    while any(o.metric("livetx_writebacks_pending") > 0 for o in origins) and time.monotonic() < deadline:
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--players", type=int, default=6)
    parser.add_argument("--origins", type=int, default=1, help="origins sharing S3 and (when more than one) a valkey-server")
    parser.add_argument("--no-front", action="store_true", help="with several origins: round-robin over them, not through nginx")
    parser.add_argument("--speed", type=float, default=4.0, help="playback speed, in multiples of real time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs, S3 data, tiers) and print its path")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    several = args.origins > 1
    tmp = Path(tempfile.mkdtemp(prefix="livetx-chaos-"))
    try:
        front = several and not args.no_front and nginx_binary() is not None
        fleet = Fleet(tmp / "fleet", args.origins, redis=several, front=front, sources=SOURCE_PREFIX, output=OUTPUT.rstrip("/"))
        with fleet:
            for key, spec in SOURCES.items():
                path = tmp / Path(key).name
                write_sample(path, spec)
                fleet.upload(key.split("/", 1)[1], path.read_bytes())
            origin = fleet.origins[0]
            assert origin.server is not None
            base = fleet.front.url if fleet.front is not None else origin.base_url
            masters = [origin.server.cli("url", key.split("/", 1)[1], "--profile", profile, "--base-url", base)
                       for key in SOURCES for profile in ("default", "ladder")]  # fmt: skip
            route: Route = as_is if fleet.front is not None else RoundRobin([o.base_url for o in fleet.origins])
            seen, events = Seen(), Counter[str]()
            until = time.monotonic() + args.seconds
            threads = [
                threading.Thread(target=player, args=(masters[i % len(masters)], args.speed, until, seen, random.Random(i), route))
                for i in range(args.players)
            ]
            threads.append(threading.Thread(target=chaos, args=(fleet, until, events, rng)))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_writebacks(fleet.origins)
            server = {
                name.removeprefix("livetx_").removesuffix("_total"): total(fleet, name)
                for name in (
                    "livetx_transcodes_total",
                    "livetx_worker_restarts_total",
                    "livetx_transcode_retries_total",
                    "livetx_transcode_failures_total",
                    "livetx_writeback_failures_total",
                    "livetx_corrupt_segments_total",
                )
            }
            checked, problems = verify(fleet)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "seconds": args.seconds,
        "players": args.players,
        "origins": args.origins,
        "through": "nginx front" if front else ("round-robin over the origins" if several else "the origin"),
        "speed": args.speed,
        "chaos": dict(events),
        "player_requests": seen.requests,
        "segments_received": seen.segments,
        "retried_answers": seen.retries,
        "player_errors": dict(seen.errors),
        "bad_segments_served": seen.bad_bodies,
        "server": server,  # summed over the origins, since each last started
        "objects_verified": dict(checked),
        "object_problems": problems,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if problems or seen.bad_bodies or seen.errors or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
