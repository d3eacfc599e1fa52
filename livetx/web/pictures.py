"""The picture handlers: a snapshot, the poster, the storyboard track and its sheets.

    /hls/<profile>/<key>/snapshot.<jpg|webp|png>?t=<ms>&w=&h=&scaletype=&q=&mode=
    /hls/<profile>/<key>/poster.jpg?w=&h=&scaletype=&q=
    /hls/<profile>/<key>/storyboard.vtt
    /hls/<profile>/<key>/storyboard-<spec>-<n>.jpg

Every one is under the title's prefix (a title-scoped token covers it) and needs a URL token
(routes `hls-*`). The parameters are `livetx.pictures.SnapshotParams`; the geometry and the
storyboard's grid are pure functions of livetx/pictures.py. A picture is made just in time by
the pool (livetx/media/picture.py), cached in output storage (livetx/cache/pictures.py) and
served as segments are: immutable, a strong ETag (its picture id), Range. The storyboard track
is metadata only (no decoding) and carries the viewer's token in its cue URLs, as playlists
do; it is personal, never cached by a shared cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from aiohttp import web

from livetx import layout
from livetx.catalog import Watermarks
from livetx.contract import parse_params
from livetx.errors import PictureNotFound, TimeOutOfRange
from livetx.media.model import VideoInfo
from livetx.media.params import WATERMARK_PARAMS, RenditionParams
from livetx.media.picture import PictureJob
from livetx.media.watermark import make_overlay
from livetx.pictures import (
    CONTENT_TYPES,
    POSTER_AUTO,
    POSTER_CANDIDATES,
    Fit,
    SnapshotParams,
    Storyboard,
    fit,
    picture_id,
    sheet_name,
    source_time,
    storyboard,
    storyboard_spec,
    storyboard_vtt,
)
from livetx.titles import Title
from livetx.urls import title_prefix
from livetx.web.keys import CATALOG, PICTURE_ETAG, PICTURES, SEGMENTS, SETTINGS, SIGNER, TOKEN
from livetx.web.playlists import PLAYLIST_HEADERS
from livetx.web.segments import SEGMENT_CACHE, _in_memory

PICTURE_ROUTES = frozenset({"hls-snapshot", "hls-poster", "hls-storyboard-sheet"})
VTT_TYPE = "text/vtt"


def picture_etag(request: web.Request, response: web.StreamResponse) -> None:
    """On response prepare: a picture's ETag is its id, whether sent from a file or memory."""
    route = request.match_info.route
    etag = request.get(PICTURE_ETAG)
    if route is not None and route.name in PICTURE_ROUTES and etag is not None and response.status in (200, 206, 304):
        response.headers["ETag"] = etag


async def _title(request: web.Request) -> tuple[Title, VideoInfo]:
    catalog = request.app[CATALOG]
    profile, key = request.match_info["profile"], request.match_info["key"]
    title = catalog.known_title(profile, key) or await catalog.title(profile, key)
    video = title.info.video
    if video is None:
        raise PictureNotFound("the title has no video: it has no pictures")
    if title.clips:
        raise PictureNotFound("pictures of composite titles are not made yet")
    return title, video


def _params(request: web.Request) -> SnapshotParams:
    return SnapshotParams(**parse_params(SnapshotParams, request.query))


def _job_of(request: web.Request, title: Title, video: VideoInfo, mark: Mark | None, **fields: Any) -> Callable[[], Awaitable[PictureJob]]:
    """The pool job with the picture's `fields`, made on a miss only (the source URL may need
    signing; the watermark's overlay is drawn for the picture's size, in a thread)."""

    async def job() -> PictureJob:
        source = await request.app[SEGMENTS].sources.media_url(title.source.key)
        overlay = None
        if mark is not None:
            width, height = fields["fit"].canvas
            overlay = await asyncio.to_thread(make_overlay, mark.params, width, height, mark.images)
        return PictureJob(
            source=source,
            video_stream=video.index,
            rotation=video.rotation,
            source_pin=title.source.pin,
            overlay=overlay,
            colour=video.colour,
            **fields,
        )

    return job


@dataclass(frozen=True)
class Mark:
    """The watermark a title's pictures carry: its profile's first rendition that draws one
    (the `wm_*` parameters), with the images the catalog read."""

    params: RenditionParams
    images: Watermarks

    def identity(self) -> tuple[object, ...]:
        """What a picture id holds of it: the parameters and the image's version."""
        image = self.images[self.params.wm_image] if self.params.wm_image is not None else None
        return ("watermark", *(getattr(self.params, name) for name in WATERMARK_PARAMS), image.etag if image else None)


async def _mark(request: web.Request, title: Title) -> Mark | None:
    marked = next((r.params for r in title.profile.renditions if r.params.wm_image is not None or r.params.wm_text is not None), None)
    if marked is None:
        return None
    return Mark(marked, await request.app[CATALOG].watermarks(title.profile))


