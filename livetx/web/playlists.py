"""Playlist handlers: metadata only, never a decoded frame. Every URL they emit is signed
with the claims of the token that fetched them (or handed on, for a prefix token). The first
request for a title queues its pre-transcode.

Playlists are personal (`private, no-store`: they carry the viewer's token), so a CDN sends
every player's request here. Each is rendered once per title version and rendition, in a
thread (`PlaylistCache`, web/playlist_cache.py); a request only fills in its token. A title-scoped token is the same
query on every URI: joins of cached bytes. A path token needs one signature per URI, from a
precomputed HMAC state. A long playlist goes out in pieces, the event loop running other
requests between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from livetx.dash.manifest import MPD_TYPE, check_dash, rendered_mpd
from livetx.playlists import Rendered, rendered_master, rendered_media
from livetx.titles import Title
from livetx.urls import title_prefix
from livetx.web.keys import CATALOG, PLAYLISTS, SEGMENTS, SIGNER, TOKEN
from livetx.web.middleware import viewer

M3U8_TYPE = "application/vnd.apple.mpegurl"
# signed playlists are personal (they carry this viewer's tokens): never shared by caches
PLAYLIST_HEADERS = {"Cache-Control": "private, no-store"}
M3U8_HEADERS = CIMultiDictProxy(CIMultiDict({**PLAYLIST_HEADERS, "Content-Type": M3U8_TYPE}))  # built once, copied per answer

CHUNK = 256  # path-token URIs signed between two turns of the event loop (~1 ms)
STREAM_URIS = 2048  # a playlist with more URIs goes out in pieces of this many (~300 kB)


def _version(title: Title) -> tuple[str, str, str]:
    """A title version: its profile (spec ids change with its parameters) and source identity."""
    return (title.profile.name, title.source.key, title.source.etag)


async def _respond(request: web.Request, rendered: Rendered, prefix: str) -> web.StreamResponse:
    """The playlist with this request's token in each URI. Path-token signatures are made
    CHUNK at a time, and a long playlist goes out in pieces of STREAM_URIS URIs: the event
    loop serves other requests between them."""
    token = request.get(TOKEN)
    signer = request.app[SIGNER].path_signer(token, prefix) if token is not None else None
    count = len(rendered.names)
    streamed = count > STREAM_URIS and request.method != "HEAD"
    if signer is None:
        # a CDN's origin pull without a token (its edge signs and checks), or a prefix token
        # that covers every URI (handed on as it is)
        query = b"" if token is None else b"?" + token.query_string().encode()
        if not streamed:
            return _playlist(rendered.parts[0] + rendered.piece_with_query(0, count, query))
        return await _stream(request, rendered, len(query), lambda start, stop: rendered.piece_with_query(start, stop, query))
    names = rendered.names
    if count <= CHUNK:
        return _playlist(rendered.parts[0] + rendered.piece(0, count, [signer.query(name) for name in names]))

    async def signed(start: int, stop: int) -> bytes:
        queries: list[bytes] = []
        async with request.app[PLAYLISTS].signing:  # not held while a slow client reads
            for first in range(start, stop, CHUNK):
                await asyncio.sleep(0)  # other requests run between chunks
                queries += [signer.query(name) for name in names[first : min(first + CHUNK, stop)]]
        return rendered.piece(start, stop, queries)

    if not streamed or not rendered.plain_names:  # (livetx's own names are all plain)
        return _playlist(rendered.parts[0] + await signed(0, count))
    # every query has the length of the longest name's (a fixed head and a 43-byte
    # signature); signing that name first checks the longest path before anything is sent
    return await _stream(request, rendered, len(signer.query(rendered.longest)), signed)


def _playlist(body: bytes) -> web.Response:
    return web.Response(body=body, headers=M3U8_HEADERS)


async def _stream(
    request: web.Request, rendered: Rendered, query_length: int, piece: Callable[[int, int], bytes | Awaitable[bytes]]
) -> web.StreamResponse:
    response = web.StreamResponse(headers=PLAYLIST_HEADERS)
    response.content_type = M3U8_TYPE
    response.content_length = rendered.length + query_length * len(rendered.names)
    await response.prepare(request)
    await response.write(rendered.parts[0])
    for start in range(0, len(rendered.names), STREAM_URIS):
        await asyncio.sleep(0)  # other requests run between pieces
        made = piece(start, min(start + STREAM_URIS, len(rendered.names)))
        await response.write(made if isinstance(made, bytes) else await made)
    await response.write_eof()
    return response


async def master(request: web.Request) -> web.StreamResponse:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title, viewer(request))
    # measured bandwidths change as segments are made: they are part of the master's identity
    # (and read here, on the loop; the rendering thread sees only this snapshot)
    measured = {r.name: request.app[SEGMENTS].bandwidth(r) for r in title.renditions}
    cache_key = (*_version(title), "master", tuple((r.spec_id, *measured[r.name]) for r in title.renditions))
    rendered = await request.app[PLAYLISTS].get(cache_key, lambda: rendered_master(title, lambda r: measured[r.name]))
    return await _respond(request, rendered, title_prefix(profile, key))


async def mpd(request: web.Request) -> web.Response:
    """The title's DASH manifest (livetx/dash/manifest.py), for titles whose renditions are all
    fMP4, signed like the master playlist.

    Its SegmentTemplate URLs stand for every segment at once, so they cannot carry one
    signature each. All of them carry one query: a prefix token as it came (handed on, as the
    playlists do), none on a CDN's origin pull without a token, and for a path token a token
    for the title's prefix with the same claims (expiry, nbf, ip). That covers what the master
    playlist's signed URLs reach anyway: this title's playlists and segments, nothing else."""
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    check_dash(title)
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title, viewer(request))
    measured = {r.name: request.app[SEGMENTS].bandwidth(r) for r in title.renditions}
    cache_key = (*_version(title), "mpd", tuple((r.spec_id, *measured[r.name]) for r in title.renditions))
    rendered = await request.app[PLAYLISTS].get(cache_key, lambda: rendered_mpd(title, lambda r: measured[r.name]))
    prefix = title_prefix(profile, key)
    token = request.get(TOKEN)
    if token is not None and request.app[SIGNER].path_signer(token, prefix) is not None:
        token = request.app[SIGNER].sign_prefix(prefix, token.exp, nbf=token.nbf, ip=token.ip)
    query = b"" if token is None else b"?" + escape(token.query_string()).encode()  # "&" in XML: "&amp;"
    body = rendered.parts[0] + rendered.piece_with_query(0, len(rendered.names), query)
    return web.Response(body=body, content_type=MPD_TYPE, headers=PLAYLIST_HEADERS)


async def media(request: web.Request) -> web.StreamResponse:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    rendition = title.rendition(request.match_info["rendition"])
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title, viewer(request))
    cache_key = (*_version(title), rendition.name, rendition.spec_id)
    rendered = await request.app[PLAYLISTS].get(cache_key, lambda: rendered_media(rendition))
    return await _respond(request, rendered, title_prefix(profile, key))
