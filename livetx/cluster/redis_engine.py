"""Segment leases on Redis or Valkey (redis.asyncio), shared by every origin and process.

- A lease is `SET {prefix}lease:{segment key} {owner}#{n} NX PX {ttl}`: one holder
  cluster-wide. The owner is `host:pid:random`; n counts its leases, so a lease that ran out
  and was taken again by the same process is not the old one. Every `ttl/3` the engine
  renews all the leases it holds, in one pipeline of compare-and-PEXPIRE scripts; a renewal
  that finds a lease gone or someone else's counts it lost (the segment may then be made
  twice). A process that dies stops renewing: its leases run out after `ttl`, and a waiter
  takes the segment over.
- Release is one script: compare-and-DEL (only our own lease), then
  `PUBLISH {prefix}done {segment key}`.
- One subscription to `{prefix}done` per process (a task that reconnects with backoff) sets
  the local waiters' events. A waiter registers first, then reads the lease's PTTL: gone ->
  return; else it waits for the notice, at most until the lease would run out, and reads the
  PTTL again (a holder that renews keeps it waiting). It never polls storage. When the
  subscription drops or comes back, every waiter returns to look again: notices may have
  been missed.
- Down: short socket timeouts and no retries, so a call fails fast with `CoordinationDown`;
  for `DOWN_BACKOFF` seconds after a failure, calls raise it without trying Redis. One log
  line when it goes down, one when it is back (`Health`).
- The URL may hold a password: nothing logged or raised shows more than host:port.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from livetx.cluster.leases import CoordinationDown, EngineState, Health, log

T = TypeVar("T")

CONNECT_TIMEOUT = 0.5  # seconds: a Redis that is down fails a call this fast, at worst
SOCKET_TIMEOUT = 1.0  # seconds a command may take
DOWN_BACKOFF = 1.0  # seconds after a failure during which calls fail without trying Redis
RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0  # seconds between attempts to subscribe again
WAIT_MARGIN = 0.05  # seconds past a lease's expiry before a waiter reads its PTTL again
STOP_ATTEMPTS, STOP_WAIT = 10, 0.2  # cancellations of a background task at close, seconds apart
VIEW_MAX = 150  # leases listed in /metrics at most (one series each)
VIEW_SCANS = 20  # SCAN calls per listing at most
VIEW_EVERY = 1.0  # seconds a listing is reused (scrapes of several Prometheus servers)

# KEYS[1] lease, ARGV[1] its value (owner#n), ARGV[2] ttl in ms
RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
# KEYS[1] lease, ARGV[1] its value (owner#n), ARGV[2] channel, ARGV[3] segment key
RELEASE = (
    "local mine = redis.call('get', KEYS[1]) == ARGV[1] "
    "if mine then redis.call('del', KEYS[1]) end "
    "redis.call('publish', ARGV[2], ARGV[3]) "
    "return mine and 1 or 0"
)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def safe_target(url: str) -> str:
    """Where the URL points, without its user or password: safe to log."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    port: int | str
    try:
        port = parts.port or 6379
    except ValueError:
        port = "?"
    return f"{parts.scheme}://{parts.hostname}:{port}"


def check_url(url: str) -> None:
    """A URL redis.asyncio can open (else ValueError, naming the scheme only)."""
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"cluster.redis_url scheme not supported: {scheme or 'none'}:// (use redis://, rediss:// or unix://)")


class RedisLease:
    def __init__(self, engine: RedisCoordinator, key: str, value: str) -> None:
        self._engine = engine
        self._key = key
        self.value = value  # owner#n: what the lease key holds while it is this lease
        self._released = False

    @property
    def key(self) -> str:
        return self._key

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self._engine._release(self)


