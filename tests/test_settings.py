from __future__ import annotations

import re
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from livetx.errors import ConfigError
from livetx.settings import (
    KEYS,
    SECTIONS,
    CacheSettings,
    CdnSettings,
    Settings,
    SigningSettings,
    _defaults,
    generate_key_file,
    load_settings,
    parse_keys,
)

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
    [main] = settings.profiles["default"].renditions
    assert main.params.crf == 27 and main.title.initial_segments == (3000, 3000)


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
    assert full.operations == {"sign", "playlists", "sources", "titles", "templates", "pipelines", "composites", "jobs"}
    assert full.may_read("anything/at/all")


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


# ---- one source of defaults, checked values ----------------------------------------------


def test_documented_config_matches_the_defaults() -> None:
    """conf/livetx.toml documents every key the dataclasses have, with their default, and no other (profiles are examples)."""
    text = CONF.read_text()
    documented = tomllib.loads(text)
    assert set(documented) == {*KEYS, "profiles"}
    defaults = _defaults()
    for section in KEYS:
        expected = dict(defaults[section])
        if section == "api":
            assert "# [api.scopes." in text  # documented by a commented-out example table
            assert expected.pop("scopes") == {}
        assert documented[section] == expected, section
        for name, value in expected.items():
            assert type(documented[section][name]) is type(value), f"{section}.{name}"


def test_defaults_come_from_the_dataclasses(tmp_path: Path) -> None:
    empty = tmp_path / "livetx.toml"
    empty.write_text("")
    loaded = load_settings(empty, {})
    for section, cls in SECTIONS.items():
        if section not in ("signing", "api", "cdn"):
            assert getattr(loaded, section) == cls(), section
    assert loaded.signing == SigningSettings() and loaded.cdn == CdnSettings()
    assert (loaded.api.keys, loaded.api.scopes, loaded.api.key_file) == ((), {}, "var/api.key")
    # the documented file gives the same settings, apart from its example profiles and where it lives
    documented = load_settings(CONF, {})
    # without the keys of var/*.key, which may exist
    documented = replace(documented, signing=replace(documented.signing, keys=()), api=replace(documented.api, keys=()))
    assert replace(documented, profiles={}, base_dir=loaded.base_dir) == replace(loaded, profiles={})
    assert Settings().server == loaded.server


def test_toml_integer_for_a_number_is_a_float(tmp_path: Path) -> None:
    conf = tmp_path / "livetx.toml"
    conf.write_text("[server]\nidle_timeout = 20\n[cache]\nstat_ttl = 0\n")
    settings = load_settings(conf, {"LIVETX_CACHE_LOOKAHEAD": "off"})
    assert settings.server.idle_timeout == 20.0 and isinstance(settings.server.idle_timeout, float)
    assert isinstance(settings.cache.stat_ttl, float) and settings.cache == replace(CacheSettings(), stat_ttl=0.0, lookahead=False)


