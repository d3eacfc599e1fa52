"""The URL layout and signed URLs, shared by the server, the CLI and the signing API.

    /hls/<profile>/<source key>/master.m3u8
    /hls/<profile>/<source key>/<rendition>.m3u8
    /hls/<profile>/<source key>/manifest.mpd                     (DASH, fMP4 titles only)
    /hls/<profile>/<source key>/<rendition>-<spec id>-<n>.ts     (MPEG-TS renditions)
    /hls/<profile>/<source key>/<rendition>-<spec id>-<n>.m4s    (fMP4 renditions,
    /hls/<profile>/<source key>/<rendition>-<spec id>-init.mp4    and their init segment)
    /hls/<profile>/<source key>/<rendition>-<spec id>-<n>.vtt    (WebVTT subtitle renditions)
    /hls/<profile>/<source key>/snapshot.<jpg|webp|png>?t=<ms>&w=&h=&scaletype=&q=&mode=
    /hls/<profile>/<source key>/poster.jpg?w=&h=&scaletype=&q=   (pictures: livetx/pictures.py,
    /hls/<profile>/<source key>/storyboard.vtt                    livetx/web/pictures.py)
    /hls/<profile>/<source key>/storyboard-<spec>-<n>.jpg

Everything for one title sits under `/hls/<profile>/<source key>/`, so one prefix-scoped
token can cover it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from livetx.composite import is_composite_profile
from livetx.contract import Bound, Field, Integer, Shape, Text
from livetx.dash.manifest import MPD_NAME
from livetx.errors import InvalidPath, LivetxError, ParameterError
from livetx.jobs import is_job_profile
from livetx.layout import PICTURE_SUFFIXES, PLAYLIST_SUFFIX, SEGMENT_SUFFIXES
from livetx.settings import SigningSettings
from livetx.signing import Signer, Token, canonical_ip, check_path
from livetx.storage.base import check_source_key

HLS_ROOT = "/hls"


def title_prefix(profile: str, key: str) -> str:
    check_source_key(key)
    return f"{HLS_ROOT}/{profile}/{key}/"


def master_path(profile: str, key: str) -> str:
    return title_prefix(profile, key) + "master.m3u8"


def with_token(url: str, token: Token) -> str:
    return f"{url}?{token.query_string()}"


def signed_url(signer: Signer, base_url: str, path: str, ttl: int, now: float | None = None, scope: str | None = None) -> tuple[str, int]:
    """An absolute URL for `path` carrying a token that expires `ttl` seconds from `now`."""
    signed = sign(signer, base_url, SignRequest(path=path, ttl=ttl, scope=scope), now)
    return signed.url, signed.token.exp


# ---- sign requests: `POST /api/v1/sign`, `livetx sign` and `livetx url` run this ----------


@dataclass(frozen=True)
class SignRequest:
    path: str  # the URL path to sign (decoded)
    ttl: int  # seconds from now
    scope: str | None = None  # a prefix of `path` ending in "/": the token covers everything under it
    nbf: int | None = None  # not valid before, unix seconds
    ip: str | None = None  # client address or CIDR network the URL is bound to
    profile: str = ""  # the profile and source key the path belongs to
    source_key: str = ""

    @property
    def scope_keys(self) -> str | None:
        """The source keys the scope covers, as a prefix ending in "/" (`movies/` for the
        scope /hls/default/movies/): every title under it plays with the token."""
        return None if self.scope is None else "/".join(self.scope.split("/")[3:-1]) + "/"


@dataclass(frozen=True)
class SignedUrl:
    url: str
    path: str
    token: Token

    def to_json(self) -> dict[str, Any]:
        expires_at = datetime.fromtimestamp(self.token.exp, UTC).isoformat().replace("+00:00", "Z")
        return {
            "url": self.url,
            "path": self.path,
            "expires": self.token.exp,
            "expires_at": expires_at,
            "kid": self.token.kid,
            "scope": self.token.scope,
            "nbf": self.token.nbf,
            "ip": self.token.ip,
        }


PATH_ALLOWED = "an /hls/<profile>/<source key>/<playlist, segment or picture> URL path of a known profile"
SCOPE_ALLOWED = "'path', 'title' or a prefix of the path ending in '/' that names at least one key segment: /hls/<profile>/<key prefix>/"
SIGN_REQUEST = Shape(
    {
        "path": Field(
            Text("an absolute URL path such as /hls/default/movie.mp4/master.m3u8"),
            doc=f"{PATH_ALLOWED}, e.g. /hls/default/movies/a.mp4/master.m3u8",
        ),
        "key": Field(Text("a source key such as movies/a.mp4"), doc="source key; signs its master playlist under `profile`"),
        "profile": Field(Text("a profile name", max_length=256), doc="profile for `key` (default: default)"),
        "ttl": Field(
            Integer(1, Bound("signing.max_ttl"), "s", json_only=True),
            doc="seconds until expiry (default: signing.default_ttl; at most signing.max_ttl)",
        ),
        "nbf": Field(Integer(0, 10**12 - 1, json_only=True, what="unix seconds"), doc="not valid before, unix seconds"),
        "ip": Field(
            Text("an IP address or a network in CIDR form", max_length=64, convert=canonical_ip),
            doc="client address or CIDR network the URL is bound to",
        ),
        "scope": Field(Text(SCOPE_ALLOWED), doc=f"{SCOPE_ALLOWED}; never /, /hls/ or /hls/<profile>/"),
    },
    doc="Exactly one of `path` or `key`.",
    unknown_text="one of the fields {names} (unknown field)",
)


def sign_contract(max_ttl: int = SigningSettings.max_ttl) -> Shape:
    return SIGN_REQUEST.bind({"signing.max_ttl": max_ttl})


def known_profile(name: str, profiles: Mapping[str, object]) -> bool:
    """A configured profile, or the name of an API-made one (`j-<id>`, which the server then
    looks up in storage)."""
    return name in profiles or is_job_profile(name) or is_composite_profile(name)


def hls_parts(path: str, profiles: Mapping[str, object]) -> tuple[str, str]:
    """(profile, source key) of a path to sign: /hls/<known profile>/<source key>/<file>
    where the file is a playlist or a segment. Nothing else is ever signed."""
    parts = path.split("/")
    if len(parts) < 5 or parts[0] != "" or f"/{parts[1]}" != HLS_ROOT or not known_profile(parts[2], profiles):
        raise ParameterError("path", PATH_ALLOWED)
    key, name = "/".join(parts[3:-1]), parts[-1]
    if not (name.endswith((PLAYLIST_SUFFIX, *SEGMENT_SUFFIXES, *PICTURE_SUFFIXES)) or name == MPD_NAME):
        raise ParameterError("path", PATH_ALLOWED)
    try:
        check_source_key(key)
    except InvalidPath as exc:  # a refused source type keeps its own 422
        raise ParameterError("path", f"{PATH_ALLOWED} ({exc.message})") from None
    return parts[2], key


def parse_sign_request(body: Any, profiles: Mapping[str, object], default_ttl: int, max_ttl: int = SigningSettings.max_ttl) -> SignRequest:
    """Validate a sign request (a JSON object): `path`, or `key` (+ `profile`) for a master
    playlist; `ttl` (1 to `max_ttl` s), `nbf`, `ip`, and `scope` ("path", "title" or a prefix
    of the path).

    What may be signed: only /hls/ URLs of a known profile, and only scopes that cover at least
    one whole title: a prefix /hls/<profile>/<k1>/.../ with at least one segment of source key,
    never "/", "/hls/" or "/hls/<profile>/" (every title of a profile)."""
    fields = sign_contract(max_ttl).parse(body)
    key, profile = fields.get("key"), fields.get("profile")
    if ("path" in fields) == (key is not None):
        raise ParameterError("path", "exactly one of 'path' or 'key'")
    if key is not None:
        profile = profile or "default"
        if not known_profile(profile, profiles):
            raise ParameterError("profile", f"one of: {', '.join(sorted(profiles))}")
        try:
            path = master_path(profile, key)
        except InvalidPath as exc:  # a refused source type keeps its own 422
            raise ParameterError("key", f"a source key ({exc.message})") from None
        title = title_prefix(profile, key)
    else:
        if profile is not None:
            raise ParameterError("profile", "only with 'key'")
        path = fields["path"]
        try:
            check_path(path)
        except LivetxError as exc:
            raise ParameterError("path", f"an unambiguous absolute path ({exc.message})") from None
        profile, key = hls_parts(path, profiles)
        title = path.rsplit("/", 1)[0] + "/"
    ttl, nbf, ip, scope = fields.get("ttl", default_ttl), fields.get("nbf"), fields.get("ip"), fields.get("scope")
    if scope in (None, "path"):
        scope = None
    elif scope == "title":
        scope = title
    elif not (scope.startswith("/") and scope.endswith("/") and path.startswith(scope) and len(scope.split("/")) >= 5):
        # ["", "hls", profile, key segment, ..., ""]: at least one segment of source key
        raise ParameterError("scope", SCOPE_ALLOWED)
    return SignRequest(path=path, ttl=ttl, scope=scope, nbf=nbf, ip=ip, profile=profile, source_key=key)


def sign(signer: Signer, base_url: str, request: SignRequest, now: float | None = None) -> SignedUrl:
    """An absolute URL for the request's path carrying a token that expires `ttl` seconds from `now`."""
    exp = int(now if now is not None else time.time()) + request.ttl
    if request.nbf is not None and request.nbf > exp:
        raise ParameterError("nbf", "a time before the expiry (now + ttl)")
    if request.scope:
        token = signer.sign_prefix(request.scope, exp, nbf=request.nbf, ip=request.ip)
    else:
        token = signer.sign_path(request.path, exp, nbf=request.nbf, ip=request.ip)
    url = with_token(base_url.rstrip("/") + quote(request.path, safe="/"), token)
    return SignedUrl(url=url, path=request.path, token=token)
