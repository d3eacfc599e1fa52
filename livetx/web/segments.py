"""The segment handler: route -> (token checked by middleware) -> title -> segment service -> response."""

from __future__ import annotations

from aiohttp import web

from livetx.errors import SegmentNotFound
from livetx.web.keys import CATALOG, SEGMENTS

TS_TYPE = "video/mp2t"
# a segment URL names its exact spec, so its bytes never change: cache it for a year
SEGMENT_CACHE = "public, max-age=31536000, immutable"


async def segment(request: web.Request) -> web.StreamResponse:
    match = request.match_info
    title = await request.app[CATALOG].title(match["profile"], match["key"])
    rendition = title.rendition(match["rendition"])
    if match["spec"] != rendition.spec_id:
        raise SegmentNotFound("segment belongs to an older version of this title; reload the playlist")
    body = await request.app[SEGMENTS].get(title, rendition, int(match["n"]))
    headers = {"Cache-Control": SEGMENT_CACHE, "ETag": body.etag, "Content-Type": TS_TYPE}
    if body.path is not None:
        return web.FileResponse(body.path, headers=headers)
    return web.Response(body=body.data, headers=headers)
