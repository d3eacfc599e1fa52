"""The key handler: route -> (viewer token checked by middleware, never waived for a CDN's origin
pull) -> title -> is this one of its keys -> per-token rate limit -> the key's 16 bytes.

A content key is derived on each request (crypto/keys.py keeps the last few thousand), never
stored, never logged, and sent `private, no-store`: no shared cache keeps it. Its URL names the
title version, so a key URL of a replaced source gets 404 rather than the new source's key.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from aiohttp import web

from livetx.crypto.keys import KeyName, period_of, version_tag
from livetx.errors import KeyNotFound, KeyRateLimited
from livetx.lru import Lru
from livetx.titles import Title
from livetx.web.keys import CATALOG, CONTENT_KEYS, KEY_LIMITS, METRICS, SETTINGS
from livetx.web.middleware import viewer

KEY_ROUTE = "hls-key"
KEY_HEADERS = {"Cache-Control": "private, no-store", "Content-Type": "application/octet-stream"}
TOKENS_KEPT = 65536  # token buckets kept; a forgotten token starts full again


class KeyRequestLimits:
    """A token bucket per viewer token: `burst` requests at once, refilled at `per_minute` a
    minute. Per process (several processes or origins each allow as much): a cap on a leaked
    token's key fetches, not an exact quota."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: Lru[str, tuple[float, float]] = Lru(TOKENS_KEPT)  # who -> (tokens, when)

    def take(self, who: str) -> None:
        """One request of `who`, or KeyRateLimited with the seconds until one is allowed."""
        now = self.clock()
        tokens, then = self._buckets.get(who) or (float(self.burst), now)
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets.put(who, (tokens, now))
            raise KeyRateLimited("too many key requests for this token; retry later", retry_after=math.ceil((1 - tokens) / self.rate))
        self._buckets.put(who, (tokens - 1, now))


def _check_key(title: Title, name: KeyName) -> None:
    """`name` is a key some encrypted rendition of the title uses, now."""
    encrypted = [r for r in title.renditions if r.encryption is not None]
    if not encrypted:
        raise KeyNotFound(f"profile {title.profile.name!r} encrypts nothing: this title has no keys")
    if name.version != version_tag(title.profile.name, title.source.key, title.source.etag):
        raise KeyNotFound("the key belongs to an older version of this title; reload the playlist")
    periods = max(period_of(len(r.windows) - 1, r.encryption.rotation) for r in encrypted if r.encryption is not None)
    if name.period > periods:
        raise KeyNotFound(f"key period {name.period} is past the title's {periods + 1} key periods")


async def content_key(request: web.Request) -> web.Response:
    match = request.match_info
    title = await request.app[CATALOG].title(match["profile"], match["key"])
    name = KeyName(match["kid"], match["version"], int(match["period"]))
    _check_key(title, name)
    source = request.app[CONTENT_KEYS]
    if not source.knows(name.kid):
        raise KeyNotFound("the key's master key is no longer configured; reload the playlist")
    metrics = request.app[METRICS]
    try:
        request.app[KEY_LIMITS].take(viewer(request))
    except KeyRateLimited:
        metrics.count_key("limited")
        raise
    metrics.count_key("served")
    return web.Response(body=source.key(name).key, headers=KEY_HEADERS)


def key_limits(app: web.Application) -> KeyRequestLimits:
    encryption = app[SETTINGS].encryption
    return KeyRequestLimits(encryption.key_requests, encryption.key_burst)
