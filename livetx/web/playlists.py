"""Playlist handlers: metadata only, never a decoded frame. Every URL they emit is signed
with the expiry of the token that fetched them (or handed on, for a prefix token)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from livetx.cache.keys import segment_name
from livetx.hls.model import MasterPlaylist, MediaPlaylist, MediaSegment, VariantStream
from livetx.hls.plan import target_duration
from livetx.hls.render import render_master, render_media
from livetx.signing import Token
from livetx.urls import title_prefix, with_token
from livetx.web.keys import CATALOG, SIGNER, TOKEN

M3U8_TYPE = "application/vnd.apple.mpegurl"
# signed playlists are personal (they carry this viewer's tokens): never shared by caches
PLAYLIST_HEADERS = {"Cache-Control": "private, no-store"}


def _signed(request: web.Request, prefix: str, name: str) -> str:
    token: Token = request[TOKEN]
    child = request.app[SIGNER].sign_like(token, prefix + name)
    return with_token(quote(name), child)


async def master(request: web.Request) -> web.Response:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    prefix = title_prefix(profile, key)
    variants = tuple(
        VariantStream(
            uri=_signed(request, prefix, f"{r.name}.m3u8"),
            bandwidth=r.bandwidth,
            average_bandwidth=r.average_bandwidth,
            codecs=r.codecs,
            resolution=(r.video.width, r.video.height) if r.video else None,
            frame_rate=r.video.fps if r.video else None,
        )
        for r in sorted(title.renditions, key=lambda r: -r.bandwidth)
    )
    text = render_master(MasterPlaylist(variants))
    return web.Response(text=text, content_type=M3U8_TYPE, charset=None, headers=PLAYLIST_HEADERS)


async def media(request: web.Request) -> web.Response:
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = await request.app[CATALOG].title(profile, key)
    rendition = title.rendition(request.match_info["rendition"])
    prefix = title_prefix(profile, key)
    segments = tuple(
        MediaSegment(uri=_signed(request, prefix, segment_name(rendition, w.index)), duration=w.duration) for w in rendition.windows
    )
    text = render_media(MediaPlaylist(segments=segments, target_duration=target_duration(rendition.windows)))
    return web.Response(text=text, content_type=M3U8_TYPE, charset=None, headers=PLAYLIST_HEADERS)
