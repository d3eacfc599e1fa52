"""Middleware: errors -> HTTP statuses in one place, the token check on signed routes, and the
request metrics (counts and latency by route, bytes sent)."""

from __future__ import annotations

import functools
import hmac
import itertools
import logging
import os
import re
import time

from aiohttp import web

from livetx import logs
from livetx.errors import HeadersTooLarge, LivetxError, SourceNotFound, UriTooLong
from livetx.settings import Settings
from livetx.signing import TOKEN_PARAMS
from livetx.urls import HLS_ROOT
from livetx.web.auth import API_ROUTE_PREFIX, check_api_key
from livetx.web.keys import CLOCK, METRICS, REQUEST_ID, SETTINGS, TOKEN, TOKENS, Handler

log = logging.getLogger("livetx.web")

SIGNED_ROUTE_PREFIX = "hls-"  # routes whose name starts with this need a valid token
VIEWER_ONLY_ROUTES = frozenset({"hls-key"})  # ... and of these, a viewer's token even on a CDN's origin pull
NOT_FOUND_MAX_AGE = 10  # seconds a 404 for an unknown source may be cached
CORS_ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Range, X-Request-Id"
CORS_EXPOSE_HEADERS = "Content-Length, Content-Range, ETag, X-Request-Id"
CORS_MAX_AGE = "600"
# CORS is for players on other sites reading the streams: never for the API, /metrics or the pages
CORS_PATH_PREFIXES = (HLS_ROOT + "/",)
SERVER_NAME = "livetx"  # the Server header: no version to look up vulnerabilities by
# a client's X-Request-Id is kept (echoed and logged) only when it looks like an id
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIds:
    """New request ids, 32 hex digits: 16 random ones drawn once per process (again in a forked
    child), then a counter. No system call per request, as 16 random bytes each made; a
    request id is for finding a request's lines, not a secret (a client may choose its own)."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


REQUEST_IDS = RequestIds()  # the process's: one counter, whatever apps it serves


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-Id if it is 1-64 of [A-Za-z0-9._:-]; otherwise a new one (the
    client's value is then neither echoed nor logged)."""
    presented = request.headers.get("X-Request-Id")
    if presented is not None and REQUEST_ID_PATTERN.fullmatch(presented):
        return presented
    return REQUEST_IDS.new()


def error_body(status: int, code: str, message: str, request_id: str, **details: object) -> web.Response:
    payload = {"error": {"code": code, "message": message, **details}, "request_id": request_id}
    return web.json_response(payload, status=status, headers={"X-Request-Id": request_id})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes its JSON answer here. The checks every request passes before its
    handler run here too, in order: the size limits, then the URL token or API key (in this
    middleware rather than in ones of their own: a middleware costs a coroutine per request)."""
    request_id = request_id_of(request)
    request[REQUEST_ID] = request_id
    logs.request_id.set(request_id)
    try:
        check_limits(request)
        check_access(request)
        response = await handler(request)
    except LivetxError as exc:
        if exc.status >= 500:
            log.error("request failed: %s", exc.code, extra={"event": "request_failed", "code": exc.code})
        response = error_body(exc.status, exc.code, exc.message, request_id, **exc.details)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, SourceNotFound):  # cheap to answer and fine to cache briefly
            response.headers["Cache-Control"] = f"public, max-age={NOT_FOUND_MAX_AGE}"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status, "http_error")
        return error_body(exc.status, code, exc.reason, request_id)
    except Exception:
        log.exception("unhandled error", extra={"event": "unhandled"})
        return error_body(500, "internal_error", "internal error", request_id)
    response.headers.setdefault("X-Request-Id", request_id)
    return response


MAX_URL_BYTES = 8192  # path and query
MAX_HEADER_BYTES = 16384  # all header names and values
# aiohttp's own parser refuses (with a plain-text 400) only beyond these, so the limits above
# are answered as JSON (`check_limits`, from `errors`)
PARSER_LIMITS = {"max_line_size": 65536, "max_field_size": 65536}


def check_limits(request: web.Request) -> None:
    """Oversized URLs and headers: refused before any handler or token work."""
    if len(request.raw_path) > MAX_URL_BYTES:
        raise UriTooLong(f"the URL is over {MAX_URL_BYTES} bytes")
    if sum(map(len, itertools.chain.from_iterable(request.raw_headers))) > MAX_HEADER_BYTES:  # names and values
        raise HeadersTooLarge(f"the request headers are over {MAX_HEADER_BYTES} bytes")


def client_ip(request: web.Request, settings: Settings) -> str | None:
    """The viewer's address: the TCP peer, or the last address a trusted proxy put in its header."""
    header = settings.server.client_ip_header
    if header and request.headers.get(header):
        return request.headers[header].split(",")[-1].strip()
    return request.remote


