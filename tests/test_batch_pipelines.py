"""Jobs in pipelines and from templates (livetx/batch/pipelines.py, templates.py, runner.py)
against the real server: a paused pipeline holds its jobs until un-paused, a template's
parameters (resolved at submission) and the request's own over them, a pipeline of
concurrency 1 never runs two jobs at once, its OutputPrefix and NotifyURL, and bad input."""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from livetx.batch.record import parse_iso
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import Server, launch_server
from tests.jobs_support import FAST, Receiver, call, job, job_body, output_path, receiver, wait_state
from tests.support import wait_until

__all__ = ["receiver"]  # the webhook receiver fixture (tests/jobs_support.py)

SOURCE = SampleSpec(seconds=4.0, width=320, height=180, fps=Fraction(30), gop=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    media = tmp_path_factory.mktemp("pipelines-media")
    write_sample(media / "src.mp4", SOURCE)
    with launch_server(tmp_path_factory.mktemp("pipelines-home"), media, **FAST) as running:
        yield running


def put(server: Server, what: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = call(server, "PUT", f"/api/v1/{what}/{name}", body)
    assert status in (200, 201), answer
    return answer  # type: ignore[no-any-return]


def submit(server: Server, body: dict[str, Any]) -> str:
    status, answer = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201, answer
    return str(answer["JobId"])


def window(output: str, **extra: Any) -> dict[str, Any]:
    """A job of the source's first 2 s."""
    body = job_body("src.mp4", output, **extra)
    body["Clips"][0]["Duration"] = 2
    return body


def frame_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_a_paused_pipeline_holds_its_jobs_and_a_template_is_resolved_at_submission(server: Server) -> None:
    put(server, "templates", "tiny", {"Params": {"s": "160x90"}})
    put(server, "pipelines", "held", {"Paused": True})
    held = submit(server, window("out/held.mp4", Pipeline="held", Template="tiny"))
    # a later job of another pipeline, with the template and its own Resolution over it, runs
    # to the end: the runner looked at the held job meanwhile, and left it queued
    mine = window("out/own.mp4", Template="tiny", Video={"TranscodeVideo": {"Resolution": "128x72"}})
    done = wait_state(server, submit(server, mine), ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    assert frame_size(output_path(server, "out/own.mp4")) == (128, 72)
    record = job(server, held)
    assert (record["State"], record["Pipeline"], record["Request"]["Template"]) == ("queued", "held", "tiny")
    # the template edited after submission changes nothing; un-pausing runs the job, no restart
    put(server, "templates", "tiny", {"Params": {"s": "192x108"}})
    put(server, "pipelines", "held", {"Paused": False})
    done = wait_state(server, held, ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    assert frame_size(output_path(server, "out/held.mp4")) == (160, 90)


def test_a_pipeline_runs_one_job_at_a_time_under_its_prefix_and_notifies_its_url(server: Server, receiver: Receiver) -> None:
    receiver.script.clear()  # every delivery answered 200
    put(server, "pipelines", "single", {"Concurrency": 1, "OutputPrefix": "renders", "NotifyURL": receiver.url})
    ids = []
    for crf in (30, 31, 32):  # other parameters each: segments made anew, not from the cache
        body = window("unused", Pipeline="single", Video={"TranscodeVideo": {"CRF": crf}})
        body["Output"]["URI"] = f"c{crf}.mp4"  # no scheme: under the pipeline's OutputPrefix
        ids.append(submit(server, body))
    records = [wait_state(server, job_id, ("succeeded", "failed")) for job_id in ids]
    assert [r["State"] for r in records] == ["succeeded"] * 3, [r["Error"] for r in records]
    spans = sorted((parse_iso(r["StartedAt"]), parse_iso(r["FinishedAt"])) for r in records)
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert finished <= started, spans  # never two at once
    for crf, record in zip((30, 31, 32), records, strict=True):
        path = output_path(server, f"renders/c{crf}.mp4")
        assert record["Outputs"] == [{"URI": f"renders/c{crf}.mp4", "Size": path.stat().st_size}]
        assert frame_size(path) == (320, 180)
    # the pipeline's webhook: one delivery per job, each the job's record
    wait_until(lambda: len(receiver.got) >= 3, 30, "three webhooks")
    sent = sorted(json.loads(raw)["JobId"] for _, raw, _ in receiver.got)
    assert sent == sorted(ids)
    assert all(job(server, job_id)["Notify"] == {"URL": receiver.url} for job_id in ids)


def test_a_job_whose_pipeline_was_deleted_fails(server: Server) -> None:
    put(server, "pipelines", "gone", {"Paused": True})
    job_id = submit(server, window("out/gone.mp4", Pipeline="gone"))
    request = urllib.request.Request(
        server.base_url + "/api/v1/pipelines/gone", method="DELETE", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204
    done = wait_state(server, job_id, ("failed", "succeeded"))
    assert done["State"] == "failed" and done["Error"]["Code"] == "pipeline_not_found", done
    assert not output_path(server, "out/gone.mp4").exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"Pipeline": "nowhere"}, "Pipeline", id="unknown-pipeline"),
        pytest.param({"Pipeline": "no/slash"}, "Pipeline", id="bad-pipeline-name"),
        pytest.param({"Pipeline": 3}, "Pipeline", id="pipeline-not-text"),
        pytest.param({"Template": "nothing"}, "Template", id="unknown-template"),
        pytest.param({"Template": "av1"}, "Template", id="template-codec-a-job-refuses"),
        pytest.param({"Template": "tiny", "Video": {"TranscodeVideo": {"Resolution": "9x"}}}, "Video.TranscodeVideo.Resolution", id="own"),
    ],
)
def test_bad_pipelines_and_templates_are_400_naming_the_field(server: Server, extra: dict[str, Any], field: str) -> None:
    put(server, "templates", "tiny", {"Params": {"s": "160x90"}})
    put(server, "templates", "av1", {"Params": {"vcodec": "av1", "container": "fmp4"}})
    status, answer = call(server, "POST", "/api/v1/jobs", window("out/bad.mp4", **extra))
    assert status == 400 and answer["error"]["parameter"] == field, answer
