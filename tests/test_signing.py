from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livetx.errors import (
    BadSignature,
    InvalidPath,
    IpMismatch,
    ParameterError,
    ScopeMismatch,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenMissing,
    TokenNotYetValid,
    UnknownKey,
)
from livetx.settings import SigningKey
from livetx.signing import TOKEN_PARAMS, Signer, Token, VerifiedTokens

OLD = SigningKey("old", b"o" * 32)
NEW = SigningKey("new", b"n" * 32)
PATH = "/hls/default/movies/a.mp4/master.m3u8"
NOW = 1_800_000_000


def query(token: Token) -> dict[str, list[str]]:
    return parse_qs(token.query_string())


@pytest.fixture
def signer() -> Signer:
    return Signer([OLD, NEW], NEW, clock_skew=30)


def test_valid_token_verifies(signer: Signer) -> None:
    token = signer.sign_path(PATH, NOW + 60)
    assert signer.verify(PATH, query(token), NOW) == token


def test_missing_token_is_401_kind(signer: Signer) -> None:
    with pytest.raises(TokenMissing) as info:
        signer.verify(PATH, {}, NOW)
    assert info.value.status == 401


def test_expired_token_refused_after_skew(signer: Signer) -> None:
    token = signer.sign_path(PATH, NOW)
    signer.verify(PATH, query(token), NOW + 30)
    with pytest.raises(TokenExpired) as info:
        signer.verify(PATH, query(token), NOW + 31)
    assert info.value.status == 403


def test_token_replayed_on_another_path_fails(signer: Signer) -> None:
    token = signer.sign_path(PATH, NOW + 60)
    with pytest.raises(BadSignature):
        signer.verify("/hls/default/movies/b.mp4/master.m3u8", query(token), NOW)


def test_rotation_old_and_new_keys_verify(signer: Signer) -> None:
    old_signer = Signer([OLD], OLD)
    assert signer.verify(PATH, query(old_signer.sign_path(PATH, NOW + 60)), NOW).kid == "old"
    assert signer.verify(PATH, query(signer.sign_path(PATH, NOW + 60)), NOW).kid == "new"
    with pytest.raises(UnknownKey):
        Signer([NEW], NEW).verify(PATH, query(old_signer.sign_path(PATH, NOW + 60)), NOW)


def test_duplicated_parameter_refused(signer: Signer) -> None:
    q = query(signer.sign_path(PATH, NOW + 60))
    q["sig"] = q["sig"] * 2
    with pytest.raises(TokenMalformed):
        signer.verify(PATH, q, NOW)


def test_prefix_scope_covers_children_only(signer: Signer) -> None:
    token = signer.sign_prefix("/hls/default/movies/a.mp4/", NOW + 60)
    signer.verify("/hls/default/movies/a.mp4/main-0123456789ab-3.ts", query(token), NOW)
    with pytest.raises(ScopeMismatch):
        signer.verify("/hls/default/movies/b.mp4/master.m3u8", query(token), NOW)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/hls/default/movies/a.mp4/../b.mp4/master.m3u8", id="dot-dot"),
        pytest.param("/hls/default/movies/a.mp4/./master.m3u8", id="dot"),
        pytest.param("/hls/default/movies/a.mp4//master.m3u8", id="double-slash"),
        pytest.param("/hls/default/movies/a.mp4/..\\b.mp4/master.m3u8", id="backslash"),
        pytest.param("/hls/default/movies/cafe\u0301.mp4/master.m3u8", id="not-nfc"),
        pytest.param("/hls/default/movies/a.mp4/\x00", id="nul"),
    ],
)
def test_ambiguous_paths_never_verify(signer: Signer, path: str) -> None:
    token = signer.sign_prefix("/hls/default/movies/a.mp4/", NOW + 60)
    with pytest.raises(InvalidPath):
        signer.verify(path, query(token), NOW)


def test_signed_like_shares_expiry(signer: Signer) -> None:
    parent = signer.sign_path(PATH, NOW + 60)
    child = signer.sign_like(parent, "/hls/default/movies/a.mp4/main.m3u8")
    assert child.exp == parent.exp
    signer.verify("/hls/default/movies/a.mp4/main.m3u8", query(child), NOW)


