"""Settings -> the long-lived objects that both the server (livetx/app.py) and the CLI
(livetx/__main__.py) build: the signer, the profiles, the source and output stores, the local
tier, the coordination engine. Nothing here imports aiohttp's web app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from livetx.cache.local_tier import LocalTier
from livetx.cluster.leases import Coordinator
from livetx.cluster.lockfiles import LockFiles
from livetx.crypto.keys import Derived
from livetx.errors import ConfigError
from livetx.settings import Settings
from livetx.signing import Signer
from livetx.storage.base import Storage
from livetx.storage.breaker import CircuitBreaker
from livetx.storage.local import LocalStorage
from livetx.storage.s3 import S3Location, S3Storage, s3_client


def make_key_source(settings: Settings) -> Derived:
    """Content keys, derived from the configured encryption master keys."""
    return Derived({key.kid: key.secret for key in settings.encryption.keys})


def master_kid(settings: Settings) -> str | None:
    """The master key that encrypts titles, if one is configured."""
    active = settings.encryption.active
    return active.kid if active is not None else None


def make_signer(settings: Settings) -> Signer:
    signing = settings.signing
    return Signer(signing.keys, signing.active, signing.clock_skew, signing.max_ttl)


@asynccontextmanager
async def open_storages(settings: Settings) -> AsyncIterator[tuple[Storage, Storage]]:
    """The source and output stores: directories, or S3 URIs sharing one aiobotocore client."""
    uri, output_uri = settings.storage.uri, settings.storage.output_uri
    for value in (uri, output_uri):
        if "://" in value and not value.startswith("s3://"):
            raise ConfigError(f"storage URI scheme not supported: {value.split('://')[0]}:// (use a directory or s3://)")
    async with AsyncExitStack() as stack:
        client = None
        options = settings.s3
        if uri.startswith("s3://") or output_uri.startswith("s3://"):
            client = await stack.enter_async_context(s3_client(options))

        # one breaker for the endpoint: sources and output fail together
        breaker = CircuitBreaker(f"s3 {options.endpoint_url or 'aws'}", options.breaker_failures, options.breaker_seconds)

        def store(value: str) -> Storage:
            if value.startswith("s3://"):
                return S3Storage(client, S3Location.parse(value), options, breaker)
            return LocalStorage(settings.path(value))

        sources = store(uri)
        if output_uri:
            output = store(output_uri)
        elif uri.startswith("s3://"):
            output = S3Storage(client, S3Location.parse(uri).child(".livetx"), options, breaker)
        else:
            output = LocalStorage(settings.path(uri) / ".livetx")
        yield sources, output


def make_tier(settings: Settings, output: Storage, process: int = 0, processes: int = 1) -> LocalTier | None:
    """A local LRU tier in front of remote output (a local output store is its own tier).
    Server process `process` of `processes` on one host gets a folder of its own and its share
    of `cache.local_max_bytes`: the host's bound holds, and no process's startup scan or
    eviction touches another's files."""
    if isinstance(output, LocalStorage) or settings.cache.local_max_bytes <= 0:
        return None
    folder = settings.path(settings.cache.local_dir)
    if processes > 1:
        folder = folder / f"process-{process}"
    tier = LocalTier(folder, max(1, settings.cache.local_max_bytes // processes))
    tier.scan()
    return tier


def make_coordinator(settings: Settings, processes: int = 1) -> Coordinator | None:
    """The engine that makes each segment once across processes and origins (livetx/cluster/):
    Redis when `cluster.redis_url` is set; else lock files in `cluster.lock_dir` when this
    host runs several server processes; else none (the in-process singleflight is enough)."""
    cluster = settings.cluster
    if cluster.redis_url:
        # imported here: the CLI builds its stores from this module and never needs redis (0.2 s of imports)
        from livetx.cluster.redis_engine import RedisCoordinator

        try:
            return RedisCoordinator(cluster.redis_url, cluster.key_prefix, cluster.lease_ttl)
        except ValueError as exc:  # names the scheme, never the URL (it may hold a password)
            raise ConfigError(str(exc)) from None
    if processes > 1:
        return LockFiles(settings.path(cluster.lock_dir) / "leases")
    return None
