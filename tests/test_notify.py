"""Webhook notifications (livetx/notify/): the signature scheme, the retry schedule, and
deliveries to real HTTP receivers on 127.0.0.1, with the clock and the waits between attempts
injected (a whole 24 h schedule runs in an instant; no test sleeps to synchronise)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from livetx.errors import WebhookSignatureExpired, WebhookSignatureInvalid, WebhookTargetInvalid
from livetx.notify.delivery import REFUSED, Attempt, Deliveries, Event, Target, parse_target
from livetx.notify.schedule import Backoff, attempt_times
from livetx.notify.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, digest, signature, signed_headers, verify
from livetx.settings import NotifySettings
from tests.conftest import ROOT
from tests.support import Clock, wait_for

SECRET = b"receiver-secret-0123456789abcdef"
BODY = b'{"id": "j-1", "state": "succeeded"}'
START = 1_767_225_600.0  # the injected clock's time when a test begins
# loopback receivers allowed; short timeouts for the silent one
SETTINGS = NotifySettings(allow_private_targets=True, connect_timeout=1.0, timeout=1.0, max_delay=3600.0)

ServerFactory = Callable[..., Awaitable[TestServer]]


class VirtualTime:
    """The runner's clock, and a sleeper that moves it instead of waiting."""

    def __init__(self) -> None:
        self.clock = Clock(START)
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)  # let other tasks run, as a real wait would


@pytest.fixture
def vtime() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
async def deliveries(vtime: VirtualTime) -> AsyncIterator[Deliveries]:
    async with Deliveries(SETTINGS, clock=vtime.clock, sleep=vtime.sleep) as runner:
        yield runner


