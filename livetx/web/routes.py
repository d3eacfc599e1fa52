"""Every URL pattern in one place. Routes named `hls-*` need a valid URL token, routes named
`api-v1-*` a bearer API key (see web/middleware.py)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from livetx.dash.manifest import MPD_NAME
from livetx.urls import HLS_ROOT
from livetx.web import api, content_keys, jobs, pictures, pipelines, playlists, segments, siblings, templates
from livetx.web.auth import check_metrics_token
from livetx.web.demo import demo
from livetx.web.keys import CATALOG, CLUSTER, METRICS, POOL, PROCESS
from livetx.web.openapi import openapi
from livetx.web.player import player

PROFILE = "{profile:[A-Za-z0-9_-]+}"
KEY = "{key:.+}"
RENDITION = "{rendition:[A-Za-z0-9_]+}"
READY_PROBE_KEY = ".ready"  # stat of a key that need not exist: a round trip to output storage
READY_TIMEOUT = 5.0


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    """Ready for traffic: output storage answers and every transcode worker is alive."""
    checks: dict[str, str] = {}
    pool = request.app.get(POOL)
    alive = len(pool.worker_pids()) if pool is not None else 0
    checks["pool"] = "ok" if pool is not None and alive == pool.size else f"{alive} of {pool.size if pool else 0} workers alive"
    catalog = request.app.get(CATALOG)
    try:
        if catalog is None:
            raise RuntimeError("not started")
        await asyncio.wait_for(catalog.output.stat(READY_PROBE_KEY), timeout=READY_TIMEOUT)
        checks["storage"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["storage"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)


async def metrics_page(request: web.Request) -> web.Response:
    """The app's Prometheus registry (web/metrics.py), behind `server.metrics_token` when set."""
    check_metrics_token(request)
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        await cluster.refresh()  # who holds which lease, cluster-wide: listed here, not in a collector
    if request.app[PROCESS].shared:  # one of several server processes: all of them answer
        body = await siblings.scrape(request.app)
    else:
        body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    title = f"{HLS_ROOT}/{PROFILE}/{KEY}"
    app.router.add_get(f"{title}/master.m3u8", playlists.master, name="hls-master")
    app.router.add_get(f"{title}/{RENDITION}.m3u8", playlists.media, name="hls-media")
    app.router.add_get(f"{title}/{MPD_NAME}", playlists.mpd, name="hls-mpd")  # DASH, fMP4 titles only
    segment = f"{title}/{RENDITION}-{{spec:[0-9a-f]{{12}}}}-"
    app.router.add_get(segment + "{n:[0-9]{1,6}}.ts", segments.segment, name="hls-segment")
    app.router.add_get(segment + "{n:[0-9]{1,6}}.m4s", segments.segment, name="hls-fragment")  # fMP4 media segment
    app.router.add_get(segment + "init.mp4", segments.segment, name="hls-init")  # fMP4 init segment
    app.router.add_get(segment + "{n:[0-9]{1,6}}.vtt", segments.segment, name="hls-subtitle")  # WebVTT subtitle segment
    # pictures (web/pictures.py): a snapshot, the poster, the storyboard track and its sheets
    app.router.add_get(f"{title}/snapshot.{{ext:jpg|webp|png}}", pictures.snapshot, name="hls-snapshot")
    app.router.add_get(f"{title}/poster.jpg", pictures.poster, name="hls-poster")
    app.router.add_get(f"{title}/storyboard.vtt", pictures.storyboard_track, name="hls-storyboard")
    app.router.add_get(
        f"{title}/storyboard-{{spec:[0-9a-f]{{12}}}}-{{n:[0-9]{{1,6}}}}.jpg", pictures.storyboard_sheet, name="hls-storyboard-sheet"
    )
    # a content key of an encrypted rendition (layout.key_file_name): never without a viewer token
    key = f"{title}/key-{{kid:[A-Za-z0-9_]{{1,16}}}}-{{version:[0-9a-f]{{12}}}}-{{period:[0-9]{{1,6}}}}.key"
    app.router.add_get(key, content_keys.content_key, name=content_keys.KEY_ROUTE)
    app.router.add_post("/api/v1/sign", api.sign_url, name="api-v1-sign")
    app.router.add_post("/api/v1/playlists", api.create_playlists, name="api-v1-playlists")
    app.router.add_post("/api/v1/composites", api.create_composite, name="api-v1-composites")
    app.router.add_get("/api/v1/sources", api.list_sources, name="api-v1-sources")
    app.router.add_get(f"/api/v1/titles/{PROFILE}/{KEY}", api.title_state, name="api-v1-title")
    # templates and pipelines: {name} takes any one path part, so a bad name is a 400 naming it (not a 404)
    app.router.add_get("/api/v1/templates", templates.list_templates, name="api-v1-templates")
    one = app.router.add_resource("/api/v1/templates/{name}", name="api-v1-template")
    one.add_route("PUT", templates.put_template)
    one.add_route("GET", templates.get_template)
    one.add_route("DELETE", templates.delete_template)
    app.router.add_get("/api/v1/pipelines", pipelines.list_pipelines, name="api-v1-pipelines")
    one = app.router.add_resource("/api/v1/pipelines/{name}", name="api-v1-pipeline")
    one.add_route("PUT", pipelines.put_pipeline)
    one.add_route("GET", pipelines.get_pipeline)
    one.add_route("DELETE", pipelines.delete_pipeline)
    app.router.add_post("/api/v1/jobs", jobs.submit, name="api-v1-jobs")
    app.router.add_get("/api/v1/jobs", jobs.listing, name="api-v1-jobs-list")
    app.router.add_get("/api/v1/jobs/{id}", jobs.status, name="api-v1-job")
    app.router.add_delete("/api/v1/jobs/{id}", jobs.cancel, name="api-v1-job-cancel")
    app.router.add_get("/api/openapi.json", openapi, name="openapi")
    app.router.add_get("/", demo, name="demo")
    app.router.add_get("/player", player, name="player")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics_page, name="metrics")
    # OSS-style `POST /<source key>?x-oss-process` (x-oss-async-process: a job, web/jobs.py): last, so every other route matches first.
    # Any method matches here so that other requests still get 404 (not 405); the handler
    # checks the API key itself, once it knows the request is an OSS call.
    app.router.add_route("*", "/{key:.+}", jobs.oss_route, name="oss-process")
