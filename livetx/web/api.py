"""The JSON API under /api/v1, authenticated with a bearer API key (not a signing key; see web/auth.py).

POST /api/v1/sign         a signed URL for a path, or for a source's master playlist
POST /api/v1/playlists    IMM GenerateVideoPlaylist (and OSS hls/m3u8 on POST /<key>?x-oss-process)
POST /api/v1/composites   a composite title (and OSS video/concat without sys/saveas on POST /<key>?x-oss-process)

Each key may be scoped (`[api.scopes.<name>]`, see livetx/scopes.py): the operation of every
route is checked with the key, the source keys it reads and the output keys it writes in the
handlers. Signed URLs start with `server.public_url`, never with the request's Host header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from livetx import composite as composites
from livetx.concat import HEAD, Composite, check_makeable, json_name, oss_clip_field, parse_composite, parse_oss_composite
from livetx.errors import InvalidPath, ParameterError
from livetx.hls.languages import language_tag
from livetx.jobs import Job, is_job_profile, parse_imm, parse_oss, template_names
from livetx.layout import target_playlist_key, target_prefix
from livetx.publishing import publish_job
from livetx.storage.base import check_source_key
from livetx.titles import Title
from livetx.urls import SignRequest, master_path, parse_sign_request, sign, title_prefix
from livetx.web.auth import check_api_key
from livetx.web.body import form_body, json_body
from livetx.web.keys import API_SCOPE, CATALOG, REQUEST_ID, SEGMENTS, SETTINGS, SIGNER, STATUS, TEMPLATES


async def sign_url(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await json_body(request)
    catalog = request.app[CATALOG]
    wanted = parse_sign_request(body, catalog.profiles, settings.signing.default_ttl, settings.signing.max_ttl)
    if is_job_profile(wanted.profile):  # an API-made profile: known from its record, for its one source
        job_profile = await catalog.profile(wanted.profile)
        if job_profile.source_key is not None and wanted.scope is None and job_profile.source_key != wanted.source_key:
            raise ParameterError("path", f"a path of profile {wanted.profile!r}'s own source")
    scope = request[API_SCOPE]
    if wanted.scope_keys is not None:
        scope.check_read_prefix(wanted.scope_keys, "scope")
    else:
        scope.check_read(wanted.source_key, "key" if "key" in body else "path")
    signed = sign(request.app[SIGNER], settings.server.public_url, wanted)
    return web.json_response(signed.to_json(), headers={"Cache-Control": "no-store"})


# ---- playlists through the APIs --------------------------------------------------------


async def _make_playlists(request: web.Request, job: Job, source_field: str) -> tuple[Title, str]:
    """The job's title, its playlists written (livetx/publishing.py), and a signed URL of its
    master playlist."""
    settings = request.app[SETTINGS]
    segments, catalog = request.app[SEGMENTS], request.app[CATALOG]
    title = await publish_job(job, source_field, request[API_SCOPE], catalog, segments, settings.limits)
    wanted = SignRequest(path=master_path(job.profile_name, job.source_key), ttl=settings.signing.default_ttl)
    return title, sign(request.app[SIGNER], settings.server.public_url, wanted).url


def _fps_text(title: Title, name: str) -> str:
    video = title.rendition(name).video
    return "" if video is None else f"{float(video.fps):.3f}".rstrip("0").rstrip(".")


def _resolution(title: Title, name: str) -> str:
    video = title.rendition(name).video
    return "" if video is None else f"{video.width}x{video.height}"


def _playlist_uri(uri: str) -> str:
    return target_playlist_key(target_prefix(uri))


async def create_playlists(request: web.Request) -> web.Response:
    """IMM GenerateVideoPlaylist, answered in that API's shape (plus `PlaybackURL`)."""
    catalog = request.app[CATALOG]
    limits = request.app[SETTINGS].limits
    body = await json_body(request)
    template_for = await request.app[TEMPLATES].lookup(template_names(body, limits))  # Targets[i].Template, resolved
    job = parse_imm(body, catalog.sources.key_for_uri, catalog.output.key_for_uri, limits, template_for)
    title, playback = await _make_playlists(request, job, "SourceURI")
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
            for r in title.variants  # (its audio renditions are in the master)
        ],
        "PlaybackURL": playback,
        **job.echo,
    }
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


