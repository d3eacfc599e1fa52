"""Background jobs (livetx/batch/) against the real server: a single-source job to MP4 checked
frame by frame and by its tone, Idempotency-Key, cancel, a server SIGKILLed mid-job, a webhook
receiver that fails three times, the OSS async form, and bad input."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from livetx.batch.record import JobRecord
from livetx.media.sample import SampleSpec, write_sample
from livetx.notify.signing import EVENT_ID_HEADER, verify
from tests.checker import TS_CLOCK, TS_OFFSET, check_tone, decode_audio, decode_video, expected_index
from tests.conftest import Server, launch_server
from tests.jobs_support import FAST, SECRET, Receiver, call, finished, job, job_body, output_path, receiver, wait_state
from tests.support import wait_until

__all__ = ["receiver"]  # the webhook receiver fixture (tests/jobs_support.py)

SHORT = SampleSpec(seconds=7.0, width=320, height=180, fps=Fraction(30), gop=30)
LONG = SampleSpec(seconds=40.0, width=640, height=360, fps=Fraction(30), gop=60)


def check_file(path: Path, spec: SampleSpec) -> None:
    """Every frame of the source, in order at its time, and the tone without a gap or a jump."""
    with av.open(str(path)) as container:
        video = decode_video(container)
    shifted = [pts + round(TS_OFFSET * TS_CLOCK) for pts in video.pts]  # the file starts at 0, not at TS_OFFSET
    assert video.indexes == [expected_index(p, spec.fps, spec.fps) for p in shifted]
    assert video.indexes == list(range(round(spec.seconds * spec.fps)))
    with av.open(str(path)) as container:
        audio = decode_audio(container)
    report = check_tone(audio, spec.tone_hz, skip_tail=3, offset=Fraction(0))
    assert report.worst_phase < 0.05, report
    assert report.worst_amplitude < 0.1, report


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch-media")
    write_sample(folder / "short.mp4", SHORT)
    write_sample(folder / "long.mp4", LONG)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Iterator[Server]:
    with launch_server(tmp_path_factory.mktemp("batch-home"), media, **FAST) as running:
        yield running


# ---- jobs ---------------------------------------------------------------------------------


def test_a_job_makes_a_frame_exact_mp4_and_notifies_once_after_three_failures(server: Server, receiver: Receiver) -> None:
    body = job_body("short.mp4", "out/short.mp4", Notify={"URL": receiver.url}, UserData="mine")
    status, submitted = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201, submitted
    assert submitted["State"] in ("queued", "running") and submitted["UserData"] == "mine"
    done = wait_state(server, submitted["JobId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    assert done["Progress"] == 100 and done["Error"] is None
    path = output_path(server, "out/short.mp4")
    assert done["Outputs"] == [{"URI": "oss://local/out/short.mp4", "Size": path.stat().st_size}]
    check_file(path, SHORT)
    # the webhook: three 500s, then one 200; every attempt in the record, one event id
    record = wait_until(lambda: (r := job(server, submitted["JobId"]))["Delivered"] is not None and r, 30, "delivery ended")
    assert record["Delivered"] is True and record["Owner"] is None
    assert [(d["Attempt"], d["Status"]) for d in record["Deliveries"]] == [(1, 500), (2, 500), (3, 500), (4, 200)]
    assert {d["EventId"] for d in record["Deliveries"]} == {record["EventId"]}
    assert [status for _, _, status in receiver.got] == [500, 500, 500, 200]
    for headers, raw, _ in receiver.got:
        assert verify(headers, raw, SECRET.encode(), time.time()) == record["EventId"]
        sent = json.loads(raw)
        assert (sent["JobId"], sent["State"], sent["EventId"]) == (record["JobId"], "succeeded", record["EventId"])
        assert headers[EVENT_ID_HEADER] == record["EventId"]
    assert len({raw for _, raw, _ in receiver.got}) == 1  # the same body each time


@pytest.mark.parametrize(("fmt", "suffix"), [("mov", "mov"), ("mkv", "mkv"), ("ts", "ts"), ("m4a", "m4a")])
def test_every_file_format_holds_the_window_asked_for(server: Server, fmt: str, suffix: str) -> None:
    body = job_body("short.mp4", f"out/formats/a.{suffix}")
    body["Clips"][0] |= {"StartTime": 1, "Duration": 2}
    body["Output"]["Format"] = fmt
    finished(server, body)
    path = output_path(server, f"out/formats/a.{suffix}")
    with av.open(str(path)) as container:
        assert not container.streams.video if fmt == "m4a" else len(container.streams.video) == 1
        audio = decode_audio(container)
    report = check_tone(audio, SHORT.tone_hz, skip_tail=3, offset=Fraction(0) if fmt != "ts" else TS_OFFSET)
    assert report.worst_phase < 0.05, report
    assert abs(len(audio.samples) / audio.sample_rate - 2.0) < 0.05
    if fmt != "m4a":
        with av.open(str(path)) as container:
            assert decode_video(container).indexes == list(range(30, 90))


def test_an_idempotency_key_gives_the_same_job_and_refuses_another_body(server: Server) -> None:
    body = job_body("short.mp4", "out/idem.mp4")
    key = {"Idempotency-Key": "order-42"}
    status, first = call(server, "POST", "/api/v1/jobs", body, key)
    assert status == 201
    status, again = call(server, "POST", "/api/v1/jobs", body, key)
    assert (status, again["JobId"]) == (200, first["JobId"])
    status, other = call(server, "POST", "/api/v1/jobs", job_body("short.mp4", "out/other.mp4"), key)
    assert status == 409 and other["error"]["parameter"] == "Idempotency-Key", other
    wait_state(server, first["JobId"], ("succeeded",))


def test_a_cancelled_job_writes_nothing(server: Server) -> None:
    body = job_body("long.mp4", "out/cancelled.mp4", Video={"TranscodeVideo": {"Preset": "medium"}})
    status, submitted = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201
    status, answer = call(server, "DELETE", f"/api/v1/jobs/{submitted['JobId']}")
    assert status == 200 and answer["CancelRequested"] is True, answer
    done = wait_state(server, submitted["JobId"], ("cancelled", "succeeded", "failed"))
    assert done["State"] == "cancelled", done
    assert not output_path(server, "out/cancelled.mp4").exists()
    status, again = call(server, "DELETE", f"/api/v1/jobs/{submitted['JobId']}")
    assert status == 409 and again["error"]["code"] == "job_finished"
    status, listed = call(server, "GET", "/api/v1/jobs?state=cancelled")
    assert status == 200 and submitted["JobId"] in [j["JobId"] for j in listed["Jobs"]]


def test_a_running_job_cancelled_stops_and_writes_nothing(server: Server) -> None:
    body = job_body("long.mp4", "out/stopped.mp4", Video={"TranscodeVideo": {"Preset": "medium"}})
    status, submitted = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201
    job_id = submitted["JobId"]
    wait_until(lambda: (r := job(server, job_id))["State"] == "running" and r["Progress"] > 0, 30, "the job under way")
    status, answer = call(server, "DELETE", f"/api/v1/jobs/{job_id}")
    assert status == 200 and answer["CancelRequested"] is True
    done = wait_state(server, job_id, ("cancelled", "succeeded", "failed"))
    assert done["State"] == "cancelled" and done["Progress"] < 100, done
    assert not output_path(server, "out/stopped.mp4").exists()


def test_the_oss_async_form_submits_the_same_job(server: Server) -> None:
    b64 = lambda text: base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")  # noqa: E731
    process = f"video/concat,f_mp4,ss_1000,t_3000|sys/saveas,b_{b64('local')},o_{b64('out/oss.mp4')}/notify,topic_{b64('done')}"
    form = urllib.parse.urlencode({"x-oss-async-process": process}).encode()
    status, answer = call(server, "POST", "/short.mp4?x-oss-async-process", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, answer
    assert set(answer) == {"RequestId", "TaskId", "EventId"}
    done = wait_state(server, answer["TaskId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    assert done["Notify"] == {"Topic": "done"} and done["Delivered"] is None  # no URL for the topic: recorded only
    with av.open(str(output_path(server, "out/oss.mp4"))) as container:
        video = decode_video(container)
    assert video.indexes == list(range(30, 120))


def test_a_segmented_job_plays_at_once_and_makes_every_segment(server: Server) -> None:
    body = job_body("short.mp4", "out/seg/short")
    body["Output"] = {"URI": "oss://local/out/seg/short", "Format": "ts", "Segment": {"Format": "hls", "Duration": 5}}
    status, submitted = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201, submitted
    playlist = output_path(server, "out/seg/short.m3u8")
    assert playlist.exists()  # written at submission: it plays (just in time) while the job runs
    done = wait_state(server, submitted["JobId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    assert done["Outputs"] == [{"URI": "oss://local/out/seg/short.m3u8", "Size": playlist.stat().st_size}]
    names = [line for line in playlist.read_text().splitlines() if line.endswith(".ts")]
    assert len(names) == 4 and all((playlist.parent / name).exists() for name in names)  # 2 + 2 + 2 + 1 s, all made
    with av.open(str(playlist)) as container:
        assert decode_video(container).indexes == list(range(round(SHORT.seconds * SHORT.fps)))


ONE = job_body("short.mp4", "o.mp4")
CLIP = {"URI": "oss://local/short.mp4"}


@pytest.mark.parametrize(
    ("body", "status", "parameter"),
    [
        pytest.param({**ONE, "Colour": 1}, 400, "Colour", id="unknown-field"),
        pytest.param({**ONE, "Clips": [CLIP] * 12}, 400, "Clips", id="12-clips"),
        pytest.param(
            {"Clips": [CLIP] * 2, "Output": {"URI": "oss://local/seg/two", "Segment": {"Format": "hls"}}},
            422,
            "Output.Segment",
            id="2-clips-segmented",
        ),
        pytest.param({"Clips": [CLIP], "Output": {"URI": "oss://local/o.mp4"}}, 400, "Output.Format", id="no-format"),
        pytest.param(job_body("short.mp4", ".jobs/x.mp4"), 422, "Output.URI", id="hidden-output"),
        pytest.param({**ONE, "Notify": {"URL": "ftp://x"}}, 400, None, id="bad-webhook"),
        pytest.param({**ONE, "Pipeline": "fast"}, 400, "Pipeline", id="unknown-pipeline"),
        pytest.param(
            {**ONE, "Video": {"TranscodeVideo": {"Preset": "veryslow"}}},
            400,
            "Video.TranscodeVideo.Preset",
            id="over-limits",
        ),
    ],
)
def test_bad_requests_name_the_field(server: Server, body: dict[str, Any], status: int, parameter: str | None) -> None:
    got, answer = call(server, "POST", "/api/v1/jobs", body)
    assert got == status, answer
    if parameter is not None:
        assert answer["error"]["parameter"] == parameter, answer


def test_bad_base64_in_the_oss_form_names_the_field(server: Server) -> None:
    form = urllib.parse.urlencode({"x-oss-async-process": "video/concat,f_mp4/pre,o_%%%|sys/saveas,b_bG9jYWw,o_eA"}).encode()
    status, answer = call(server, "POST", "/short.mp4?x-oss-async-process", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and answer["error"]["parameter"] == "pre[0].o", answer


def test_an_unknown_job_is_a_404(server: Server) -> None:
    status, answer = call(server, "GET", "/api/v1/jobs/0123456789abcdef")
    assert status == 404 and answer["error"]["code"] == "job_not_found"


# ---- a server killed mid-job ------------------------------------------------------------------


def test_a_job_whose_server_was_killed_completes_after_restart_with_no_partial_output(tmp_path: Path, media: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    own = tmp_path / "media"  # not the module server's: it would take the job over once its claim ran out
    own.mkdir()
    os.link(media / "long.mp4", own / "long.mp4")  # (a symlink would leave the storage root)
    media = own
    env = {**FAST, "LIVETX_JOBS_SEGMENTS_AT_ONCE": "1"}
    body = job_body("long.mp4", "out/survivor.mp4", Video={"TranscodeVideo": {"Preset": "medium"}})
    with launch_server(home, media, **env) as first:
        status, submitted = call(first, "POST", "/api/v1/jobs", body)
        assert status == 201
        job_id = submitted["JobId"]
        wait_until(lambda: (r := job(first, job_id))["State"] == "running" and 0 < r["Progress"] < 100, 30, "the job under way")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        killed = JobRecord.from_stored(json.loads((media / ".livetx" / ".jobs" / "batch" / f"{job_id}.json").read_text()))
        assert killed.state == "running" and killed.owner is not None
        assert not output_path(first, "out/survivor.mp4").exists()
        port = int(first.base_url.rsplit(":", 1)[1])
    with launch_server(home, media, port=port, **env) as second:
        done = wait_state(second, job_id, ("succeeded", "failed"), timeout=60)
        assert done["State"] == "succeeded", done["Error"]
        assert done["Attempts"] == 2 and done["Owner"] is None, (killed, done)
        with av.open(str(output_path(second, "out/survivor.mp4"))) as container:
            assert decode_video(container).indexes == list(range(round(LONG.seconds * LONG.fps)))


def test_a_delivery_whose_server_was_killed_goes_on_after_restart_with_the_same_event(
    tmp_path: Path, media: Path, receiver: Receiver
) -> None:
    receiver.script[:] = [500]
    home, own = tmp_path / "home", tmp_path / "media"
    home.mkdir()
    own.mkdir()
    os.link(media / "short.mp4", own / "short.mp4")
    env = {**FAST, "LIVETX_NOTIFY_FIRST_DELAY": "600"}  # the second attempt would be due in 10 minutes
    with launch_server(home, own, **env) as first:
        status, submitted = call(first, "POST", "/api/v1/jobs", job_body("short.mp4", "out/n.mp4", Notify={"URL": receiver.url}))
        assert status == 201
        job_id = submitted["JobId"]
        wait_until(lambda: job(first, job_id)["Deliveries"], 60, "the first attempt logged")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        port = int(first.base_url.rsplit(":", 1)[1])
    with launch_server(home, own, port=port, **env) as second:  # taken over at once: its runner is gone
        record = wait_until(lambda: (r := job(second, job_id))["Delivered"] is not None and r, 30, "the delivery taken over")
    assert record["Delivered"] is True and record["State"] == "succeeded"
    assert [(d["Attempt"], d["Status"]) for d in record["Deliveries"]] == [(1, 500), (2, 200)]
    assert [headers[EVENT_ID_HEADER] for headers, _, _ in receiver.got] == [record["EventId"]] * 2