class Receiver:
    """An aiohttp app that answers with the statuses given, in turn (the last one from then on),
    and keeps every request's headers and body."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.redirected = 0
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)
        self.app.router.add_post("/elsewhere", self.elsewhere)

    async def hook(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        headers = {"Location": "/elsewhere"} if 300 <= status < 400 else {}
        return web.Response(status=status, headers=headers)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)


async def serve(aiohttp_server: ServerFactory, receiver: Receiver) -> str:
    server = await aiohttp_server(receiver.app, host="127.0.0.1")
    return str(server.make_url("/hook"))


class Log:
    """The delivery log as the caller keeps it (the job system: in the job's record)."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    async def __call__(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)


# ---- delivery to real receivers -----------------------------------------------------------


async def test_three_failures_then_one_accepted_delivery(aiohttp_server: ServerFactory, deliveries: Deliveries, vtime: VirtualTime) -> None:
    receiver = Receiver(500, 500, 500, 200)
    target = deliveries.target(await serve(aiohttp_server, receiver), SECRET)
    event, log = Event.new(BODY), Log()
    done = await deliveries.submit(target, event, log)
    assert done.delivered and [a.status for a in done.attempts] == [500, 500, 500, 200]
    assert log.attempts == list(done.attempts)  # every attempt reached the caller's log, in order
    assert [(a.number, a.at, a.error) for a in log.attempts] == [
        (1, START, None),
        (2, START + 1, None),
        (3, START + 3, None),
        (4, START + 7, None),
    ]
    assert vtime.waits == [1.0, 2.0, 4.0]  # the schedule: 1 s, doubling
    assert len(receiver.requests) == 4  # exactly one accepted, three retries, nothing after
    assert {headers[EVENT_ID_HEADER] for headers, _ in receiver.requests} == {event.id}
    for (headers, body), attempt in zip(receiver.requests, log.attempts, strict=True):
        assert body == BODY and headers["Content-Type"] == "application/json"
        assert headers[SIGNATURE_HEADER].startswith(f"t={int(attempt.at)},v1=")  # signed anew at each attempt
        assert verify(headers, body, SECRET, now=attempt.at + 1) == event.id
        with pytest.raises(WebhookSignatureInvalid, match="does not match") as other_secret:
            verify(headers, body, b"another-secret-0123456789abcdef!", now=attempt.at)
        assert type(other_secret.value) is WebhookSignatureInvalid
        with pytest.raises(WebhookSignatureInvalid, match="does not match"):
            verify(headers, body.replace(b"succeeded", b"failed"), SECRET, now=attempt.at)
        with pytest.raises(WebhookSignatureExpired):  # replayed later than the tolerance
            verify(headers, body, SECRET, now=attempt.at + 301)


async def test_a_silent_receiver_times_out_without_holding_up_another(aiohttp_server: ServerFactory, deliveries: Deliveries) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers; ends when the client hangs up
        writer.close()

    quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = quiet.sockets[0].getsockname()[1]
        stuck_log, good_log = Log(), Log()
        stuck = deliveries.submit(deliveries.target(f"http://127.0.0.1:{port}/hook", SECRET), Event.new(BODY), stuck_log)
        receiver = Receiver(200)
        good = deliveries.submit(deliveries.target(await serve(aiohttp_server, receiver), SECRET), Event.new(BODY), good_log)
        assert not stuck.done() and not good.done()  # the caller got its handles back at once
        assert (await good).delivered
        assert not stuck.done() and stuck_log.attempts == []  # still waiting on its first answer
        [timed_out] = await wait_for(lambda: stuck_log.attempts, 10, "the silent receiver's attempt to time out")
        assert timed_out.status is None and timed_out.error == "TimeoutError"
        assert 0.9 <= timed_out.duration < 5  # notify.timeout, 1 s here
    finally:
        await deliveries.close()  # cancels the silent one's retries
        quiet.close()
        await quiet.wait_closed()
    assert stuck.cancelled() and deliveries.running == 0


async def test_a_redirect_is_not_followed(aiohttp_server: ServerFactory, deliveries: Deliveries) -> None:
    receiver = Receiver(302)
    target = deliveries.target(await serve(aiohttp_server, receiver), SECRET)
    attempt = await deliveries.attempt(target, Event.new(BODY), 1)
    assert (attempt.status, attempt.delivered) == (302, False)  # a failed attempt, to be retried
    assert len(receiver.requests) == 1 and receiver.redirected == 0


async def test_gives_up_after_the_window(aiohttp_server: ServerFactory, deliveries: Deliveries, vtime: VirtualTime) -> None:
    receiver = Receiver(503)
    target = deliveries.target(await serve(aiohttp_server, receiver), SECRET)
    log = Log()
    done = await deliveries.submit(target, Event.new(BODY), log)
    assert not done.delivered
    times = [a.at for a in log.attempts]
    assert times == attempt_times(deliveries.backoff, START) and len(receiver.requests) == len(times)
    assert times[-1] <= START + 24 * 3600 < times[-1] + 3600  # the last attempt inside the window; the next one past it
    assert vtime.clock() - START < 24 * 3600  # no wait after the last attempt


async def test_a_delivery_taken_over_goes_on_from_its_attempts(aiohttp_server: ServerFactory, deliveries: Deliveries) -> None:
    receiver = Receiver(503)
    target = deliveries.target(await serve(aiohttp_server, receiver), SECRET)
    log = Log()
    # first attempt 23 h 59 min ago, 40 made: one more attempt, then the window has passed
    done = await deliveries.submit(target, Event.new(BODY), log, first_at=START - 24 * 3600 + 60, made=40)
    assert not done.delivered and [a.number for a in log.attempts] == [41]


async def test_a_failing_log_does_not_stop_the_delivery(aiohttp_server: ServerFactory, deliveries: Deliveries) -> None:
    receiver = Receiver(500, 200)
    target = deliveries.target(await serve(aiohttp_server, receiver), SECRET)

    async def broken(attempt: Attempt) -> None:
        raise OSError("storage is down")

    done = await deliveries.submit(target, Event.new(BODY), broken)
    assert done.delivered and len(receiver.requests) == 2


async def test_a_host_name_resolving_to_loopback_is_refused_at_connect(aiohttp_server: ServerFactory, vtime: VirtualTime) -> None:
    receiver = Receiver(200)
    url = (await serve(aiohttp_server, receiver)).replace("127.0.0.1", "localhost")
    async with Deliveries(NotifySettings(), clock=vtime.clock, sleep=vtime.sleep) as runner:
        target = runner.target(url, SECRET)  # a name: checked where it resolves
        attempt = await runner.attempt(target, Event.new(BODY), 1)
    assert (attempt.status, attempt.error) == (None, REFUSED) and receiver.requests == []


async def test_secrets_stay_out_of_logs_and_reprs(
    aiohttp_server: ServerFactory, deliveries: Deliveries, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver(500, 200)
    url = await serve(aiohttp_server, receiver) + "?token=receiver-token"
    target = deliveries.target(url, SECRET)
    await deliveries.submit(target, Event.new(BODY), Log())
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("livetx"))  # not the receiver's access log
    shown = ours + repr(target) + repr(deliveries.settings)
    assert "attempt 2" in ours and target.shown in ours
    assert SECRET.decode() not in shown and SECRET.hex() not in shown and "receiver-token" not in shown


# ---- target URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field", "reason"),
    [
        pytest.param("ftp://example.com/hook", "url", "scheme", id="ftp"),
        pytest.param("file:///etc/passwd", "url", "scheme", id="file"),
        pytest.param("javascript:alert(1)", "url", "scheme", id="javascript"),
        pytest.param("http:///hook", "url", "no host", id="no-host"),
        pytest.param("", "url", "needs a URL", id="empty"),
        pytest.param("https://example.com/" + "a" * 2048, "url", "longer than 2048", id="too-long"),
        pytest.param("http://exa mple.com/", "url", "spaces", id="space"),
        pytest.param("http://example.com/\r\nX: y", "url", "control", id="crlf"),
        pytest.param("http://example.com:99999/", "url", "not a URL", id="port-range"),
        pytest.param("http://example.com:0/", "url", "port 0", id="port-0"),
        pytest.param("http://user:pw@example.com/", "url", "credentials", id="credentials"),
        pytest.param("http://127.0.0.1:8080/hook", "url", "loopback", id="loopback"),
        pytest.param("http://[::1]/hook", "url", "loopback", id="loopback-v6"),
        pytest.param("http://[::ffff:127.0.0.1]/hook", "url", "loopback", id="v4-mapped"),
        pytest.param("http://10.1.2.3/hook", "url", "private", id="private-10"),
        pytest.param("http://192.168.1.1/hook", "url", "private", id="private-192"),
        pytest.param("http://[fd00::1]/hook", "url", "private", id="private-v6"),
        pytest.param("http://169.254.169.254/latest/meta-data", "url", "link-local", id="metadata"),
        pytest.param("http://0.0.0.0/hook", "url", "0.0.0.0 is", id="unspecified"),
        pytest.param("http://100.64.0.1/hook", "url", "not a public address", id="shared"),
        pytest.param("http://127.1/hook", "url", "whole IP address", id="short-ipv4"),
        pytest.param("http://2130706433/hook", "url", "whole IP address", id="decimal-ipv4"),
        pytest.param("http://exa%mple.com/", "url", "host", id="bad-host"),
    ],
)
def test_bad_targets_are_refused_naming_the_field(url: str, field: str, reason: str) -> None:
    with pytest.raises(WebhookTargetInvalid, match=reason) as refused:
        parse_target(url, SECRET, NotifySettings())
    assert refused.value.field == field and refused.value.status == 400


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(WebhookTargetInvalid, match="16 bytes") as refused:
        parse_target("https://example.com/hook", b"short", NotifySettings())
    assert refused.value.field == "secret"


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        pytest.param("https://example.com/hook?x=1", NotifySettings(), id="https"),
        pytest.param("http://hooks.example.org:8443/a/b", NotifySettings(), id="http-port"),
        pytest.param("http://93.184.216.34/hook", NotifySettings(), id="public-ip"),
        pytest.param("http://localhost:9/hook", NotifySettings(), id="name-checked-on-connect"),
        pytest.param("http://127.0.0.1:9/hook", NotifySettings(allow_private_targets=True), id="loopback-allowed"),
        pytest.param("http://10.0.0.5/hook", NotifySettings(allow_private_targets=True), id="private-allowed"),
    ],
)
def test_good_targets_are_accepted(url: str, settings: NotifySettings) -> None:
    target = parse_target(url, SECRET, settings)
    assert target.url == url and SECRET.decode() not in repr(target)