def viewer(request: web.Request) -> str:
    """Who is asking, for budgets of background work: the claims of the verified token (one
    viewer's tokens share them, whatever path each signs), else the client's address."""
    token = request.get(TOKEN)
    if token is not None:
        return f"token {token.kid} {token.exp} {token.nbf} {token.ip} {token.scope}"
    return f"ip {client_ip(request, request.app[SETTINGS])}"


def origin_pull(request: web.Request, settings: Settings) -> bool:
    """A CDN pulling with the shared origin secret (checked in constant time)."""
    secret = settings.cdn.origin_secret
    presented = request.headers.get(settings.cdn.origin_header)
    return bool(secret) and presented is not None and hmac.compare_digest(presented.encode(), secret)


def check_access(request: web.Request) -> None:
    """Verify the URL token of every route named `hls-*` against the request's decoded path,
    and the bearer API key of every route named `api-v1-*` (from `errors`, before the handler).

    Every request's token is verified. Its signature is checked once (`VerifiedTokens`): a
    path token's for its exact request, a prefix token's for its exact query, which every URI
    of a title carries; the path's spelling and scope, the expiry and the address binding are
    checked at every request.

    A CDN that presents the origin secret may pull without a token: it checked the viewer's
    token at its edge. A token it forwards anyway is still verified and used to sign the
    playlist's URLs; without one, the playlists it pulls carry plain URLs. Content keys
    (VIEWER_ONLY_ROUTES) are never waived: the edge must forward the viewer's token.
    """
    name = request.match_info.route.name
    if name and name.startswith(API_ROUTE_PREFIX):
        check_api_key(request)
    elif name and name.startswith(SIGNED_ROUTE_PREFIX):
        settings = request.app[SETTINGS]
        viewer_only = name in VIEWER_ONLY_ROUTES
        if viewer_only or not origin_pull(request, settings) or any(param in request.query for param in TOKEN_PARAMS):
            request[TOKEN] = request.app[TOKENS].verify(
                request.path,
                request.raw_path,
                lambda: {param: request.query.getall(param) for param in request.query},
                request.app[CLOCK](),
                lambda: client_ip(request, settings),
            )


def _allowed_origin(request: web.Request, settings: Settings) -> str | None:
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    allowed = _origins(settings.server.cors_origins)
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


@functools.lru_cache(maxsize=8)
def _origins(configured: str) -> frozenset[str]:
    """`server.cors_origins` as a set (parsed once per value, not per request)."""
    return frozenset(o.strip() for o in configured.split(",") if o.strip())


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for players on other origins (`server.cors_origins`) on the stream routes only
    (CORS_PATH_PREFIXES): preflights answered here, every answer (errors too) marked for the
    allowed origin."""
    if not request.path.startswith(CORS_PATH_PREFIXES):
        return await handler(request)
    origin = _allowed_origin(request, request.app[SETTINGS])
    if origin is not None and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": CORS_ALLOW_METHODS,
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
            "Vary": "Origin",
        }
        return web.Response(status=204, headers=headers)
    response = await handler(request)
    if origin is not None:
        response.headers.update(_cors_marks(origin))
    return response


def _cors_marks(origin: str) -> dict[str, str]:
    marks = {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS}
    if origin != "*":
        marks["Vary"] = "Origin"
    return marks


def handler_sent_headers(request: web.Request) -> dict[str, str]:
    """The headers `errors` and `cors` add to an answer once its handler returns, for an answer
    the handler sends itself (a streamed segment, prepared before it returns): added after, they
    would never leave, and a player on another origin could not read the body at all."""
    headers = {"X-Request-Id": request[REQUEST_ID]}
    if request.path.startswith(CORS_PATH_PREFIXES) and (origin := _allowed_origin(request, request.app[SETTINGS])) is not None:
        headers |= _cors_marks(origin)
    return headers


def server_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On response prepare (app.py's `prepared`), so every answer of the app gets it (errors,
    304s, files): a Server header without versions, and no MIME sniffing of what we label."""
    response.headers["Server"] = SERVER_NAME
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def route_of(request: web.Request) -> str:
    route = request.match_info.route
    return route.name or "unmatched" if route is not None else "unmatched"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: counts what the client finally got (errors already turned into JSON)."""
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe_request(route_of(request), request.method, status, time.perf_counter() - began)


def count_bytes(request: web.Request, response: web.StreamResponse) -> None:
    """On response prepare: the body size is known there for files and for bytes alike."""
    if response.content_length and request.method != "HEAD":
        request.app[METRICS].count_bytes(route_of(request), response.content_length)
