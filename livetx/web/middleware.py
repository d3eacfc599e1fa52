"""Middleware: errors -> HTTP statuses in one place, and the token check on signed routes."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from livetx.errors import LivetxError
from livetx.web.keys import SIGNER, TOKEN

log = logging.getLogger("livetx.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNED_ROUTE_PREFIX = "hls-"  # routes whose name starts with this need a valid token


def error_body(status: int, code: str, message: str, request_id: str, **details: object) -> web.Response:
    payload = {"error": {"code": code, "message": message, **details}, "request_id": request_id}
    return web.json_response(payload, status=status, headers={"X-Request-Id": request_id})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    try:
        response = await handler(request)
    except LivetxError as exc:
        if exc.status >= 500:
            log.error("request failed: %s", exc.code, extra={"event": "request_failed", "code": exc.code})
        return error_body(exc.status, exc.code, exc.message, request_id, **exc.details)
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


@web.middleware
async def tokens(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the URL token of every route named `hls-*` against the request's decoded path."""
    route = request.match_info.route
    if route.name and route.name.startswith(SIGNED_ROUTE_PREFIX):
        query = {name: request.query.getall(name) for name in request.query}
        request[TOKEN] = request.app[SIGNER].verify(request.path, query, time.time())
    return await handler(request)
