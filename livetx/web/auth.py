"""Who may call what: the bearer API key of the `api-v1-*` routes (and the OSS route), and the
optional bearer token of /metrics. Both compare in constant time and tell a missing credential
(401) apart from one not accepted (403)."""

from __future__ import annotations

import hmac

from aiohttp import web

from livetx import scopes
from livetx.errors import ApiKeyInvalid, ApiKeyMissing, ApiKeyScope, MetricsTokenInvalid, MetricsTokenMissing
from livetx.web.keys import API_SCOPE, SETTINGS

API_ROUTE_PREFIX = "api-v1-"  # routes whose name starts with this need an API key
# the one table of which operation each API route is (the names scopes list)
ROUTE_OPERATIONS = {
    "api-v1-sign": scopes.SIGN,
    "api-v1-playlists": scopes.PLAYLISTS,
    "api-v1-composites": scopes.COMPOSITES,
    "oss-process": scopes.PLAYLISTS,
    "api-v1-sources": scopes.SOURCES,
    "api-v1-title": scopes.TITLES,
    "api-v1-templates": scopes.TEMPLATES,
    "api-v1-template": scopes.TEMPLATES,
    "api-v1-pipelines": scopes.PIPELINES,
    "api-v1-pipeline": scopes.PIPELINES,
    "api-v1-jobs": scopes.JOBS,
    "api-v1-jobs-list": scopes.JOBS,
    "api-v1-job": scopes.JOBS,
    "api-v1-job-cancel": scopes.JOBS,
}


def check_api_key(request: web.Request, operation: str | None = None) -> None:
    """`Authorization: Bearer <key>`: 401 without one, 403 for a key that isn't configured,
    403 `api_key_scope` for a key whose scope does not include this route's operation (or
    `operation`, for a route that serves several: the OSS one)."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiKeyMissing("this API needs 'Authorization: Bearer <API key>'")
    api = request.app[SETTINGS].api
    key = api.check(presented.strip())
    if key is None:
        raise ApiKeyInvalid("API key not accepted")
    scope = request[API_SCOPE] = api.scope(key)
    route = request.match_info.route.name or ""
    operation = operation or ROUTE_OPERATIONS.get(route)
    if operation is None:  # fail closed: a route nobody gave an operation is no key's to use
        raise ApiKeyScope(f"route {route!r} has no operation an API key could be scoped to", operation=None)
    scope.check_operation(operation)
    if route == "api-v1-title":  # a title's state tells about its source
        scope.check_read(request.match_info["key"], "key")


def check_metrics_token(request: web.Request) -> None:
    """`server.metrics_token`, when set: `Authorization: Bearer <token>`, compared in constant time."""
    token = request.app[SETTINGS].server.metrics_token
    if not token:
        return
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise MetricsTokenMissing("/metrics needs 'Authorization: Bearer <server.metrics_token>'")
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise MetricsTokenInvalid("metrics token not accepted")
