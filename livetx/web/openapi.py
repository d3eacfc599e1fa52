"""The OpenAPI 3.1 document of every route, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livetx.batch.pipelines import PIPELINE_REQUEST
from livetx.batch.record import STATES
from livetx.batch.request import JOB_REQUEST
from livetx.batch.templates import TEMPLATE_REQUEST
from livetx.concat import COMPOSITE
from livetx.contract import params_schema
from livetx.dash.manifest import MPD_TYPE
from livetx.jobs import imm_request
from livetx.media.params import RenditionParams, TitleParams
from livetx.pictures import SnapshotParams
from livetx.settings import Settings
from livetx.urls import sign_contract
from livetx.web.keys import SETTINGS

ERROR = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": True,
        },
        "request_id": {"type": "string"},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _ok(description: str, media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": _body(media_type, schema)}


def _error(description: str) -> dict[str, Any]:
    return _ok(description, "application/json", _ref("Error"))


def _param(name: str, where: str, description: str = "", required: bool = False, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    param: dict[str, Any] = {"name": name, "in": where, "schema": schema, "required": required or where == "path"}
    if description:
        param["description"] = description
    return param


SIGNED_URL = {
    "type": "object",
    "required": ["url", "path", "expires", "expires_at", "kid", "scope", "nbf", "ip"],
    "properties": {
        "url": {"type": "string"},
        "path": {"type": "string"},
        "expires": {"type": "integer"},
        "expires_at": {"type": "string", "format": "date-time"},
        "kid": {"type": "string"},
        "scope": {"type": ["string", "null"]},
        "nbf": {"type": ["integer", "null"]},
        "ip": {"type": ["string", "null"]},
    },
}


JOB_RECORD = {
    "type": "object",
    "required": ["JobId", "Pipeline", "State", "Progress", "CreatedAt", "Outputs", "Error", "Deliveries"],
    "properties": {
        "JobId": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "Pipeline": {"type": "string"},
        "State": {"type": "string", "enum": list(STATES)},
        "Progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "CreatedAt": {"type": "string", "format": "date-time"},
        "StartedAt": {"type": ["string", "null"], "format": "date-time"},
        "FinishedAt": {"type": ["string", "null"], "format": "date-time"},
        "Request": {"type": "object"},
        "Outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["URI", "Size"],
                "properties": {"URI": {"type": "string"}, "Size": {"type": "integer"}},
            },
        },
        "Error": {"type": ["object", "null"], "properties": {"Code": {"type": "string"}, "Message": {"type": "string"}}},
        "Notify": {"type": ["object", "null"]},
        "EventId": {"type": ["string", "null"], "description": "the id of the job's notification (made when it ends)"},
        "Deliveries": {"type": "array", "items": {"type": "object"}, "description": "every attempt to deliver the notification"},
        "Delivered": {"type": ["boolean", "null"]},
        "UserData": {"type": ["string", "null"]},
        "Attempts": {"type": "integer"},
        "Owner": {"type": ["string", "null"]},
        "LeaseUntil": {"type": ["string", "null"], "format": "date-time"},
    },
}
JOB_ID = [_param("id", "path", "a job id (16 hex digits)")]


def process_parameters() -> dict[str, Any]:
    """The `<param>_<value>` items of an OSS `hls/m3u8` process string, from the parameters'
    own declarations (livetx/media/params.py)."""
    return {
        "type": "object",
        "description": "The parameters of `hls/m3u8,<param>_<value>,...` (and of profile tables in the config)",
        "properties": {**params_schema(TitleParams), **params_schema(RenditionParams)},
    }


PLAYLIST_ANSWER = {
    "type": "object",
    "required": ["RequestId", "Duration", "VideoPlaylist", "PlaybackURL"],
    "properties": {
        "RequestId": {"type": "string"},
        "Duration": {"type": "number"},
        "MasterURI": {"type": ["string", "null"]},
        "Token": {"type": "string"},
        "UserData": {"type": "string", "description": "as given in the request"},
        "Tags": {"type": "object", "additionalProperties": {"type": "string"}, "description": "as given in the request"},
        "PlaybackURL": {"type": "string", "description": "signed URL of the master playlist through this origin"},
        "VideoPlaylist": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "URI": {"type": "string"},
                    "Resolution": {"type": "string"},
                    "FrameRate": {"type": "string"},
                    "Token": {"type": "string"},
                },
            },
        },
    },
}

TOKEN_PARAMETERS = [
    _param("exp", "query", "expiry, unix seconds", required=True, pattern="^[0-9]{1,12}$"),
    _param("nbf", "query", "not valid before, unix seconds"),
    _param("ip", "query", "bound client address or network"),
    _param("kid", "query", "signing key id", required=True),
    _param("scope", "query", "signed path prefix"),
    _param("sig", "query", "HMAC-SHA256, base64url", required=True),
]

TITLE_PARAMETERS = [
    _param("profile", "path", pattern="^[A-Za-z0-9_-]+$"),
    _param("key", "path", "source key (may contain '/')"),
]
RENDITION = _param("rendition", "path", pattern="^[A-Za-z0-9_]+$")

TOKEN_ERRORS = {"401": _error("no token"), "403": _error("bad, expired, not yet valid, out-of-scope or IP-bound token")}


def _playlist(summary: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": TITLE_PARAMETERS + extra + TOKEN_PARAMETERS,
            "responses": {
                "200": _ok("the playlist", "application/vnd.apple.mpegurl", {"type": "string"}),
                "400": _error("invalid path or parameter"),
                **TOKEN_ERRORS,
                "404": _error("unknown source, profile or rendition"),
                "422": _error("the source cannot be read as media"),
            },
        }
    }


BINARY = {"type": "string", "format": "binary"}
TRANSCODE_ERRORS = {"502": _error("transcode failed"), "504": _error("transcode timed out")}


def _segment(
    summary: str,
    media_type: str,
    schema: dict[str, Any],
    *,
    what: str = "the segment",
    spec: str = "hash of the transcode spec",
    missing: str = "unknown source, rendition, spec or segment number",
    failures: dict[str, Any] = TRANSCODE_ERRORS,
    numbered: bool = True,
) -> dict[str, Any]:
    """A segment URL: `-{n}.ext`, or an init segment's (`numbered=False`)."""
    number = [_param("n", "path", "segment number", pattern="^[0-9]{1,6}$")] if numbered else []
    return {
        "get": {
            "summary": summary,
            "parameters": [
                *TITLE_PARAMETERS,
                RENDITION,
                _param("spec", "path", spec, pattern="^[0-9a-f]{12}$"),
                *number,
                *TOKEN_PARAMETERS,
            ],
            "responses": {
                "200": _ok(what, media_type, schema),
                "400": _error("invalid path"),
                **TOKEN_ERRORS,
                "404": _error(missing),
                **failures,
            },
        }
    }


