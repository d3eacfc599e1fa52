"""Delivering webhook notifications: target URLs checked, one HTTP attempt, and `Deliveries`,
which delivers each event at least once and reports every attempt to its caller.

A target URL is user input, and a webhook makes this server send requests where the user
says: `parse_target` takes http and https URLs only, with a host name or an IP address, no
credentials, and a bounded length; unless `notify.allow_private_targets` is set, an address
that is not public (loopback, private, link-local such as cloud metadata services, shared,
reserved) is refused, both when written in the URL and when a host name resolves to one (the
connector's resolver checks every address it returns, so the connection goes to an address
that was checked: no DNS rebinding between check and connect).

An attempt POSTs the signed body (livetx/notify/signing.py) with a connect and a total timeout,
follows no redirect (a 3xx is a failed attempt), reads none of the answer's body, sends no
cookies, and turns every failure into an `Attempt` naming its class: it never raises into the
caller. A 2xx answer delivers the event; anything else is retried on the schedule of
livetx/notify/schedule.py until it gives up.

`Deliveries.submit` returns at once with a task: each delivery runs on its own, and a slow
or silent receiver holds only its own delivery (and at most `PER_HOST` connections to its
host). Time comes from an injected clock, and the waits between attempts from an injected
sleeper, so tests run the whole 24 h schedule in an instant. The caller's `record` callback
gets every attempt as it ends, to keep in the job's record in storage; nothing durable is
kept here. Secrets never appear in logs or reprs; logs show a target without its query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from livetx.errors import WebhookTargetInvalid
from livetx.notify.schedule import Backoff
from livetx.notify.signing import new_event_id, signed_headers
from livetx.settings import MIN_NOTIFY_SECRET_BYTES, NotifySettings

log = logging.getLogger(__name__)

SCHEMES = ("http", "https")
MIN_SECRET_BYTES = MIN_NOTIFY_SECRET_BYTES  # (declared with the setting it bounds)
PER_HOST = 8  # connections to one receiver's host at once; more deliveries to it wait their turn (within their timeout)
USER_AGENT = "livetx-webhook/1"
HOST_NAME = re.compile(r"(?=.{1,253}\.?$)([A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
REFUSED = "TargetRefused"  # the error of an attempt whose target was refused before connecting

Clock = Callable[[], float]
Sleeper = Callable[[float], Awaitable[None]]


# ---- targets --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A checked receiver URL and the secret its notifications are signed with."""

    url: str
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:  # never the secret, nor the query (which may hold the receiver's own token)
        return f"Target(url={self.shown!r})"

    @property
    def shown(self) -> str:
        """The URL as logs show it: without its query or fragment."""
        return str(URL(self.url).with_query(None).with_fragment(None))


def non_public(address: str) -> str | None:
    """Why an IP address is not one a webhook may go to (without allow_private_targets), or None."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_multicast:
        return "not a public address"
    return None


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _check_host(host: str, allow_private: bool) -> None:
    if (address := _ip(host)) is not None:
        reason = non_public(address)
        if reason and not allow_private:
            raise WebhookTargetInvalid("url", f"{address} is {reason} (notify.allow_private_targets is off)")
        return
    if not HOST_NAME.fullmatch(host):
        raise WebhookTargetInvalid("url", "the host is not a host name or an IP address")
    if host.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise WebhookTargetInvalid("url", "a numeric host must be a whole IP address (no 127.1 or 2130706433)")


def parse_target(url: str, secret: bytes, settings: NotifySettings) -> Target:
    """A receiver URL and secret as a Target; WebhookTargetInvalid naming the field and why."""
    check_url(url, settings)
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise WebhookTargetInvalid("secret", f"a webhook secret has at least {MIN_SECRET_BYTES} bytes")
    return Target(url, secret)


def check_url(url: str, settings: NotifySettings) -> None:
    """A receiver URL as parse_target checks it (a pipeline's, kept before any secret is at
    hand); WebhookTargetInvalid("url", why) otherwise."""
    if not isinstance(url, str) or not url:
        raise WebhookTargetInvalid("url", "a webhook needs a URL")
    if len(url) > settings.max_url_length:
        raise WebhookTargetInvalid("url", f"longer than {settings.max_url_length} characters")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise WebhookTargetInvalid("url", "spaces and control characters are not allowed")
    try:
        parsed = URL(url)
    except ValueError:
        raise WebhookTargetInvalid("url", "not a URL") from None
    if parsed.scheme not in SCHEMES:
        raise WebhookTargetInvalid("url", "the scheme must be http or https")
    if not parsed.raw_host:
        raise WebhookTargetInvalid("url", "the URL has no host")
    if parsed.user is not None or parsed.password is not None:
        raise WebhookTargetInvalid("url", "credentials in the URL are not allowed (sign with the secret)")
    if parsed.port == 0:
        raise WebhookTargetInvalid("url", "port 0")
    _check_host(parsed.raw_host, settings.allow_private_targets)


class AddressRefused(OSError):
    """A host name resolved to an address a webhook may not go to."""


class PublicResolver(AbstractResolver):
    """The default resolver, refusing a host any of whose addresses is not public: the
    connector connects only to addresses this returned, so what was checked is what is used."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            reason = non_public(result["host"])
            if reason:
                raise AddressRefused(f"{host} resolves to {reason}")
        return found

    async def close(self) -> None:
        await self._inner.close()


