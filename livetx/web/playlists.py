"""Playlist handlers: metadata only, never a decoded frame. Every URL they emit is signed
with the claims of the token that fetched them (or handed on, for a prefix token). The first
request for a title queues its pre-transcode.

Playlists are personal (`private, no-store`: they carry the viewer's token), so a CDN sends
every player's request here. Each is rendered once per title version and rendition, in a
thread (`PlaylistCache`); a request only fills in its token. A title-scoped token is the same
query on every URI: one join of cached bytes. A path token needs one signature per URI:
from a precomputed HMAC state, in chunks between which the event loop runs other requests.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable

from aiohttp import web

from livetx.playlists import Rendered, rendered_master, rendered_media
from livetx.titles import Title
from livetx.urls import title_prefix
from livetx.web.keys import CATALOG, PLAYLISTS, SEGMENTS, SIGNER, TOKEN

M3U8_TYPE = "application/vnd.apple.mpegurl"
# signed playlists are personal (they carry this viewer's tokens): never shared by caches
PLAYLIST_HEADERS = {"Cache-Control": "private, no-store"}

RENDERED_MAX_BYTES = 64 * 1024**2  # rendered playlists kept (a 2-hour title's media playlist: ~75 kB)
SIGN_CHUNK = 256  # path-token URIs signed between two turns of the event loop (~1 ms)
SIGNING_AT_ONCE = 2  # playlists of more than SIGN_CHUNK URIs signed at a time; the others wait


class PlaylistCache:
    """Rendered playlists by title version and rendition, least recently used dropped beyond
    `max_bytes`. A playlist is rendered once, in a thread, however many requests wait for it."""

    def __init__(self, max_bytes: int = RENDERED_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.renders = 0
        self._rendered: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._rendering: dict[Hashable, asyncio.Task[Rendered]] = {}
        self.signing = asyncio.Semaphore(SIGNING_AT_ONCE)

    async def get(self, key: Hashable, render: Callable[[], Rendered]) -> Rendered:
        found = self._rendered.get(key)
        if found is not None:
            self._rendered.move_to_end(key)
            return found
        task = self._rendering.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(render))
            self._rendering[key] = task
            task.add_done_callback(lambda done: self._keep(key, done))
        # a client that leaves doesn't cancel the rendering others wait for
        return await asyncio.shield(task)

    def _keep(self, key: Hashable, task: asyncio.Task[Rendered]) -> None:
        self._rendering.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return  # each waiter got the error; nothing is kept
        rendered = task.result()
        self.renders += 1
        if rendered.size > self.max_bytes:
            return
        self._rendered[key] = rendered
        self.bytes += rendered.size
        while self.bytes > self.max_bytes:
            _, dropped = self._rendered.popitem(last=False)
            self.bytes -= dropped.size


def _version(title: Title) -> tuple[str, str, str]:
    """A title version: its profile (spec ids change with its parameters) and source identity."""
    return (title.profile.name, title.source.key, title.source.etag)


async def _filled(request: web.Request, rendered: Rendered, prefix: str) -> bytes:
    """The playlist's bytes with this request's token in each URI."""
    token = request.get(TOKEN)
    if token is None:  # a CDN's origin pull without a token: its edge signs and checks
        return rendered.plain()
    signer = request.app[SIGNER].path_signer(token, prefix)
    if signer is None:  # a prefix token covers every URI: handed on as it is
        return rendered.with_query(token.query_string())
    names = rendered.names
    if len(names) <= SIGN_CHUNK:
        return rendered.with_queries([signer.query(name) for name in names])
    queries: list[bytes] = []
    async with request.app[PLAYLISTS].signing:
        for start in range(0, len(names), SIGN_CHUNK):
            await asyncio.sleep(0)  # let other requests run between chunks
            queries += [signer.query(name) for name in names[start : start + SIGN_CHUNK]]
    return rendered.with_queries(queries)


async def master(request: web.Request) -> web.Response:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title)
    # measured bandwidths change as segments are made: they are part of the master's identity
    # (and read here, on the loop; the rendering thread sees only this snapshot)
    measured = {r.name: request.app[SEGMENTS].bandwidth(r) for r in title.renditions}
    cache_key = (*_version(title), "master", tuple((r.spec_id, *measured[r.name]) for r in title.renditions))
    rendered = await request.app[PLAYLISTS].get(cache_key, lambda: rendered_master(title, lambda r: measured[r.name]))
    body = await _filled(request, rendered, title_prefix(profile, key))
    return web.Response(body=body, content_type=M3U8_TYPE, headers=PLAYLIST_HEADERS)


async def media(request: web.Request) -> web.Response:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    rendition = title.rendition(request.match_info["rendition"])
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title)
    cache_key = (*_version(title), rendition.name, rendition.spec_id)
    rendered = await request.app[PLAYLISTS].get(cache_key, lambda: rendered_media(rendition))
    body = await _filled(request, rendered, title_prefix(profile, key))
    return web.Response(body=body, content_type=M3U8_TYPE, headers=PLAYLIST_HEADERS)
