"""Background jobs over HTTP (livetx/batch/): submit, read, list, cancel; and the OSS async form.

POST   /api/v1/jobs           submit (201 with the record; 200 for a repeat with the same
                              Idempotency-Key and body; 409 for that key with another body)
GET    /api/v1/jobs/{id}      the record (any origin answers: records live in output storage)
GET    /api/v1/jobs           records, filtered by ?state= and ?pipeline=, at most ?limit=
DELETE /api/v1/jobs/{id}      cancel (409 once the job has ended)
POST   /<source key>?x-oss-async-process   OSS `video/concat,...|sys/saveas,...[/notify,...]`

A job names its `Pipeline` (app[PIPELINES]; unknown: 400 naming `Pipeline`), which places an
Output.URI with no scheme under its OutputPrefix and gives its NotifyURL to a job with no
webhook of its own; and may name a `Template` (app[TEMPLATES]; unknown: 400 naming `Template`),
resolved now: the record keeps its parameters.

Every route is the `jobs` operation of an API key's scope; a submission also needs the key to
read every clip's source and write the output key, and a key sees and cancels only the jobs
whose output it may write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from livetx.batch import snapshots
from livetx.batch.notices import check_target, topic_url
from livetx.batch.pipelines import DEFAULT, Pipeline
from livetx.batch.record import CANCELLED, QUEUED, STATES, JobRecord, new_job_id
from livetx.batch.request import JobRequest, from_oss, parse_job, pipeline_name, template_name
from livetx.batch.runner import Runner
from livetx.batch.work import check_planned, playlist_job, title_for
from livetx.concat import parse_oss_concat
from livetx.errors import InvalidPath, JobFinished, JobNotFound, OutputReserved, ParameterError, PipelineNotFound
from livetx.layout import MPD_SUFFIX, PLAYLIST_SUFFIX, profile_area, target_playlist_key
from livetx.publishing import publish_job
from livetx.scopes import JOBS as JOBS_OPERATION
from livetx.storage.base import check_source_key
from livetx.web import api
from livetx.web.auth import check_api_key
from livetx.web.body import form_body, json_body
from livetx.web.keys import API_SCOPE, CATALOG, JOBS, PIPELINES, REQUEST_ID, SEGMENTS, SETTINGS, TEMPLATES

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
LIST_DEFAULT, LIST_MAX = 100, 1000
ASYNC_PARAMETER = "x-oss-async-process"
NO_STORE = {"Cache-Control": "no-store"}


def _runner(request: web.Request) -> Runner:
    return request.app[JOBS]


def _idempotency_key(request: web.Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or not value.isprintable() or not value.isascii():
        raise ParameterError(IDEMPOTENCY_HEADER, f"1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters")
    return value


async def _pipeline(request: web.Request, name: str) -> Pipeline:
    try:
        return await request.app[PIPELINES].get(name)
    except PipelineNotFound:
        raise ParameterError("Pipeline", f"the name of a pipeline (PUT /api/v1/pipelines/{{name}}): there is none named {name!r}") from None


async def _submit(
    request: web.Request, job: JobRequest, source_field: str, pipeline: Pipeline, extra: dict[str, Any] | None = None
) -> tuple[JobRecord, bool]:
    """The job's record, made now (True) or found by its Idempotency-Key (False)."""
    settings, runner = request.app[SETTINGS], _runner(request)
    scope = request[API_SCOPE]
    idempotency = _idempotency_key(request)
    for i, clip in enumerate(job.composite.clips):
        scope.check_read(clip.key, job.clip_field(i, "URI"))
    if job.segment_ms is None:
        # planned now (one stat and one probe per clip, both cached for the runner): a clip that
        # is missing, not media, or starts past its end, and a title past [limits], are this
        # request's 400 naming the field, not a failed job later
        title = await title_for(request.app[CATALOG], job.composite, job.clip_field)
        check_planned(title, settings.limits, oss=job.oss)
        if job.snapshot is not None:  # its pictures' times, each before the clip's end
            job = replace(job, snapshot=snapshots.resolved(job.snapshot, int(title.duration * 1000)))
    output_field = "sys/saveas" if job.oss else "Output.URI"
    for key in snapshots.output_keys(job.output_key, job.snapshot) if job.snapshot is not None else (job.output_key,):
        scope.check_write(key, output_field)
    taken = profile_area(job.output_key, request.app[CATALOG].profiles)
    if taken is not None:
        raise OutputReserved(f"{output_field} is inside the output of profile {taken!r}, which no job may write", parameter=output_field)
    notify_url = job.notify_url or topic_url(settings.notify, job.topic) or pipeline.notify_url
    if notify_url is not None:
        check_target(runner.deliveries, settings.notify, notify_url, "Notify.URL" if job.notify_url else "notify")
    work = job.work
    if job.segment_ms is not None:  # a playlist job, published now (publishing.py): refusals are this request's
        playlists = playlist_job(job, settings.limits)
        await publish_job(playlists, source_field, scope, request.app[CATALOG], request.app[SEGMENTS], settings.limits)
        playlist_key = target_playlist_key(playlists.prefixes["t0"])
        uri = job.output_uri.removesuffix(PLAYLIST_SUFFIX) + PLAYLIST_SUFFIX
        work = {**work, "Profile": playlists.profile_name, "OutputKey": playlist_key, "OutputURI": uri}
        if playlists.mpd_key is not None:  # written with the playlist, by publish_job
            work |= {"MpdKey": playlists.mpd_key, "MpdURI": job.output_uri.removesuffix(PLAYLIST_SUFFIX) + MPD_SUFFIX}
    if idempotency is not None:
        found = await runner.store.remembered(scope.name, idempotency, job.meaning())
        record = await runner.store.get(found) if found is not None else None
        if record is not None:
            return record, False
    record = JobRecord(
        new_job_id(),
        job.request or {},
        work,
        runner.clock(),
        pipeline=pipeline.name,
        notify_url=notify_url,
        topic=job.topic,
        user_data=job.user_data,
        extra=extra or {},
    )
    await runner.store.create(record)
    if idempotency is not None:
        await runner.store.remember(scope.name, idempotency, job.meaning(), record.id)
    runner.wake()
    return record, True


