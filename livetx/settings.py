"""One frozen, typed settings object, read from TOML and overridden by the environment.

Every key `[section] name` (and nested `[profiles.P.renditions.R] name`) can be overridden by
the environment variable `LIVETX_SECTION_NAME` (upper case, path parts joined by `_`), e.g.
`LIVETX_SERVER_PORT=9000` or `LIVETX_PROFILES_DEFAULT_RENDITIONS_720P_CRF=26`. Lists in the
environment are comma-separated. conf/livetx.toml documents each key.

Signing keys are loaded here and held in objects whose repr never shows the secret.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livetx.errors import ConfigError
from livetx.media.params import PRESETS
from livetx.scopes import ApiScope, scope_name, scopes_by_key

ENV_PREFIX = "LIVETX"
MIN_KEY_BYTES = 32
DEFAULT_CONFIG = Path("conf/livetx.toml")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:  # never show the secret
        return f"SigningKey(kid={self.kid!r})"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""  # public URL of this server; empty: http://host:port
    client_ip_header: str = ""  # header a trusted proxy sets to the client address; empty: the peer
    cors_origins: str = "*"  # comma-separated origins allowed to read responses; "*" any; "" off
    log_format: str = "json"  # json | text
    idle_timeout: float = 15.0  # seconds a connection may sit without a whole request (slow clients, idle keep-alive)
    metrics_token: str = field(default="", repr=False)  # bearer token /metrics needs; empty: open

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class StorageSettings:
    uri: str = "media"  # where sources live (a directory)
    output_uri: str = ""  # where segments and playlists go; empty: <uri>/.livetx


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str = ""  # empty: AWS for the region
    region: str = ""
    addressing_style: str = "auto"  # auto | path | virtual
    presign_ttl: int = 3600  # seconds a worker's source URL stays valid
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3  # per request, with backoff (botocore's standard retry mode)
    breaker_failures: int = 5  # failed calls in a row that open the circuit breaker
    breaker_seconds: float = 2.0  # first open period; doubles while probes fail, up to 10 s


@dataclass(frozen=True)
class CacheSettings:
    local_dir: str = "var/cache"  # local tier in front of S3 output
    local_max_bytes: int = 2 * 1024**3  # evicts least recently used beyond this; 0: no local tier
    stat_ttl: float = 5.0  # seconds a source's stat (S3 HEAD, file size and mtime) is reused
    prefetch_limit: int = 64  # background segments (pre-transcode, lookahead) pending at most
    lookahead: bool = True  # prefetch ahead of playing clients (`ta`, then n+1 and n+2)
    memory_max_bytes: int = 512 * 1024**2  # made segments held until stored; the oldest write-backs beyond are dropped
    prefetch_per_title: int = 120  # background segments made ahead per title a minute (bursts up to as many)
    prefetch_per_client: int = 30  # and per client (its token's claims, or its address)
    probe_failure_ttl: float = 60.0  # seconds a source version that failed to probe answers that error without a new probe


@dataclass(frozen=True)
class SigningSettings:
    keys: tuple[SigningKey, ...] = ()
    active_kid: str = ""
    default_ttl: int = 3600
    clock_skew: int = 30
    max_ttl: int = 7 * 24 * 3600  # longest lifetime of a signed URL, signing and verifying

    @property
    def active(self) -> SigningKey:
        for key in self.keys:
            if key.kid == self.active_kid:
                return key
        if not self.keys:
            raise ConfigError("no signing key configured: set signing.key_file or LIVETX_SIGNING_KEYS")
        return self.keys[0]


@dataclass(frozen=True)
class ApiSettings:
    keys: tuple[SigningKey, ...] = ()  # bearer keys for /api/v1/*, distinct from the signing keys
    scopes: Mapping[str, ApiScope] = field(default_factory=dict)  # key name -> its scope; absent: full access

    def scope(self, key: SigningKey) -> ApiScope:
        return self.scopes.get(key.kid) or ApiScope(key.kid)

    def check(self, presented: str) -> SigningKey | None:
        """The key whose secret is `presented`, compared in constant time against every key."""
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.secret, presented.encode()):
                found = key
        return found


@dataclass(frozen=True)
class LimitsSettings:
    """Bounds on jobs made through the playlist APIs (configured profiles are not bound)."""

    max_pixels: int = 3840 * 2160  # output frame width x height
    max_side: int = 4096  # output frame width or height
    max_fps: int = 60  # output frame rate
    slowest_preset: str = "medium"  # the slowest x264/x265 preset a job may ask for
    max_renditions: int = 8  # IMM Targets per request
    max_initd: int = 60000  # ms pre-transcoded when the playlist is made (initd, InitialTranscode)


@dataclass(frozen=True)
class CdnSettings:
    origin_header: str = "X-Livetx-Origin-Auth"  # request header a CDN adds towards the origin
    origin_secret: bytes = field(default=b"", repr=False)  # its value; empty: origin pull needs tokens


@dataclass(frozen=True)
class TranscodeSettings:
    workers: int = 0  # 0: the CPU count
    timeout: float = 120.0
    threads: int = 0  # encoder threads per transcode; 0: automatic
    max_queue: int = 32  # client transcodes waiting for a worker, at most; beyond: 503 + Retry-After
    wait_timeout: float = 60.0  # seconds a client waits for its segment, then 503 + Retry-After
    probe_timeout: float = 20.0  # seconds a header probe may take before its worker is killed (504 probe_timeout)
    probe_workers: int = 2  # probe worker processes (apart from the transcode workers), started when first needed


@dataclass(frozen=True)
class PlayerSettings:
    hls_js_url: str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js"  # one exact version
    hls_js_integrity: str = "sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg"  # SRI; empty: none
    demo: bool = True  # the demo page at /
    allowed_sources: str = ""  # comma-separated origins /player may load playlists from, besides its own
    frame_ancestors: str = "'self'"  # CSP frame-ancestors of the pages: who may frame them


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    s3: S3Settings = S3Settings()
    cache: CacheSettings = CacheSettings()
    signing: SigningSettings = SigningSettings()
    api: ApiSettings = ApiSettings()
    limits: LimitsSettings = LimitsSettings()
    cdn: CdnSettings = CdnSettings()
    transcode: TranscodeSettings = TranscodeSettings()
    player: PlayerSettings = PlayerSettings()
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    base_dir: Path = Path(".")

    def path(self, value: str) -> Path:
        """A path from the config, relative to the directory the config was read from."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p


