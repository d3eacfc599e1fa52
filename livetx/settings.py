"""One frozen, typed settings object, read from TOML and overridden by the environment.

Every key `[section] name` (and nested `[profiles.P.renditions.R] name`) can be overridden by
the environment variable `LIVETX_SECTION_NAME` (upper case, path parts joined by `_`), e.g.
`LIVETX_SERVER_PORT=9000` or `LIVETX_PROFILES_DEFAULT_RENDITIONS_720P_CRF=26`. Lists in the
environment are comma-separated. conf/livetx.toml documents each key.

The dataclasses below are the one source of the defaults and of each key's type and bounds
(`field(metadata=...)`, built with `between`, `at_least`, `above`, `one_of`): the loader
derives the defaults the TOML and environment are merged onto from them, and checks every
value against them, so a bad config is one ConfigError naming the key and what it allows.

Signing keys are loaded here and held in objects whose repr never shows the secret.
"""

from __future__ import annotations

import copy
import hmac
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from livetx.errors import ConfigError
from livetx.media.params import PRESETS
from livetx.scopes import ApiScope, scope_name, scopes_by_key
from livetx.titles import Profile, parse_profile

ENV_PREFIX = "LIVETX"
MIN_KEY_BYTES = 32
MIN_NOTIFY_SECRET_BYTES = 16  # livetx/notify/delivery.py MIN_SECRET_BYTES
MASTER_KID = re.compile(r"[A-Za-z0-9_]{1,16}")  # an encryption master key's id: part of key URLs
DEFAULT_CONFIG = Path("conf/livetx.toml")


# ---- bounds of a setting, in its field's metadata --------------------------------------


def between(low: int, high: int) -> dict[str, Any]:
    return {"min": low, "max": high}


def at_least(low: float) -> dict[str, Any]:
    return {"min": low}


def above(low: float) -> dict[str, Any]:
    return {"above": low}


def one_of(*choices: str) -> dict[str, Any]:
    return {"choices": choices}


def configured_as(kind: type, default: Any) -> dict[str, Any]:
    """A field whose config form differs from its type: `kind` in TOML and the environment
    (keys as "kid:secret" text, a secret as text), `default` when the config leaves it out."""
    return {"config": (kind, default)}


DEFAULT_PROFILES: dict[str, dict[str, Any]] = {"default": {"renditions": {"main": {}}}}


def parse_profiles(tables: Mapping[str, Any]) -> dict[str, Profile]:
    """Every `[profiles.<name>]` table as a typed Profile (a bad one is a ConfigError naming
    it); none configured: the `default` profile of one rendition at the parameters' defaults."""
    return {name: parse_profile(name, table) for name, table in (tables or DEFAULT_PROFILES).items()}


def default_profiles() -> dict[str, Profile]:
    return parse_profiles({})


POSITIVE = above(0)
NON_NEGATIVE = at_least(0)
COUNT = at_least(1)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:  # never show the secret
        return f"SigningKey(kid={self.kid!r})"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=between(1, 65535))
    base_url: str = ""  # public URL of this server; empty: http://host:port
    client_ip_header: str = ""  # header a trusted proxy sets to the client address; empty: the peer
    cors_origins: str = "*"  # comma-separated origins allowed to read responses; "*" any; "" off
    log_format: str = field(default="json", metadata=one_of("json", "text"))
    # seconds a connection may sit without a whole request (slow clients, idle keep-alive)
    idle_timeout: float = field(default=15.0, metadata=POSITIVE)
    metrics_token: str = field(default="", repr=False)  # bearer token /metrics needs; empty: open
    processes: int = field(default=0, metadata=NON_NEGATIVE)  # aiohttp processes on the one port (SO_REUSEPORT); 0: one per core

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
    addressing_style: str = field(default="auto", metadata=one_of("auto", "path", "virtual"))
    presign_ttl: int = field(default=3600, metadata=COUNT)  # seconds a worker's source URL stays valid
    connect_timeout: float = field(default=5.0, metadata=POSITIVE)
    read_timeout: float = field(default=30.0, metadata=POSITIVE)
    max_attempts: int = field(default=3, metadata=COUNT)  # per request, with backoff (botocore's standard retry mode)
    breaker_failures: int = field(default=5, metadata=COUNT)  # failed calls in a row that open the circuit breaker
    breaker_seconds: float = field(default=2.0, metadata=NON_NEGATIVE)  # first open period; doubles while probes fail, up to 10 s
    # bytes of a file written as one object (a job's output): one PUT up to this, else a multipart upload of parts this size
    part_bytes: int = field(default=16 * 1024**2, metadata=between(5 * 1024**2, 5 * 1024**3))


