"""The Redis lease engine against a real Valkey server: leases, renewal, notices, takeover,
and an outage (CoordinationDown fast, segments made without it, coordination back after)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from livetx.cluster.flight import ClusterFlight
from livetx.cluster.leases import CoordinationDown
from livetx.cluster.lockfiles import LockFiles
from livetx.cluster.redis_engine import RedisCoordinator, safe_target
from livetx.errors import ConfigError
from livetx.factories import make_coordinator
from livetx.media.pool import Gate
from tests.conftest import app_settings
from tests.support import wait_for
from tests.valkey import Valkey

MakeEngine = Callable[..., Awaitable[RedisCoordinator]]
SHORT = 1.0  # seconds: a lease TTL that runs out within a test
LONG = 60.0  # seconds: one that doesn't, so whatever wakes a waiter is not its expiry


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"  # each test its own keys in the shared server


@pytest.fixture
async def engines(valkey: Valkey, prefix: str) -> AsyncIterator[MakeEngine]:
    """Makes started engines (one per would-be origin) on the test's prefix; closes them after."""
    made: list[RedisCoordinator] = []

    async def make(ttl: float = SHORT) -> RedisCoordinator:
        engine = RedisCoordinator(valkey.url, prefix, ttl)
        await engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.close()


@pytest.fixture
async def raw(valkey: Valkey) -> AsyncIterator[Redis]:
    """A plain client, to look at (and tamper with) what the engines write."""
    client = Redis.from_url(valkey.url, decode_responses=True)
    yield client
    await client.aclose()


async def listening(*engines: RedisCoordinator) -> None:
    await wait_for(lambda: all(e.listening for e in engines), 10, "the engines to subscribe to completion notices")


async def test_one_holder_at_a_time_and_release_frees_it(engines: MakeEngine) -> None:
    a, b = await engines(), await engines()
    lease = await a.try_acquire("seg/1.ts")
    assert lease is not None and lease.key == "seg/1.ts"
    assert await b.try_acquire("seg/1.ts") is None
    assert await a.try_acquire("seg/1.ts") is None  # not re-entrant: one flight per key per process asks
    assert await b.try_acquire("seg/2.ts") is not None  # other keys are free
    assert a.state().held == 1
    await lease.release()
    assert a.state().held == 0
    assert await b.try_acquire("seg/1.ts") is not None


async def test_a_held_lease_is_renewed_past_its_ttl(engines: MakeEngine, raw: Redis, prefix: str) -> None:
    a, b = await engines(ttl=0.6), await engines(ttl=0.6)
    lease = await a.try_acquire("k")
    assert lease is not None
    await wait_for(lambda: a.renewals >= 5, 10, "five renewal rounds (over twice the TTL)")
    assert await b.try_acquire("k") is None
    assert await raw.get(f"{prefix}lease:k") == f"{a.owner}#0" and await raw.pttl(f"{prefix}lease:k") > 0
    await lease.release()
    assert await raw.exists(f"{prefix}lease:k") == 0


async def test_a_lease_gone_is_lost_and_its_release_leaves_the_new_holders(engines: MakeEngine, raw: Redis, prefix: str) -> None:
    a, b = await engines(), await engines()
    lease = await a.try_acquire("k")
    assert lease is not None
    await raw.delete(f"{prefix}lease:k")  # as if it ran out while its holder stalled
    taken = await b.try_acquire("k")
    assert taken is not None
    await wait_for(lambda: a.lost == 1, 5, "the renewal to find the lease someone else's")
    assert a.state().held == 0
    await lease.release()  # compare-and-delete: not ours any more
    assert await raw.get(f"{prefix}lease:k") == f"{b.owner}#0"


async def test_an_old_lease_does_not_release_the_same_processs_new_one(engines: MakeEngine, raw: Redis, prefix: str) -> None:
    a = await engines()
    old = await a.try_acquire("k")
    await raw.delete(f"{prefix}lease:k")  # ran out
    new = await a.try_acquire("k")
    assert old is not None and new is not None
    await old.release()
    assert await raw.get(f"{prefix}lease:k") == new.value == f"{a.owner}#1"


async def test_a_release_notice_wakes_a_waiter_on_another_origin(engines: MakeEngine) -> None:
    a, b = await engines(ttl=LONG), await engines(ttl=LONG)
    await listening(a, b)
    lease = await a.try_acquire("k")
    assert lease is not None
    waiter = asyncio.create_task(b.wait_released("k"))
    await wait_for(lambda: b.state().waiting == 1, 5, "the waiter to block on the notice")
    await lease.release()
    await asyncio.wait_for(waiter, 5)  # the lease would have lived a minute: the notice woke it
    assert await b.try_acquire("k") is not None


async def test_a_waiter_returns_at_once_when_nothing_is_held(engines: MakeEngine) -> None:
    a = await engines(ttl=LONG)
    await asyncio.wait_for(a.wait_released("free"), 5)