def test_a_target_is_checked_again_under_the_runners_settings() -> None:
    allowed = parse_target("http://127.0.0.1:9/hook", SECRET, NotifySettings(allow_private_targets=True))
    runner = Deliveries(NotifySettings())
    with pytest.raises(WebhookTargetInvalid, match="loopback"):
        runner.submit(allowed, Event.new(BODY), Log())


# ---- the signature scheme (pure) ----------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert digest(BODY, SECRET, 1767225600) == expected
    assert signature(BODY, SECRET, 1767225600) == f"t=1767225600,v1={expected}"


def headers_with(value: str | None, event_id: str | None = "evt_1") -> dict[str, str]:
    out = {"content-type": "application/json"}
    if value is not None:
        out["x-livetx-signature"] = value  # any case: receivers' frameworks differ
    if event_id is not None:
        out["x-livetx-event-id"] = event_id
    return out


GOOD = digest(BODY, SECRET, int(START))
OTHER = digest(BODY, b"another-secret-0123456789abcdef!", int(START))


@pytest.mark.parametrize(
    ("headers", "now", "error", "message"),
    [
        pytest.param(headers_with(None), START, WebhookSignatureInvalid, "no X-Livetx-Signature", id="missing"),
        pytest.param(headers_with(f"v1={GOOD}"), START, WebhookSignatureInvalid, "exactly one t=", id="no-t"),
        pytest.param(headers_with(f"t=1,t=2,v1={GOOD}"), START, WebhookSignatureInvalid, "exactly one t=", id="two-t"),
        pytest.param(headers_with(f"t=-5,v1={GOOD}"), START, WebhookSignatureInvalid, "exactly one t=", id="negative-t"),
        pytest.param(headers_with("t=" + "9" * 5000 + f",v1={GOOD}"), START, WebhookSignatureInvalid, "exactly one t=", id="huge-t"),
        pytest.param(headers_with(f"t={int(START)}"), START, WebhookSignatureInvalid, "no v1=", id="no-v1"),
        pytest.param(headers_with(f"t={int(START)},v1={GOOD.upper()}"), START, WebhookSignatureInvalid, "does not match", id="upper-hex"),
        pytest.param(headers_with(f"t={int(START) + 1},v1={GOOD}"), START, WebhookSignatureInvalid, "does not match", id="other-t"),
        pytest.param(headers_with(f"t={int(START)},v1={OTHER}"), START, WebhookSignatureInvalid, "does not match", id="other-secret"),
        pytest.param(headers_with(f"t={int(START)},v1={GOOD}"), START + 301, WebhookSignatureExpired, "301 s", id="stale"),
        pytest.param(headers_with(f"t={int(START)},v1={GOOD}"), START - 301, WebhookSignatureExpired, "301 s", id="from-the-future"),
        pytest.param(headers_with(f"t={int(START)},v1={GOOD}", None), START, WebhookSignatureInvalid, "X-Livetx-Event-Id", id="no-id"),
        pytest.param(headers_with(f"t={int(START)},v1={GOOD}", "a/b"), START, WebhookSignatureInvalid, "X-Livetx-Event-Id", id="bad-id"),
    ],
)
def test_verify_refuses(headers: dict[str, str], now: float, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as refused:
        verify(headers, BODY, SECRET, now)
    assert type(refused.value) is error


def test_verify_accepts_any_matching_v1_and_unknown_keys() -> None:
    headers = headers_with(f"t={int(START)}, v1={OTHER}, v2=future, v1={GOOD}")
    assert verify(headers, BODY, SECRET, START + 300) == "evt_1"
    assert verify(signed_headers(BODY, SECRET, "evt_2", int(START)), BODY, SECRET, START) == "evt_2"


# ---- the schedule (pure) ------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(first=1.0, cap=600.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 10, 11, 12, 10_000)] == [1.0, 2.0, 4.0, 512.0, 600.0, 600.0, 600.0]


def test_the_default_schedule_spans_24_hours() -> None:
    backoff = Backoff()
    times = attempt_times(backoff)
    assert times[:5] == [0.0, 1.0, 3.0, 7.0, 15.0] and times[10] == 1023.0
    assert times[-1] <= 24 * 3600 < times[-1] + 600 and len(times) == 11 + (24 * 3600 - 1023) // 600
    assert backoff.next_attempt(0.0, len(times), times[-1]) is None


def test_the_schedule_follows_the_settings() -> None:
    runner = Deliveries(replace(NotifySettings(), first_delay=2.0, max_delay=60.0, max_hours=1))
    assert runner.backoff == Backoff(first=2.0, cap=60.0, window=3600.0)


def test_a_target_repr_hides_the_secret_and_query() -> None:
    target = Target("https://example.com/hook?token=abc", SECRET)
    assert repr(target) == "Target(url='https://example.com/hook')"


def test_notify_needs_no_web_app() -> None:
    """The job system calls livetx.notify; it imports neither the app nor livetx/web."""
    code = "import sys, livetx.notify.delivery; print(sorted(m for m in sys.modules if m == 'livetx.app' or m.startswith('livetx.web')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60)
    assert loaded.stdout.strip() == "[]"
