from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livetx.errors import (
    BadSignature,
    InvalidPath,
    ScopeMismatch,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenMissing,
    UnknownKey,
)
from livetx.settings import SigningKey
from livetx.signing import Signer, Token

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


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_mutation_of_a_signed_url_verifies(data: st.DataObject) -> None:
    signer = Signer([OLD, NEW], NEW)
    token = signer.sign_path(PATH, NOW + 60)
    fields = {"path": PATH, **token.query()}
    name = data.draw(st.sampled_from(sorted(fields)))
    value = fields[name]
    mutated = data.draw(st.text(min_size=0, max_size=len(value) + 3).filter(lambda v: v != value))
    fields[name] = mutated
    q = {k: [v] for k, v in fields.items() if k != "path" and v}
    with pytest.raises((TokenError, InvalidPath)):
        signer.verify(fields["path"], q, NOW)


def test_readme_worked_example() -> None:
    key = SigningKey("k1", bytes(range(32)))
    token = Signer([key], key).sign_path("/hls/default/sample.mp4/master.m3u8", 1_800_000_000)
    assert token.query_string() == "exp=1800000000&kid=k1&sig=rfoDGW6MBv4CJ8AIBciTLNVMQouqz7awtnswzoXMcrc"