BAD_CONFIGS = [
    # (TOML text, environment, the whole error or its start)
    pytest.param("[server]\nport = 70000", {}, "server.port must be an integer from 1 to 65535, not 70000", id="port-range"),
    pytest.param("[server]\nport = 8080.0", {}, "server.port must be an integer from 1 to 65535, not 8080.0", id="port-float"),
    pytest.param("[server]\nport = true", {}, "server.port must be an integer from 1 to 65535, not true", id="port-bool"),
    pytest.param('[server]\nport = "s3cr3t"', {}, "server.port must be an integer from 1 to 65535, not a string", id="port-string"),
    pytest.param(
        "",
        {"LIVETX_SERVER_PORT": "0"},
        "environment variable LIVETX_SERVER_PORT (server.port) must be an integer from 1 to 65535, not 0",
        id="env-port-0",
    ),
    pytest.param(
        '[server]\nport = "x"',
        {"LIVETX_SERVER_PORT": "eighty"},
        "environment variable LIVETX_SERVER_PORT (server.port) must be an integer from 1 to 65535, not 'eighty'",
        id="env-port-text",
    ),
    pytest.param('[server]\nlog_format = "xml"', {}, 'server.log_format must be one of "json", "text", not \'xml\'', id="log-format"),
    pytest.param(
        "",
        {"LIVETX_S3_ADDRESSING_STYLE": "dns"},
        'environment variable LIVETX_S3_ADDRESSING_STYLE (s3.addressing_style) must be one of "auto", "path", "virtual"',
        id="addressing-style",
    ),
    pytest.param("[server]\nidle_timeout = 0", {}, "server.idle_timeout must be a number > 0, not 0.0", id="timeout-zero"),
    pytest.param("", {"LIVETX_TRANSCODE_TIMEOUT": "nan"}, "(transcode.timeout) must be a number > 0, not nan", id="timeout-nan"),
    pytest.param("[s3]\nread_timeout = -1.5", {}, "s3.read_timeout must be a number > 0, not -1.5", id="negative-timeout"),
    pytest.param("[cache]\nlocal_max_bytes = -1", {}, "cache.local_max_bytes must be an integer >= 0, not -1", id="negative-size"),
    pytest.param("", {"LIVETX_TRANSCODE_MAX_QUEUE": "-1"}, "(transcode.max_queue) must be an integer >= 0, not -1", id="negative-count"),
    pytest.param("[s3]\nmax_attempts = 0", {}, "s3.max_attempts must be an integer >= 1, not 0", id="no-attempts"),
    pytest.param("[limits]\nmax_fps = 30.5", {}, "limits.max_fps must be an integer >= 1, not 30.5", id="fps-float"),
    pytest.param("", {"LIVETX_CACHE_LOOKAHEAD": "maybe"}, "(cache.lookahead) must be true or false, not 'maybe'", id="env-bool"),
    pytest.param("[cache]\nlookahead = 1", {}, "cache.lookahead must be true or false, not 1", id="toml-bool"),
    pytest.param("[signing]\nactive_kid = 1", {}, "signing.active_kid must be a string, not 1", id="kid-number"),
    pytest.param("[signing]\nclock_skew = -5", {}, "signing.clock_skew must be an integer >= 0, not -5", id="negative-skew"),
    pytest.param("[cdn]\norigin_secret = [1]", {}, "cdn.origin_secret must be a string, not an array", id="secret-array"),
    pytest.param('[api]\nscopes = "all"', {}, "api.scopes must be a table, not a string", id="scopes-string"),
    pytest.param("[server]\nprot = 1", {}, "unknown configuration key server.prot; [server] has host, port,", id="unknown-key"),
    pytest.param('[signing]\nkey = "x"', {}, "unknown configuration key signing.key; [signing] has keys,", id="unknown-signing-key"),
    pytest.param(
        "[serverr]\nport = 1", {}, "unknown configuration section or key 'serverr'; the sections are server,", id="unknown-section"
    ),
    pytest.param("port = 1", {}, "unknown configuration section or key 'port'", id="key-outside-a-section"),
    pytest.param("server = 5", {}, "server must be a table ([server]), not 5", id="section-not-a-table"),
    pytest.param("[server.port]\nx = 1", {}, "server.port must be an integer from 1 to 65535, not a table", id="key-as-table"),
    pytest.param("profiles = 1", {}, "profiles must be tables ([profiles.<name>]), not 1", id="profiles-not-tables"),
    pytest.param('[limits]\nslowest_preset = "placebo"', {}, 'limits.slowest_preset must be one of "ultrafast",', id="preset"),
]


@pytest.mark.parametrize(("toml", "env", "message"), BAD_CONFIGS)
def test_bad_value_is_one_error_naming_the_key(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    conf = tmp_path / "livetx.toml"
    conf.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_settings(conf, env)
    assert "s3cr3t" not in str(caught.value)  # a string value is never echoed: it may be a secret in the wrong place