# ---- composite titles (livetx/composite.py) ----------------------------------------------


async def _make_composite(
    request: web.Request, composite: Composite, field: composites.ClipField, name_of: Callable[[str], str]
) -> dict[str, Any]:
    """Plan and keep a composite title (its clips readable by the key, within `[limits]`), its
    playlists written and its first `initd` ms queued; the answer's common part. Nothing is
    kept for a refused request. `field`/`name_of` name what a refusal is about as the request
    wrote it."""
    settings = request.app[SETTINGS]
    catalog, segments = request.app[CATALOG], request.app[SEGMENTS]
    scope = request[API_SCOPE]
    check_makeable(composite, name_of)
    for i, clip in enumerate(composite.clips):
        scope.check_read(clip.key, field(i, "URI"))
    composites.check_limits(composite, settings.limits, name_of)
    name = composites.profile_name(composite)
    title = await catalog.composite_title(composite, name, field)
    composites.check_planned(title, settings.limits, name_of)
    await catalog.register_composite(composite, name)
    await catalog.publish(title)
    if catalog.first_sight(title, publish=False):
        segments.pretranscode(title, f"api {scope.name}")
    wanted = SignRequest(path=master_path(name, title.source.key), ttl=settings.signing.default_ttl)
    rendition = title.renditions[0]
    return {
        "RequestId": request[REQUEST_ID],
        "CompositeId": name.removeprefix(composites.COMPOSITE_PREFIX),
        "Profile": name,
        "Duration": round(float(title.duration), 3),
        "Resolution": _resolution(title, rendition.name),
        "FrameRate": _fps_text(title, rendition.name),
        "Clips": [
            {"Key": c.source.key, "Start": round(float(c.start), 6), "Duration": round(float(c.stop - c.start), 6)} for c in title.clips
        ],
        "MasterURL": sign(request.app[SIGNER], settings.server.public_url, wanted).url,
    }


async def create_composite(request: web.Request) -> web.Response:
    """POST /api/v1/composites: a composite title (concat.COMPOSITE), played on demand at once."""
    body = await json_body(request)
    composite = parse_composite(body, request.app[CATALOG].sources.key_for_uri)
    if composite.params.f is not None:  # (a file output is a job's: livetx/batch)
        raise ParameterError("Format", "absent: a composite title plays as HLS (Format is the container of a saved file)")
    answer = await _make_composite(request, composite, composites.json_field, json_name)
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def _oss_composite(request: web.Request, source_key: str, process: str) -> web.Response:
    """OSS `video/concat` without sys/saveas: the composite title played on demand."""
    composite, source_index = parse_oss_composite(source_key, process)
    field = oss_clip_field(source_index)
    answer = await _make_composite(request, composite, field, str)
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def oss_process(request: web.Request) -> web.Response:
    """OSS `hls/m3u8` on `POST /<source key>?x-oss-process`, answered in that service's shape;
    `video/concat` there (without sys/saveas) makes a composite title."""
    if request.method != "POST" or "x-oss-process" not in request.query:
        raise web.HTTPNotFound()
    check_api_key(request)
    catalog = request.app[CATALOG]
    form = await form_body(request)
    process = form.get("x-oss-process")
    if not isinstance(process, str):
        raise ParameterError("x-oss-process", "a form field x-oss-process=hls/m3u8,...|sys/saveas,o_<b64url>,b_<b64url>")
    source_key = request.match_info["key"]
    try:
        check_source_key(source_key)
    except InvalidPath as exc:  # a refused source type keeps its own 422
        raise ParameterError("key", f"a source key ({exc.message})") from None
    if process.startswith(HEAD):
        return await _oss_composite(request, source_key, process)
    job = parse_oss(source_key, process, catalog.output.key_for_uri, request.app[SETTINGS].limits)
    title, playback = await _make_playlists(request, job, "key")
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
    """The sources the key may read (a scoped key sees only those)."""
    scope = request[API_SCOPE]
    sources = [s for s in await request.app[CATALOG].sources.list(MAX_LISTED) if scope.may_read(s.key)]
    return web.json_response({"sources": [{"key": s.key, "size": s.size} for s in sources]}, headers={"Cache-Control": "no-store"})