@dataclass(frozen=True)
class CacheSettings:
    local_dir: str = "var/cache"  # local tier in front of S3 output
    local_max_bytes: int = field(default=2 * 1024**3, metadata=NON_NEGATIVE)  # evicts least recently used beyond this; 0: no local tier
    stat_ttl: float = field(default=5.0, metadata=NON_NEGATIVE)  # seconds a source's stat (S3 HEAD, file size and mtime) is reused
    prefetch_limit: int = field(default=64, metadata=NON_NEGATIVE)  # background segments (pre-transcode, lookahead) pending at most
    lookahead: bool = True  # prefetch ahead of playing clients (`ta`, then n+1 and n+2)
    # made segments held until stored; the oldest write-backs beyond are dropped
    memory_max_bytes: int = field(default=512 * 1024**2, metadata=NON_NEGATIVE)
    # segments clients asked for, held in memory (per server process) and sent from there; 0: off
    hot_max_bytes: int = field(default=256 * 1024**2, metadata=NON_NEGATIVE)
    # background segments made ahead per title a minute (bursts up to as many), and per client (its token's claims, or its address)
    prefetch_per_title: int = field(default=120, metadata=NON_NEGATIVE)
    prefetch_per_client: int = field(default=30, metadata=NON_NEGATIVE)
    # seconds a source version that failed to probe answers that error without a new probe
    probe_failure_ttl: float = field(default=60.0, metadata=NON_NEGATIVE)


@dataclass(frozen=True)
class SigningSettings:
    keys: tuple[SigningKey, ...] = field(default=(), metadata=configured_as(str, ""))  # configured as "kid:secret,..."
    active_kid: str = ""
    default_ttl: int = 3600  # from 1 to max_ttl (checked by the loader)
    clock_skew: int = field(default=30, metadata=NON_NEGATIVE)
    max_ttl: int = field(default=7 * 24 * 3600, metadata=COUNT)  # longest lifetime of a signed URL, signing and verifying
    key_file: str = "var/signing.key"  # more keys, one "kid:secret" a line; read if it exists

    @property
    def active(self) -> SigningKey:
        for key in self.keys:
            if key.kid == self.active_kid:
                return key
        if not self.keys:
            raise ConfigError("no signing key configured: set signing.key_file or LIVETX_SIGNING_KEYS")
        return self.keys[0]


@dataclass(frozen=True)
class EncryptionSettings:
    """Content keys of encrypted renditions (issue 18): derived per title version from a master
    key (livetx/crypto/keys.py), never stored. Master keys are held like the signing keys."""

    keys: tuple[SigningKey, ...] = field(default=(), metadata=configured_as(str, ""))  # configured as "kid:secret,..."
    active_kid: str = ""  # the master key new titles are encrypted with; empty: the first
    key_file: str = "var/encryption.key"  # more master keys, one "kid:secret" a line; read if it exists
    key_requests: int = field(default=120, metadata=COUNT)  # key URL requests one token may make per minute ...
    key_burst: int = field(default=60, metadata=COUNT)  # ... and at once (a token bucket of this size, per process)

    @property
    def active(self) -> SigningKey | None:
        """The master key that encrypts new titles; None when none is configured."""
        return next((k for k in self.keys if k.kid == self.active_kid), self.keys[0] if self.keys else None)


@dataclass(frozen=True)
class ApiSettings:
    # bearer keys for /api/v1/*, distinct from the signing keys; configured as "name:secret,..."
    keys: tuple[SigningKey, ...] = field(default=(), metadata=configured_as(str, ""))
    # key name -> its scope; absent: full access. Configured as [api.scopes.<key name>] tables
    scopes: Mapping[str, ApiScope] = field(default_factory=dict, metadata=configured_as(dict, {}))
    key_file: str = "var/api.key"  # more keys, one "name:secret" a line; read if it exists

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

    max_pixels: int = field(default=3840 * 2160, metadata=COUNT)  # output frame width x height
    max_side: int = field(default=4096, metadata=COUNT)  # output frame width or height
    max_fps: int = field(default=60, metadata=COUNT)  # output frame rate
    slowest_preset: str = field(default="medium", metadata=one_of(*PRESETS))  # the slowest x264/x265 preset a job may ask for
    max_renditions: int = field(default=8, metadata=COUNT)  # IMM Targets per request
    max_initd: int = field(default=60000, metadata=NON_NEGATIVE)  # ms pre-transcoded when the playlist is made (initd, InitialTranscode)
    max_duration: int = field(default=21600, metadata=COUNT)  # seconds a composite title made through the APIs may last
    max_job_seconds: int = field(default=4 * 3600, metadata=COUNT)  # seconds of output of one background job (livetx/batch/)
    max_job_bytes: int = field(default=4 * 1024**3, metadata=COUNT)  # bytes of a background job's file output, at most


