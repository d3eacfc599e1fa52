"""create_app(settings): long-lived resources in cleanup_ctx, middleware, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.errors import ConfigError
from livetx.media.pool import TranscodePool
from livetx.settings import Settings
from livetx.signing import Signer
from livetx.storage.local import LocalStorage
from livetx.titles import Profile, parse_profile
from livetx.web.keys import CATALOG, POOL, SEGMENTS, SETTINGS, SIGNER
from livetx.web.middleware import errors, tokens
from livetx.web.routes import add_routes

DEFAULT_PROFILES: dict[str, dict[str, Any]] = {"default": {"renditions": {"main": {}}}}


class AccessLogger(AbstractAccessLogger):
    """Access lines without the query string: URL tokens never reach the logs."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra={"event": "access", "status": response.status},
        )


def build_profiles(settings: Settings) -> dict[str, Profile]:
    tables = settings.profiles or DEFAULT_PROFILES
    return {name: parse_profile(name, table) for name, table in tables.items()}


def make_storages(settings: Settings) -> tuple[LocalStorage, LocalStorage]:
    uri = settings.storage.uri
    if "://" in uri:
        raise ConfigError(f"storage URI scheme not supported yet: {uri.split('://')[0]}://")
    sources = settings.path(uri)
    output = settings.path(settings.storage.output_uri) if settings.storage.output_uri else sources / ".livetx"
    return LocalStorage(sources), LocalStorage(output)


def make_signer(settings: Settings) -> Signer:
    return Signer(settings.signing.keys, settings.signing.active, settings.signing.clock_skew)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[errors, tokens], client_max_size=1024**2)
    app[SETTINGS] = settings
    app[SIGNER] = make_signer(settings)
    sources, output = make_storages(settings)
    app[CATALOG] = Catalog(sources, build_profiles(settings), threads=settings.transcode.threads)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = TranscodePool(settings.transcode.workers, settings.transcode.timeout)
        await pool.start()
        app[POOL] = pool
        app[SEGMENTS] = SegmentService(sources, output, pool)
        yield
        await app[SEGMENTS].drain()
        await pool.close()

    app.cleanup_ctx.append(pool_ctx)
    add_routes(app)
    logging.getLogger(__name__).debug("app created")
    return app