def test_repr_never_shows_secret(signer: Signer) -> None:
    assert "nnnn" not in repr(signer) and "nnnn" not in repr(NEW)


CLIENT = "203.0.113.7"


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({}, id="path"),
        pytest.param({"scope": True, "nbf": NOW - 10, "ip": "203.0.113.0/24"}, id="prefix-nbf-ip"),
    ],
)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_no_mutation_of_a_signed_url_verifies(claims: dict[str, object], data: st.DataObject) -> None:
    """Change, add or drop any one field of a valid URL: only the identity verifies."""
    signer = Signer([OLD, NEW], NEW)
    if claims.get("scope"):
        token = signer.sign_prefix("/hls/default/movies/a.mp4/", NOW + 60, nbf=claims["nbf"], ip=claims["ip"])  # type: ignore[arg-type]
    else:
        token = signer.sign_path(PATH, NOW + 60)
    fields = {"path": PATH, **{name: "" for name in TOKEN_PARAMS}, **token.query()}
    assert signer.verify(PATH, {k: [v] for k, v in fields.items() if k != "path" and v}, NOW, CLIENT) == token
    name = data.draw(st.sampled_from(sorted(fields)))
    value = fields[name]
    mutated = data.draw(st.text(min_size=0, max_size=len(value) + 3).filter(lambda v: v != value))
    fields[name] = mutated
    q = {k: [v] for k, v in fields.items() if k != "path" and v}
    if name == "path" and claims.get("scope") and mutated.startswith("/hls/default/movies/a.mp4/"):
        return  # a prefix token covers every well-formed path under its scope, by design
    with pytest.raises((TokenError, InvalidPath)):
        signer.verify(fields["path"], q, NOW, CLIENT)


@pytest.mark.parametrize(
    ("name", "spelling"),
    [
        pytest.param("exp", "01800000060", id="exp-leading-zero"),
        pytest.param("exp", "+1800000060", id="exp-plus"),
        pytest.param("exp", "1800000060.0", id="exp-decimal"),
        pytest.param("ip", "203.0.113.007", id="ip-leading-zero"),
        pytest.param("ip", "203.0.113.7/32", id="ip-host-as-network"),
        pytest.param("ip", "203.0.113.1/24", id="ip-host-bits"),
        pytest.param("ip", "2001:DB8::1", id="ipv6-upper-case"),
    ],
)
def test_other_spellings_of_a_claim_are_refused(signer: Signer, name: str, spelling: str) -> None:
    token = signer.sign_path(PATH, NOW + 60, ip="203.0.113.7" if name == "ip" else None)
    q = query(token)
    q[name] = [spelling]
    with pytest.raises(TokenMalformed):
        signer.verify(PATH, q, NOW, CLIENT)


def test_not_yet_valid_is_refused_until_nbf(signer: Signer) -> None:
    token = signer.sign_path(PATH, NOW + 3600, nbf=NOW + 600)
    with pytest.raises(TokenNotYetValid):
        signer.verify(PATH, query(token), NOW)
    with pytest.raises(TokenNotYetValid):
        signer.verify(PATH, query(token), NOW + 600 - 31)
    assert signer.verify(PATH, query(token), NOW + 600 - 30).nbf == NOW + 600  # within the clock skew
    assert signer.verify(PATH, query(token), NOW + 601).nbf == NOW + 600


def test_nbf_after_exp_is_refused_when_signing(signer: Signer) -> None:
    with pytest.raises(ParameterError, match="nbf"):
        signer.sign_path(PATH, NOW + 60, nbf=NOW + 61)