@dataclass(frozen=True)
class CdnSettings:
    origin_header: str = "X-Livetx-Origin-Auth"  # request header a CDN adds towards the origin
    # its value (configured as text, >= 32 bytes); empty: origin pull needs tokens
    origin_secret: bytes = field(default=b"", repr=False, metadata=configured_as(str, ""))


@dataclass(frozen=True)
class TranscodeSettings:
    workers: int = field(default=0, metadata=NON_NEGATIVE)  # 0: the CPU count
    timeout: float = field(default=120.0, metadata=POSITIVE)
    threads: int = field(default=0, metadata=NON_NEGATIVE)  # encoder threads per transcode; 0: automatic
    max_queue: int = field(default=32, metadata=NON_NEGATIVE)  # client transcodes waiting for a worker, at most; beyond: 503 + Retry-After
    wait_timeout: float = field(default=60.0, metadata=POSITIVE)  # seconds a client waits for its segment, then 503 + Retry-After
    # seconds a header probe may take before its worker is killed (504 probe_timeout)
    probe_timeout: float = field(default=20.0, metadata=POSITIVE)
    # probe worker processes (apart from the transcode workers), started when first needed; 0 counts as 1
    probe_workers: int = field(default=2, metadata=NON_NEGATIVE)
    # a client waiting for a segment being made gets its bytes as they are muxed (chunked)
    stream: bool = True


@dataclass(frozen=True)
class PicturesSettings:
    """Snapshots, posters and storyboards (livetx/pictures.py)."""

    poster_ms: int = field(
        default=-1, metadata=between(-1, 2**31)
    )  # title time of the poster frame; -1: the first bright frame from 10% in
    # pixels; the height follows the aspect (a sheet is at most 20 x 320 = 6400 pixels wide)
    storyboard_tile_width: int = field(default=160, metadata=between(16, 320))
    storyboard_columns: int = field(default=10, metadata=between(1, 20))  # tiles per sheet row ...
    storyboard_rows: int = field(default=10, metadata=between(1, 20))  # ... and rows per sheet
    storyboard_interval_ms: int = field(default=5000, metadata=between(100, 3_600_000))  # one tile per interval ...
    storyboard_max_tiles: int = field(default=300, metadata=COUNT)  # ... longer (whole seconds) when a title would have more tiles
    storyboard_quality: int = field(default=75, metadata=between(1, 100))  # JPEG quality of the sheets


@dataclass(frozen=True)
class ClusterSettings:
    """Coordination between processes and origins: one transcode per segment cluster-wide."""

    # redis:// or rediss:// URL of a Redis/Valkey shared by every origin; empty: none (one
    # origin: in-process singleflight; several processes: lock files in lock_dir)
    redis_url: str = field(default="", repr=False)
    key_prefix: str = "livetx:"  # prefix of every Redis key and channel livetx uses
    lease_ttl: float = field(default=10.0, metadata=POSITIVE)  # seconds a segment lease lives unless renewed
    lock_dir: str = "var/locks"  # host-local lock files: the host's transcode slots, and leases without Redis


@dataclass(frozen=True)
class PlayerSettings:
    hls_js_url: str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js"  # one exact version
    hls_js_integrity: str = "sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg"  # SRI; empty: none
    demo: bool = True  # the demo page at /
    allowed_sources: str = ""  # comma-separated origins /player may load playlists from, besides its own
    frame_ancestors: str = "'self'"  # CSP frame-ancestors of the pages: who may frame them