def _query(schemas: dict[str, dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Query parameters from their specs' schemas (`params_schema`), description moved up."""
    out = []
    for name in names:
        schema = dict(schemas[name])
        description = schema.pop("description", "")
        out.append({"name": name, "in": "query", "schema": schema, "required": False, "description": description})
    return out


PICTURE_PARAMETERS = params_schema(SnapshotParams)
PICTURE_ERRORS = {"422": _error("the source cannot be read as media"), **TRANSCODE_ERRORS}


def _picture(summary: str, path: list[dict[str, Any]], query: tuple[str, ...], media_type: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [*TITLE_PARAMETERS, *path, *_query(PICTURE_PARAMETERS, query), *TOKEN_PARAMETERS],
            "responses": {
                "200": _ok("the picture (immutable, a strong ETag, Range)", media_type, BINARY),
                "400": _error("invalid path or parameter (`invalid_parameter` names it)"),
                **TOKEN_ERRORS,
                "404": _error("unknown source or profile, or the title has no pictures (`picture_not_found`)"),
                **extra,
                **PICTURE_ERRORS,
            },
        }
    }


SCOPE_403 = "API key not accepted (`api_key_invalid`), or its scope does not cover the request (`api_key_scope`)"
JOB_ERRORS = {
    "409": _error("an output key is taken by another job, or holds an object no job made (`output_claimed`)"),
    "422": _error("the source cannot be read as media, or an output key is in a profile's area or hidden (`output_reserved`)"),
}


NAME_PARAMETER = _param("name", "path", "1 to 64 letters, digits, '_' or '-'")
TEMPLATE = {
    "type": "object",
    "required": ["Name", "Base", "Params"],
    "properties": {
        "Name": {"type": "string"},
        "Base": {"type": ["string", "null"]},
        "Params": {"type": "object", "description": "as written (schema TemplateRequest.Params)"},
        "Resolved": {"type": ["object", "null"], "description": "its parameters with its bases', or null when they no longer resolve"},
        "Problem": {"type": ["string", "null"], "description": "why Resolved is null"},
    },
}
PIPELINE = {
    "type": "object",
    "required": ["Name", "Concurrency", "Paused", "OutputPrefix", "NotifyURL"],
    "properties": {
        "Name": {"type": "string"},
        "Concurrency": {"type": "integer"},
        "Paused": {"type": "boolean"},
        "OutputPrefix": {"type": "string"},
        "NotifyURL": {"type": ["string", "null"]},
    },
}


def _named(kind: str, answer: str, put_summary: str, conflict: dict[str, Any] | None = None) -> dict[str, Any]:
    """PUT, GET and DELETE of one named template or pipeline."""
    common = {"401": _error("no API key"), "403": _error(SCOPE_403), "400": _error("invalid name: `error.parameter` is `name`")}
    missing = {"404": _error(f"no {kind} of that name")}
    return {
        "put": {
            "summary": put_summary,
            "security": [{"apiKey": []}],
            "parameters": [NAME_PARAMETER],
            "requestBody": {"required": True, "content": _body("application/json", _ref(answer + "Request"))},
            "responses": {
                "200": _ok(f"the {kind}, replaced or updated", "application/json", _ref(answer)),
                "201": _ok(f"the {kind}, created", "application/json", _ref(answer)),
                **common,
                "400": _error("invalid name or field: `error.parameter` names it"),
                "413": _error("body over 16 KiB"),
            },
        },
        "get": {
            "summary": f"One {kind}",
            "security": [{"apiKey": []}],
            "parameters": [NAME_PARAMETER],
            "responses": {"200": _ok(f"the {kind}", "application/json", _ref(answer)), **common, **missing},
        },
        "delete": {
            "summary": f"Delete a {kind}",
            "security": [{"apiKey": []}],
            "parameters": [NAME_PARAMETER],
            "responses": {"204": {"description": "deleted"}, **common, **missing, **(conflict or {})},
        },
    }


def _listing(kind: str, field: str, answer: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"Every {kind}, by name",
            "security": [{"apiKey": []}],
            "responses": {
                "200": _ok(
                    f"the {kind}s",
                    "application/json",
                    {"type": "object", "required": [field], "properties": {field: {"type": "array", "items": _ref(answer)}}},
                ),
                "401": _error("no API key"),
                "403": _error(SCOPE_403),
            },
        }
    }


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The document for these settings (bounds such as signing.max_ttl and limits.* appear in it)."""
    settings = settings or Settings()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livetx",
            "version": "1",
            "description": "On-demand HLS transcoding origin. HLS URLs carry HMAC expiry tokens; the API takes a bearer API key.",
        },
        "paths": {
            "/api/v1/sign": {
                "post": {
                    "summary": "Sign a URL",
                    "security": [{"apiKey": []}],
                    "requestBody": {"required": True, "content": _body("application/json", _ref("SignRequest"))},
                    "responses": {
                        "200": _ok("signed URL", "application/json", _ref("SignedUrl")),
                        "400": _error("invalid field: `error.parameter` names it"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("no API-made profile (j-<id>) of that name"),
                        "413": _error("body too large"),
                    },
                }
            },
            "/api/v1/playlists": {
                "post": {
                    "summary": "Create playlists for a source (IMM GenerateVideoPlaylist request and answer shapes)",
                    "security": [{"apiKey": []}],
                    "requestBody": {"required": True, "content": _body("application/json", _ref("PlaylistRequest"))},
                    "responses": {
                        "200": _ok("playlists written to storage", "application/json", _ref("PlaylistAnswer")),
                        "400": _error("invalid field, or beyond `[limits]` (`limit_exceeded`): `error.parameter` names it"),
                        "413": _error("body over 16 KiB"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("unknown source"),
                        **JOB_ERRORS,
                    },
                }
            },
            "/api/v1/composites": {
                "post": {
                    "summary": "Create a composite title: clips of sources joined in play order, played on demand at"
                    " /hls/c-<id>/<first clip's key>/master.m3u8 (OSS: video/concat without sys/saveas on POST /{key})",
                    "security": [{"apiKey": []}],
                    "requestBody": {"required": True, "content": _body("application/json", _ref("CompositeRequest"))},
                    "responses": {
                        "200": _ok("the composite title, its playlists written", "application/json", _ref("CompositeAnswer")),
                        "400": _error("invalid field, or beyond `[limits]` (`limit_exceeded`): `error.parameter` names it"),
                        "413": _error("body over 16 KiB"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "422": _error("a parameter livetx does not make yet, or a clip that cannot be read as media"),
                        "503": _error("storage unavailable"),
                    },
                }
            },
            "/{key}": {
                "post": {
                    "summary": "OSS hls/m3u8: `POST /<source key>?x-oss-process` with form field x-oss-process",
                    "description": "The same path takes OSS `video/concat` as a background job: `POST /<source key>"
                    "?x-oss-async-process` with form field x-oss-async-process=video/concat,...|sys/saveas,b_<b64url>,o_<b64url>"
                    "[/notify,topic_<b64url>], answered with RequestId and TaskId (the job's id, for GET /api/v1/jobs/{id}).",
                    "security": [{"apiKey": []}],
                    "parameters": [
                        _param("key", "path", "source key (may contain '/')"),
                        _param("x-oss-process", "query", "present, empty", required=True),
                    ],
                    "requestBody": {
                        "required": True,
                        "content": _body(
                            "application/x-www-form-urlencoded",
                            {
                                "type": "object",
                                "required": ["x-oss-process"],
                                "properties": {
                                    "x-oss-process": {
                                        "type": "string",
                                        "description": "hls/m3u8,<param>_<value>,...|sys/saveas,o_<b64url>,b_<b64url>;"
                                        " the parameters are the schema HlsParameters",
                                    }
                                },
                            },
                        ),
                    },
                    "responses": {
                        "200": _ok("playlist written to storage", "application/json", _ref("PlaylistAnswer")),
                        "400": _error("invalid parameter, or beyond `[limits]` (`limit_exceeded`): `error.parameter` names it"),
                        "413": _error("body over 16 KiB"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("unknown source, or no x-oss-process"),
                        **JOB_ERRORS,
                    },
                }
            },
            "/api/v1/templates": _listing("template", "Templates", "Template"),
            "/api/v1/templates/{name}": _named(
                "template",
                "Template",
                "Create or replace a template: named rendition parameters, optionally over a Base template (400 naming"
                " `Base` for an unknown base or a cycle)",
            ),
            "/api/v1/pipelines": _listing("pipeline", "Pipelines", "Pipeline"),
            "/api/v1/pipelines/{name}": _named(
                "pipeline",
                "Pipeline",
                "Create or update a pipeline (a job queue): fields left out keep their values; Paused true pauses it",
                {"409": _error("the pipeline `default` cannot be deleted (`pipeline_protected`)")},
            ),
            "/hls/{profile}/{key}/master.m3u8": _playlist("Master playlist", []),
            "/hls/{profile}/{key}/{rendition}.m3u8": _playlist("Media playlist of one rendition", [RENDITION]),
            "/hls/{profile}/{key}/manifest.mpd": {
                "get": {
                    "summary": "DASH manifest (static MPD) over the title's fMP4 segments, for titles whose renditions are all fMP4",
                    "parameters": TITLE_PARAMETERS + TOKEN_PARAMETERS,
                    "responses": {
                        "200": _ok("the MPD", MPD_TYPE, {"type": "string"}),
                        "400": _error("invalid path or parameter"),
                        **TOKEN_ERRORS,
                        "404": _error("unknown source or profile, or a rendition is MPEG-TS (`not_dash`)"),
                        "422": _error("the source cannot be read as media"),
                    },
                }
            },
            "/hls/{profile}/{key}/{rendition}-{spec}-{n}.ts": _segment(
                "One MPEG-TS segment, transcoded on first request", "video/mp2t", BINARY
            ),
            "/hls/{profile}/{key}/{rendition}-{spec}-{n}.m4s": _segment(
                "One fMP4 (CMAF) media segment of an fMP4 rendition, transcoded on first request", "video/iso.segment", BINARY
            ),
            "/hls/{profile}/{key}/{rendition}-{spec}-init.mp4": _segment(
                "The init segment of an fMP4 rendition, made from the encoder headers on first request",
                "video/mp4",
                BINARY,
                what="the init segment",
                numbered=False,
                missing="unknown source, rendition or spec, or an MPEG-TS rendition",
            ),
            "/hls/{profile}/{key}/{rendition}-{spec}-{n}.vtt": _segment(
                "One WebVTT segment of a subtitle rendition (an embedded text track, or a sidecar file's cues)",
                "text/vtt",
                {"type": "string"},
                spec="hash of the subtitle rendition's spec",
                failures={
                    "422": _error("the subtitle track cannot be read"),
                    "502": _error("subtitle extraction failed"),
                    "504": _error("subtitle extraction timed out"),
                },
            ),
            "/hls/{profile}/{key}/snapshot.{ext}": _picture(
                "The frame at title time t (ms) as JPEG, WebP or PNG, made on first request",
                [_param("ext", "path", "jpg, webp or png", pattern="^(jpg|webp|png)$")],
                ("t", "w", "h", "scaletype", "q", "mode"),
                "image/*",
                {"416": _error("t is at or past the end of the title (`time_out_of_range`)")},
            ),
            "/hls/{profile}/{key}/poster.jpg": _picture(
                "The title's poster: the frame at `pictures.poster_ms`, or the first bright one from 10 % in",
                [],
                ("w", "h", "scaletype", "q"),
                "image/jpeg",
                {},
            ),
            "/hls/{profile}/{key}/storyboard.vtt": {
                "get": {
                    "summary": "WebVTT storyboard: a cue per tile, `storyboard-<spec>-<n>.jpg?<token>#xywh=x,y,w,h`"
                    " (personal: it carries the token)",
                    "parameters": TITLE_PARAMETERS + TOKEN_PARAMETERS,
                    "responses": {
                        "200": _ok("the track", "text/vtt", {"type": "string"}),
                        "400": _error("invalid path"),
                        **TOKEN_ERRORS,
                        "404": _error("unknown source or profile, or the title has no pictures (`picture_not_found`)"),
                        "422": _error("the source cannot be read as media"),
                    },
                }
            },
            "/hls/{profile}/{key}/storyboard-{spec}-{n}.jpg": _picture(
                "One storyboard sheet (a grid of tiles), made on first request",
                [
                    _param("spec", "path", "hash of the storyboard grid and the source", pattern="^[0-9a-f]{12}$"),
                    _param("n", "path", "sheet number", pattern="^[0-9]{1,6}$"),
                ],
                (),
                "image/jpeg",
                {},
            ),
            "/hls/{profile}/{key}/key-{kid}-{version}-{period}.key": {
                "get": {
                    "summary": "A content key of an encrypted rendition (16 bytes, `private, no-store`); a viewer token is"
                    " needed even on a CDN's origin pull",
                    "parameters": [
                        *TITLE_PARAMETERS,
                        _param("kid", "path", "encryption master key id", pattern="^[A-Za-z0-9_]{1,16}$"),
                        _param("version", "path", "title version tag", pattern="^[0-9a-f]{12}$"),
                        _param("period", "path", "key period (segment index // key_rotation)", pattern="^[0-9]{1,6}$"),
                        *TOKEN_PARAMETERS,
                    ],
                    "responses": {
                        "200": _ok("the key", "application/octet-stream", BINARY),
                        "400": _error("invalid path"),
                        **TOKEN_ERRORS,
                        "404": _error("not a key of the title as it is now (`key_not_found`)"),
                        "429": _error("too many key requests for this token (`key_rate_limited`; Retry-After)"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "responses": {"200": _ok("alive", "application/json", {"type": "object"})},
                }
            },
            "/api/v1/sources": {
                "get": {
                    "summary": "Source objects (up to 1000, hidden ones left out)",
                    "security": [{"apiKey": []}],
                    "responses": {
                        "200": _ok("sources", "application/json", {"type": "object", "required": ["sources"]}),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "503": _error("storage unavailable"),
                    },
                }
            },
            "/api/v1/titles/{profile}/{key}": {
                "get": {
                    "summary": "A title's renditions and the state of each segment (transcoding, cached, none), and its"
                    " subtitle tracks: embedded text and sidecar tracks converted to WebVTT (rendition), bitmap or"
                    " unreadable ones not (reason)",
                    "security": [{"apiKey": []}],
                    "parameters": TITLE_PARAMETERS,
                    "responses": {
                        "200": _ok("renditions and segment states", "application/json", {"type": "object", "required": ["renditions"]}),
                        "400": _error("invalid path"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("unknown source or profile"),
                        "422": _error("the source cannot be read as media"),
                        "503": _error("storage unavailable"),
                    },
                }
            },
            "/api/v1/jobs": {
                "post": {
                    "summary": "Submit a background job: a composite of 1 to 11 clips made into one file, written whole once it succeeds",
                    "security": [{"apiKey": []}],
                    "parameters": [_param("Idempotency-Key", "header", "the same key and body give the same job (200); another body: 409")],
                    "requestBody": {"required": True, "content": _body("application/json", _ref("JobRequest"))},
                    "responses": {
                        "201": _ok("the job, queued", "application/json", _ref("JobRecord")),
                        "200": _ok("the job an earlier request with this Idempotency-Key made", "application/json", _ref("JobRecord")),
                        "400": _error("invalid field, or beyond `[limits]` (`limit_exceeded`): `error.parameter` names it"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("unknown source"),
                        "409": _error("Idempotency-Key used before with another body"),
                        "413": _error("body too large"),
                        "422": _error("a value livetx does not make yet (`unsupported_parameter`), or a reserved output key"),
                        "503": _error("storage unavailable"),
                    },
                },
                "get": {
                    "summary": "Background jobs, newest first",
                    "security": [{"apiKey": []}],
                    "parameters": [
                        _param("state", "query", f"one of {', '.join(STATES)}"),
                        _param("pipeline", "query", "a pipeline name"),
                        _param("limit", "query", "1 to 1000 (default 100)", pattern="^[0-9]{1,4}$"),
                    ],
                    "responses": {
                        "200": _ok("jobs", "application/json", {"type": "object", "required": ["Jobs"]}),
                        "400": _error("invalid query parameter"),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "503": _error("storage unavailable"),
                    },
                },
            },
            "/api/v1/jobs/{id}": {
                "get": {
                    "summary": "A background job's record (any origin answers)",
                    "security": [{"apiKey": []}],
                    "parameters": JOB_ID,
                    "responses": {
                        "200": _ok("the job", "application/json", _ref("JobRecord")),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("no such job"),
                        "503": _error("storage unavailable"),
                    },
                },
                "delete": {
                    "summary": "Cancel a background job: a queued one now, a running one before its next segments; nothing is written",
                    "security": [{"apiKey": []}],
                    "parameters": JOB_ID,
                    "responses": {
                        "200": _ok("the job, with CancelRequested", "application/json", _ref("JobRecord")),
                        "401": _error("no API key"),
                        "403": _error(SCOPE_403),
                        "404": _error("no such job"),
                        "409": _error("the job has ended already"),
                        "503": _error("storage unavailable"),
                    },
                },
            },
            "/readyz": {
                "get": {
                    "summary": "Ready for traffic: output storage answers and every transcode worker is alive",
                    "responses": {
                        "200": _ok("ready", "application/json", _ref("Readiness")),
                        "503": _ok("not ready, with the failing check", "application/json", _ref("Readiness")),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": _ok("text exposition format", "text/plain", {"type": "string"})},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _ok("OpenAPI document", "application/json", {"type": "object"})},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key from api.key_file or LIVETX_API_KEYS"},
            },
            "schemas": {
                "Error": ERROR,
                "SignRequest": sign_contract(settings.signing.max_ttl).schema(),
                "SignedUrl": SIGNED_URL,
                "PlaylistRequest": imm_request(settings.limits).schema(),
                "HlsParameters": process_parameters(),
                "PlaylistAnswer": PLAYLIST_ANSWER,
                "TemplateRequest": TEMPLATE_REQUEST.schema(),
                "Template": TEMPLATE,
                "PipelineRequest": PIPELINE_REQUEST.schema(),
                "Pipeline": PIPELINE,
                "CompositeRequest": COMPOSITE.schema(),
                "CompositeAnswer": COMPOSITE_ANSWER,
                "JobRequest": JOB_REQUEST.schema(),
                "JobRecord": JOB_RECORD,
                "Readiness": {
                    "type": "object",
                    "required": ["status", "checks"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ready", "not_ready"]},
                        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    }


COMPOSITE_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["CompositeId", "Profile", "Duration", "MasterURL", "Clips"],
    "properties": {
        "RequestId": {"type": "string"},
        "CompositeId": {"type": "string", "description": "16 hex digits: the same request gives the same id"},
        "Profile": {"type": "string", "description": "c-<CompositeId>, the profile of its HLS URLs"},
        "Duration": {"type": "number"},
        "Resolution": {"type": "string"},
        "FrameRate": {"type": "string"},
        "Clips": {"type": "array", "items": {"type": "object"}, "description": "each clip's key, start and duration in the title (s)"},
        "MasterURL": {"type": "string", "description": "the signed URL of its master playlist"},
    },
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[SETTINGS]))
