"""HMAC-SHA256 expiry tokens for URLs. Pure: no aiohttp, no I/O.

A token is URL-safe query parameters:

    exp   expiry, unix seconds
    nbf   optional: not valid before, unix seconds
    ip    optional: the client address or network (CIDR) the URL is bound to
    kid   id of the key that signed it (several keys can be active: rotation)
    scope optional: a path prefix ending in "/"; the token then covers every path under it
    sig   base64url(HMAC-SHA256(key, canonical string)), unpadded

The canonical string binds a version tag, the key id, the times, the address binding, the
kind of claim (one path, or a prefix) and that path or prefix, one per line (absent fields
are empty lines):

    livetx-v1 \n <kid> \n <exp> \n <nbf> \n <ip> \n path|prefix \n <path or prefix>

Paths are checked before signing and before verifying, and refused rather than "fixed" when
they are ambiguous: they must be absolute, percent-decoded exactly once (what aiohttp's
`request.path` gives), NFC-normalised, and free of empty, "." and ".." segments, backslashes
and control characters. Numbers and addresses must be in their one canonical spelling. So
two spellings of one claim can never both verify, and a prefix can never be escaped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from livetx.errors import (
    BadSignature,
    InvalidPath,
    IpMismatch,
    ParameterError,
    ScopeMismatch,
    TokenExpired,
    TokenMalformed,
    TokenMissing,
    TokenNotYetValid,
    UnknownKey,
)
from livetx.lru import Lru
from livetx.settings import SigningKey, SigningSettings

VERSION = "livetx-v1"
TOKEN_PARAMS = ("exp", "nbf", "ip", "kid", "scope", "sig")
_MAX_TIME_DIGITS = 12
_MAX_PATH = 4096
TOKENS_KEPT = 16384  # tokens whose signature was checked, kept by the exact request (VerifiedTokens)
PATHS_KEPT = 4096  # paths that passed check_path, kept
PATH_SIGNERS_KEPT = 1024  # path signers kept by claims and prefix (a path-token viewer's playlists)
_CONTROL = re.compile("[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=PATHS_KEPT)  # a title's paths pass again and again; a refusal raises each time
def check_path(path: str) -> str:
    """Refuse any path that has more than one spelling. Returns it unchanged."""
    if not path.startswith("/") or len(path) > _MAX_PATH:
        raise InvalidPath(f"path must be absolute and at most {_MAX_PATH} characters")
    if "\\" in path or _CONTROL.search(path):
        raise InvalidPath("path contains a backslash or a control character")
    if unicodedata.normalize("NFC", path) != path:
        raise InvalidPath("path is not NFC-normalised")
    segments = path[1:].split("/")
    if any(seg in (".", "..") for seg in segments) or any(seg == "" for seg in segments[:-1]):
        raise InvalidPath("path has an empty, '.' or '..' segment")
    return path


def canonical_ip(value: str) -> str:
    """One spelling of an address or network: "203.0.113.7", "203.0.113.0/24", "2001:db8::/32".

    Raises ValueError for anything else (host bits set in a network included).
    """
    network = ipaddress.ip_network(value.strip(), strict=True)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def _message(kid: str, exp: int, nbf: int | None, ip: str | None, kind: str, target: str) -> bytes:
    return "\n".join((VERSION, kid, str(exp), "" if nbf is None else str(nbf), ip or "", kind, target)).encode()


def _mac(key: SigningKey, message: bytes) -> str:
    digest = hmac.new(key.secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _unix_time(name: str, raw: str) -> int:
    # digits only, no sign, no leading zeros: one spelling per number
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_TIME_DIGITS or (raw != "0" and raw.startswith("0")):
        raise TokenMalformed(f"{name} must be unix seconds")
    return int(raw)


@dataclass(frozen=True)
class Token:
    exp: int
    kid: str
    sig: str
    scope: str | None = None
    nbf: int | None = None
    ip: str | None = None

    def query(self) -> dict[str, str]:
        params = {"exp": str(self.exp)}
        if self.nbf is not None:
            params["nbf"] = str(self.nbf)
        if self.ip is not None:
            params["ip"] = self.ip
        params["kid"] = self.kid
        if self.scope is not None:
            params["scope"] = self.scope
        params["sig"] = self.sig
        return params

    def query_string(self) -> str:
        return self._query_string

    @functools.cached_property
    def _query_string(self) -> str:  # made once per token: a playlist hands it on in every URI
        return urlencode(self.query())


class Signer:
    """Signs with the active key; verifies with any configured key."""

    def __init__(
        self, keys: Iterable[SigningKey], active: SigningKey, clock_skew: int = 30, max_ttl: int = SigningSettings.max_ttl
    ) -> None:
        self._keys = {key.kid: key for key in keys}
        self._active = active
        self._keys.setdefault(active.kid, active)
        self.clock_skew = clock_skew
        self.max_ttl = max_ttl  # tokens expiring later than now + max_ttl (+ skew) are refused
        # (exp, nbf, ip, prefix) -> its PathSigner (the HMAC states after the claims: stateless, reused)
        self._path_signers: Lru[tuple[int, int | None, str | None, str], PathSigner] = Lru(PATH_SIGNERS_KEPT)

    def __repr__(self) -> str:
        return f"Signer(kids={sorted(self._keys)!r}, active={self._active.kid!r})"

    # -- signing ----------------------------------------------------------------------

    def _sign(self, kind: str, target: str, exp: int, nbf: int | None, ip: str | None, scope: str | None) -> Token:
        if ip is not None:
            try:
                ip = canonical_ip(ip)
            except ValueError:
                raise ParameterError("ip", "an IP address or a network in CIDR form") from None
        if nbf is not None and nbf > exp:
            raise ParameterError("nbf", "unix seconds no later than the expiry")
        kid = self._active.kid
        return Token(exp, kid, _mac(self._active, _message(kid, exp, nbf, ip, kind, target)), scope, nbf, ip)

    def sign_path(self, path: str, exp: int, *, nbf: int | None = None, ip: str | None = None) -> Token:
        check_path(path)
        return self._sign("path", path, exp, nbf, ip, None)

    def sign_prefix(self, prefix: str, exp: int, *, nbf: int | None = None, ip: str | None = None) -> Token:
        check_path(prefix)
        if not prefix.endswith("/"):
            raise InvalidPath("a scope must end with '/'")
        return self._sign("prefix", prefix, exp, nbf, ip, prefix)

    def path_signer(self, claims: Token, prefix: str) -> PathSigner | None:
        """Signs paths under `prefix` with the claims of `claims`, as `sign_like` would, for
        many paths at once (a playlist's URIs). None when `claims` is a prefix token that
        already covers `prefix`: it is handed on as it is."""
        if claims.scope is not None and prefix.startswith(claims.scope):
            return None
        kept = self._path_signers.get((claims.exp, claims.nbf, claims.ip, prefix))
        if kept is not None:  # a viewer's every playlist request: its claims checked and hashed once
            return kept
        check_path(prefix)
        if not prefix.endswith("/"):
            raise InvalidPath("a path signer's prefix must end with '/'")
        ip = claims.ip
        if ip is not None:
            try:
                ip = canonical_ip(ip)
            except ValueError:
                raise ParameterError("ip", "an IP address or a network in CIDR form") from None
        if claims.nbf is not None and claims.nbf > claims.exp:
            raise ParameterError("nbf", "unix seconds no later than the expiry")
        signer = PathSigner(self._active, claims.exp, claims.nbf, ip, prefix)
        self._path_signers.put((claims.exp, claims.nbf, claims.ip, prefix), signer)
        return signer

    def sign_like(self, claims: Token, path: str) -> Token:
        """A token for `path` with the claims of `claims` (a signed playlist signs what it emits).

        A prefix token already covers `path` and is handed on as it is.
        """
        if claims.scope is not None and path.startswith(claims.scope):
            return claims
        return self.sign_path(path, claims.exp, nbf=claims.nbf, ip=claims.ip)

    # -- verifying --------------------------------------------------------------------

    def verify(self, path: str, query: Mapping[str, list[str]], now: float, client_ip: str | None = None) -> Token:
        """Check the token in `query` (every value of each parameter) for `path`, at time `now`,
        for a request from `client_ip`. Raises the TokenError that says which check failed."""
        token = self.check(path, query)
        self.check_claims(token, now, client_ip)
        return token

    def check(self, path: str, query: Mapping[str, list[str]]) -> Token:
        """The checks of `verify` that depend on `path` and `query` alone: spelling, key,
        signature and scope. What passes them passes them every time (the keys are fixed for the
        life of the signer), so their outcome may be kept by the exact request (`VerifiedTokens`);
        `check_claims` is what each request must pass on its own."""
        if not any(query.get(name) for name in TOKEN_PARAMS):
            raise TokenMissing("this URL needs a signature: exp, kid and sig query parameters")
        for name in TOKEN_PARAMS:
            if len(query.get(name, [])) > 1:
                raise TokenMalformed(f"token parameter {name!r} appears more than once")
        if not all(query.get(name) for name in ("exp", "kid", "sig")):
            raise TokenMalformed("token must carry exp, kid and sig")
        exp = _unix_time("exp", query["exp"][0])
        nbf = _unix_time("nbf", query["nbf"][0]) if query.get("nbf") else None
        ip = query["ip"][0] if query.get("ip") else None
        if ip is not None:
            try:
                if canonical_ip(ip) != ip:
                    raise ValueError(ip)
            except ValueError:
                raise TokenMalformed("ip must be one address or network, in canonical form") from None
        kid = query["kid"][0]
        sig = query["sig"][0]
        scope = query["scope"][0] if query.get("scope") else None
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKey("token was signed with an unknown key id")
        check_path(path)
        if scope is None:
            message = _message(kid, exp, nbf, ip, "path", path)
        else:
            check_path(scope)
            if not scope.endswith("/"):
                raise TokenMalformed("scope must end with '/'")
            message = _message(kid, exp, nbf, ip, "prefix", scope)
        # constant time: the expected MAC is never compared byte by byte in Python
        if not hmac.compare_digest(_mac(key, message).encode(), sig.encode()):
            raise BadSignature("signature does not match")
        if scope is not None and not path.startswith(scope):
            raise ScopeMismatch("path is outside the token's scope")
        return Token(exp, kid, sig, scope, nbf, ip)

    def check_in_scope(self, path: str, token: Token) -> None:
        """The checks of `check` that depend on the path, for a prefix token that passed the
        others (with any path): the path's spelling, and that it lies under the scope. They
        raise what `check` would raise for this path."""
        check_path(path)
        if token.scope is None or not path.startswith(token.scope):
            raise ScopeMismatch("path is outside the token's scope")

    def check_claims(self, token: Token, now: float, client_ip: str | None) -> None:
        """The checks of `verify` that depend on the time and the client: expiry, not-before,
        the longest lifetime, and the address binding. Every request makes them."""
        if now > token.exp + self.clock_skew:
            raise TokenExpired("token has expired")
        if token.nbf is not None and now < token.nbf - self.clock_skew:
            raise TokenNotYetValid("token is not valid yet (nbf)")
        if token.exp - now > self.max_ttl + self.clock_skew:
            raise TokenNotYetValid("token expiry is too far in the future")
        if token.ip is not None and not _ip_in(client_ip, token.ip):
            raise IpMismatch("token is bound to another client address")


class VerifiedTokens:
    """`Signer.verify` for requests, keeping what `Signer.check` passed.

    `check` (spelling, key, HMAC, path and scope) depends on the path and the query alone, and
    a signer's keys are fixed for its life. So a path token checked before with the same
    request (the same decoded path, and the same path and query as sent, byte for byte) needs
    only `check_claims`; and a prefix token checked before with the same query as sent (every
    URI of a title carries the same one) needs only the checks that depend on the path
    (`check_in_scope`: its spelling, and that it lies under the scope) and `check_claims`:
    expiry, not-before, the longest lifetime and the address binding, which every request
    passes on its own, against its own time and client. Only passes are kept (a refused token
    is checked in full every time), at most `capacity` of each kind, least recently used
    dropped first.
    """

    def __init__(self, signer: Signer, capacity: int = TOKENS_KEPT) -> None:
        self.signer = signer
        self._paths: Lru[tuple[str, str], Token] = Lru(capacity)  # (path, target) -> a path token
        self._scoped: Lru[str, Token] = Lru(capacity)  # the query as sent -> a prefix token

    def verify(
        self,
        path: str,
        target: str,
        query: Callable[[], Mapping[str, list[str]]],
        now: float,
        client_ip: Callable[[], str | None],
    ) -> Token:
        """`Signer.verify(path, query(), now, client_ip())` for a request whose raw target (path
        and query as sent) is `target`; `query` and `client_ip` are asked only when needed."""
        sent = target.partition("?")[2]
        token = self._scoped.get(sent)
        if token is not None:
            self.signer.check_in_scope(path, token)
        else:
            token = self._paths.get((path, target))
            if token is None:
                token = self.signer.check(path, query())
                if token.scope is not None:
                    self._scoped.put(sent, token)
                else:
                    self._paths.put((path, target), token)
        self.signer.check_claims(token, now, client_ip() if token.ip is not None else None)
        return token

    def __len__(self) -> int:
        return len(self._paths) + len(self._scoped)


_BLOCK = 64  # SHA-256's block size, in bytes
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]*")  # no "/", not "." or "..", nothing to normalise


def plain_name(name: str) -> bool:
    """A file name that needs no path check beyond its length: letters, digits, "_~-." (not
    first), as livetx names segments and playlists."""
    return bool(_PLAIN_NAME.fullmatch(name))


class PathSigner:
    """`sign_path(prefix + name, ...)` for many names under one prefix, with one set of claims.

    The canonical message ends with the path, so every message starts with the same bytes
    (everything up to the prefix): their HMAC state is computed once and copied for each name.
    The signatures are those `sign_path` makes (tests/test_signing.py holds them equal).
    """

    def __init__(self, key: SigningKey, exp: int, nbf: int | None, ip: str | None, prefix: str) -> None:
        self._prefix = prefix
        self._room = _MAX_PATH - len(prefix)
        # HMAC (RFC 2104) = H((K ^ opad) || H((K ^ ipad) || message)), each hash state kept
        # after its fixed start: hashlib's copy() is cheap, hmac.HMAC's Python wrapper is not
        secret = key.secret if len(key.secret) <= _BLOCK else hashlib.sha256(key.secret).digest()
        secret = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
        self._inner.update(_message(key.kid, exp, nbf, ip, "path", prefix))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in secret))
        # Token.query() order; the signature (base64url: nothing to escape) goes last
        claims = {"exp": str(exp)} | ({"nbf": str(nbf)} if nbf is not None else {}) | ({"ip": ip} if ip is not None else {})
        self.query_head = urlencode({**claims, "kid": key.kid}) + "&sig="
        self._query_head = ("?" + self.query_head).encode()

    def sig(self, name: str) -> bytes:
        """The signature of `prefix + name`, base64url without padding."""
        if len(name) > self._room or not _PLAIN_NAME.fullmatch(name):
            check_path(self._prefix + name)
        inner = self._inner.copy()
        inner.update(name.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return binascii.b2a_base64(outer.digest(), newline=False).translate(_URLSAFE).rstrip(b"=")

    def query(self, name: str) -> bytes:
        """ "?" and the query string of the token for `prefix + name` (as `Token.query_string`)."""
        return self._query_head + self.sig(name)


def _ip_in(client_ip: str | None, bound: str) -> bool:
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in ipaddress.ip_network(bound)