@dataclass(frozen=True)
class NotifySettings:
    """Webhook notifications (livetx/notify/): where they may go, how long an attempt and the
    retries may take."""

    # targets on loopback, private, link-local and other non-public addresses (checked on the
    # URL and on every address its host name resolves to); tests and closed networks only
    allow_private_targets: bool = False
    connect_timeout: float = field(default=5.0, metadata=POSITIVE)  # seconds to connect to a receiver
    timeout: float = field(default=10.0, metadata=POSITIVE)  # seconds one attempt may take in all
    first_delay: float = field(default=1.0, metadata=POSITIVE)  # seconds before the first retry; doubles after each
    max_delay: float = field(default=600.0, metadata=POSITIVE)  # seconds between two attempts, at most
    max_hours: int = field(default=24, metadata=COUNT)  # retries stop this long after the first attempt
    max_url_length: int = field(default=2048, metadata=COUNT)  # characters of a target URL
    # the HMAC-SHA256 key of every notification (configured as text, >= 16 bytes); empty: jobs
    # asking for a notification are refused
    secret: bytes = field(default=b"", repr=False, metadata=configured_as(str, ""))
    # OSS `/notify,topic_<name>`: topic name -> receiver URL; a topic not listed is only recorded
    topics: Mapping[str, str] = field(default_factory=dict, metadata=configured_as(dict, {}))


@dataclass(frozen=True)
class JobsSettings:
    """Background jobs (livetx/batch/): claims and the runner (pipelines: PipelinesSettings)."""

    run: bool = True  # this process runs jobs; false: it takes, answers and cancels them, and others run them (a viewer-only origin)
    lease_ttl: float = field(default=30.0, metadata=POSITIVE)  # seconds a job's claim lives unless renewed (renewed every third of it)
    poll: float = field(default=2.0, metadata=POSITIVE)  # seconds between two looks for queued jobs (a job submitted here starts at once)
    segments_at_once: int = field(default=2, metadata=COUNT)  # segments one job asks the pool for at once
    progress_every: float = field(default=1.0, metadata=POSITIVE)  # seconds between two progress writes of a job's record, at least


MAX_PIPELINE_CONCURRENCY = 64  # jobs one pipeline runs at once, at most


