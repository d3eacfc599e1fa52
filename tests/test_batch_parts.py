"""The parts of background jobs below HTTP: the record's states and JSON, the request contract,
the store on local disk and on S3 (listing hidden record folders, Idempotency-Keys), claims."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from livetx.app import create_app
from livetx.batch.claims import Claims, gone_here, owner_id
from livetx.batch.record import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, DeliveryAttempt, JobError, JobRecord, Output
from livetx.batch.request import from_oss, from_work, parse_job
from livetx.batch.store import JobStore
from livetx.cluster.lockfiles import LockFiles
from livetx.cluster.redis_engine import RedisCoordinator
from livetx.concat import parse_oss_concat
from livetx.errors import IdempotencyConflict, LimitExceeded, ParameterError, ParameterUnsupported
from livetx.factories import open_storages
from livetx.layout import batch_record_key
from livetx.media.pool import Priority
from livetx.media.sample import SampleSpec, write_sample
from livetx.settings import LimitsSettings
from livetx.storage.base import Storage, split_uri
from livetx.storage.local import LocalStorage
from livetx.web.keys import POOL
from tests.conftest import app_settings, s3_settings
from tests.s3server import BUCKET, SeaweedS3
from tests.support import Clock, wait_for
from tests.valkey import Valkey

LIMITS = LimitsSettings()


def key_for(uri: str, field: str) -> str:
    return split_uri(uri, field)[1]


def record(state: str = QUEUED, **changes: object) -> JobRecord:
    base = JobRecord("0123456789abcdef", {"Clips": []}, {"Clips": [["a.mp4", 0, 0]], "Params": {"f": "mp4"}}, 1000.0)
    return JobRecord(**{**base.__dict__, "state": state, **changes})  # type: ignore[arg-type]


def test_jobs_are_the_least_urgent_pool_work() -> None:
    """Below pre-transcode and lookahead, and background (preempted whenever a client waits:
    TranscodePool preempts every priority above CLIENT)."""
    assert Priority.JOB == max(Priority) and Priority.JOB > Priority.PRETRANSCODE > Priority.CLIENT


# ---- the record ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "allowed"),
    [
        pytest.param(QUEUED, RUNNING, True, id="queued-running"),
        pytest.param(QUEUED, CANCELLED, True, id="queued-cancelled"),
        pytest.param(QUEUED, SUCCEEDED, False, id="queued-succeeded"),
        pytest.param(RUNNING, RUNNING, True, id="taken-over"),
        pytest.param(RUNNING, QUEUED, True, id="back-at-shutdown"),
        pytest.param(RUNNING, FAILED, True, id="running-failed"),
        pytest.param(SUCCEEDED, CANCELLED, False, id="succeeded-cancelled"),
        pytest.param(CANCELLED, RUNNING, False, id="cancelled-running"),
    ],
)
def test_only_the_moves_of_a_job_are_allowed(start: str, end: str, allowed: bool) -> None:
    if allowed:
        assert record(start).transition(end, 2000.0).state == end
    else:
        with pytest.raises(ValueError, match="not a move"):
            record(start).transition(end, 2000.0)


def test_an_ended_job_has_an_event_id_and_no_owner() -> None:
    running = record(QUEUED).transition(RUNNING, 2000.0, owner="h:1:aa", lease_until=2030.0)
    assert running.started_at == 2000.0
    done = running.transition(SUCCEEDED, 2010.0, outputs=(Output("oss://b/k.mp4", 10),))
    assert (done.progress, done.finished_at, done.owner, done.lease_until) == (100, 2010.0, None, None)
    assert done.event_id is not None and done.event_id.startswith("evt_")


def test_a_record_round_trips_through_its_stored_json() -> None:
    attempt = DeliveryAttempt("evt_1", 1, 2011.5, 500, None, 2012.5)
    done = record(RUNNING, notify_url="https://x.example/h").transition(FAILED, 2010.0, error=JobError("source_not_found", "no"))
    done = done.with_attempt(attempt, None)
    back = JobRecord.from_stored(done.to_stored())
    assert back == done
    assert done.to_json()["Error"] == {"Code": "source_not_found", "Message": "no"}
    assert "Deliveries" not in done.notice() and done.notice()["EventId"] == done.event_id


# ---- the request contract ------------------------------------------------------------------


def body(**extra: object) -> dict[str, object]:
    return {"Clips": [{"URI": "oss://b/a.mp4", "StartTime": 1.5}], "Output": {"URI": "oss://b/out/a.mp4", "Format": "mp4"}, **extra}


def test_a_request_keeps_what_the_runner_makes_in_store_keys() -> None:
    job = parse_job(body(Video={"TranscodeVideo": {"FrameRate": 25}}), key_for, key_for, LIMITS)
    work = from_work(job.work)
    assert work.composite == job.composite and work.output_key == "out/a.mp4"
    assert job.composite.clips[0].ss_ms == 1500 and job.composite.params.fps == 25


def test_several_clips_make_one_file_and_oss_clips_are_named_by_their_part() -> None:
    clips = [{"URI": "oss://b/a.mp4", "StartTime": 1}, {"URI": "oss://b/b.mkv", "Duration": 2}]
    job = parse_job(body(Clips=clips), key_for, key_for, LIMITS)
    work = from_work(job.work)
    assert [(c.key, c.ss_ms, c.t_ms) for c in work.composite.clips] == [("a.mp4", 1000, 0), ("b.mkv", 0, 2000)]
    assert work.clip_field(1, "URI") == "Clips[1].URI"
    b64 = lambda text: base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")  # noqa: E731
    process = f"video/concat,f_mkv/pre,o_{b64('p.mp4')}/sur,o_{b64('s1.ts')}/sur,o_{b64('s2.ts')},ss_500"
    process += f"|sys/saveas,b_{b64('b')},o_{b64('o.mkv')}"
    submitted = from_oss(parse_oss_concat("src.mp4", process), key_for, LIMITS)
    assert submitted.clip_field(0, "URI") == "pre[0].o" and job.clip_field(0, "URI") == "Clips[0].URI"
    oss = from_work(submitted.work)
    assert [c.key for c in oss.composite.clips] == ["p.mp4", "src.mp4", "s1.ts", "s2.ts"]
    assert [oss.clip_field(i, "URI") for i in range(4)] == ["pre[0].o", "key", "sur[0].o", "sur[1].o"]
    assert oss.clip_field(3, "StartTime") == "sur[1].ss"


def test_m4a_is_audio_only() -> None:
    job = parse_job(body(Output={"URI": "oss://b/a.m4a", "Format": "m4a"}), key_for, key_for, LIMITS)
    assert job.composite.params.vn == 1 and job.composite.params.f == "mp4"


RESOLUTION = "Video.TranscodeVideo.Resolution"


@pytest.mark.parametrize(
    ("request_body", "error", "field"),
    [
        pytest.param(body(Extra=1), ParameterError, "Extra", id="unknown-field"),
        pytest.param(body(Clips=[{"URI": "oss://b/a.mp4"}] * 12), ParameterError, "Clips", id="12-clips"),
        pytest.param(
            body(Clips=[{"URI": "oss://b/a.mp4"}] * 3, Output={"URI": "oss://b/hls/a", "Format": "ts", "Segment": {"Format": "hls"}}),
            ParameterUnsupported,
            "Output.Segment",
            id="3-clips-segmented",
        ),
        pytest.param(body(Format="mkv"), ParameterError, "Format", id="two-formats"),
        pytest.param(body(Audio={"TranscodeAudio": {"Codec": "vorbis"}}), ParameterUnsupported, "Audio.TranscodeAudio.Codec", id="vorbis"),
        pytest.param(body(Video={"TranscodeVideo": {"FrameRate": 90}}), LimitExceeded, "Video.TranscodeVideo.FrameRate", id="fps"),
        pytest.param(body(Clips=[{"URI": "oss://b/a.mp4", "Duration": 5 * 3600}]), LimitExceeded, "Clips", id="duration"),
        pytest.param(body(Video={"TranscodeVideo": {"Resolution": "4000x4000"}}), LimitExceeded, RESOLUTION, id="pixels"),
    ],
)
def test_a_bad_request_names_its_field(request_body: dict[str, object], error: type[Exception], field: str) -> None:
    with pytest.raises(error) as caught:
        parse_job(request_body, key_for, key_for, LIMITS)
    assert caught.value.name == field  # type: ignore[attr-defined]


# ---- the store, local and S3 -----------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
async def output(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "store")
        return
    s3: SeaweedS3 = request.getfixturevalue("s3")
    request.getfixturevalue("s3_env")
    uri = f"s3://{BUCKET}/batch-{tmp_path.name}"
    async with open_storages(s3_settings(s3, tmp_path, LIVETX_STORAGE_URI=uri)) as (sources, _):
        yield sources


async def test_open_jobs_are_listed_from_their_hidden_folder_until_closed(output: Storage) -> None:
    store = JobStore(output)
    first, second = record(), JobRecord("fedcba9876543210", {}, {}, 1.0)
    await store.create(first)
    await store.create(second)
    assert await store.open_ids() == ["0123456789abcdef", "fedcba9876543210"]
    assert [r.id for r in await store.all(10)] == ["0123456789abcdef", "fedcba9876543210"]
    assert await output.list(10) == []  # hidden from every other listing
    await store.request_cancel(first.id)
    assert await store.cancel_requested(first.id)
    await store.close(first.id)
    assert await store.open_ids() == ["fedcba9876543210"] and not await store.cancel_requested(first.id)
    assert await store.get(first.id) == first


async def test_an_idempotency_key_finds_its_job_and_refuses_another_meaning(output: Storage) -> None:
    store = JobStore(output)
    assert await store.remembered("tests", "k1", "meaning-a") is None
    await store.remember("tests", "k1", "meaning-a", "0123456789abcdef")
    assert await store.remembered("tests", "k1", "meaning-a") == "0123456789abcdef"
    assert await store.remembered("other-api-key", "k1", "meaning-b") is None  # keys are per API key
    with pytest.raises(IdempotencyConflict):
        await store.remembered("tests", "k1", "meaning-b")


# ---- claims without Redis ------------------------------------------------------------------------


async def test_a_claim_excludes_other_runners_and_is_taken_over_once_it_ran_out(tmp_path: Path) -> None:
    store = JobStore(LocalStorage(tmp_path / "store"))
    clock = Clock(5000.0)
    first = Claims(LockFiles(tmp_path / "locks"), store, ttl=30.0, clock=clock)
    other_host = Claims(LockFiles(tmp_path / "other-host-locks"), store, ttl=30.0, clock=clock)
    first.owner = "another-host:1:abcdef"  # as a runner of another host would write it
    for claims in (first, other_host):
        await claims.engine.start()
    await store.create(record())
    taken = await first.take(record())
    assert taken is not None
    lease, claimed = taken
    assert claimed.owner == first.owner
    running = claimed.transition(RUNNING, clock.now)
    await store.put(running)
    assert await other_host.take(running) is None  # its claim is in the record, and not run out
    clock.advance(31)
    await lease.release()
    assert await other_host.take(running) is not None  # run out: taken over


def test_an_owner_on_this_host_is_gone_only_when_its_process_is() -> None:
    assert not gone_here(owner_id().replace(owner_id().rsplit(":", 2)[0], "another-host"))
    assert gone_here(owner_id().rsplit(":", 2)[0] + ":999999999:abcdef")


async def test_with_redis_one_runner_holds_a_job_and_another_takes_it_once_released(tmp_path: Path, valkey: Valkey) -> None:
    store = JobStore(LocalStorage(tmp_path / "store"))
    first = Claims(RedisCoordinator(valkey.url, f"t-{tmp_path.name}:", 5.0), store, ttl=5.0)
    second = Claims(RedisCoordinator(valkey.url, f"t-{tmp_path.name}:", 5.0), store, ttl=5.0)
    for claims in (first, second):
        await claims.engine.start()
    try:
        await store.create(record())
        taken = await first.take(record())
        assert taken is not None
        lease, claimed = taken
        running = claimed.transition(RUNNING, 2000.0)
        await store.put(first.renewed(running))
        assert await second.take(running) is None  # the lease is held (the record's claim aside)
        assert await second.slot("default", 1) is not None and await first.slot("default", 1) is None  # one slot, fleet-wide
        await lease.release()  # as a runner that died: its lease runs out
        taken_over = await second.take(running)
        assert taken_over is not None and taken_over[1].owner == second.owner  # the owner held the same lease: gone
    finally:
        for claims in (first, second):
            await claims.engine.close()


# ---- scopes, in-process ----------------------------------------------------------------------

FULL_KEY, SCOPED_KEY = "f" * 40, "s" * 40


async def test_a_scoped_key_submits_sees_and_cancels_only_jobs_it_may_write(aiohttp_client: Any, tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_sample(media / "a.mp4", SampleSpec(seconds=2.0, width=160, height=90, gop=30))
    settings = app_settings(
        LIVETX_STORAGE_URI=str(media),
        LIVETX_API_KEYS=f"backend:{FULL_KEY},scoped:{SCOPED_KEY}",
        LIVETX_API_SCOPES_SCOPED_OPERATIONS="jobs",
        LIVETX_API_SCOPES_SCOPED_READ="*",
        LIVETX_API_SCOPES_SCOPED_WRITE="mine/",
        LIVETX_CLUSTER_LOCK_DIR=str(tmp_path / "locks"),
    )
    client = await aiohttp_client(create_app(settings))
    full, scoped = ({"Authorization": f"Bearer {key}"} for key in (FULL_KEY, SCOPED_KEY))
    job = {"Clips": [{"URI": "oss://local/a.mp4"}], "Output": {"URI": "oss://local/other/x.mp4", "Format": "mp4"}}
    refused = await client.post("/api/v1/jobs", json=job, headers=scoped)
    assert refused.status == 403 and (await refused.json())["error"]["parameter"] == "Output.URI"
    theirs = await (await client.post("/api/v1/jobs", json=job, headers=full)).json()
    job["Output"] = {"URI": "oss://local/mine/x.mp4", "Format": "mp4"}
    mine = await (await client.post("/api/v1/jobs", json=job, headers=scoped)).json()
    assert (await client.get(f"/api/v1/jobs/{theirs['JobId']}", headers=scoped)).status == 404
    assert (await client.delete(f"/api/v1/jobs/{theirs['JobId']}", headers=scoped)).status == 404
    listed = await (await client.get("/api/v1/jobs", headers=scoped)).json()
    assert [j["JobId"] for j in listed["Jobs"]] == [mine["JobId"]]
    assert (await client.get(f"/api/v1/jobs/{theirs['JobId']}", headers=full)).status == 200


async def test_an_origin_that_runs_no_jobs_takes_them_for_one_that_does(aiohttp_client: Any, tmp_path: Path) -> None:
    """`jobs.run = false` (a viewer-only origin): its API takes the job, and it never looks for
    jobs nor makes their segments; an origin with runners on the same storage runs it."""
    media = tmp_path / "media"
    write_sample(media / "a.mp4", SampleSpec(seconds=2.0, width=160, height=90, gop=30))
    common = {
        "LIVETX_STORAGE_URI": str(media),
        "LIVETX_API_KEYS": f"backend:{FULL_KEY}",
        "LIVETX_CLUSTER_LOCK_DIR": str(tmp_path / "locks"),
    }
    viewers = await aiohttp_client(create_app(app_settings(**common, LIVETX_JOBS_RUN="false")))
    headers = {"Authorization": f"Bearer {FULL_KEY}"}
    job = {"Clips": [{"URI": "oss://local/a.mp4"}], "Output": {"URI": "oss://local/out/a.mp4", "Format": "mp4"}}
    submitted = await viewers.post("/api/v1/jobs", json=job, headers=headers)
    assert submitted.status == 201
    job_id = (await submitted.json())["JobId"]
    assert (await (await viewers.get(f"/api/v1/jobs/{job_id}", headers=headers)).json())["State"] == QUEUED
    workers = await aiohttp_client(create_app(app_settings(**common, LIVETX_JOBS_POLL="0.1")))

    output = media / ".livetx"  # (storage.output_uri unset)
    stored = output / batch_record_key(job_id)  # the record both origins answer from

    def ended() -> dict[str, Any] | None:
        record: dict[str, Any] = json.loads(stored.read_text())
        return record if record["State"] in (SUCCEEDED, FAILED) else None

    record = await wait_for(ended, 60, "the job run by the other origin")
    assert record["State"] == SUCCEEDED, record["Error"]
    assert viewers.server.app[POOL].stats.completed == 0 and workers.server.app[POOL].stats.completed > 0