@pytest.mark.parametrize(
    ("bound", "client", "ok"),
    [
        pytest.param("203.0.113.7", "203.0.113.7", True, id="same-address"),
        pytest.param("203.0.113.7", "203.0.113.8", False, id="other-address"),
        pytest.param("203.0.113.0/24", "203.0.113.200", True, id="in-network"),
        pytest.param("203.0.113.0/24", "198.51.100.1", False, id="outside-network"),
        pytest.param("203.0.113.7", "::ffff:203.0.113.7", True, id="v4-mapped-v6"),
        pytest.param("2001:db8::/32", "2001:db8:1::5", True, id="v6-network"),
        pytest.param("203.0.113.7", None, False, id="unknown-client"),
        pytest.param("203.0.113.7", "not-an-ip", False, id="garbage-client"),
    ],
)
def test_ip_binding(signer: Signer, bound: str, client: str | None, ok: bool) -> None:
    token = signer.sign_path(PATH, NOW + 60, ip=bound)
    if ok:
        assert signer.verify(PATH, query(token), NOW, client).ip == bound
    else:
        with pytest.raises(IpMismatch):
            signer.verify(PATH, query(token), NOW, client)


def test_children_inherit_every_claim(signer: Signer) -> None:
    parent = signer.sign_path(PATH, NOW + 60, nbf=NOW - 5, ip="203.0.113.0/24")
    child = signer.sign_like(parent, "/hls/default/movies/a.mp4/main.m3u8")
    assert (child.exp, child.nbf, child.ip) == (parent.exp, parent.nbf, parent.ip)
    signer.verify("/hls/default/movies/a.mp4/main.m3u8", query(child), NOW, CLIENT)


def test_readme_worked_examples() -> None:
    key = SigningKey("k1", bytes(range(32)))
    signer = Signer([key], key)
    token = signer.sign_path("/hls/default/sample.mp4/master.m3u8", 1_800_000_000)
    assert token.query_string() == "exp=1800000000&kid=k1&sig=AIBFxIbxO5Ql9Y2ztrtoO2FarD4PRFUmq4jJkSl-nr8"
    scoped = signer.sign_prefix("/hls/default/sample.mp4/", 1_800_000_000, ip="203.0.113.0/24")
    assert scoped.sig == "EveOhcWT--Fwexfb00GcsdoDeNfzaPLALWXzP6-JnNQ"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert token.sig in readme and scoped.sig in readme


@pytest.mark.parametrize(
    ("ttl", "ok"),
    [
        pytest.param(7 * 24 * 3600, True, id="seven-days"),
        pytest.param(7 * 24 * 3600 + 30, True, id="within-skew"),
        pytest.param(7 * 24 * 3600 + 31, False, id="beyond-max-ttl"),
        pytest.param(10 * 365 * 24 * 3600, False, id="ten-years"),
    ],
)
def test_tokens_beyond_max_ttl_never_verify(ttl: int, ok: bool) -> None:
    """Whoever signed it (an old server, a leaked key in a script), a token whose expiry lies
    beyond now + signing.max_ttl (+ skew) is refused."""
    signer = Signer([NEW], NEW, clock_skew=30, max_ttl=7 * 24 * 3600)
    token = signer.sign_path(PATH, NOW + ttl)
    if ok:
        signer.verify(PATH, query(token), NOW)
    else:
        with pytest.raises(TokenNotYetValid, match="too far"):
            signer.verify(PATH, query(token), NOW)


# ---- many paths under one prefix (a playlist's URIs) ----------------------------------------

PREFIX = "/hls/default/movies/a.mp4/"


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(b"n" * 32, id="32-byte key"),
        pytest.param(b"k" * 64, id="one block"),
        pytest.param(b"L" * 100, id="longer than a block"),
    ],
)
@pytest.mark.parametrize(
    ("nbf", "ip"),
    [
        pytest.param(None, None, id="exp only"),
        pytest.param(NOW - 5, "203.0.113.0/24", id="nbf and network"),
        pytest.param(None, "2001:db8::7", id="ipv6"),
    ],
)
def test_path_signer_signs_as_sign_path(secret: bytes, nbf: int | None, ip: str | None) -> None:
    key = SigningKey("k/1 é", secret)  # a kid that urlencode must escape
    signer = Signer([key], key)
    claims = signer.sign_path(PREFIX + "main.m3u8", NOW + 60, nbf=nbf, ip=ip)
    many = signer.path_signer(claims, PREFIX)
    assert many is not None
    for name in ("main-0123456789ab-0.ts", "main-0123456789ab-71.ts", "p720.m3u8", "a b.ts", "é.ts"):
        token = signer.sign_like(claims, PREFIX + name)
        assert many.query(name) == b"?" + token.query_string().encode()
        assert signer.verify(PREFIX + name, query(token), NOW, ip.split("/")[0] if ip else None) == token


