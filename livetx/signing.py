"""HMAC-SHA256 expiry tokens for URLs. Pure: no aiohttp, no I/O.

A token is four URL-safe query parameters:

    exp   expiry, unix seconds
    kid   id of the key that signed it (several keys can be active: rotation)
    sig   base64url(HMAC-SHA256(key, canonical string)), unpadded
    scope optional: a path prefix ending in "/"; the token then covers every path under it

The canonical string binds a version tag, the key id, the expiry, the kind of claim (one
path, or a prefix) and that path or prefix:

    livetx-v1 \\n <kid> \\n <exp> \\n path|prefix \\n <path or prefix>

Paths are checked before signing and before verifying, and refused rather than "fixed" when
they are ambiguous: they must be absolute, percent-decoded exactly once (what aiohttp's
`request.path` gives), NFC-normalised, and free of empty, "." and ".." segments, backslashes
and control characters. So two spellings of one resource can never both verify, and a
prefix can never be escaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from livetx.errors import (
    BadSignature,
    InvalidPath,
    ScopeMismatch,
    TokenExpired,
    TokenMalformed,
    TokenMissing,
    TokenNotYetValid,
    UnknownKey,
)
from livetx.settings import SigningKey

VERSION = "livetx-v1"
TOKEN_PARAMS = ("exp", "kid", "sig", "scope")
MAX_TTL = 10 * 365 * 24 * 3600


def check_path(path: str) -> str:
    """Refuse any path that has more than one spelling. Returns it unchanged."""
    if not path.startswith("/") or len(path) > 4096:
        raise InvalidPath("path must be absolute and at most 4096 characters")
    if "\\" in path or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise InvalidPath("path contains a backslash or a control character")
    if unicodedata.normalize("NFC", path) != path:
        raise InvalidPath("path is not NFC-normalised")
    segments = path[1:].split("/")
    if any(seg in (".", "..") for seg in segments) or any(seg == "" for seg in segments[:-1]):
        raise InvalidPath("path has an empty, '.' or '..' segment")
    return path


def _message(kid: str, exp: int, kind: str, target: str) -> bytes:
    return "\n".join((VERSION, kid, str(exp), kind, target)).encode()


def _mac(key: SigningKey, message: bytes) -> str:
    digest = hmac.new(key.secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Token:
    exp: int
    kid: str
    sig: str
    scope: str | None = None

    def query(self) -> dict[str, str]:
        params = {"exp": str(self.exp), "kid": self.kid, "sig": self.sig}
        if self.scope is not None:
            params["scope"] = self.scope
        return params

    def query_string(self) -> str:
        return urlencode(self.query())


class Signer:
    """Signs with the active key; verifies with any configured key."""

    def __init__(self, keys: Iterable[SigningKey], active: SigningKey, clock_skew: int = 30) -> None:
        self._keys = {key.kid: key for key in keys}
        self._active = active
        self._keys.setdefault(active.kid, active)
        self.clock_skew = clock_skew

    def __repr__(self) -> str:
        return f"Signer(kids={sorted(self._keys)!r}, active={self._active.kid!r})"

    # -- signing ----------------------------------------------------------------------

    def sign_path(self, path: str, exp: int) -> Token:
        check_path(path)
        return Token(exp, self._active.kid, _mac(self._active, _message(self._active.kid, exp, "path", path)))

    def sign_prefix(self, prefix: str, exp: int) -> Token:
        check_path(prefix)
        if not prefix.endswith("/"):
            raise InvalidPath("a scope must end with '/'")
        mac = _mac(self._active, _message(self._active.kid, exp, "prefix", prefix))
        return Token(exp, self._active.kid, mac, scope=prefix)

    def sign_like(self, claims: Token, path: str) -> Token:
        """A token for `path` with the same expiry as `claims` (a signed playlist signs what it emits).

        A prefix token already covers `path` and is handed on as it is.
        """
        if claims.scope is not None and path.startswith(claims.scope):
            return claims
        return self.sign_path(path, claims.exp)

    # -- verifying --------------------------------------------------------------------

    def verify(self, path: str, query: Mapping[str, list[str]], now: float) -> Token:
        """Check the token in `query` (every value of each parameter) for `path` at time `now`."""
        present = [name for name in TOKEN_PARAMS if query.get(name)]
        if not present:
            raise TokenMissing("this URL needs a signature: exp, kid and sig query parameters")
        for name in TOKEN_PARAMS:
            if len(query.get(name, [])) > 1:
                raise TokenMalformed(f"token parameter {name!r} appears more than once")
        if not all(query.get(name) for name in ("exp", "kid", "sig")):
            raise TokenMalformed("token must carry exp, kid and sig")
        raw_exp = query["exp"][0]
        if not raw_exp.isascii() or not raw_exp.isdigit() or len(raw_exp) > 12:
            raise TokenMalformed("exp must be unix seconds")
        exp = int(raw_exp)
        kid = query["kid"][0]
        sig = query["sig"][0]
        scope = query["scope"][0] if query.get("scope") else None
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKey("token was signed with an unknown key id")
        check_path(path)
        if scope is None:
            message = _message(kid, exp, "path", path)
        else:
            check_path(scope)
            if not scope.endswith("/"):
                raise TokenMalformed("scope must end with '/'")
            message = _message(kid, exp, "prefix", scope)
        if not hmac.compare_digest(_mac(key, message).encode(), sig.encode()):
            raise BadSignature("signature does not match")
        if scope is not None and not path.startswith(scope):
            raise ScopeMismatch("path is outside the token's scope")
        if now > exp + self.clock_skew:
            raise TokenExpired("token has expired")
        if exp - now > MAX_TTL + self.clock_skew:
            raise TokenNotYetValid("token expiry is too far in the future")
        return Token(exp, kid, sig, scope)
