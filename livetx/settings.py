"""One frozen, typed settings object, read from TOML and overridden by the environment.

Every key `[section] name` (and nested `[profiles.P.renditions.R] name`) can be overridden by
the environment variable `LIVETX_SECTION_NAME` (upper case, path parts joined by `_`), e.g.
`LIVETX_SERVER_PORT=9000` or `LIVETX_PROFILES_DEFAULT_RENDITIONS_720P_CRF=26`. Lists in the
environment are comma-separated. conf/livetx.toml documents each key.

Signing keys are loaded here and held in objects whose repr never shows the secret.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livetx.errors import ConfigError

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

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class StorageSettings:
    uri: str = "media"  # where sources live (a directory)
    output_uri: str = ""  # where segments and playlists go; empty: <uri>/.livetx


@dataclass(frozen=True)
class SigningSettings:
    keys: tuple[SigningKey, ...] = ()
    active_kid: str = ""
    default_ttl: int = 3600
    clock_skew: int = 30

    @property
    def active(self) -> SigningKey:
        for key in self.keys:
            if key.kid == self.active_kid:
                return key
        if not self.keys:
            raise ConfigError("no signing key configured: set signing.key_file or LIVETX_SIGNING_KEYS")
        return self.keys[0]


@dataclass(frozen=True)
class TranscodeSettings:
    workers: int = 0  # 0: the CPU count
    timeout: float = 120.0
    threads: int = 0  # encoder threads per transcode; 0: automatic


@dataclass(frozen=True)
class PlayerSettings:
    hls_js_url: str = "https://cdn.jsdelivr.net/npm/hls.js@1/dist/hls.min.js"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    signing: SigningSettings = SigningSettings()
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
        "server": {"host": "127.0.0.1", "port": 8080, "base_url": ""},
        "storage": {"uri": "media", "output_uri": ""},
        "signing": {"key_file": "var/signing.key", "keys": "", "active_kid": "", "default_ttl": 3600, "clock_skew": 30},
        "transcode": {"workers": 0, "timeout": 120.0, "threads": 0},
        "player": {"hls_js_url": PlayerSettings.hls_js_url},
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


def parse_keys(text: str, source: str) -> tuple[SigningKey, ...]:
    """Keys as `kid:secret` items separated by commas or lines; secrets are hex or plain text."""
    keys = []
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    for item in ",".join(lines).split(","):
        item = item.strip()
        if not item:
            continue
        kid, sep, secret = item.partition(":")
        if not sep or not kid or not secret:
            raise ConfigError(f"signing key in {source} must look like kid:secret")
        try:
            raw = bytes.fromhex(secret)
        except ValueError:
            raw = secret.encode()
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigError(f"signing key {kid!r} in {source} is shorter than {MIN_KEY_BYTES} bytes")
        keys.append(SigningKey(kid=kid, secret=raw))
    return tuple(keys)


def generate_key_file(path: Path, kid: str = "k1") -> bool:
    """Write a new random signing key to `path` (mode 0600) unless it exists. True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# livetx signing key, generated; keep it secret\n{kid}:{secrets.token_hex(32)}\n")
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
    return apply_env(data, environ), base_dir


def key_file_path(config: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the signing key file is configured to be (for `livetx keygen`)."""
    data, base_dir = _read(config, os.environ if environ is None else environ)
    return _relative_to(base_dir, data["signing"]["key_file"])


def _relative_to(base_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def load_settings(config: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    data, base_dir = _read(config, os.environ if environ is None else environ)
    sign = data["signing"]
    keys: tuple[SigningKey, ...] = ()
    if sign.get("keys"):
        keys += parse_keys(str(sign["keys"]), "signing.keys")
    if sign.get("key_file"):
        path = _relative_to(base_dir, sign["key_file"])
        if path.exists():
            keys += parse_keys(path.read_text(), str(path))
    kids = [k.kid for k in keys]
    if len(set(kids)) != len(kids):
        raise ConfigError("two signing keys share one key id")
    try:
        return Settings(
            server=ServerSettings(**data["server"]),
            storage=StorageSettings(**data["storage"]),
            signing=SigningSettings(
                keys=keys,
                active_kid=str(sign.get("active_kid", "")),
                default_ttl=int(sign["default_ttl"]),
                clock_skew=int(sign["clock_skew"]),
            ),
            transcode=TranscodeSettings(**data["transcode"]),
            player=PlayerSettings(**data["player"]),
            profiles=data["profiles"],
            base_dir=base_dir,
        )
    except TypeError as exc:
        raise ConfigError(f"unknown or missing configuration key: {exc}") from None