@pytest.mark.parametrize("name", ["..", ".", "a\\b.ts", "x\x7f.ts", "e\u0301.ts", "x" * 4096])
def test_path_signer_refuses_what_sign_path_refuses(signer: Signer, name: str) -> None:
    claims = signer.sign_path(PREFIX + "main.m3u8", NOW + 60)
    many = signer.path_signer(claims, PREFIX)
    assert many is not None
    with pytest.raises(InvalidPath):
        signer.sign_like(claims, PREFIX + name)
    with pytest.raises(InvalidPath):
        many.query(name)


def test_path_signer_hands_a_covering_prefix_token_on(signer: Signer) -> None:
    assert signer.path_signer(signer.sign_prefix(PREFIX, NOW + 60), PREFIX) is None
    assert signer.path_signer(signer.sign_prefix("/hls/", NOW + 60), PREFIX) is None
    other = signer.sign_prefix("/hls/default/movies/b.mp4/", NOW + 60)
    assert signer.path_signer(other, PREFIX) is not None  # signs each path, as sign_like would


# ---- verified tokens kept by request (the hot path) ------------------------------------------


def target(path: str, token: Token, extra: str = "") -> str:
    """The request target as a client sends it: path and query."""
    return f"{path}?{token.query_string()}{extra}"


class Asked:
    """A request's parsed query and client address, counting how often they are asked for."""

    def __init__(self, token: Token, client: str | None = None) -> None:
        self.token, self.client, self.queries, self.clients = token, client, 0, 0

    def query(self) -> dict[str, list[str]]:
        self.queries += 1
        return query(self.token)

    def address(self) -> str | None:
        self.clients += 1
        return self.client


@pytest.mark.parametrize(
    ("at", "error"),
    [
        pytest.param(NOW - 31, TokenNotYetValid, id="before-nbf-beyond-skew"),
        pytest.param(NOW - 30, None, id="nbf-within-skew"),
        pytest.param(NOW + 60 + 30, None, id="expiry-within-skew"),
        pytest.param(NOW + 60 + 31, TokenExpired, id="expired-beyond-skew"),
    ],
)
def test_a_kept_token_is_checked_against_each_requests_time(signer: Signer, at: int, error: type[TokenError] | None) -> None:
    """The signature is checked once; expiry, not-before and the longest lifetime at every
    request, to the second, exactly as `Signer.verify` checks them."""
    tokens = VerifiedTokens(signer)
    token = signer.sign_path(PATH, NOW + 60, nbf=NOW)
    asked = Asked(token)
    assert tokens.verify(PATH, target(PATH, token), asked.query, NOW, asked.address) == token  # kept now
    if error is None:
        assert tokens.verify(PATH, target(PATH, token), asked.query, at, asked.address) == token
        signer.verify(PATH, query(token), at)
    else:
        with pytest.raises(error):
            tokens.verify(PATH, target(PATH, token), asked.query, at, asked.address)
        with pytest.raises(error):
            signer.verify(PATH, query(token), at)
    assert asked.queries == 1 and asked.clients == 0  # checked once; no address binding to check


def test_a_kept_token_still_binds_each_request_to_its_address(signer: Signer) -> None:
    tokens = VerifiedTokens(signer)
    token = signer.sign_prefix(PREFIX, NOW + 60, ip="203.0.113.0/24")
    path = PREFIX + "main.m3u8"
    inside, outside = Asked(token, "203.0.113.7"), Asked(token, "198.51.100.1")
    assert tokens.verify(path, target(path, token), inside.query, NOW, inside.address) == token
    with pytest.raises(IpMismatch):
        tokens.verify(path, target(path, token), outside.query, NOW, outside.address)
    with pytest.raises(IpMismatch):
        tokens.verify(path, target(path, token), Asked(token).query, NOW, Asked(token).address)  # no address known
    assert tokens.verify(path, target(path, token), inside.query, NOW, inside.address) == token
    assert (inside.queries, outside.queries, inside.clients, outside.clients) == (1, 0, 2, 1) and len(tokens) == 1


