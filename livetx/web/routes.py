"""Every URL pattern in one place. Routes named `hls-*` need a valid URL token."""

from __future__ import annotations

from aiohttp import web

from livetx.urls import HLS_ROOT
from livetx.web import playlists, segments
from livetx.web.player import player

PROFILE = "{profile:[A-Za-z0-9_-]+}"
KEY = "{key:.+}"
RENDITION = "{rendition:[A-Za-z0-9_]+}"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    title = f"{HLS_ROOT}/{PROFILE}/{KEY}"
    app.router.add_get(f"{title}/master.m3u8", playlists.master, name="hls-master")
    app.router.add_get(f"{title}/{RENDITION}.m3u8", playlists.media, name="hls-media")
    app.router.add_get(f"{title}/{RENDITION}-{{spec:[0-9a-f]{{12}}}}-{{n:[0-9]{{1,6}}}}.ts", segments.segment, name="hls-segment")
    app.router.add_get("/player", player, name="player")
    app.router.add_get("/healthz", healthz, name="healthz")