@dataclass(frozen=True)
class PipelinesSettings:
    """The pipeline `default` (livetx/batch/pipelines.py): what it is until a PUT of
    /api/v1/pipelines/default replaces it, and what a new pipeline's fields left out start as."""

    concurrency: int = field(default=1, metadata=between(1, MAX_PIPELINE_CONCURRENCY))  # jobs run at once
    output_prefix: str = ""  # output key prefix of jobs that name no output; empty: the output store's root
    notify_url: str = ""  # webhook receiver of its jobs (checked as notify.* says); empty: none


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    s3: S3Settings = S3Settings()
    cache: CacheSettings = CacheSettings()
    signing: SigningSettings = SigningSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    api: ApiSettings = ApiSettings()
    limits: LimitsSettings = LimitsSettings()
    cdn: CdnSettings = CdnSettings()
    transcode: TranscodeSettings = TranscodeSettings()
    cluster: ClusterSettings = ClusterSettings()
    pictures: PicturesSettings = PicturesSettings()
    player: PlayerSettings = PlayerSettings()
    notify: NotifySettings = NotifySettings()
    pipelines: PipelinesSettings = PipelinesSettings()
    jobs: JobsSettings = JobsSettings()
    # [profiles.<name>] tables, parsed at load; none configured: the one-rendition `default`
    profiles: Mapping[str, Profile] = field(default_factory=default_profiles)
    base_dir: Path = Path(".")  # the directory relative config paths start from (not a key: where the config was read)

    def path(self, value: str) -> Path:
        """A path from the config, relative to the directory the config was read from."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p


# ---- the keys, derived from the dataclasses -------------------------------------------


def _env_name(path: tuple[str, ...]) -> str:
    return "_".join((ENV_PREFIX, *path)).upper().replace("-", "_").replace(".", "_")


NOUNS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}


def _shown(value: Any) -> str:
    """A value for an error message: numbers and booleans as written, other things by kind
    (a string may be a secret put in the wrong place)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    kinds: dict[type, str] = {str: "a string", list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _from_text(raw: str, kind: type) -> Any:
    """An environment variable's text as a `kind`; ValueError if it is not one."""
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw


@dataclass(frozen=True)
class ConfigKey:
    """One `[section] name` key: its type in TOML and the environment, default and bounds."""

    section: str
    name: str
    kind: type  # bool, int, float, str or dict (a table)
    default: Any
    bounds: Mapping[str, Any]  # min, max, above, choices (see between, at_least, above, one_of)

    @property
    def where(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return _env_name((self.section, self.name))

    def allowed(self) -> str:
        b = self.bounds
        if "choices" in b:
            return "one of " + ", ".join(f'"{choice}"' for choice in b["choices"])
        noun = NOUNS[self.kind]
        if "min" in b and "max" in b:
            return f"{noun} from {b['min']} to {b['max']}"
        if "min" in b:
            return f"{noun} >= {b['min']}"
        if "above" in b:
            return f"{noun} > {b['above']}"
        return noun

    def _fits(self, value: Any) -> bool:
        b = self.bounds
        if "choices" in b:
            return value in b["choices"]
        # `not value >= low` rather than `value < low`, so that NaN is out of bounds too
        too_low = ("min" in b and not value >= b["min"]) or ("above" in b and not value > b["above"])
        return not too_low and not ("max" in b and not value <= b["max"])

    def check(self, value: Any, label: str = "") -> Any:
        """`value` (from TOML, or parsed from the environment) as this key's type, within its bounds."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML `timeout = 20` for 20.0
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)) or not self._fits(value):
            shown = repr(value) if "choices" in self.bounds and isinstance(value, str) else _shown(value)
            raise ConfigError(f"{label or self.where} must be {self.allowed()}, not {shown}")
        return value

    def from_env(self, raw: str) -> Any:
        label = f"environment variable {self.env} ({self.where})"
        try:
            value = _from_text(raw, self.kind)
        except ValueError:
            raise ConfigError(f"{label} must be {self.allowed()}, not {raw[:40]!r}") from None
        return self.check(value, label)


def _config_key(section: str, cls: type, f: Field[Any]) -> ConfigKey:
    if "config" in f.metadata:  # configured in another form than its type (see configured_as)
        kind, default = f.metadata["config"]
    else:
        kind = get_type_hints(cls)[f.name]
        default = f.default_factory() if callable(f.default_factory) else f.default
        if kind not in NOUNS:
            raise TypeError(f"{cls.__name__}.{f.name}: the loader reads {', '.join(t.__name__ for t in NOUNS)}; add configured_as()")
    return ConfigKey(section, f.name, kind, default, f.metadata)


SECTIONS: dict[str, type] = {name: kind for name, kind in get_type_hints(Settings).items() if name not in ("profiles", "base_dir")}
KEYS: dict[str, tuple[ConfigKey, ...]] = {
    section: tuple(_config_key(section, cls, f) for f in fields(cls)) for section, cls in SECTIONS.items()
}


def _defaults() -> dict[str, Any]:
    """The config that the TOML file and the environment are merged onto: every key of the
    dataclasses with its default, in its config form, and no profiles."""
    data: dict[str, Any] = {section: {key.name: copy.deepcopy(key.default) for key in keys} for section, keys in KEYS.items()}
    data["profiles"] = {}
    return data


# ---- loading --------------------------------------------------------------------------


def _coerce(raw: str, like: Any, name: str) -> Any:
    """An environment variable's text as the type of the value it overrides (in a profile or scope table)."""
    try:
        if isinstance(like, list):
            items = [item.strip() for item in raw.split(",") if item.strip()]
            return [_coerce(item, like[0], name) for item in items] if like else items
        return _from_text(raw, type(like) if isinstance(like, bool | int | float) else str)
    except ValueError:
        raise ConfigError(f"environment variable {name} has an invalid value") from None


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


def _check_section(section: str, table: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """One section's keys, each from the environment if set there, else the TOML or default,
    checked against its type and bounds."""
    keys = KEYS[section]
    if not isinstance(table, dict):
        raise ConfigError(f"{section} must be a table ([{section}]), not {_shown(table)}")
    names = [key.name for key in keys]
    for name in table:
        if name not in names:
            raise ConfigError(f"unknown configuration key {section}.{name}; [{section}] has {', '.join(names)}")
    out: dict[str, Any] = {}
    for key in keys:
        if key.env in environ and key.kind is not dict:  # tables: per key inside them (apply_env)
            out[key.name] = key.from_env(environ[key.env])
        else:
            out[key.name] = key.check(table[key.name])
    return out


def _check(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The merged config with the environment applied, every key checked."""
    for name in data:
        if name not in KEYS and name != "profiles":
            raise ConfigError(f"unknown configuration section or key {name!r}; the sections are {', '.join(KEYS)}, profiles")
    out = {section: _check_section(section, data[section], environ) for section in KEYS}
    _env_scopes(out, environ)
    out["api"]["scopes"] = apply_env(out["api"]["scopes"], environ, ("api", "scopes"))
    if not isinstance(data["profiles"], dict):
        raise ConfigError(f"profiles must be tables ([profiles.<name>]), not {_shown(data['profiles'])}")
    out["profiles"] = apply_env(data["profiles"], environ, ("profiles",))
    return out


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
    return _check(data, environ), base_dir


SCOPE_FIELDS = ("operations", "read", "write")


def _env_scopes(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """`LIVETX_API_SCOPES_<KEY NAME>_<OPERATIONS|READ|WRITE>` (comma-separated) adds or
    overrides the table `[api.scopes.<key name>]`; a '-' in a key name is '_' there."""
    prefix = f"{ENV_PREFIX}_API_SCOPES_"
    scopes = data["api"]["scopes"]  # a table (checked)
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
    hex_secrets = section != "api"
    if table.get("keys"):
        keys += parse_keys(str(table["keys"]), f"{section}.keys", hex_secrets)
    if table.get("key_file"):
        path = _relative_to(base_dir, table["key_file"])
        if path.exists():
            keys += parse_keys(path.read_text(), str(path), hex_secrets)
    kids = [k.kid for k in keys]
    if section == "encryption" and not all(MASTER_KID.fullmatch(kid) for kid in kids):
        raise ConfigError("encryption key ids are 1 to 16 letters, digits or '_' (they appear in key URLs)")
    if len(set(kids)) != len(kids):
        raise ConfigError(f"two {section} keys share one key id")
    return keys


def load_settings(config: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    data, base_dir = _read(config, os.environ if environ is None else environ)
    sign, api, cdn = data["signing"], data["api"], data["cdn"]
    keys = _load_keys(sign, "signing", base_dir)
    api_keys = _load_keys(api, "api", base_dir)
    masters = _load_keys(data["encryption"], "encryption", base_dir)
    signing_texts = {k.secret for k in keys} | {k.secret.hex().encode() for k in keys}
    if signing_texts & {k.secret for k in api_keys}:
        raise ConfigError("an API key must not also be a signing key")
    if {k.secret for k in masters} & ({k.secret for k in keys} | {k.secret for k in api_keys}):
        raise ConfigError("an encryption master key must not also be a signing or API key")
    encryption = EncryptionSettings(**{**data["encryption"], "keys": masters})
    if encryption.active_kid and encryption.active_kid not in {k.kid for k in masters}:
        raise ConfigError(f"encryption.active_kid {encryption.active_kid!r} names no configured encryption key")
    api_scopes = scopes_by_key([k.kid for k in api_keys], dict(api["scopes"]))
    signing = SigningSettings(**{**sign, "keys": keys})
    if not 1 <= signing.default_ttl <= signing.max_ttl:
        raise ConfigError(f"signing.default_ttl must be from 1 to signing.max_ttl ({signing.max_ttl} s)")
    origin_secret = cdn["origin_secret"].encode()
    if origin_secret and len(origin_secret) < MIN_KEY_BYTES:
        raise ConfigError(f"cdn.origin_secret is shorter than {MIN_KEY_BYTES} bytes")
    notify = data["notify"]
    notify_secret = notify["secret"].encode()
    if notify_secret and len(notify_secret) < MIN_NOTIFY_SECRET_BYTES:
        raise ConfigError(f"notify.secret is shorter than {MIN_NOTIFY_SECRET_BYTES} bytes")
    topics = notify["topics"]
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in topics.items()):
        raise ConfigError("notify.topics must be a table of topic name = receiver URL")
    skipped = ("signing", "encryption", "api", "cdn", "notify")
    plain = {section: cls(**data[section]) for section, cls in SECTIONS.items() if section not in skipped}
    return Settings(
        **plain,
        signing=signing,
        encryption=encryption,
        api=ApiSettings(keys=api_keys, scopes=api_scopes, key_file=api["key_file"]),
        cdn=CdnSettings(origin_header=cdn["origin_header"], origin_secret=origin_secret),
        notify=NotifySettings(**{**notify, "secret": notify_secret, "topics": dict(topics)}),
        profiles=parse_profiles(data["profiles"]),
        base_dir=base_dir,
    )
