"""The JSON API under /api/v1, authenticated with a bearer API key (not a signing key).

POST /api/v1/sign   a signed URL for a path, or for a source's master playlist
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from livetx.errors import ApiKeyInvalid, ApiKeyMissing, BodyTooLarge, LivetxError, ParameterError
from livetx.jobs import Job, parse_imm, parse_oss
from livetx.storage.base import check_source_key
from livetx.titles import Title
from livetx.urls import SignRequest, master_path, parse_sign_request, sign
from livetx.web.keys import CATALOG, REQUEST_ID, SEGMENTS, SETTINGS, SIGNER, STATUS

API_ROUTE_PREFIX = "api-v1-"  # routes whose name starts with this need an API key
MAX_BODY = 16 * 1024


def check_api_key(request: web.Request) -> None:
    """`Authorization: Bearer <key>`: 401 without one, 403 for a key that isn't configured."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiKeyMissing("this API needs 'Authorization: Bearer <API key>'")
    if request.app[SETTINGS].api.check(presented.strip()) is None:
        raise ApiKeyInvalid("API key not accepted")


async def json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge("body", f"a JSON object of at most {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BodyTooLarge("body", f"a JSON object of at most {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ParameterError("body", "a JSON object (the body is not valid JSON)") from None


async def sign_url(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await json_body(request)
    wanted = parse_sign_request(body, request.app[CATALOG].profiles, settings.signing.default_ttl)
    base = settings.server.base_url or str(request.url.origin())
    signed = sign(request.app[SIGNER], base, wanted)
    return web.json_response(signed.to_json(), headers={"Cache-Control": "no-store"})


# ---- playlists through the APIs --------------------------------------------------------


async def _make_playlists(request: web.Request, job: Job) -> tuple[Title, str]:
    """Keep the job, plan its title, write its playlists (before answering), queue its
    pre-transcode. Returns the title and a signed URL of its master playlist."""
    catalog = request.app[CATALOG]
    await catalog.register(job)
    title = await catalog.title(job.profile_name, job.source_key)
    await catalog.publish(title)
    if catalog.first_sight(title, publish=False):
        request.app[SEGMENTS].pretranscode(title)
    settings = request.app[SETTINGS]
    base = settings.server.base_url or str(request.url.origin())
    wanted = SignRequest(path=master_path(job.profile_name, job.source_key), ttl=settings.signing.default_ttl)
    return title, sign(request.app[SIGNER], base, wanted).url


def _fps_text(title: Title, name: str) -> str:
    video = title.rendition(name).video
    return "" if video is None else f"{float(video.fps):.3f}".rstrip("0").rstrip(".")


def _resolution(title: Title, name: str) -> str:
    video = title.rendition(name).video
    return "" if video is None else f"{video.width}x{video.height}"


def _playlist_uri(uri: str) -> str:
    return uri if uri.endswith(".m3u8") else uri + ".m3u8"


async def create_playlists(request: web.Request) -> web.Response:
    """IMM GenerateVideoPlaylist, answered in that API's shape (plus `PlaybackURL`)."""
    catalog = request.app[CATALOG]
    assert catalog.output is not None
    job = parse_imm(await json_body(request), catalog.sources.key_for_uri, catalog.output.key_for_uri)
    title, playback = await _make_playlists(request, job)
    answer = {
        "RequestId": request[REQUEST_ID],
        "Duration": round(float(title.duration), 3),
        "MasterURI": job.master_uri,
        "Token": job.id,
        "VideoPlaylist": [
            {
                "URI": _playlist_uri(job.uris[r.name]),
                "Resolution": _resolution(title, r.name),
                "FrameRate": _fps_text(title, r.name),
                "Token": r.spec_id,
            }
            for r in title.renditions
        ],
        "PlaybackURL": playback,
    }
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def oss_process(request: web.Request) -> web.Response:
    """OSS `hls/m3u8` on `POST /<source key>?x-oss-process`, answered in that service's shape."""
    if request.method != "POST" or "x-oss-process" not in request.query:
        raise web.HTTPNotFound()
    check_api_key(request)
    catalog = request.app[CATALOG]
    assert catalog.output is not None
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge("body", f"a form of at most {MAX_BODY} bytes")
    form = await request.post()
    process = form.get("x-oss-process")
    if not isinstance(process, str):
        raise ParameterError("x-oss-process", "a form field x-oss-process=hls/m3u8,...|sys/saveas,o_<b64url>,b_<b64url>")
    source_key = request.match_info["key"]
    try:
        check_source_key(source_key)
    except LivetxError as exc:
        raise ParameterError("key", f"a source key ({exc.message})") from None
    job = parse_oss(source_key, process, catalog.output.key_for_uri)
    title, playback = await _make_playlists(request, job)
    rendition = title.renditions[0]
    answer = {
        "RequestId": request[REQUEST_ID],
        "Duration": round(float(title.duration), 3),
        "VideoPlaylist": [
            {
                "URI": _playlist_uri(job.uris[rendition.name]),
                "Resolution": _resolution(title, rendition.name),
                "FrameRate": _fps_text(title, rendition.name),
                "Token": rendition.spec_id,
            }
        ],
        "PlaybackURL": playback,
    }
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


# ---- read-only views: sources and what a title's segments are doing ------------------------

MAX_LISTED = 1000


async def list_sources(request: web.Request) -> web.Response:
    sources = await request.app[CATALOG].sources.list(MAX_LISTED)
    return web.json_response({"sources": [{"key": s.key, "size": s.size} for s in sources]}, headers={"Cache-Control": "no-store"})


async def title_state(request: web.Request) -> web.Response:
    """Each rendition's segments and their states. The ETag says what the answer holds: a
    poll with If-None-Match gets 304 until a segment changes (see livetx/web/status.py)."""
    title = await request.app[CATALOG].title(request.match_info["profile"], request.match_info["key"])
    resolution = {r.name: _resolution(title, r.name) for r in title.renditions}
    view = await request.app[STATUS].view(title, request.app[SEGMENTS], resolution, request.headers.get("If-None-Match"))
    headers = {"Cache-Control": "no-store", "ETag": view.etag}
    if view.body is None:
        return web.Response(status=304, headers=headers)
    return web.Response(body=view.body, content_type="application/json", headers=headers)