async def submit(request: web.Request) -> web.Response:
    catalog, settings = request.app[CATALOG], request.app[SETTINGS]
    body = await json_body(request)
    pipeline = await _pipeline(request, pipeline_name(body))
    name = template_name(body)
    template_for = await request.app[TEMPLATES].lookup([name] if name is not None else [])  # resolved now, kept in the record
    job = parse_job(body, catalog.sources.key_for_uri, catalog.output.key_for_uri, settings.limits, template_for, pipeline.output_prefix)
    record, made = await _submit(request, job, "Clips", pipeline)
    return web.json_response(record.to_json(), status=201 if made else 200, headers=NO_STORE)


def _visible(request: web.Request, record: JobRecord) -> bool:
    """A scoped API key sees (and cancels) the jobs whose output it may write, and no others."""
    return request[API_SCOPE].may_write(str(record.work.get("OutputKey", "")))


async def _record(request: web.Request) -> JobRecord:
    record = await _runner(request).store.get(request.match_info["id"])
    if record is None or not _visible(request, record):  # another key's job is as absent as none
        raise JobNotFound(f"no job {request.match_info['id']!r}")
    return record


async def status(request: web.Request) -> web.Response:
    return web.json_response((await _record(request)).to_json(), headers=NO_STORE)


async def listing(request: web.Request) -> web.Response:
    query = request.query
    state, pipeline = query.get("state"), query.get("pipeline")
    if state is not None and state not in STATES:
        raise ParameterError("state", f"one of {', '.join(STATES)}")
    try:
        limit = int(query.get("limit", LIST_DEFAULT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_MAX:
        raise ParameterError("limit", f"an integer from 1 to {LIST_MAX}")
    records = await _runner(request).store.all(LIST_MAX)
    chosen = [
        r for r in records if (state is None or r.state == state) and (pipeline is None or r.pipeline == pipeline) and _visible(request, r)
    ]
    chosen.sort(key=lambda r: r.created_at, reverse=True)
    return web.json_response({"Jobs": [r.to_json() for r in chosen[:limit]]}, headers=NO_STORE)


async def cancel(request: web.Request) -> web.Response:
    """A queued job is cancelled now; a running one at its next segments (the answer says
    `CancelRequested`; GET shows `cancelled` once it stopped)."""
    runner = _runner(request)
    record = await _record(request)
    if record.finished:
        raise JobFinished(f"job {record.id} has ended ({record.state}): nothing to cancel", state=record.state)
    await runner.store.request_cancel(record.id)
    if record.state == QUEUED:
        record = record.transition(CANCELLED, runner.clock())
        await runner.store.put(record)
        if not record.notice_pending:
            await runner.store.close(record.id, runner=False)
        else:
            runner.wake()
    return web.json_response({**record.to_json(), "CancelRequested": True}, headers=NO_STORE)


# ---- OSS x-oss-async-process ----------------------------------------------------------


async def oss_route(request: web.Request) -> web.Response:
    """The catch-all `/{key}` route: the async form here, everything else as before (web/api.py)."""
    if request.method == "POST" and ASYNC_PARAMETER in request.query:
        return await oss_async(request)
    return await api.oss_process(request)


async def oss_async(request: web.Request) -> web.Response:
    """OSS `x-oss-async-process=video/concat,...|sys/saveas,...`, answered as OSS does
    (RequestId, TaskId: the job's id, EventId)."""
    check_api_key(request, JOBS_OPERATION)
    settings, catalog = request.app[SETTINGS], request.app[CATALOG]
    process: Any = request.query.get(ASYNC_PARAMETER) or None
    if process is None:
        form = await form_body(request)
        process = form.get(ASYNC_PARAMETER)
    if not isinstance(process, str) or not process:
        raise ParameterError(ASYNC_PARAMETER, "video/concat,...|sys/saveas,b_<b64url>,o_<b64url>[/notify,topic_<b64url>]")
    source_key = request.match_info["key"]
    try:
        check_source_key(source_key)
    except InvalidPath as exc:
        raise ParameterError("key", f"a source key ({exc.message})") from None
    job = from_oss(parse_oss_concat(source_key, process), catalog.output.key_for_uri, settings.limits)
    record, _ = await _submit(request, job, "key", await _pipeline(request, DEFAULT), extra={"RequestId": request[REQUEST_ID]})
    answer = {"RequestId": request[REQUEST_ID], "TaskId": record.id, "EventId": record.event_id or ""}
    return web.json_response(answer, status=200, headers=NO_STORE)
