"""Pipelines: named job queues, each with its own concurrency, pause switch, default output
location and webhook target, kept in output storage.

The pipeline `default` always exists: until a PUT of /api/v1/pipelines/default keeps a record
of it, it is what `[pipelines]` in the settings says; it can be changed and paused, never
deleted (409). A PUT creates or updates: a field left out keeps its current value (a new
pipeline's start as `[pipelines]` says), so pausing is `{"Paused": true}`. `NotifyURL` is
checked as every webhook target is (livetx/notify/delivery.py: http(s), no credentials, no
private address unless `notify.allow_private_targets`); "" removes it. `OutputPrefix` is a key
prefix in output storage, checked as an output key is (no hidden part, not inside a
configured profile's area); "" is the store's root.

How a job uses its pipeline (`"Pipeline": "<name>"` in POST /api/v1/jobs; default `default`):
- at submission: an unknown name is a 400 naming `Pipeline`; an `Output.URI` with no scheme
  (`clips/a.mp4`) is the key `<OutputPrefix>/clips/a.mp4` (under_prefix), an oss:// or s3://
  URI is used as given; the job's webhook is its own `Notify.URL` (or OSS topic), else the
  pipeline's `NotifyURL`, as it is then (kept in the record);
- when it runs (livetx/batch/runner.py, which reads each pipeline's record at most once a
  second): at most `Concurrency` of the pipeline's jobs run at once (fleet-wide with Redis,
  per host without); none starts while it is `Paused`, and un-pausing lets them start at the
  runner's next look. A job whose pipeline was deleted fails (`PipelineNotFound`).
Records are JSON under `layout.pipeline_key(name)`.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from livetx.batch.record import DEFAULT_PIPELINE
from livetx.batch.templates import NAME_PATTERN, check_name
from livetx.contract import Field, Integer, Invalid, Shape, Spec, Text
from livetx.errors import ConfigError, LivetxError, ParameterError, PipelineNotFound, PipelineProtected, WebhookTargetInvalid
from livetx.jobs import KeyFor
from livetx.layout import PIPELINES_PREFIX, pipeline_key, profile_area, record_name
from livetx.notify.delivery import check_url
from livetx.settings import MAX_PIPELINE_CONCURRENCY, NotifySettings, PipelinesSettings, Settings
from livetx.storage.base import Storage, check_key, is_hidden

DEFAULT = DEFAULT_PIPELINE  # always exists
RECORD_VERSION = 1
MAX_LISTED = 1000


@dataclass(frozen=True)
class Flag(Spec):
    """A JSON boolean, nothing else (no 0/1, no "true")."""

    def parse(self, raw: Any) -> bool:
        if not isinstance(raw, bool):
            raise Invalid()
        return raw

    @property
    def allowed(self) -> str:
        return "true or false"

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


PIPELINE_REQUEST = Shape(
    {
        "Concurrency": Field(Integer(1, MAX_PIPELINE_CONCURRENCY, json_only=True), doc="jobs of this pipeline run at once; left out: kept"),
        "Paused": Field(Flag(), doc="true: no new job of this pipeline starts (running ones finish); left out: kept"),
        "OutputPrefix": Field(
            Text("an output key prefix such as jobs/out/, or empty", max_length=1024),
            doc="where jobs of this pipeline that name no output write (a key prefix in output storage); empty: the root",
        ),
        "NotifyURL": Field(
            Text("an http(s) URL, or empty", max_length=4096),
            doc="the webhook receiver of this pipeline's jobs (a job may name its own); empty: none",
        ),
    },
    doc="A pipeline: PUT /api/v1/pipelines/{name}; fields left out keep their values",
)
FIELDS = {"concurrency": "Concurrency", "paused": "Paused", "output_prefix": "OutputPrefix", "notify_url": "NotifyURL"}


@dataclass(frozen=True)
class Pipeline:
    name: str
    concurrency: int = 1
    paused: bool = False
    output_prefix: str = ""
    notify_url: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "name": self.name, **{key: getattr(self, key) for key in FIELDS}}

    @classmethod
    def from_record(cls, record: Any) -> Pipeline:
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
            raise ValueError("not a pipeline record")
        return cls(record["name"], **{key: record[key] for key in FIELDS})

    def to_json(self) -> dict[str, Any]:
        return {"Name": self.name, **{json_name: getattr(self, key) for key, json_name in FIELDS.items()}}


def check_output_prefix(prefix: str, profile_names: set[str], field: str = "OutputPrefix") -> str:
    """An output key prefix, as an output key is checked: a valid key (a trailing "/" allowed),
    no hidden part (livetx's own records), not inside a configured profile's area."""
    if prefix == "":
        return prefix
    try:
        check_key(prefix.removesuffix("/"))
    except LivetxError as exc:
        raise ParameterError(field, f"an output key prefix such as jobs/out/ ({exc.message})") from None
    if is_hidden(prefix):
        raise ParameterError(field, "an output key prefix with no part starting with '.' (where livetx keeps its own records)")
    taken = profile_area(prefix + "x", profile_names)
    if taken is not None:
        raise ParameterError(field, f"an output key prefix outside the output of profile {taken!r}")
    return prefix


def check_notify_url(url: str | None, notify: NotifySettings, field: str = "NotifyURL") -> str | None:
    if not url:
        return None
    try:
        check_url(url, notify)
    except WebhookTargetInvalid as exc:
        raise ParameterError(field, f"an http(s) URL livetx may send webhooks to ({exc.reason})") from None
    return url


def is_uri(uri: str) -> bool:
    """An object URI (oss://bucket/key, s3://...), as opposed to a key relative to a prefix."""
    return "://" in uri


def under_prefix(prefix: str, key_for: KeyFor) -> KeyFor:
    """An output URI -> its key: an object URI as `key_for` (the store) maps it; a name with no
    scheme as a key under `prefix` (a pipeline's OutputPrefix; "/" put between when missing)."""

    def key(uri: str, field: str) -> str:
        if is_uri(uri):
            return key_for(uri, field)
        return prefix + uri if not prefix or prefix.endswith("/") else f"{prefix}/{uri}"

    return key


def default_pipeline(settings: PipelinesSettings, notify: NotifySettings, profile_names: set[str]) -> Pipeline:
    """The pipeline `default` as the settings make it (ConfigError naming a bad setting)."""
    try:
        prefix = check_output_prefix(settings.output_prefix, profile_names, "pipelines.output_prefix")
        url = check_notify_url(settings.notify_url, notify, "pipelines.notify_url")
    except ParameterError as exc:
        raise ConfigError(exc.message) from None
    return Pipeline(DEFAULT, settings.concurrency, False, prefix, url)


class PipelineStore:
    """Pipelines in output storage. Nothing is cached: every origin reads the same records."""

    def __init__(self, storage: Storage, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.storage = storage
        self.notify = settings.notify
        self.profile_names = set(settings.profiles)
        self.default = default_pipeline(settings.pipelines, settings.notify, self.profile_names)

    async def _find(self, name: str) -> Pipeline | None:
        key = pipeline_key(name)
        if await self.storage.stat(key) is None:
            return None
        try:
            return Pipeline.from_record(json.loads(await self.storage.read(key)))
        except FileNotFoundError:  # deleted between the stat and the read
            return None
        except (ValueError, KeyError, TypeError):
            raise LivetxError(f"pipeline {name!r} has an unreadable record") from None

    async def get(self, name: str) -> Pipeline:
        """The pipeline `name`; `default` always exists (from the settings until a PUT)."""
        check_name(name)
        found = await self._find(name)
        if found is not None:
            return found
        if name == DEFAULT:
            return self.default
        raise PipelineNotFound(f"no pipeline named {name!r}", pipeline=name)

    async def put(self, pipeline: Pipeline) -> Pipeline:
        """Create or replace, every field checked; nothing is written when one is refused."""
        check_name(pipeline.name)
        check_output_prefix(pipeline.output_prefix, self.profile_names)
        check_notify_url(pipeline.notify_url, self.notify)
        if not 1 <= pipeline.concurrency <= MAX_PIPELINE_CONCURRENCY:
            raise ParameterError("Concurrency", f"an integer from 1 to {MAX_PIPELINE_CONCURRENCY}")
        await self.storage.write(pipeline_key(pipeline.name), json.dumps(pipeline.to_record(), sort_keys=True).encode())
        return pipeline

    async def update(self, name: str, body: Any) -> tuple[Pipeline, bool]:
        """A PUT body applied to pipeline `name`: (the pipeline as kept, whether it is new)."""
        check_name(name)
        request = PIPELINE_REQUEST.parse(body)
        current = await self._find(name)
        start = current or (self.default if name == DEFAULT else replace(self.default, name=name))
        changes = {key: request[json_name] for key, json_name in FIELDS.items() if json_name in request}
        if "notify_url" in changes:
            changes["notify_url"] = changes["notify_url"] or None
        return await self.put(replace(start, **changes)), current is None and name != DEFAULT

    async def delete(self, name: str) -> None:
        check_name(name)
        if name == DEFAULT:
            raise PipelineProtected("the pipeline 'default' cannot be deleted (jobs that name no pipeline run in it)", pipeline=name)
        if await self.storage.stat(pipeline_key(name)) is None:
            raise PipelineNotFound(f"no pipeline named {name!r}", pipeline=name)
        await self.storage.delete(pipeline_key(name))

    async def list(self) -> list[Pipeline]:
        """Every pipeline, by name, `default` among them (at most MAX_LISTED)."""
        found: dict[str, Pipeline] = {DEFAULT: self.default}
        listed = [record_name(info.key, PIPELINES_PREFIX) for info in await self.storage.list_records(PIPELINES_PREFIX, MAX_LISTED)]
        names = [name for name in listed if name is not None and re.fullmatch(NAME_PATTERN, name)]
        for pipeline in await asyncio.gather(*(self._find(name) for name in names)):  # read at once
            if pipeline is not None:
                found[pipeline.name] = pipeline
        return [found[name] for name in sorted(found)]
