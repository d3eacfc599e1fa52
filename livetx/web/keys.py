"""Typed application and request keys: every piece of app state is declared here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from livetx.batch.pipelines import PipelineStore
from livetx.batch.templates import TemplateStore
from livetx.cache.pictures import PictureService
from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.cluster.flight import ClusterFlight
from livetx.crypto.keys import KeySource
from livetx.media.pool import TranscodePool
from livetx.scopes import ApiScope
from livetx.server_process import ServerProcess
from livetx.settings import Settings
from livetx.signing import Signer, Token, VerifiedTokens

if TYPE_CHECKING:
    from livetx.batch.runner import Runner
    from livetx.web.lag import LoopLagMonitor
    from livetx.web.metrics import Metrics
    from livetx.web.playlist_cache import PlaylistCache
    from livetx.web.rate_limits import KeyRequestLimits
    from livetx.web.status import TitleStatus

# a handler, or the rest of the middleware chain
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
SIGNER = web.AppKey("signer", Signer)
TOKENS = web.AppKey("tokens", VerifiedTokens)  # the signer's verify, with checked tokens kept by request
CATALOG = web.AppKey("catalog", Catalog)
TEMPLATES = web.AppKey("templates", TemplateStore)  # templates in output storage (livetx/batch/templates.py)
PIPELINES = web.AppKey("pipelines", PipelineStore)  # pipelines in output storage (livetx/batch/pipelines.py)
# where content keys of encrypted renditions come from (livetx/crypto/keys.py)
CONTENT_KEYS: web.AppKey[KeySource] = web.AppKey("content_keys")
KEY_LIMITS: web.AppKey[KeyRequestLimits] = web.AppKey("key_limits")  # key URL requests per token
POOL = web.AppKey("pool", TranscodePool)
SEGMENTS = web.AppKey("segments", SegmentService)
PICTURES = web.AppKey("pictures", PictureService)  # snapshots, posters, storyboard sheets (livetx/cache/pictures.py)
# the coordination engine's loop (livetx/cluster/), when there is an engine
CLUSTER = web.AppKey("cluster", ClusterFlight)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
LOOP_LAG: web.AppKey[LoopLagMonitor] = web.AppKey("loop_lag")
PLAYLISTS: web.AppKey[PlaylistCache] = web.AppKey("playlists")
STATUS: web.AppKey[TitleStatus] = web.AppKey("status")
# background jobs: the runner, its store and its notifications (livetx/batch/)
JOBS: web.AppKey[Runner] = web.AppKey("jobs")
# which of the server processes of `livetx serve` this app runs in
PROCESS = web.AppKey("process", ServerProcess)
# the wall clock token checks read (time.time; a test sets its own to move time, not wait it out)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")

# set on a request by the token middleware: the verified token
TOKEN = web.RequestKey("token", Token)
# set by a picture handler: the picture's strong ETag (web/pictures.py)
PICTURE_ETAG = web.RequestKey("picture_etag", str)
# set by the API key check: what the presented key may do
API_SCOPE = web.RequestKey("api_scope", ApiScope)
# set on every request by the error middleware
REQUEST_ID = web.RequestKey("request_id", str)
__all__ = [
    "API_SCOPE",
    "CATALOG",
    "CLOCK",
    "CLUSTER",
    "CONTENT_KEYS",
    "JOBS",
    "KEY_LIMITS",
    "LOOP_LAG",
    "METRICS",
    "PICTURES",
    "PICTURE_ETAG",
    "PIPELINES",
    "PLAYLISTS",
    "POOL",
    "PROCESS",
    "REQUEST_ID",
    "SEGMENTS",
    "SETTINGS",
    "SIGNER",
    "STATUS",
    "TEMPLATES",
    "TOKEN",
    "TOKENS",
    "Handler",
    "Token",
]