# ---- attempts and deliveries ----------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One notification: its id (the same on every attempt) and its JSON body."""

    id: str
    body: bytes = field(repr=False)

    @classmethod
    def new(cls, body: bytes) -> Self:
        return cls(new_event_id(), body)


@dataclass(frozen=True)
class Attempt:
    """One attempt, as the delivery log keeps it."""

    number: int  # 1 for the first attempt of the event
    at: float  # when it started, on the runner's clock (Unix seconds)
    duration: float  # seconds it took
    status: int | None = None  # the receiver's HTTP status, if it answered
    error: str | None = None  # else the failure's class: TimeoutError, ClientConnectorError, TargetRefused, ...

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_record(self) -> dict[str, Any]:
        """JSON-ready, for the job's record."""
        return asdict(self)


@dataclass(frozen=True)
class Delivery:
    """How a delivery ended: delivered, or given up after its schedule's last attempt."""

    event_id: str
    delivered: bool
    attempts: tuple[Attempt, ...]  # those this runner made


Recorder = Callable[[Attempt], Awaitable[None]]


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, WebhookTargetInvalid | AddressRefused):
        return REFUSED
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused):
        return REFUSED
    return type(exc).__name__


class Deliveries:
    """Runs webhook deliveries concurrently on one HTTP client session. Open it with
    `async with` (or start/close); `close` cancels the deliveries still running."""

    def __init__(self, settings: NotifySettings, clock: Clock = time.time, sleep: Sleeper = asyncio.sleep) -> None:
        self.settings = settings
        self.backoff = Backoff(settings.first_delay, settings.max_delay, settings.max_hours * 3600.0)
        self._clock, self._sleep = clock, sleep
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Delivery]] = set()

    async def start(self) -> None:
        resolver = None if self.settings.allow_private_targets else PublicResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, limit=0, limit_per_host=PER_HOST)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout, connect=self.settings.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookie from one receiver reaches another
            trust_env=False,  # no proxy from the environment
            auto_decompress=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def target(self, url: str, secret: bytes) -> Target:
        """A target checked against this runner's settings."""
        return parse_target(url, secret, self.settings)

    def submit(
        self, target: Target, event: Event, record: Recorder, first_at: float | None = None, made: int = 0
    ) -> asyncio.Task[Delivery]:
        """Deliver `event` to `target` in the background; the task ends when it is delivered or
        given up, and never fails (but for cancellation). `record` gets each attempt as it ends.
        A delivery taken over from another process passes when its first attempt started
        (`first_at`) and how many were `made`: it goes on from there."""
        self.target(target.url, target.secret)  # a record written under other settings is checked again
        task = asyncio.create_task(self._run(target, event, record, first_at, made), name=f"webhook {event.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, target: Target, event: Event, record: Recorder, first_at: float | None, made: int) -> Delivery:
        first = self._clock() if first_at is None else first_at
        attempts: list[Attempt] = []
        number = made + 1
        while True:
            attempt = await self.attempt(target, event, number)
            attempts.append(attempt)
            await self._record(record, event, attempt)
            if attempt.delivered:
                return Delivery(event.id, True, tuple(attempts))
            due = self.backoff.next_attempt(first, number, self._clock())
            if due is None:
                log.warning("webhook %s to %s: given up after attempt %d", event.id, target.shown, number)
                return Delivery(event.id, False, tuple(attempts))
            await self._sleep(max(0.0, due - self._clock()))
            number += 1

    async def _record(self, record: Recorder, event: Event, attempt: Attempt) -> None:
        try:
            await record(attempt)
        except asyncio.CancelledError:
            raise
        except Exception:  # the caller's storage failing does not stop the delivery
            log.exception("webhook %s: recording attempt %d failed", event.id, attempt.number)

    async def attempt(self, target: Target, event: Event, number: int) -> Attempt:
        """One signed POST of the event; its outcome, whatever happens (never raises but for
        cancellation)."""
        at, started = self._clock(), time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            status = await self._post(target, event)
        except (aiohttp.ClientError, TimeoutError, OSError, WebhookTargetInvalid) as exc:
            error = _error_name(exc)
        except Exception as exc:  # a failure nobody foresaw is still this attempt's outcome, not the caller's exception
            error = _error_name(exc)
            log.exception("webhook %s attempt %d to %s failed unexpectedly", event.id, number, target.shown)
        attempt = Attempt(number, at, round(time.monotonic() - started, 4), status, error)
        log.info("webhook %s attempt %d to %s: %s in %.3f s", event.id, number, target.shown, status or error, attempt.duration)
        return attempt

    async def _post(self, target: Target, event: Event) -> int:
        if self._session is None:
            raise RuntimeError("Deliveries is not started")
        # checked again here: an IP address in the URL never reaches the resolver
        parse_target(target.url, target.secret, self.settings)
        headers = signed_headers(event.body, target.secret, event.id, int(self._clock()))
        async with self._session.post(target.url, data=event.body, headers=headers, allow_redirects=False) as response:
            return response.status  # the body is not read: leaving closes the connection
