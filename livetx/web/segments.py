"""The segment handler: route -> (token checked by middleware) -> title -> segment service -> response.

A segment still being made (a `live` body) is sent as it comes, in a chunked response: whole
TS packets or fMP4 fragments as the worker muxes them, then the seal. If it is never made
whole, the connection is cut before the terminating chunk, so the client sees a body cut
short (and retries), never a short body ended cleanly, and no proxy or CDN keeps it. A HEAD or
Range request, and an HTTP/1.0 client (whose body could only end by closing the connection,
which a cut-off looks the same as), waits for the whole segment instead: they need its length.

A sidecar's subtitle segments skip the service: they are rendered from the cues parsed at
planning time (a scan of a list), never queued, stored or metered, with the same headers."""

from __future__ import annotations

import logging

from aiohttp import HttpVersion11, web

from livetx.cache.keys import strong_etag
from livetx.cache.live import LiveSegment, StreamBroken
from livetx.errors import SegmentNotFound, SourceChanged
from livetx.layout import CONTENT_TYPES, segment_name
from livetx.media.model import INIT, SegmentPart
from livetx.titles import sidecar_segment
from livetx.web.keys import CATALOG, CONTENT_KEYS, METRICS, SEGMENTS
from livetx.web.middleware import handler_sent_headers, route_of, viewer

log = logging.getLogger(__name__)

SEGMENT_ROUTES = frozenset({"hls-segment", "hls-fragment", "hls-init", "hls-subtitle"})  # MPEG-TS, fMP4 media and init, WebVTT
# a segment URL names its exact spec, so its bytes never change: cache it for a year
SEGMENT_CACHE = "public, max-age=31536000, immutable"


def part_of(request: web.Request) -> SegmentPart:
    """The segment number in the URL, or INIT for an init segment's URL."""
    n = request.match_info.get("n")
    return INIT if n is None else int(n)


def etag_of(request: web.Request) -> str:
    """A segment's strong ETag follows from its URL: the spec id and the number name its bytes."""
    return strong_etag(request.match_info["spec"], part_of(request))


def segment_etag(request: web.Request, response: web.StreamResponse) -> None:
    """On response prepare: one ETag for a segment whether it is sent from a file or from memory
    (FileResponse would put its own, from the file's mtime)."""
    route = request.match_info.route
    if route is not None and route.name in SEGMENT_ROUTES and response.status in (200, 206, 304):
        response.headers["ETag"] = etag_of(request)


async def segment(request: web.Request) -> web.StreamResponse:
    match = request.match_info
    if (tags := request.if_none_match) and any(t.value in ("*", etag_of(request).strip('"')) for t in tags):
        # the client has these bytes: no lookup, no transcode
        return web.Response(status=304, headers={"Cache-Control": SEGMENT_CACHE, "ETag": etag_of(request)})
    catalog = request.app[CATALOG]
    title = catalog.known_title(match["profile"], match["key"]) or await catalog.title(match["profile"], match["key"])
    # the current spec, or an encrypted rendition's under a master key rotated out but configured
    rendition = title.rendition_of_spec(match["rendition"], match["spec"], request.app[CONTENT_KEYS].kids)
    index = part_of(request)
    name = segment_name(rendition, index)
    if not request.path.endswith("/" + name):  # a .ts URL for an fMP4 rendition, or the reverse
        raise SegmentNotFound(f"rendition {match['rendition']!r} is {rendition.container}: its segment is named {name}")
    content_type = CONTENT_TYPES[name[name.rindex(".") :]]
    if rendition.subtitle is not None:
        if not isinstance(index, int):
            raise SegmentNotFound(f"rendition {rendition.name!r} is WebVTT subtitles: it has no init segment")
        if rendition.subtitle.sidecar is not None:
            headers = {"Cache-Control": SEGMENT_CACHE, "ETag": etag_of(request), "Content-Type": content_type}
            return _in_memory(request, sidecar_segment(rendition, index), headers)
    try:
        body = await request.app[SEGMENTS].get(title, rendition, index)
    except SourceChanged:
        catalog.forget(title.source.key)  # replaced within the stat TTL: look again
        raise
    if index != INIT:
        request.app[SEGMENTS].played(title, rendition, index, viewer(request))
    headers = {"Cache-Control": SEGMENT_CACHE, "ETag": body.etag, "Content-Type": content_type}
    if body.live is not None:
        return await _live(request, body.live, headers)
    if body.path is not None:
        return web.FileResponse(body.path, headers=headers)  # Range, HEAD and sendfile for free
    return _in_memory(request, body.data or b"", headers)


def _in_memory(request: web.Request, data: bytes, headers: dict[str, str]) -> web.Response:
    """Bytes held in memory (hot, just transcoded, or read from remote storage), with the
    single-range answers `web.FileResponse` gives a file."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    try:
        wanted = request.http_range  # a slice; aiohttp parses and validates the header
    except ValueError:  # several ranges, or none that parses: as FileResponse, 416
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    if wanted.start is None and wanted.stop is None:
        return web.Response(body=data, headers=headers)
    start, stop, _ = wanted.indices(len(data))
    if (wanted.start is not None and wanted.start >= len(data)) or start >= stop:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return web.Response(status=206, body=data[start:stop], headers=headers)


async def _live(request: web.Request, live: LiveSegment, headers: dict[str, str]) -> web.StreamResponse:
    """A segment being made: streamed as it comes, or (HEAD, Range, HTTP/1.0) sent once whole."""
    service = request.app[SEGMENTS]
    if request.method == "HEAD" or "Range" in request.headers or request.version < HttpVersion11:
        return _in_memory(request, await service.within_wait_timeout(live.whole()), headers)
    response = web.StreamResponse(headers={**headers, **handler_sent_headers(request)})
    response.enable_chunked_encoding()
    await response.prepare(request)
    sent = 0
    try:
        async for chunk in live.read():
            await response.write(chunk)
            sent += len(chunk)
    except StreamBroken as exc:
        service.stats.streams_aborted += 1
        log.warning("streamed segment cut off: %s", exc, extra={"event": "stream_aborted", "sent": sent})
        if request.transport is not None:
            request.transport.abort()  # no terminating chunk: the body is seen as cut short
        return response
    except ConnectionError:  # the client went away; the segment is still made, for the cache
        return response
    finally:
        request.app[METRICS].count_bytes(route_of(request), sent)
    await response.write_eof()
    return response