BITMAP_REASON = "bitmap subtitles (pictures) are not converted to WebVTT"


def _not_played(title: Title) -> str:
    """Why a text track has no rendition."""
    if title.info.video is None:
        return "no video: subtitles play over a video rendition"
    if title.profile.source_key is not None and title.profile.master_key is None:
        return "no MasterURI: each playlist made through the API plays alone, without subtitles"
    return f"not selected (subtitles={title.profile.title.subtitles})"


def subtitle_tracks(title: Title) -> list[dict[str, Any]]:
    """Every subtitle track of the title's source, embedded (in stream order) then sidecar:
    converted (a WebVTT rendition plays it: `rendition` names it) or not, and why not."""
    played = {r.subtitle.track: r.name for r in title.subtitle_renditions if r.subtitle is not None}
    out: list[dict[str, Any]] = []
    for track in title.info.subtitle_tracks:
        entry: dict[str, Any] = {"stream": track.index, "codec": track.codec, "language": language_tag(track.language)}
        entry |= {"title": track.title, "default": track.default, "forced": track.forced, "roles": list(track.roles)}
        name = played.get(track)
        reason = BITMAP_REASON if track.bitmap else None if name is not None else _not_played(title)
        out.append({**entry, "rendition": name, "converted": name is not None, "reason": reason})
    for sidecar in title.sidecars:
        entry = {"key": sidecar.key, "language": language_tag(sidecar.name.language), "title": sidecar.name.label}
        entry |= {"default": sidecar.name.default, "forced": sidecar.name.forced, "hearing_impaired": sidecar.name.hearing_impaired}
        name = played.get(sidecar)
        reason = sidecar.error if sidecar.error is not None else None if name is not None else _not_played(title)
        out.append({**entry, "rendition": name, "converted": name is not None, "reason": reason, "error": sidecar.error})
    return out


def picture_paths(title: Title, prefix: str) -> dict[str, str] | None:
    """The title's picture URL paths (to sign, as any path of the title), when it has pictures
    (web/pictures.py): the poster, the storyboard track, and a snapshot (add `?t=<ms>`)."""
    if title.info.video is None or title.clips:
        return None
    return {"poster": prefix + "poster.jpg", "storyboard": prefix + "storyboard.vtt", "snapshot": prefix + "snapshot.jpg"}


async def title_state(request: web.Request) -> web.Response:
    """Each rendition's segments and their states, and the source's subtitle tracks. The ETag
    says what the answer holds: a poll with If-None-Match gets 304 until a segment changes
    (see livetx/web/status.py)."""
    title = await request.app[CATALOG].title(request.match_info["profile"], request.match_info["key"])
    prefix = title_prefix(request.match_info["profile"], request.match_info["key"])
    resolution = {r.name: _resolution(title, r.name) for r in title.renditions}
    if_none_match = request.headers.get("If-None-Match")
    view = await request.app[STATUS].view(
        title, request.app[SEGMENTS], resolution, if_none_match, subtitle_tracks(title), picture_paths(title, prefix)
    )
    headers = {"Cache-Control": "no-store", "ETag": view.etag}
    if view.body is None:
        return web.Response(status=304, headers=headers)
    return web.Response(body=view.body, content_type="application/json", headers=headers)
