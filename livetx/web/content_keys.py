"""The key handler: route -> (viewer token checked by middleware, never waived for a CDN's origin
pull) -> title -> is this one of its keys -> per-token rate limit -> the key's 16 bytes.

A content key is derived on each request (crypto/keys.py keeps the last few thousand), never
stored, never logged, and sent `private, no-store`: no shared cache keeps it. Its URL names the
title version, so a key URL of a replaced source gets 404 rather than the new source's key.
"""

from __future__ import annotations

from aiohttp import web

from livetx.crypto.keys import KeyName, period_of, version_tag
from livetx.errors import KeyNotFound, KeyRateLimited
from livetx.titles import Title
from livetx.web.keys import CATALOG, CONTENT_KEYS, KEY_LIMITS, METRICS, SETTINGS
from livetx.web.middleware import viewer
from livetx.web.rate_limits import KeyRequestLimits

KEY_ROUTE = "hls-key"
KEY_HEADERS = {"Cache-Control": "private, no-store", "Content-Type": "application/octet-stream"}


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