class RedisCoordinator:
    name = "redis"

    def __init__(self, url: str, prefix: str, ttl: float) -> None:
        check_url(url)
        self.prefix = prefix
        self.ttl = ttl
        self.owner = owner_id()
        self._serial = itertools.count()
        self.health = Health(self.name, safe_target(url))
        self.channel = f"{prefix}done"
        self.renewals = 0  # renewal rounds that reached Redis
        self.lost = 0
        self.listening = False  # subscribed to completion notices now
        try:
            self._redis = Redis.from_url(  # connects when first used
                url,
                decode_responses=True,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # fail fast: the caller makes the segment without a lease
                client_name="livetx",
            )
        except ValueError:  # its message may quote the URL
            raise ValueError("cluster.redis_url is not a valid Redis URL") from None
        self._renew_script = self._redis.register_script(RENEW)
        self._release_script = self._redis.register_script(RELEASE)
        self._retry_at = 0.0  # while down: loop time before which calls fail without trying
        self._held: dict[str, RedisLease] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._waiting = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._view: tuple[dict[str, str], bool] = ({}, False)
        self._viewed_at = -VIEW_EVERY

    def _lease_name(self, key: str) -> str:
        return f"{self.prefix}lease:{key}"

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    # ---- lifetime ----------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name="livetx-lease-renewal"),
            asyncio.create_task(self._listen_forever(), name="livetx-lease-notices"),
        ]

    async def close(self) -> None:
        """Stop renewing and listening. Leases still held run out by themselves."""
        for task in self._tasks:
            await _stop(task)
        self._tasks = []
        self._wake_all()
        await self._redis.aclose()

    # ---- the calls ---------------------------------------------------------------------

    async def _call(self, what: Callable[[], Awaitable[T]]) -> T:
        """`what()` (a call to Redis), or CoordinationDown: at once while it is known to be down."""
        if not self.health.up and asyncio.get_running_loop().time() < self._retry_at:
            raise CoordinationDown(f"redis at {self.health.target} is down")
        try:
            result = await what()
        except (RedisError, OSError) as exc:  # refused, timed out, reset (redis wraps most: not all)
            await self._failed(exc)
            raise CoordinationDown(f"redis at {self.health.target} unreachable ({type(exc).__name__})") from None
        self.health.succeeded()
        return result

    async def _failed(self, error: BaseException) -> None:
        self._retry_at = asyncio.get_running_loop().time() + DOWN_BACKOFF
        if self.health.failed(error):
            self._wake_all()  # waiters fall back to making their segments
            try:  # idle connections to a Redis that went away: the first calls after it is back would fail on them
                await self._redis.connection_pool.disconnect(inuse_connections=False)
            except (RedisError, OSError):
                pass

    async def try_acquire(self, key: str) -> RedisLease | None:
        name, ttl = self._lease_name(key), self._ttl_ms
        value = f"{self.owner}#{next(self._serial)}"
        taken = await self._call(partial(self._redis.set, name, value, nx=True, px=ttl))
        if not taken:
            return None
        lease = self._held[key] = RedisLease(self, key, value)
        return lease

    async def _release(self, lease: RedisLease) -> None:
        if self._held.get(lease.key) is lease:
            del self._held[lease.key]
        release = partial(self._release_script, keys=[self._lease_name(lease.key)], args=[lease.value, self.channel, lease.key])
        try:
            await self._call(release)
        except CoordinationDown:
            pass  # it runs out; waiters wake then

    async def wait_released(self, key: str) -> None:
        name = self._lease_name(key)
        event = asyncio.Event()
        waiters = self._waiters.setdefault(key, set())
        waiters.add(event)  # before the PTTL: a notice that comes meanwhile is not missed
        try:
            while True:
                remaining = await self._call(partial(self._redis.pttl, name))
                if remaining == -2:  # no such key: released, or ran out
                    return
                if await self._notified(event, (remaining if remaining >= 0 else self._ttl_ms) / 1000 + WAIT_MARGIN):
                    return
        finally:
            waiters.discard(event)
            if not waiters:
                del self._waiters[key]

    async def _notified(self, event: asyncio.Event, timeout: float) -> bool:
        self._waiting += 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False  # ran out, or was renewed: read the PTTL again
        finally:
            self._waiting -= 1

    # ---- renewal -----------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            if self._held:
                await self._renew()

    async def _renew(self) -> None:
        leases = list(self._held.values())
        ttl = self._ttl_ms

        async def renew_all() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for lease in leases:
                    await self._renew_script(keys=[self._lease_name(lease.key)], args=[lease.value, ttl], client=pipe)
                return await pipe.execute()

        try:
            kept = await self._call(renew_all)
        except CoordinationDown:
            return  # tried again next round; if Redis stays away, the leases run out
        self.renewals += 1
        for lease, ok in zip(leases, kept, strict=True):
            if not ok and self._held.get(lease.key) is lease:
                del self._held[lease.key]
                self.lost += 1
                _log_lost(lease.key)

    # ---- completion notices ------------------------------------------------------------

    async def _listen_forever(self) -> None:
        delay = RECONNECT_MIN
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    _honour_cancellation()
                    self.listening = True
                    self.health.succeeded()
                    self._wake_all()  # notices may have been missed while it was away
                    delay = RECONNECT_MIN
                    await self._dispatch(pubsub)
            except Exception as exc:  # noqa: BLE001 - Redis gone (RedisError, OSError) or anything else: again, later
                await self._failed(exc)
            finally:
                self.listening = False
            self._wake_all()
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    async def _dispatch(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message["type"] == "message":
                for event in self._waiters.get(message["data"], ()):
                    event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    # ---- what /metrics shows -----------------------------------------------------------

    def state(self) -> EngineState:
        holders, truncated = self._view
        return EngineState(self.name, self.health.up, len(self._held), self._waiting, self.lost, True, holders, truncated)

    async def refresh(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._viewed_at < VIEW_EVERY:
            return
        self._viewed_at = loop.time()
        try:
            self._view = await asyncio.wait_for(self._list_leases(), SOCKET_TIMEOUT * 2)
        except (CoordinationDown, TimeoutError):
            self._view = ({}, False)  # unknown: shown as none rather than stale

    async def _list_leases(self) -> tuple[dict[str, str], bool]:
        """Up to VIEW_MAX leases (segment key -> owner), and whether there are more."""
        pattern = _glob_escape(self._lease_name("")) + "*"
        names: list[str] = []
        cursor = 0
        for _ in range(VIEW_SCANS):
            cursor, batch = await self._call(partial(self._redis.scan, cursor, match=pattern, count=500))
            names += cast(list[str], batch)  # decode_responses: str
            if cursor == 0 or len(names) >= VIEW_MAX:
                break
        truncated = cursor != 0 or len(names) > VIEW_MAX
        names = names[:VIEW_MAX]
        owners = cast(list[str | None], await self._call(partial(self._redis.mget, names))) if names else []
        start = len(self._lease_name(""))
        held = {name[start:]: value.rsplit("#", 1)[0] for name, value in zip(names, owners, strict=True) if value is not None}
        return held, truncated


def _log_lost(key: str) -> None:
    log.warning("segment lease lost before release: it may be made twice", extra={"event": "lease_lost", "key": key})


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end; cancel again if a cancellation was swallowed (see
    `_honour_cancellation`: redis-py may do so at points other than that one too)."""
    for _ in range(STOP_ATTEMPTS):
        task.cancel()
        done, _pending = await asyncio.wait([task], timeout=STOP_WAIT)
        if done:
            if not task.cancelled():
                task.exception()  # retrieved: it ended by itself, and said why in its own log
            return


def _honour_cancellation() -> None:
    """redis-py's connect can swallow a cancellation (the task is left `cancelling()`, with
    no CancelledError): raise it, or a closing engine would wait on its listener forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _glob_escape(text: str) -> str:
    """`text` matched literally by a SCAN MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
