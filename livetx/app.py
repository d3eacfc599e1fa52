"""create_app(settings): long-lived resources in cleanup_ctx, middleware, routes."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web, web_response
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from livetx import logs
from livetx.batch.pipelines import PipelineStore
from livetx.batch.runner import Runner
from livetx.batch.templates import TemplateStore
from livetx.cache.pictures import PictureService
from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.cluster.flight import ClusterFlight
from livetx.factories import make_coordinator, make_key_source, make_signer, make_tier, master_kid, open_storages
from livetx.media.host_slots import HostSlots
from livetx.media.pool import ProbePool, TranscodePool
from livetx.server_process import ALONE, SHUTDOWN_TIMEOUT, ServerProcess
from livetx.settings import Settings
from livetx.signing import VerifiedTokens
from livetx.storage.base import media_origin
from livetx.web import siblings
from livetx.web.content_keys import key_limits
from livetx.web.keys import (
    CATALOG,
    CLOCK,
    CLUSTER,
    CONTENT_KEYS,
    JOBS,
    KEY_LIMITS,
    LOOP_LAG,
    METRICS,
    PICTURES,
    PIPELINES,
    PLAYLISTS,
    POOL,
    PROCESS,
    REQUEST_ID,
    SEGMENTS,
    SETTINGS,
    SIGNER,
    STATUS,
    TEMPLATES,
    TOKENS,
)
from livetx.web.lag import LoopLagMonitor
from livetx.web.metrics import ClusterCollector, Metrics, StateCollector
from livetx.web.middleware import PARSER_LIMITS, SERVER_NAME, cors, count_bytes, errors, observe, server_headers
from livetx.web.pictures import picture_etag
from livetx.web.player import check_page_settings
from livetx.web.playlist_cache import PlaylistCache
from livetx.web.routes import add_routes
from livetx.web.segments import segment_etag
from livetx.web.status import TitleStatus

GIL_SWITCH_INTERVAL = 0.0005  # seconds a thread keeps the GIL while the event loop waits for it
GC_YOUNG = 10000  # objects made (net) between two collections of the youngest generation (Python's default: 700)


class AccessLogger(AbstractAccessLogger):
    """Access lines without the query string: URL tokens never reach the logs. Written straight
    by `serve`'s JSON handler when nothing else would see the record (`logs.direct`): the same
    line without logging's per-record work."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        status, size, request_id = response.status, response.body_length, request.get(REQUEST_ID)
        handler = logs.direct(self.logger)
        if handler is not None:
            handler.access_line(self.logger.name, request.remote, request.method, request.path, status, time, size, request_id)
        else:
            message, fields = logs.access_record(request.remote, request.method, request.path, status, time, size, request_id)
            self.logger.info("%s", message, extra=fields)