# ---- loading --------------------------------------------------------------------------


def _env_name(path: tuple[str, ...]) -> str:
    return "_".join((ENV_PREFIX, *path)).upper().replace("-", "_").replace(".", "_")


def _coerce(raw: str, like: Any, name: str) -> Any:
    try:
        if isinstance(like, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, list):
            items = [item.strip() for item in raw.split(",") if item.strip()]
            return [_coerce(item, like[0], name) for item in items] if like else items
    except ValueError:
        raise ConfigError(f"environment variable {name} has an invalid value") from None
    return raw


def apply_env(data: dict[str, Any], environ: Mapping[str, str], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Override every leaf of `data` that has a LIVETX_* variable in `environ`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        here = (*path, key)
        if isinstance(value, dict):
            out[key] = apply_env(value, environ, here)
        else:
            name = _env_name(here)
            out[key] = _coerce(environ[name], value, name) if name in environ else value
    return out


def _defaults() -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1",
            "port": 8080,
            "base_url": "",
            "client_ip_header": "",
            "cors_origins": "*",
            "log_format": "json",
            "idle_timeout": 15.0,
            "metrics_token": "",
        },
        "storage": {"uri": "media", "output_uri": ""},
        "s3": {
            "endpoint_url": "",
            "region": "",
            "addressing_style": "auto",
            "presign_ttl": 3600,
            "connect_timeout": 5.0,
            "read_timeout": 30.0,
            "max_attempts": 3,
            "breaker_failures": 5,
            "breaker_seconds": 2.0,
        },
        "cache": {
            "local_dir": "var/cache",
            "local_max_bytes": 2 * 1024**3,
            "stat_ttl": 5.0,
            "prefetch_limit": 64,
            "lookahead": True,
            "memory_max_bytes": 512 * 1024**2,
            "probe_failure_ttl": 60.0,
            "prefetch_per_title": CacheSettings.prefetch_per_title,
            "prefetch_per_client": CacheSettings.prefetch_per_client,
        },
        "signing": {
            "key_file": "var/signing.key",
            "keys": "",
            "active_kid": "",
            "default_ttl": 3600,
            "clock_skew": 30,
            "max_ttl": SigningSettings.max_ttl,
        },
        "api": {"key_file": "var/api.key", "keys": "", "scopes": {}},
        "limits": {
            "max_pixels": LimitsSettings.max_pixels,
            "max_side": LimitsSettings.max_side,
            "max_fps": LimitsSettings.max_fps,
            "slowest_preset": LimitsSettings.slowest_preset,
            "max_renditions": LimitsSettings.max_renditions,
            "max_initd": LimitsSettings.max_initd,
        },
        "cdn": {"origin_header": CdnSettings.origin_header, "origin_secret": ""},
        "transcode": {
            "workers": 0,
            "timeout": 120.0,
            "threads": 0,
            "max_queue": 32,
            "wait_timeout": 60.0,
            "probe_timeout": 20.0,
            "probe_workers": 2,
        },
        "player": {
            "hls_js_url": PlayerSettings.hls_js_url,
            "hls_js_integrity": PlayerSettings.hls_js_integrity,
            "demo": True,
            "allowed_sources": "",
            "frame_ancestors": PlayerSettings.frame_ancestors,
        },
        "profiles": {},
    }


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_keys(text: str, source: str, hex_secrets: bool = True) -> tuple[SigningKey, ...]:
    """Keys as `kid:secret` items separated by commas or lines; secrets are hex or plain text
    (API keys, which clients present as they are written, always plain text)."""
    keys = []
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    for item in ",".join(lines).split(","):
        item = item.strip()
        if not item:
            continue
        kid, sep, secret = item.partition(":")
        if not sep or not kid or not secret:
            raise ConfigError(f"key in {source} must look like kid:secret")
        try:
            raw = bytes.fromhex(secret) if hex_secrets else secret.encode()
        except ValueError:
            raw = secret.encode()
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigError(f"key {kid!r} in {source} is shorter than {MIN_KEY_BYTES} bytes")
        keys.append(SigningKey(kid=kid, secret=raw))
    return tuple(keys)


