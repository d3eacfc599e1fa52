"""Playlist handlers: metadata only, never a decoded frame. Every URL they emit is signed
with the claims of the token that fetched them (or handed on, for a prefix token). The first
request for a title queues its pre-transcode."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from livetx.playlists import UriFor, master_text, media_text
from livetx.signing import Token
from livetx.urls import title_prefix, with_token
from livetx.web.keys import CATALOG, SEGMENTS, SIGNER, TOKEN
from livetx.web.middleware import viewer

M3U8_TYPE = "application/vnd.apple.mpegurl"
# signed playlists are personal (they carry this viewer's tokens): never shared by caches
PLAYLIST_HEADERS = {"Cache-Control": "private, no-store"}


def _signer_for(request: web.Request, prefix: str) -> UriFor:
    token: Token | None = request.get(TOKEN)
    signer = request.app[SIGNER]

    def uri_for(name: str) -> str:
        if token is None:  # a CDN's origin pull without a token: its edge signs and checks
            return quote(name)
        return with_token(quote(name), signer.sign_like(token, prefix + name))

    return uri_for


async def master(request: web.Request) -> web.Response:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title, viewer(request))
    text = master_text(title, _signer_for(request, title_prefix(profile, key)), request.app[SEGMENTS].bandwidth)
    return web.Response(body=text.encode(), content_type=M3U8_TYPE, headers=PLAYLIST_HEADERS)


async def media(request: web.Request) -> web.Response:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    rendition = title.rendition(request.match_info["rendition"])
    if request.app[CATALOG].first_sight(title):
        request.app[SEGMENTS].pretranscode(title, viewer(request))
    text = media_text(rendition, _signer_for(request, title_prefix(profile, key)))
    return web.Response(body=text.encode(), content_type=M3U8_TYPE, headers=PLAYLIST_HEADERS)
