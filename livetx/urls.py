"""The URL layout and signed URLs, shared by the server, the CLI and (later) the signing API.

    /hls/<profile>/<source key>/master.m3u8
    /hls/<profile>/<source key>/<rendition>.m3u8
    /hls/<profile>/<source key>/<rendition>-<spec id>-<n>.ts

Everything for one title sits under `/hls/<profile>/<source key>/`, so one prefix-scoped
token can cover it.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from livetx.signing import Signer, Token
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
    exp = int(now if now is not None else time.time()) + ttl
    token = signer.sign_prefix(scope, exp) if scope else signer.sign_path(path, exp)
    return with_token(base_url.rstrip("/") + quote(path, safe="/"), token), exp
