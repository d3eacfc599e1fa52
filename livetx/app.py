"""create_app(settings): long-lived resources in cleanup_ctx, middleware, routes."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiohttp import web, web_response
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from livetx import logs
from livetx.cache.budget import PrefetchBudgets
from livetx.cache.local_tier import LocalTier
from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.errors import ConfigError
from livetx.media.pool import ProbePool, TranscodePool
from livetx.settings import Settings
from livetx.signing import Signer
from livetx.storage.base import Storage, media_origin
from livetx.storage.breaker import CircuitBreaker
from livetx.storage.local import LocalStorage
from livetx.storage.s3 import S3Location, S3Storage, s3_client
from livetx.titles import Profile, parse_profile
from livetx.web.keys import CATALOG, CLOCK, LOOP_LAG, METRICS, PLAYLISTS, POOL, REQUEST_ID, SEGMENTS, SETTINGS, SIGNER, STATUS
from livetx.web.lag import LoopLagMonitor
from livetx.web.metrics import Metrics, StateCollector, count_bytes, observe
from livetx.web.middleware import PARSER_LIMITS, SERVER_NAME, cors, errors, limits, server_headers, tokens
from livetx.web.player import check_page_settings
from livetx.web.playlists import PlaylistCache
from livetx.web.routes import add_routes
from livetx.web.segments import segment_etag
from livetx.web.status import TitleStatus

GIL_SWITCH_INTERVAL = 0.0005  # seconds a thread keeps the GIL while the event loop waits for it
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
            extra={
                "event": "access",
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "ms": round(time * 1000, 1),
                "bytes": response.body_length,
                "request_id": request.get(REQUEST_ID),
            },
        )


def build_profiles(settings: Settings) -> dict[str, Profile]:
    tables = settings.profiles or DEFAULT_PROFILES
    return {name: parse_profile(name, table) for name, table in tables.items()}


@asynccontextmanager
async def open_storages(settings: Settings) -> AsyncIterator[tuple[Storage, Storage]]:
    """The source and output stores: directories, or S3 URIs sharing one aiobotocore client."""
    uri, output_uri = settings.storage.uri, settings.storage.output_uri
    for value in (uri, output_uri):
        if "://" in value and not value.startswith("s3://"):
            raise ConfigError(f"storage URI scheme not supported: {value.split('://')[0]}:// (use a directory or s3://)")
    async with AsyncExitStack() as stack:
        client = None
        options = settings.s3
        if uri.startswith("s3://") or output_uri.startswith("s3://"):
            client = await stack.enter_async_context(s3_client(options))

        # one breaker for the endpoint: sources and output fail together
        breaker = CircuitBreaker(f"s3 {options.endpoint_url or 'aws'}", options.breaker_failures, options.breaker_seconds)

        def store(value: str) -> Storage:
            if value.startswith("s3://"):
                return S3Storage(client, S3Location.parse(value), options, breaker)
            return LocalStorage(settings.path(value))

        sources = store(uri)
        if output_uri:
            output = store(output_uri)
        elif uri.startswith("s3://"):
            output = S3Storage(client, S3Location.parse(uri).child(".livetx"), options, breaker)
        else:
            output = LocalStorage(settings.path(uri) / ".livetx")
        yield sources, output


def make_tier(settings: Settings, output: Storage) -> LocalTier | None:
    """A local LRU tier in front of remote output (a local output store is its own tier)."""
    if isinstance(output, LocalStorage) or settings.cache.local_max_bytes <= 0:
        return None
    tier = LocalTier(settings.path(settings.cache.local_dir), settings.cache.local_max_bytes)
    tier.scan()
    return tier


def make_signer(settings: Settings) -> Signer:
    signing = settings.signing
    return Signer(signing.keys, signing.active, signing.clock_skew, signing.max_ttl)


async def freeze_heap(app: web.Application) -> None:
    """Once started, the first time in the process: what is loaded by then (modules, clients,
    settings: several hundred thousand objects) is moved out of the garbage collector's sight.
    A full collection, which runs on the event loop whenever requests have made enough
    objects, then walks only what requests made: it took 60-120 ms before, a stall for every
    client. (Later apps in one process, as in tests, leave it as it is.)"""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(settings: Settings) -> web.Application:
    check_page_settings(settings)
    logs.protect_loggers()  # aiohttp's own records are redacted even without logs.configure
    # aiohttp answers a request its parser refuses by itself, before any app hook: its default
    # Server header is all there is to change there (the app's answers get `server_headers`)
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    # CPU work in threads (a long title's first rendering, probes, seal checks) holds the GIL
    # for up to the switch interval each time the event loop wants it back, after every
    # socket call: 5 ms by default, which a request's several calls turn into tens of ms.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    # outermost first: metrics see the final status; CORS marks errors too; errors become JSON
    app = web.Application(
        middlewares=[observe, cors, errors, limits, tokens],
        client_max_size=1024**2,
        handler_args={**PARSER_LIMITS, "keepalive_timeout": settings.server.idle_timeout},
    )
    app[SETTINGS] = settings
    app[CLOCK] = time.time  # token checks read it; a test may set its own before the app starts
    metrics = Metrics()
    app[METRICS] = metrics
    metrics.registry.register(StateCollector(app))
    app.on_response_prepare.append(server_headers)
    app.on_response_prepare.append(count_bytes)
    app.on_response_prepare.append(segment_etag)
    app[SIGNER] = make_signer(settings)
    app[PLAYLISTS] = PlaylistCache()
    app[STATUS] = TitleStatus()
    profiles = build_profiles(settings)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with open_storages(settings) as (sources, output):
            stat_ttl = settings.cache.stat_ttl
            origin = await media_origin(sources)  # the only place workers may read remote sources from
            transcode = settings.transcode
            prober = ProbePool(transcode.probe_workers, transcode.probe_timeout, origin)
            app[CATALOG] = Catalog(
                sources,
                profiles,
                threads=transcode.threads,
                output=output,
                stat_ttl=stat_ttl,
                prober=prober,
                probe_failure_ttl=settings.cache.probe_failure_ttl,
            )
            pool = TranscodePool(transcode.workers, transcode.timeout, origin)
            await pool.start()
            app[POOL] = pool
            tier = await asyncio.to_thread(make_tier, settings, output)
            app[SEGMENTS] = SegmentService(
                sources,
                output,
                pool,
                tier=tier,
                prefetch_limit=settings.cache.prefetch_limit,
                lookahead=settings.cache.lookahead,
                observe_transcode=metrics.observe_transcode,
                max_queue=settings.transcode.max_queue,
                wait_timeout=settings.transcode.wait_timeout,
                memory_max_bytes=settings.cache.memory_max_bytes,
                budgets=PrefetchBudgets(settings.cache.prefetch_per_title, settings.cache.prefetch_per_client),
            )
            try:
                yield
            finally:
                await app[SEGMENTS].drain()
                await app[CATALOG].drain()
                await pool.close()
                await prober.close()

    async def watch_loop(app: web.Application) -> AsyncIterator[None]:
        monitor = app[LOOP_LAG] = LoopLagMonitor(metrics.loop_lag.observe)
        task = asyncio.create_task(monitor.run(), name="livetx-loop-lag")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(watch_loop)
    app.cleanup_ctx.append(resources)
    app.on_startup.append(freeze_heap)  # after the resources above (cleanup contexts start first)
    add_routes(app)
    logging.getLogger(__name__).debug("app created")
    return app
