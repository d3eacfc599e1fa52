"""Each segment made once by a cluster: the lease loop (ClusterFlight) over real engines, and two
in-process origins on one output store and one Valkey (or one lock directory)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livetx.app import create_app
from livetx.cache.service import SegmentService
from livetx.cluster.flight import ClusterFlight
from livetx.cluster.redis_engine import RedisCoordinator
from livetx.layout import segment_key
from livetx.media.pool import Gate, Priority
from livetx.server_process import ServerProcess
from livetx.web.keys import CATALOG, CLUSTER, SEGMENTS
from tests.conftest import CDN, Source, app_settings
from tests.support import fetch, playlist_segments, samples, wait_for
from tests.valkey import Valkey

Client = TestClient[Any, Any]
LONG = 60.0  # seconds: a lease that doesn't run out within a test


# ---- the loop, over two Redis engines -----------------------------------------------------


class Origin:
    """One would-be origin for the loop alone: a flight over its own engine, a shared "store"."""

    def __init__(self, flight: ClusterFlight, store: dict[str, str]) -> None:
        self.flight, self.store = flight, store
        self.made = 0
        self.stored = asyncio.Event()  # its write-back: the test says when it is durable
        self.fail = False

    async def get(self, key: str, background: bool = False) -> str:
        return await self.flight.once(key, self.lookup(key), self.make(key), self.durable(key), background=background)

    def lookup(self, key: str) -> Callable[[], Awaitable[str | None]]:
        async def lookup() -> str | None:
            return self.store.get(key)

        return lookup

    def make(self, key: str) -> Callable[[Gate | None], Awaitable[str]]:
        async def make(gate: Gate | None) -> str:
            if gate is not None:  # the pool runs it as the job starts
                await gate()
            self.made += 1
            if self.fail:
                raise RuntimeError("transcode failed")
            return f"{key} by {id(self)}"

        return make

    def durable(self, key: str) -> Callable[[], Awaitable[None]]:
        async def durable() -> None:
            await self.stored.wait()
            self.store[key] = f"{key} by {id(self)}"

        return durable


@pytest.fixture
async def pair(valkey: Valkey) -> AsyncIterator[tuple[Origin, Origin]]:
    prefix, store = f"t{secrets.token_hex(4)}:", {}
    flights = [ClusterFlight(RedisCoordinator(valkey.url, prefix, LONG)) for _ in range(2)]
    for flight in flights:
        await flight.start()
    yield Origin(flights[0], store), Origin(flights[1], store)
    for flight in flights:
        await flight.close()


async def test_the_lease_is_released_once_the_segment_is_durable(pair: tuple[Origin, Origin]) -> None:
    a, b = pair
    made = await a.get("k")  # made, its write-back not yet done: the lease is still held
    waiting = asyncio.create_task(b.get("k"))
    await wait_for(lambda: b.flight.state().waiting == 1, 5, "b to wait on a's lease")
    assert a.flight.state().held == 1 and not waiting.done()
    a.stored.set()  # durable: released, b wakes and finds it stored
    assert await asyncio.wait_for(waiting, 5) == made
    assert (a.made, b.made, b.flight.waits, b.flight.takeovers) == (1, 0, 1, 0)
    await wait_for(lambda: a.flight.state().held == 0, 5, "a's lease released")


async def test_a_waiter_takes_over_when_the_holder_fails(pair: tuple[Origin, Origin]) -> None:
    a, b = pair
    a.fail = True
    b.stored.set()
    lease = await a.flight.coordinator.try_acquire("k")  # a is making it...
    assert lease is not None
    waiting = asyncio.create_task(b.get("k"))
    await wait_for(lambda: b.flight.state().waiting == 1, 5, "b to wait on a's lease")
    with pytest.raises(RuntimeError):
        await a.flight._holding(lease, a.lookup("k"), a.make("k"), a.durable("k"), takeover=False)  # ...and fails
    assert await asyncio.wait_for(waiting, 5) == f"k by {id(b)}"
    assert (b.made, b.flight.takeovers) == (1, 1)


async def test_background_work_takes_the_lease_only_as_its_job_starts(pair: tuple[Origin, Origin]) -> None:
    a, b = pair
    gates: list[Gate] = []
    started = asyncio.Event()

    async def queued(gate: Gate | None) -> str:  # a's background job, queued in its pool
        assert gate is not None
        gates.append(gate)
        await started.wait()
        await gate()  # as a worker takes it
        a.made += 1
        return "made by a"

    background = asyncio.create_task(a.flight.once("k", a.lookup("k"), queued, a.durable("k"), background=True))
    await wait_for(lambda: gates, 5, "a's job to be queued")
    assert a.flight.state().held == 0  # queued: no lease
    made = await b.get("k")  # b's client takes the lease and makes it at once
    started.set()  # a's job reaches a worker: its gate finds the lease held, a waits for it
    await wait_for(lambda: a.flight.state().waiting == 1, 5, "a to wait on b's lease")
    b.stored.set()
    assert await asyncio.wait_for(background, 5) == made
    assert (a.made, b.made, a.flight.waits, len(gates)) == (0, 1, 1, 1)

    made = await a.get("j", background=True)  # nobody holds it: the gate takes the lease, a makes it
    assert a.made == 1 and a.flight.state().held == 1
    a.stored.set()
    await wait_for(lambda: a.flight.state().held == 0, 5, "a's lease released once durable")
    assert await b.get("j", background=True) == made and b.made == 1  # its gate finds it stored: not made again


# ---- two origins: create_app twice, one output store ------------------------------------


def origin_settings(media: Path, **env: str) -> Any:
    return app_settings(
        LIVETX_STORAGE_URI=str(media),  # sources here, segments in media/.livetx: shared by both
        LIVETX_CDN_ORIGIN_SECRET=CDN,
        LIVETX_CACHE_LOOKAHEAD="false",
        LIVETX_PROFILES_DEFAULT_INITD="0",  # no background transcodes: only the requests make segments
        LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_S="x180",
        LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_PRESET="ultrafast",
        LIVETX_CLUSTER_LEASE_TTL="2",
        **env,
    )


@pytest.fixture
def media(tmp_path: Path, sources: dict[str, Source]) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("mp4-30", "mkv-25-44k", "ts-2997"):
        (folder / sources[name].key).write_bytes(sources[name].path.read_bytes())
    return folder


Origins = Callable[[str], Awaitable[tuple[Client, Client]]]


@pytest.fixture
def origins(aiohttp_client: Any, request: pytest.FixtureRequest, media: Path, tmp_path: Path) -> Origins:
    """Two origins on the one store, coordinated by `engine` ("redis" or "lockfiles")."""

    async def make(engine: str) -> tuple[Client, Client]:
        if engine == "redis":
            valkey: Valkey = request.getfixturevalue("valkey")
            env = {"LIVETX_CLUSTER_REDIS_URL": valkey.url, "LIVETX_CLUSTER_KEY_PREFIX": f"t{secrets.token_hex(4)}:"}
            apps = [create_app(origin_settings(media, **env)) for _ in range(2)]
        else:  # two processes of one host, as far as the engine can tell: two opens of each lock file
            env = {"LIVETX_CLUSTER_LOCK_DIR": str(tmp_path / "locks")}
            apps = [create_app(origin_settings(media, **env), ServerProcess(count=2, index=i, run_dir=str(tmp_path))) for i in range(2)]
        return await aiohttp_client(apps[0]), await aiohttp_client(apps[1])

    return make


def service(client: Client) -> SegmentService:
    return client.server.app[SEGMENTS]


def cluster(client: Client) -> ClusterFlight:
    return client.server.app[CLUSTER]


async def burst(a: Client, b: Client, source: str, copies: int = 6) -> dict[str, set[bytes]]:
    """`copies` concurrent requests for each segment of `source`, half on each origin (both
    have planned the title first); the bodies each segment got."""
    segments = await playlist_segments(a, source)
    assert await playlist_segments(b, source) == segments
    requests = [(a if n % 2 else b, path) for path in segments for n in range(copies)]
    bodies = await asyncio.gather(*(fetch(client, path) for client, path in requests))
    got: dict[str, set[bytes]] = {path: set() for path in segments}
    for (_, path), body in zip(requests, bodies, strict=True):
        got[path].add(body)
    return got


def transcodes(*clients: Client) -> int:
    return sum(service(client).stats.transcodes for client in clients)


@pytest.mark.parametrize("engine", ["redis", "lockfiles"])
async def test_two_origins_make_each_segment_once(origins: Origins, engine: str) -> None:
    a, b = await origins(engine)
    got = await burst(a, b, "mp4-30.mp4")
    assert len(got) == 4 and all(len(bodies) == 1 for bodies in got.values())  # identical bodies
    assert transcodes(a, b) == 4
    assert cluster(a).waits + cluster(b).waits >= 1  # they did meet on a lease
    assert cluster(a).uncoordinated == cluster(b).uncoordinated == 0
    metrics = samples(await (await a.get("/metrics")).text())
    # two processes of one host (lock files) answer a scrape together, each series labelled with its process
    of_a = (("process", "0"),) if engine == "lockfiles" else ()
    assert metrics[("livetx_coordination_up", (("engine", engine), *of_a))] == 1
    assert metrics[("livetx_lease_waits_total", of_a)] == cluster(a).waits
    assert (("livetx_cluster_leases_truncated", of_a) in metrics) == (engine == "redis")  # lock files aren't listed


async def test_with_redis_stopped_mid_run_every_request_is_served_and_coordination_resumes(origins: Origins, valkey: Valkey) -> None:
    a, b = await origins("redis")
    first = asyncio.create_task(burst(a, b, "mp4-30.mp4"))
    await wait_for(lambda: cluster(a).state().held + cluster(b).state().held > 0 or first.done(), 60, "a lease taken")
    await asyncio.to_thread(valkey.kill)
    got = await first  # every request answered 200 (`fetch` checks), the same bytes for a segment
    assert all(len(bodies) == 1 for bodies in got.values())

    made = transcodes(a, b)
    got = await burst(a, b, "mkv-25-44k.mkv")  # all of it while Redis is down
    assert len(got) == 3 and all(len(bodies) == 1 for bodies in got.values())
    assert transcodes(a, b) - made >= 3 and cluster(a).uncoordinated + cluster(b).uncoordinated >= 3
    assert not cluster(a).state().up
    metrics = samples(await (await a.get("/metrics")).text())
    assert metrics[("livetx_coordination_up", (("engine", "redis"),))] == 0
    assert metrics[("livetx_coordination_fallbacks_total", ())] == cluster(a).uncoordinated

    await asyncio.to_thread(valkey.start)
    await wait_for(lambda: all(cluster(c).coordinator.listening and cluster(c).state().up for c in (a, b)), 10, "both back")
    made = transcodes(a, b)
    got = await burst(a, b, "ts-2997.ts")
    assert len(got) == 3 and all(len(bodies) == 1 for bodies in got.values())
    assert transcodes(a, b) - made == 3  # once each again


async def test_metrics_show_who_holds_which_lease(origins: Origins, valkey: Valkey) -> None:
    a, _ = await origins("redis")
    engine = cluster(a).coordinator
    assert isinstance(engine, RedisCoordinator)
    other = RedisCoordinator(valkey.url, engine.prefix, LONG)  # another origin of the cluster
    await other.start()
    try:
        assert await other.try_acquire("hls/seg-0.ts") is not None
        metrics = samples(await (await a.get("/metrics")).text())
    finally:
        await other.close()
    assert metrics[("livetx_cluster_lease", (("key", "hls/seg-0.ts"), ("owner", other.owner)))] == 1
    assert metrics[("livetx_cluster_leases", (("owner", other.owner),))] == 1
    assert metrics[("livetx_coordination_up", (("engine", "redis"),))] == 1
    assert metrics[("livetx_leases_held", ())] == 0 and metrics[("livetx_cluster_leases_truncated", ())] == 0


@pytest.mark.parametrize("engine", ["redis", "lockfiles"])
async def test_a_queued_background_job_holds_no_lease_against_another_origins_client(origins: Origins, engine: str) -> None:
    """Origin a's one worker has a queue of client jobs, and behind them a lookahead job for
    segment X; a client asks origin b for X. b makes X at once with its own worker (a's
    background job takes X's lease only when it starts), and a's job then finds X stored."""
    a, b = await origins(engine)
    segments = await playlist_segments(a, "mp4-30.mp4")
    assert await playlist_segments(b, "mp4-30.mp4") == segments
    queue = segments[1:] + [path for source in ("mkv-25-44k.mkv", "ts-2997.ts") for path in await playlist_segments(a, source)]
    title = await a.server.app[CATALOG].title("default", "mp4-30.mp4")
    rendition = title.renditions[0]
    x = segment_key(title, rendition, 0)
    clients = [asyncio.create_task(fetch(a, path)) for path in queue]
    await wait_for(lambda: len(service(a).admission.keys()) == len(queue), 30, "a's client jobs submitted")
    background = asyncio.create_task(service(a).get(title, rendition, 0, Priority.LOOKAHEAD))
    await wait_for(lambda: service(a).admission.making(x), 30, "a's lookahead job for X queued")

    await fetch(b, segments[0])
    assert service(b).stats.transcodes == 1  # b made X itself...
    assert not all(client.done() for client in clients)  # ...while a's clients were still being served

    assert not (await asyncio.wait_for(background, 60)).made  # a's job found X made
    await asyncio.gather(*clients)
    assert service(a).stats.transcodes == len(queue) and transcodes(a, b) == len(queue) + 1  # X once, cluster-wide
    assert service(a).pool.stats.refused == 1
