"""The webhook signature scheme: what a sender adds to a request and how a receiver checks it.

Pure: no I/O, no aiohttp. A receiver in any language can be written from this description.

A notification is an HTTP `POST` whose body is JSON (UTF-8), with these headers:

    Content-Type: application/json
    X-Livetx-Event-Id: evt_3f6c...        the event; the same on every retry of one event
    X-Livetx-Signature: t=1767225600,v1=5257a869...

`t` is the time the attempt was signed, in whole seconds since the Unix epoch (decimal
digits). `v1` is the lower-case hex HMAC-SHA256, keyed with the target's secret (its bytes;
a secret given as text: its UTF-8 bytes), of the ASCII digits of `t`, one `.` and the body's
bytes exactly as received:

    v1 = hex(HMAC_SHA256(secret, t + "." + body))

Each attempt is signed anew, so `t` changes between retries while the event id does not. The
header is a comma-separated list of `key=value` items; a receiver ignores keys it does not
know, and there may be several `v1` items (one per secret while a secret is being replaced):
the request is authentic when any of them matches.

A receiver:
1. reads the raw body (before parsing the JSON: any change of a byte breaks the signature);
2. computes `v1` itself and compares it with the header's in constant time;
3. refuses a request whose `t` is more than a tolerance (5 minutes here) away from its own
   clock: a captured request replayed later fails even though its signature is genuine;
4. answers 2xx quickly (work can follow asynchronously), and treats an event id it has seen
   already as done: delivery is at least once, so one event may arrive more than once.

Anything but a 2xx answer (3xx included: redirects are not followed) is retried. The event id
header is not covered by the signature; a job's notification (livetx/batch/notices.py) carries
its event id in the body as well (`EventId`), which the signature covers: a receiver keys on that.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from livetx.errors import WebhookSignatureExpired, WebhookSignatureInvalid

SIGNATURE_HEADER = "X-Livetx-Signature"
EVENT_ID_HEADER = "X-Livetx-Event-Id"
CONTENT_TYPE = "application/json"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300.0  # seconds a receiver accepts between `t` and its own clock
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")  # whole seconds; bounded so a hostile header stays cheap
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def new_event_id() -> str:
    """A random event id (128 bits): made once per event and kept with it, so every retry
    carries the same one."""
    return "evt_" + secrets.token_hex(16)


def digest(body: bytes, secret: bytes, timestamp: int) -> str:
    """`v1`: hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`."""
    return hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature(body: bytes, secret: bytes, timestamp: int) -> str:
    """The `X-Livetx-Signature` value of `body` signed at `timestamp`."""
    return f"t={timestamp},{SCHEME}={digest(body, secret, timestamp)}"


def signed_headers(body: bytes, secret: bytes, event_id: str, timestamp: int) -> dict[str, str]:
    """Every header a notification carries, for one attempt signed at `timestamp`."""
    if not EVENT_ID.fullmatch(event_id):
        raise ValueError("an event id is 1 to 64 letters, digits, '_' or '-'")
    return {"Content-Type": CONTENT_TYPE, EVENT_ID_HEADER: event_id, SIGNATURE_HEADER: signature(body, secret, timestamp)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, in any case (a plain dict or aiohttp's case-insensitive headers)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _parse(value: str) -> tuple[int, list[str]]:
    """(t, every v1) of a signature header; WebhookSignatureInvalid if it has no usable ones."""
    stamps, digests = [], []
    for item in value.split(","):
        key, _, found = item.strip().partition("=")
        if key == "t":
            stamps.append(found)
        elif key == SCHEME:
            digests.append(found)
    if len(stamps) != 1 or not TIMESTAMP.fullmatch(stamps[0]):
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} needs exactly one t=<unix seconds>")
    if not digests:
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} has no {SCHEME}=<hex> signature")
    return int(stamps[0]), digests


def verify(headers: Mapping[str, str], body: bytes, secret: bytes, now: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The event id of an authentic, fresh notification; else WebhookSignatureExpired (a genuine
    signature, `t` more than `tolerance` seconds from `now`) or WebhookSignatureInvalid."""
    value = _header(headers, SIGNATURE_HEADER)
    if value is None:
        raise WebhookSignatureInvalid(f"no {SIGNATURE_HEADER} header")
    timestamp, digests = _parse(value)
    expected = digest(body, secret, timestamp)
    # every candidate compared in constant time, none skipped: the time taken tells nothing
    matched = False
    for candidate in digests:
        matched |= hmac.compare_digest(expected, candidate if HEX_DIGEST.fullmatch(candidate) else "")
    if not matched:
        raise WebhookSignatureInvalid("the webhook signature does not match the body")
    # checked after the signature: only an authentic request learns that it came too late
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureExpired(
            f"the webhook was signed {abs(now - timestamp):.0f} s from this clock's time, beyond the {tolerance:g} s allowed"
        )
    event_id = _header(headers, EVENT_ID_HEADER)
    if event_id is None or not EVENT_ID.fullmatch(event_id):
        raise WebhookSignatureInvalid(f"no valid {EVENT_ID_HEADER} header")
    return event_id