def generate_key_file(path: Path, kid: str = "k1", what: str = "signing key") -> bool:
    """Write a new random key to `path` (mode 0600) unless it exists. True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# livetx {what}, generated; keep it secret\n{kid}:{secrets.token_hex(32)}\n")
    return True


def _read(config: Path | None, environ: Mapping[str, str]) -> tuple[dict[str, Any], Path]:
    """Defaults, then the TOML file (conf/livetx.toml if present), then the environment."""
    if config is None and environ.get(f"{ENV_PREFIX}_CONFIG"):
        config = Path(environ[f"{ENV_PREFIX}_CONFIG"])
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    data = _defaults()
    base_dir = Path(".")
    if config is not None:
        try:
            with open(config, "rb") as fh:
                data = _merge(data, tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {config}: {exc}") from None
        # paths in conf/livetx.toml are relative to the project directory above conf/
        folder = config.resolve().parent
        base_dir = folder.parent if folder.name == "conf" else folder
    _env_scopes(data, environ)
    return apply_env(data, environ), base_dir


SCOPE_FIELDS = ("operations", "read", "write")


def _env_scopes(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """`LIVETX_API_SCOPES_<KEY NAME>_<OPERATIONS|READ|WRITE>` (comma-separated) adds or
    overrides the table `[api.scopes.<key name>]`; a '-' in a key name is '_' there."""
    prefix = f"{ENV_PREFIX}_API_SCOPES_"
    scopes = data["api"].setdefault("scopes", {})
    if not isinstance(scopes, dict):
        raise ConfigError("api.scopes must be a table of tables, one per API key name")
    for name, value in environ.items():
        if not name.startswith(prefix):
            continue
        key, _, part = name[len(prefix) :].rpartition("_")
        if not key or part.lower() not in SCOPE_FIELDS:
            raise ConfigError(f"environment variable {name}: expected {prefix}<KEY NAME>_OPERATIONS, _READ or _WRITE")
        table_name = next((n for n in scopes if scope_name(n) == key.lower()), key.lower())
        table = scopes.setdefault(table_name, {})
        if isinstance(table, dict):
            table[part.lower()] = [item.strip() for item in value.split(",") if item.strip()]


def key_file_path(config: Path | None = None, environ: Mapping[str, str] | None = None, section: str = "signing") -> Path:
    """Where the signing (or, with section="api", the API) key file is configured to be."""
    data, base_dir = _read(config, os.environ if environ is None else environ)
    return _relative_to(base_dir, data[section]["key_file"])


def _relative_to(base_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def _load_keys(table: Mapping[str, Any], section: str, base_dir: Path) -> tuple[SigningKey, ...]:
    """Keys from `<section>.keys` (meant for the environment) and `<section>.key_file`."""
    keys: tuple[SigningKey, ...] = ()
    hex_secrets = section == "signing"
    if table.get("keys"):
        keys += parse_keys(str(table["keys"]), f"{section}.keys", hex_secrets)
    if table.get("key_file"):
        path = _relative_to(base_dir, table["key_file"])
        if path.exists():
            keys += parse_keys(path.read_text(), str(path), hex_secrets)
    kids = [k.kid for k in keys]
    if len(set(kids)) != len(kids):
        raise ConfigError(f"two {section} keys share one key id")
    return keys


def load_settings(config: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    data, base_dir = _read(config, os.environ if environ is None else environ)
    sign = data["signing"]
    keys = _load_keys(sign, "signing", base_dir)
    api_keys = _load_keys(data["api"], "api", base_dir)
    signing_texts = {k.secret for k in keys} | {k.secret.hex().encode() for k in keys}
    if signing_texts & {k.secret for k in api_keys}:
        raise ConfigError("an API key must not also be a signing key")
    api_scopes = scopes_by_key([k.kid for k in api_keys], dict(data["api"].get("scopes") or {}))
    signing = SigningSettings(
        keys=keys,
        active_kid=str(sign.get("active_kid", "")),
        default_ttl=int(sign["default_ttl"]),
        clock_skew=int(sign["clock_skew"]),
        max_ttl=int(sign["max_ttl"]),
    )
    if not 1 <= signing.default_ttl <= signing.max_ttl:
        raise ConfigError(f"signing.default_ttl must be from 1 to signing.max_ttl ({signing.max_ttl} s)")
    try:
        limits = LimitsSettings(**data["limits"])
    except TypeError as exc:
        raise ConfigError(f"unknown or missing configuration key: {exc}") from None
    if limits.slowest_preset not in PRESETS:
        raise ConfigError(f"limits.slowest_preset must be one of {', '.join(PRESETS)}")
    cdn = data["cdn"]
    origin_secret = str(cdn.get("origin_secret", "")).encode()
    if origin_secret and len(origin_secret) < MIN_KEY_BYTES:
        raise ConfigError(f"cdn.origin_secret is shorter than {MIN_KEY_BYTES} bytes")
    try:
        return Settings(
            server=ServerSettings(**data["server"]),
            storage=StorageSettings(**data["storage"]),
            s3=S3Settings(**data["s3"]),
            cache=CacheSettings(**data["cache"]),
            signing=signing,
            api=ApiSettings(keys=api_keys, scopes=api_scopes),
            limits=limits,
            cdn=CdnSettings(origin_header=str(cdn["origin_header"]), origin_secret=origin_secret),
            transcode=TranscodeSettings(**data["transcode"]),
            player=PlayerSettings(**data["player"]),
            profiles=data["profiles"],
            base_dir=base_dir,
        )
    except TypeError as exc:
        raise ConfigError(f"unknown or missing configuration key: {exc}") from None