async def prepared(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare, for every answer of the app (errors, 304s, files): its Server
    headers, its bytes counted, a segment's ETag. One hook, not three: each costs a coroutine
    on every request."""
    server_headers(request, response)
    count_bytes(request, response)
    segment_etag(request, response)
    picture_etag(request, response)


async def freeze_heap(app: web.Application) -> None:
    """Once started, the first time in the process: what is loaded by then (modules, clients,
    settings: several hundred thousand objects) is moved out of the garbage collector's sight.
    A full collection, which runs on the event loop whenever requests have made enough
    objects, then walks only what requests made: it took 60-120 ms before, a stall for every
    client. And the youngest generation is collected every GC_YOUNG objects made (net), not
    700: with a few hundred requests in flight, their live objects crossed 700 all the time,
    and each collection walked them all (111 collections of 1.5 ms in 6 s of 200 clients
    fetching a playlist, 3 % of the time; 2 at 10000). (Later apps in one process, as in
    tests, leave it as it is.)"""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def pool_size(settings: Settings, process: ServerProcess) -> int:
    """Warm transcode workers in this process's pool: the host's bound (`transcode.workers`)
    with one process; with several, twice this process's share of it (at most the bound), so a
    busy process can use more than its share while the others idle, and the host keeps about
    2 × cores workers rather than cores² (the host slots bound what runs at once)."""
    host = settings.transcode.workers or os.cpu_count() or 1
    if not process.shared:
        return host
    return min(host, 2 * math.ceil(host / process.count))


def host_slots(settings: Settings, process: ServerProcess) -> HostSlots | None:
    """The host's transcode slots, shared by the server processes (None with one process: its
    pool is the host's bound)."""
    if not process.shared:
        return None
    return HostSlots(settings.path(settings.cluster.lock_dir), settings.transcode.workers or os.cpu_count() or 1)


def create_app(settings: Settings, process: ServerProcess = ALONE) -> web.Application:
    """The app of one server process; `process`: which of the processes of `livetx serve`
    (the default: the only one, as in-process tests run it). Several processes make each
    segment once through lock files, unless Redis coordinates them."""
    check_page_settings(settings)
    logs.protect_loggers()  # aiohttp's own records are redacted even without logs.configure
    # aiohttp answers a request its parser refuses by itself, before any app hook: its default
    # Server header is all there is to change there (the app's answers get `server_headers`)
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    # outermost first: metrics see the final status; CORS marks errors too; errors become JSON (and
    # `errors` runs the size and token checks before the handler)
    app = web.Application(
        middlewares=[observe, cors, errors],
        client_max_size=1024**2,
        handler_args={**PARSER_LIMITS, "keepalive_timeout": settings.server.idle_timeout},
    )
    app[SETTINGS] = settings
    app[PROCESS] = process
    app[CLOCK] = time.time  # token checks read it; a test may set its own before the app starts
    metrics = Metrics()
    app[METRICS] = metrics
    metrics.registry.register(StateCollector(lambda: app.get(POOL), lambda: app.get(SEGMENTS), lambda: app.get(PICTURES)))
    metrics.registry.register(ClusterCollector(lambda: app.get(CLUSTER)))
    app.on_response_prepare.append(prepared)
    app[SIGNER] = make_signer(settings)
    app[TOKENS] = VerifiedTokens(app[SIGNER])
    app[CONTENT_KEYS] = make_key_source(settings)
    app[KEY_LIMITS] = key_limits(app)
    app[PLAYLISTS] = PlaylistCache()
    app[STATUS] = TitleStatus()
    profiles = dict(settings.profiles)
    coordinator = make_coordinator(settings, process.count)

    async def coordination(app: web.Application) -> AsyncIterator[None]:
        """Before the segment service, closed after it has drained (its leases released)."""
        if coordinator is None:
            yield
            return
        cluster = app[CLUSTER] = ClusterFlight(coordinator)
        await cluster.start()
        try:
            yield
        finally:
            await cluster.close()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with open_storages(settings) as (sources, output):
            stat_ttl = settings.cache.stat_ttl
            origin = await media_origin(sources)  # the only place workers may read remote sources from
            transcode = settings.transcode
            prober = ProbePool(transcode.probe_workers, transcode.probe_timeout, origin)
            app[TEMPLATES] = TemplateStore(output)
            app[PIPELINES] = PipelineStore(output, settings)
            app[CATALOG] = Catalog(
                sources,
                profiles,
                threads=transcode.threads,
                output=output,
                stat_ttl=stat_ttl,
                prober=prober,
                probe_failure_ttl=settings.cache.probe_failure_ttl,
                sidecar_timeout=transcode.probe_timeout,
                master_kid=master_kid(settings),
                public_url=settings.server.public_url,
            )
            pool = TranscodePool(pool_size(settings, process), transcode.timeout, origin, host_slots(settings, process), process.index)
            await pool.start()
            app[POOL] = pool
            tier = await asyncio.to_thread(make_tier, settings, output, process.index, process.count)
            app[SEGMENTS] = SegmentService(
                sources,
                output,
                pool,
                settings.cache,
                settings.transcode,
                tier=tier,
                cluster=app.get(CLUSTER),
                observe_transcode=metrics.observe_transcode,
                keys=app[CONTENT_KEYS],
            )
            app[PICTURES] = PictureService(app[SEGMENTS])
            # background jobs (livetx/batch/): stopped first, so a running job goes back to the
            # queue while storage and the pool are still there
            runner = app[JOBS] = Runner(settings, app[CATALOG], app[SEGMENTS], app[PIPELINES])
            await runner.start()
            try:
                yield
            finally:
                await runner.close()
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
    app.cleanup_ctx.append(coordination)
    app.cleanup_ctx.append(resources)
    if process.shared:
        app.cleanup_ctx.append(siblings.answer_siblings)
    app.on_startup.append(freeze_heap)  # after the resources above (cleanup contexts start first)
    add_routes(app)
    logging.getLogger(__name__).debug("app created")
    return app


def serve(settings: Settings, on_listening: Callable[[], None], process: ServerProcess = ALONE) -> None:
    """Run the server in this process until SIGTERM or SIGINT, then drain: in-flight requests
    finish (up to SHUTDOWN_TIMEOUT), then the app's cleanup (write-backs land, pools stop).
    `on_listening` is called once the port is bound. One of several processes: the port is
    bound with SO_REUSEPORT, and the kernel spreads connections over the processes."""
    # a process setting, so set by the process: CPU work in threads (a long title's first
    # rendering, probes, seal checks) holds the GIL for up to the switch interval each time the
    # event loop wants it back, after every socket call: 5 ms by default, which a request's
    # several calls turn into tens of ms
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    web.run_app(
        create_app(settings, process),
        host=settings.server.host,
        port=settings.server.port,
        reuse_port=process.shared or None,
        print=lambda _: on_listening(),
        access_log_class=AccessLogger,
        loop=_new_loop(),
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        return asyncio.new_event_loop()