async def _send(request: web.Request, key: str, picture: str, ext: str, job: Callable[[], Awaitable[PictureJob]]) -> web.StreamResponse:
    etag = f'"{picture}"'
    request[PICTURE_ETAG] = etag
    headers = {"Cache-Control": SEGMENT_CACHE, "Content-Type": CONTENT_TYPES[ext]}
    if (tags := request.if_none_match) and any(t.value in ("*", picture) for t in tags):
        return web.Response(status=304, headers={**headers, "ETag": etag})
    body = await request.app[PICTURES].get(key, etag, job)
    if body.path is not None:
        return web.FileResponse(body.path, headers=headers)
    return _in_memory(request, body.data or b"", {**headers, "ETag": etag})


def _identity(title: Title, mark: Mark | None) -> tuple[object, ...]:
    return (title.source.key, title.source.etag, title.origin, title.info.video, *(mark.identity() if mark else ()))


async def snapshot(request: web.Request) -> web.StreamResponse:
    ext = request.match_info["ext"]
    params = _params(request)
    title, video = await _title(request)
    if Fraction(params.t, 1000) >= title.duration:
        raise TimeOutOfRange(f"t={params.t} is past the end of the title ({int(title.duration * 1000)} ms)")
    mark = await _mark(request, title)
    picture = picture_id(*_identity(title, mark), "snapshot", params.normalised(ext))
    job = _job_of(
        request,
        title,
        video,
        mark,
        times=(source_time(title.origin, params.t),),
        fit=fit(video.display_size, params.w, params.h, params.scaletype),
        format=ext,
        quality=params.q,
        mode=params.mode,
    )
    return await _send(request, layout.snapshot_key(title, picture, ext), picture, ext, job)


def poster_times(duration: Fraction, poster_ms: int) -> tuple[Fraction, ...]:
    """Title times the poster looks at: the configured one (within the title), or the candidates."""
    if poster_ms != POSTER_AUTO:
        return (min(Fraction(poster_ms, 1000), duration * Fraction(99, 100)),)
    return tuple(duration * share for share in POSTER_CANDIDATES)


async def poster(request: web.Request) -> web.StreamResponse:
    """The title's poster: the `t` of the query is not used (the setting chooses the frame)."""
    params = _params(request)
    title, video = await _title(request)
    poster_ms = request.app[SETTINGS].pictures.poster_ms
    mark = await _mark(request, title)
    picture = picture_id(*_identity(title, mark), "poster", poster_ms, params.normalised("jpg")[1:])
    times = poster_times(title.duration, poster_ms)
    job = _job_of(
        request,
        title,
        video,
        mark,
        times=tuple(source_time(title.origin, 0) + t for t in times),
        fit=fit(video.display_size, params.w, params.h, params.scaletype),
        format="jpg",
        quality=params.q,
        pick_bright=len(times) > 1,
    )
    return await _send(request, layout.poster_key(title, picture), picture, "jpg", job)


def _board(request: web.Request, title: Title, video: VideoInfo, mark: Mark | None) -> tuple[Storyboard, str]:
    s = request.app[SETTINGS].pictures
    board = storyboard(
        title.duration,
        video.display_size,
        s.storyboard_tile_width,
        s.storyboard_columns,
        s.storyboard_rows,
        s.storyboard_interval_ms,
        s.storyboard_max_tiles,
    )
    return board, storyboard_spec(board, s.storyboard_quality, *_identity(title, mark))


async def storyboard_track(request: web.Request) -> web.Response:
    """The WebVTT storyboard track, its cue URLs carrying this request's token: a prefix token
    as it came, a path token turned into one for the title's prefix with the same claims (as
    the DASH manifest does, livetx/web/playlists.py `mpd`)."""
    title, video = await _title(request)
    board, spec = _board(request, title, video, await _mark(request, title))
    prefix = title_prefix(request.match_info["profile"], request.match_info["key"])
    token = request.get(TOKEN)
    if token is not None and request.app[SIGNER].path_signer(token, prefix) is not None:
        token = request.app[SIGNER].sign_prefix(prefix, token.exp, nbf=token.nbf, ip=token.ip)
    query = "" if token is None else "?" + token.query_string()
    body = storyboard_vtt(board, spec, query)
    return web.Response(text=body, content_type=VTT_TYPE, charset="utf-8", headers=PLAYLIST_HEADERS)


async def storyboard_sheet(request: web.Request) -> web.StreamResponse:
    title, video = await _title(request)
    mark = await _mark(request, title)
    board, spec = _board(request, title, video, mark)
    n = int(request.match_info["n"])
    if request.match_info["spec"] != spec:
        raise PictureNotFound("the sheet belongs to another storyboard of this title; reload storyboard.vtt")
    if n >= board.sheets:
        raise PictureNotFound(f"the storyboard has {board.sheets} sheets")
    name = sheet_name(spec, n)
    picture = f"{spec}-{n}"
    job = _job_of(
        request,
        title,
        video,
        mark,
        times=tuple(source_time(title.origin, 0) + board.tile_time(k) for k in board.sheet_tiles(n)),
        fit=Fit(board.tile, board.tile),
        format="jpg",
        quality=request.app[SETTINGS].pictures.storyboard_quality,
        columns=board.columns,
    )
    return await _send(request, layout.storyboard_sheet_key(title, name), picture, "jpg", job)