def test_other_requests_are_checked_in_full(signer: Signer) -> None:
    """A kept path token covers its exact request only, a kept prefix token its exact query:
    another query (a forged signature, a parameter more), or a path token on another path, is
    checked from scratch, and a refusal is never kept."""
    tokens = VerifiedTokens(signer)
    token = signer.sign_prefix(PREFIX, NOW + 60)
    main = PREFIX + "main.m3u8"
    tokens.verify(main, target(main, token), lambda: query(token), NOW, lambda: None)
    forged = Token(token.exp, token.kid, "A" * 43, token.scope)
    with pytest.raises(BadSignature):
        tokens.verify(main, target(main, forged), lambda: query(forged), NOW, lambda: None)
    more = Asked(token)
    tokens.verify(main, target(main, token, "&x=1"), more.query, NOW, more.address)
    path_token = signer.sign_path(main, NOW + 60)
    other = PREFIX + "other.m3u8"
    with pytest.raises(BadSignature):  # a path token signs its own path only
        tokens.verify(other, target(other, path_token), lambda: query(path_token), NOW, lambda: None)
    tokens.verify(main, target(main, path_token), more.query, NOW, more.address)
    assert more.queries == 2 and len(tokens) == 3  # the prefix token's two queries, the path token
    with pytest.raises(TokenMissing):
        tokens.verify(main, main, dict, NOW, lambda: None)
    assert len(tokens) == 3


def test_a_kept_prefix_token_covers_its_scope_and_nothing_else(signer: Signer) -> None:
    """Every URI of a title carries the same prefix token: its signature is checked once, and
    each path is still checked for its spelling and for lying under the scope."""
    tokens = VerifiedTokens(signer)
    token = signer.sign_prefix(PREFIX, NOW + 60)
    asked = Asked(token)
    for name in ("main.m3u8", "main-0123456789ab-0.ts", "main-0123456789ab-1.ts"):
        assert tokens.verify(PREFIX + name, target(PREFIX + name, token), asked.query, NOW, asked.address) == token
    outside = "/hls/default/movies/b.mp4/main.m3u8"
    with pytest.raises(ScopeMismatch):
        tokens.verify(outside, target(outside, token), asked.query, NOW, asked.address)
    with pytest.raises(ScopeMismatch):
        signer.verify(outside, query(token), NOW)
    dotted = PREFIX + "../b.mp4/main.m3u8"
    with pytest.raises(InvalidPath):
        tokens.verify(dotted, target(dotted, token), asked.query, NOW, asked.address)
    with pytest.raises(InvalidPath):
        signer.verify(dotted, query(token), NOW)
    assert asked.queries == 1 and len(tokens) == 1


def test_kept_tokens_are_bounded(signer: Signer) -> None:
    tokens = VerifiedTokens(signer, capacity=2)
    for n in range(5):
        path = f"{PREFIX}main-0123456789ab-{n}.ts"
        token = signer.sign_path(path, NOW + 60)
        scoped = signer.sign_prefix(PREFIX, NOW + 60 + n)
        tokens.verify(path, target(path, token), lambda token=token: query(token), NOW, lambda: None)
        tokens.verify(path, target(path, scoped), lambda scoped=scoped: query(scoped), NOW, lambda: None)
    assert len(tokens) == 4  # two of each kind


def test_a_path_signer_is_made_once_per_claims_and_prefix(signer: Signer) -> None:
    claims = signer.sign_path(PREFIX + "main.m3u8", NOW + 60, ip="203.0.113.0/24")
    many = signer.path_signer(claims, PREFIX)
    assert many is not None and signer.path_signer(claims, PREFIX) is many
    other = signer.path_signer(signer.sign_path(PREFIX + "main.m3u8", NOW + 60, ip="203.0.113.7"), PREFIX)
    assert other is not None and other is not many and other.query("a.ts") != many.query("a.ts")
    forged = Token(NOW + 60, claims.kid, claims.sig, None, NOW + 61)  # nbf after exp: refused every time
    for _ in range(2):
        with pytest.raises(ParameterError):
            signer.path_signer(forged, PREFIX)
