"""What one API key may do: its operations, and the keys it may read from and write to.
Pure: no aiohttp, no storage I/O.

A key with a scope table `[api.scopes.<key name>]` may only run the listed `operations` and
touch the listed prefixes; a key without one has full access (`make run`'s generated key is
such a key). Entries of `read` are source keys or prefixes of them in the source store, of
`write` keys or prefixes in the output store, in the store's own terms (with
`storage.uri = "s3://media/library"`, "movies/" means s3://media/library/movies/):

    "movies/"      every key under movies/ (an entry ending in "/" is a folder)
    "movies/a.mp4" that key, and every key under movies/a.mp4/
    "*"            everything

An entry never matches by a bare string prefix: "movies" does not cover "movies-private/x".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from livetx.errors import ApiKeyScope, ConfigError

SIGN = "sign"  # POST /api/v1/sign
PLAYLISTS = "playlists"  # POST /api/v1/playlists (IMM) and POST /<key>?x-oss-process (OSS)
SOURCES = "sources"  # GET /api/v1/sources
TITLES = "titles"  # GET /api/v1/titles/<profile>/<key>
TEMPLATES = "templates"  # PUT, GET, DELETE /api/v1/templates[/<name>]
PIPELINES = "pipelines"  # PUT, GET, DELETE /api/v1/pipelines[/<name>]
COMPOSITES = "composites"  # POST /api/v1/composites (and OSS video/concat played on demand, as `playlists`)
JOBS = "jobs"  # /api/v1/jobs (submit, list, status, cancel) and POST /<key>?x-oss-async-process
OPERATIONS = (SIGN, PLAYLISTS, SOURCES, TITLES, TEMPLATES, PIPELINES, COMPOSITES, JOBS)
EVERYTHING = "*"


def _folder(entry: str) -> str:
    return entry if entry.endswith("/") else entry + "/"


def _covers_key(entries: tuple[str, ...], key: str) -> bool:
    return any(e == EVERYTHING or key == e or key.startswith(_folder(e)) for e in entries)


def _covers_prefix(entries: tuple[str, ...], prefix: str) -> bool:
    """Every key that starts with `prefix` (which ends in "/") is covered."""
    return any(e == EVERYTHING or prefix.startswith(_folder(e)) for e in entries)


@dataclass(frozen=True)
class ApiScope:
    name: str  # the API key's name (the `name` of `name:secret`)
    operations: frozenset[str] = frozenset(OPERATIONS)
    read: tuple[str, ...] = (EVERYTHING,)
    write: tuple[str, ...] = (EVERYTHING,)

    @classmethod
    def from_table(cls, name: str, table: object) -> ApiScope:
        """`[api.scopes.<name>]`: `operations`, `read` and `write` lists (missing: none)."""
        if not isinstance(table, dict):
            raise ConfigError(f"api.scopes.{name} must be a table with operations, read and write lists")
        unknown = sorted(set(table) - {"operations", "read", "write"})
        if unknown:
            raise ConfigError(f"api.scopes.{name}: unknown key {unknown[0]!r} (operations, read, write)")
        lists = {}
        for field in ("operations", "read", "write"):
            value = table.get(field, [])
            if isinstance(value, str):
                value = [item.strip() for item in value.split(",") if item.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"api.scopes.{name}.{field} must be a list of strings")
            lists[field] = tuple(value)
        bad = sorted(set(lists["operations"]) - set(OPERATIONS))
        if bad:
            raise ConfigError(f"api.scopes.{name}.operations: unknown operation {bad[0]!r} (one of {', '.join(OPERATIONS)})")
        for field in ("read", "write"):
            for entry in lists[field]:
                if entry != EVERYTHING and (entry.startswith("/") or any(s in ("", ".", "..") for s in entry.rstrip("/").split("/"))):
                    raise ConfigError(f"api.scopes.{name}.{field}: {entry!r} is not a key prefix such as 'movies/' (or '*')")
        return cls(name, frozenset(lists["operations"]), lists["read"], lists["write"])

    def may(self, operation: str) -> bool:
        return operation in self.operations

    def check_operation(self, operation: str) -> None:
        if operation not in self.operations:
            raise ApiKeyScope(f"API key {self.name!r} may not use the {operation!r} operation", operation=operation)

    def may_read(self, key: str) -> bool:
        return _covers_key(self.read, key)

    def check_read(self, key: str, field: str) -> None:
        if not _covers_key(self.read, key):
            raise ApiKeyScope(f"API key {self.name!r} may not read source {key!r}", parameter=field, refused="read")

    def check_read_prefix(self, prefix: str, field: str) -> None:
        if not _covers_prefix(self.read, prefix):
            raise ApiKeyScope(f"API key {self.name!r} may not read every source under {prefix!r}", parameter=field, refused="read")

    def may_write(self, key: str) -> bool:
        return _covers_key(self.write, key)

    def check_write(self, key: str, field: str) -> None:
        if not _covers_key(self.write, key):
            raise ApiKeyScope(f"API key {self.name!r} may not write to {key!r}", parameter=field, refused="write")


def scope_name(name: str) -> str:
    """One spelling of a key name in config tables and the environment (LIVETX_API_SCOPES_<NAME>_*)."""
    return name.lower().replace("-", "_")


def scopes_by_key(key_names: Iterable[str], tables: dict[str, object]) -> dict[str, ApiScope]:
    """Scope of each key that has a table; a table naming no key is a config error (a typo
    would otherwise leave that key with full access)."""
    names = {scope_name(n): n for n in key_names}
    out = {}
    for table_name, table in tables.items():
        key = names.get(scope_name(table_name))
        if key is None:
            raise ConfigError(f"api.scopes.{table_name} names no configured API key")
        out[key] = ApiScope.from_table(key, table)
    return out