async def test_a_renewed_lease_keeps_its_waiter_waiting(engines: MakeEngine) -> None:
    a, b = await engines(ttl=0.6), await engines(ttl=0.6)
    await listening(a, b)
    lease = await a.try_acquire("k")
    assert lease is not None
    waiter = asyncio.create_task(b.wait_released("k"))
    renewed = a.renewals
    await wait_for(lambda: a.renewals >= renewed + 5, 10, "five renewals (over twice the TTL)")
    assert not waiter.done()  # woke at each expiry it read, found the lease renewed, waited on
    await lease.release()
    await asyncio.wait_for(waiter, 5)


async def test_a_dead_holders_lease_runs_out_and_is_taken_over(engines: MakeEngine) -> None:
    a, b = await engines(ttl=SHORT), await engines(ttl=SHORT)
    assert await a.try_acquire("k") is not None
    await a.close()  # stops renewing and listening, releases nothing: as a process that died
    started = time.monotonic()
    await asyncio.wait_for(b.wait_released("k"), 5)
    assert time.monotonic() - started < SHORT + 1
    assert await b.try_acquire("k") is not None


async def test_the_cluster_view_lists_leases_by_owner(engines: MakeEngine) -> None:
    a, b = await engines(ttl=LONG), await engines(ttl=LONG)
    for engine, key in ((a, "x/1.ts"), (a, "x/2.ts"), (b, "y/[1]*.ts")):  # glob characters are literal
        assert await engine.try_acquire(key) is not None
    await b.refresh()
    state = b.state()
    assert state.holders == {"x/1.ts": a.owner, "x/2.ts": a.owner, "y/[1]*.ts": b.owner} and not state.truncated


async def test_the_engine_follows_the_settings(tmp_path: Path) -> None:
    assert make_coordinator(app_settings()) is None  # one process, no Redis: the in-process singleflight alone
    lockfiles = make_coordinator(app_settings(LIVETX_CLUSTER_LOCK_DIR=str(tmp_path)), processes=2)
    assert isinstance(lockfiles, LockFiles) and lockfiles.directory == tmp_path / "leases"
    engine = make_coordinator(app_settings(LIVETX_CLUSTER_REDIS_URL="redis://:s3cret@127.0.0.1:1/0"), processes=2)
    assert isinstance(engine, RedisCoordinator) and engine.health.target == "redis://127.0.0.1:1"
    await engine.close()
    for url in ("http://:s3cret@host/0", "redis://:s3cret@host:port/0"):
        with pytest.raises(ConfigError) as refused:
            make_coordinator(app_settings(LIVETX_CLUSTER_REDIS_URL=url))
        assert "s3cret" not in str(refused.value)


def test_the_target_named_in_logs_has_no_password() -> None:
    assert safe_target("redis://user:s3cret@cache.internal:6380/2") == "redis://cache.internal:6380"
    assert safe_target("rediss://:s3cret@cache.internal/0") == "rediss://cache.internal:6379"
    assert "s3cret" not in safe_target("redis://:s3cret@host:notaport/0")


# ---- an outage (last in the module: it stops the server and starts it again) -------------


async def test_redis_down_fails_fast_falls_back_and_coordination_resumes(
    engines: MakeEngine, valkey: Valkey, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await engines(ttl=LONG), await engines(ttl=LONG)
    await listening(a, b)
    held = await a.try_acquire("before")
    assert held is not None
    waiter = asyncio.create_task(b.wait_released("before"))
    await wait_for(lambda: b.state().waiting == 1, 5, "the waiter to block on the notice")
    caplog.set_level(logging.INFO, logger="livetx.cluster")
    await asyncio.to_thread(valkey.stop)  # SIGTERM: it closes its connections (test_cluster_flight kills it)

    # the waiter wakes when its subscription drops, and finds the engine down
    await asyncio.wait_for(waiter, 5)
    with pytest.raises(CoordinationDown):
        await b.wait_released("before")
    started = time.monotonic()
    for key in ("k1", "k2", "k3"):
        with pytest.raises(CoordinationDown) as down:
            await a.try_acquire(key)
    assert time.monotonic() - started < 1.5 and "127.0.0.1" in str(down.value)
    await wait_for(lambda: not a.state().up and not b.state().up, 5, "both engines to say they are down")
    await held.release()  # can't reach Redis: swallowed, the lease runs out

    flight = ClusterFlight(a)

    async def nothing() -> None:
        return None

    async def make(gate: Gate | None) -> str:
        return "made"

    assert await flight.once("k4", nothing, make, nothing) == "made"
    assert flight.uncoordinated == 1

    await asyncio.to_thread(valkey.start)  # empty, same port
    await listening(a, b)
    await wait_for(lambda: a.state().up and b.state().up, 10, "both engines back up")
    lease = await a.try_acquire("after")
    assert lease is not None and await b.try_acquire("after") is None
    waiter = asyncio.create_task(b.wait_released("after"))
    await wait_for(lambda: b.state().waiting == 1, 5, "the waiter to block on the notice")
    await lease.release()
    await asyncio.wait_for(waiter, 5)  # notices flow again (the lease lives a minute)

    events = [getattr(r, "event", None) for r in caplog.records if r.name == "livetx.cluster"]
    assert events.count("coordination_down") == 2 and events.count("coordination_up") == 2  # one each per engine
