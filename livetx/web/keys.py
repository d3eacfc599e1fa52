"""Typed application and request keys: every piece of app state is declared here."""

from __future__ import annotations

from aiohttp import web

from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.media.pool import TranscodePool
from livetx.settings import Settings
from livetx.signing import Signer, Token

SETTINGS = web.AppKey("settings", Settings)
SIGNER = web.AppKey("signer", Signer)
CATALOG = web.AppKey("catalog", Catalog)
POOL = web.AppKey("pool", TranscodePool)
SEGMENTS = web.AppKey("segments", SegmentService)

# set on a request by the token middleware: the verified token
TOKEN = web.RequestKey("token", Token)
__all__ = ["CATALOG", "POOL", "SEGMENTS", "SETTINGS", "SIGNER", "TOKEN", "Token"]
