from __future__ import annotations

import stat
from pathlib import Path

import pytest

from livetx.errors import ConfigError
from livetx.settings import generate_key_file, load_settings, parse_keys

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf" / "livetx.toml"


def test_documented_config_loads_with_env_overrides() -> None:
    env = {
        "LIVETX_SERVER_PORT": "9123",
        "LIVETX_STORAGE_URI": "/srv/media",
        "LIVETX_SIGNING_KEYS": "a:" + "ab" * 32,
        "LIVETX_SIGNING_KEY_FILE": "",
        "LIVETX_PROFILES_DEFAULT_RENDITIONS_MAIN_CRF": "27",
        "LIVETX_PROFILES_DEFAULT_INITIAL_SEGMENTS": "3000,3000",
    }
    settings = load_settings(CONF, env)
    assert settings.server.port == 9123
    assert settings.storage.uri == "/srv/media"
    assert settings.signing.active.kid == "a"
    assert settings.profiles["default"]["renditions"]["main"]["crf"] == 27
    assert settings.profiles["default"]["initial_segments"] == [3000, 3000]


def test_bad_env_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LIVETX_SERVER_PORT"):
        load_settings(CONF, {"LIVETX_SERVER_PORT": "eighty"})


def test_short_key_refused() -> None:
    with pytest.raises(ConfigError, match="shorter"):
        parse_keys("k:short", "test")


def test_generated_key_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "var" / "signing.key"
    assert generate_key_file(path)
    assert not generate_key_file(path)  # never overwritten
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings(CONF, {"LIVETX_SIGNING_KEY_FILE": str(path)})
    key = settings.signing.active
    assert len(key.secret) == 32 and key.secret.hex() not in repr(settings)


def test_no_key_is_a_clear_error() -> None:
    settings = load_settings(CONF, {"LIVETX_SIGNING_KEY_FILE": "/nonexistent/key"})
    with pytest.raises(ConfigError, match="no signing key"):
        _ = settings.signing.active


BASE_ENV = {"LIVETX_SIGNING_KEYS": "a:" + "ab" * 32, "LIVETX_SIGNING_KEY_FILE": "", "LIVETX_API_KEY_FILE": ""}


def test_api_keys_and_cdn_secret_load_without_showing_secrets() -> None:
    env = {**BASE_ENV, "LIVETX_API_KEYS": "ops:" + "s" * 40, "LIVETX_CDN_ORIGIN_SECRET": "c" * 40}
    settings = load_settings(CONF, env)
    assert settings.api.check("s" * 40) is not None and settings.api.check("s" * 39) is None
    assert settings.cdn.origin_secret == b"c" * 40
    assert "sss" not in repr(settings) and "ccc" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"LIVETX_API_KEYS": "ops:short"}, "shorter than 32", id="short-api-key"),
        pytest.param({"LIVETX_API_KEYS": "ops:" + "ab" * 32}, "must not also be a signing key", id="api-key-is-signing-key"),
        pytest.param({"LIVETX_CDN_ORIGIN_SECRET": "tiny"}, "origin_secret", id="short-cdn-secret"),
    ],
)
def test_weak_or_shared_secrets_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(CONF, {**BASE_ENV, **env})


def test_generated_api_key_file_is_presented_as_written(tmp_path: Path) -> None:
    path = tmp_path / "api.key"
    generate_key_file(path, "local", "API key")
    presented = path.read_text().splitlines()[-1].split(":", 1)[1]
    settings = load_settings(CONF, {**BASE_ENV, "LIVETX_API_KEY_FILE": str(path)})
    assert settings.api.check(presented) is not None


def test_max_ttl_bounds_default_ttl() -> None:
    assert load_settings(CONF, BASE_ENV).signing.max_ttl == 604800
    with pytest.raises(ConfigError, match="default_ttl"):
        load_settings(CONF, {**BASE_ENV, "LIVETX_SIGNING_DEFAULT_TTL": "700000"})
    with pytest.raises(ConfigError, match="default_ttl"):
        load_settings(CONF, {**BASE_ENV, "LIVETX_SIGNING_MAX_TTL": "60"})


def test_api_scopes_from_toml_and_environment(tmp_path: Path) -> None:
    conf = tmp_path / "livetx.toml"
    conf.write_text('[api.scopes.backend-1]\noperations = ["sign"]\nread = ["movies/"]\n')
    env = {**BASE_ENV, "LIVETX_API_KEYS": "backend-1:" + "b" * 40 + ",ops:" + "o" * 40 + ",cdn:" + "c" * 40}
    settings = load_settings(conf, {**env, "LIVETX_API_SCOPES_BACKEND_1_WRITE": "out/", "LIVETX_API_SCOPES_CDN_OPERATIONS": "sources"})
    [backend, ops, cdn] = settings.api.keys
    scope = settings.api.scope(backend)
    assert scope.operations == {"sign"} and scope.read == ("movies/",) and scope.write == ("out/",)
    assert scope.may_read("movies/a.mp4") and not scope.may_read("movies-private/a.mp4") and not scope.may_read("a.mp4")
    assert settings.api.scope(cdn).operations == {"sources"} and settings.api.scope(cdn).read == ()
    full = settings.api.scope(ops)  # no table: full access
    assert full.operations == {"sign", "playlists", "sources", "titles"} and full.may_read("anything/at/all")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"LIVETX_API_SCOPES_NOBODY_OPERATIONS": "sign"}, "names no configured API key", id="unknown-key"),
        pytest.param({"LIVETX_API_SCOPES_OPS_OPERATIONS": "sign,delete"}, "unknown operation 'delete'", id="unknown-operation"),
        pytest.param({"LIVETX_API_SCOPES_OPS_READ": "../x"}, "not a key prefix", id="bad-prefix"),
        pytest.param({"LIVETX_API_SCOPES_OPS_DELETE": "x"}, "_OPERATIONS, _READ or _WRITE", id="unknown-field"),
        pytest.param({"LIVETX_LIMITS_SLOWEST_PRESET": "placebo"}, "slowest_preset", id="bad-preset"),
    ],
)
def test_bad_scopes_and_limits_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(CONF, {**BASE_ENV, "LIVETX_API_KEYS": "ops:" + "o" * 40, **env})
