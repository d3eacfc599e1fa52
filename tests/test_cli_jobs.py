"""`livetx job ...`: its arguments, the text of job records and the exit statuses they give,
as pure functions; an unreachable server; and, once the jobs engine is in
(livetx/batch/runner.py), the commands end to end against `livetx serve`."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from livetx import cli_jobs
from livetx.__main__ import build_parser, main
from livetx.errors import ConfigError
from tests.conftest import Source, app_settings, free_port, launch_server
from tests.support import Clock

RECORD: dict[str, Any] = {
    "JobId": "j-0123456789abcdef",
    "State": "succeeded",
    "Progress": 100,
    "CreatedAt": "2026-11-30T20:00:00Z",
    "StartedAt": "2026-11-30T20:00:01Z",
    "FinishedAt": "2026-11-30T20:00:09Z",
    "Outputs": [{"URI": "oss://bucket/out.mp4", "Size": 3 * 1024 * 1024}],
    "Error": None,
}
FAILED = {**RECORD, "State": "failed", "Progress": 40, "Outputs": [], "Error": {"Code": "transcode_failed", "Message": "no video"}}


def parse(*argv: str) -> Any:
    return build_parser().parse_args(["job", *argv])


def test_submit_takes_a_body_file_an_idempotency_key_and_wait_options() -> None:
    args = parse("submit", "body.json", "--idempotency-key", "order-42", "--wait", "--timeout", "60", "--server", "http://h:1")
    assert (args.verb, args.body, args.idempotency_key, args.wait, args.timeout, args.server) == (
        "submit",
        "body.json",
        "order-42",
        True,
        60.0,
        "http://h:1",
    )
    assert parse("wait", "j-1").interval == cli_jobs.POLL_INTERVAL
    listing = parse("list", "--state", "running", "--pipeline", "fast", "--limit", "5", "--json")
    assert cli_jobs.list_query(listing.state, listing.pipeline, listing.limit) == "?state=running&pipeline=fast&limit=5"
    assert cli_jobs.list_query(None, None, None) == ""


@pytest.mark.parametrize("argv", [pytest.param(["list", "--state", "done"], id="unknown-state"), pytest.param(["wait"], id="no-job-id")])
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("record", "status"),
    [
        pytest.param(RECORD, cli_jobs.EXIT_SUCCEEDED, id="succeeded"),
        pytest.param(FAILED, cli_jobs.EXIT_FAILED, id="failed"),
        pytest.param({**RECORD, "State": "cancelled"}, cli_jobs.EXIT_CANCELLED, id="cancelled"),
        pytest.param({**RECORD, "State": "running"}, None, id="running"),
        pytest.param({**RECORD, "State": "queued"}, None, id="queued"),
        pytest.param({}, None, id="no-state"),
    ],
)
def test_exit_status_of_a_record(record: dict[str, Any], status: int | None) -> None:
    assert cli_jobs.exit_status(record) == status


def test_exit_statuses_are_distinct() -> None:
    codes = [
        cli_jobs.EXIT_SUCCEEDED,
        cli_jobs.EXIT_FAILED,
        cli_jobs.EXIT_ERROR,
        cli_jobs.EXIT_CANCELLED,
        cli_jobs.EXIT_NOT_FOUND,
        cli_jobs.EXIT_TIMEOUT,
    ]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    ("record", "percent"),
    [
        pytest.param({"State": "running", "Progress": 37.5}, 37.5, id="running"),
        pytest.param({"State": "running", "Progress": 140}, 100.0, id="over-100"),
        pytest.param({"State": "running", "Progress": "x"}, 0.0, id="not-a-number"),
        pytest.param({"State": "running", "Progress": True}, 0.0, id="a-boolean"),
        pytest.param({"State": "succeeded"}, 100.0, id="succeeded"),
    ],
)
def test_progress_of_a_record(record: dict[str, Any], percent: float) -> None:
    assert cli_jobs.progress_of(record) == percent


def test_a_record_as_text() -> None:
    text = cli_jobs.format_record(RECORD)
    assert "job       j-0123456789abcdef" in text and "state     succeeded (100%)" in text
    assert "output    oss://bucket/out.mp4 (3.0 MiB)" in text and "finished  2026-11-30T20:00:09Z" in text and "error" not in text
    assert "error     transcode_failed: no video" in cli_jobs.format_record(FAILED)
    assert cli_jobs.status_line(FAILED) == "j-0123456789abcdef failed 40% transcode_failed: no video"


def test_a_list_as_aligned_columns() -> None:
    lines = cli_jobs.format_list([RECORD, {**FAILED, "JobId": "j-2"}]).splitlines()
    assert lines[0].split() == ["JOB", "STATE", "PROGRESS", "CREATED"]
    assert lines[2].split() == ["j-2", "failed", "40%", "2026-11-30T20:00:00Z"]
    assert lines[1].index("succeeded") == lines[2].index("failed")


def test_the_body_comes_from_a_file_or_stdin(tmp_path: Path) -> None:
    body = {"Clips": [{"URI": "oss://bucket/in.mp4"}], "Output": {"URI": "oss://bucket/out.mp4", "Format": "mp4"}}
    (tmp_path / "body.json").write_text(json.dumps(body))
    assert cli_jobs.read_body(str(tmp_path / "body.json"), io.StringIO()) == body
    assert cli_jobs.read_body("-", io.StringIO(json.dumps(body))) == body
    with pytest.raises(ConfigError, match="not JSON"):
        cli_jobs.read_body("-", io.StringIO("{"))


def test_server_and_key_from_options_then_environment_then_settings() -> None:
    settings = app_settings(LIVETX_API_KEYS="local:" + "k" * 40, LIVETX_SERVER_PORT="9123")
    from_settings = cli_jobs.client_of(parse("list"), lambda _: settings, {})
    assert from_settings == cli_jobs.Client("http://127.0.0.1:9123", "k" * 40)
    from_env = cli_jobs.client_of(parse("list"), lambda _: settings, {cli_jobs.API_KEY_ENV: "from-env"})
    assert from_env.api_key == "from-env"

    def no_settings(_: Any) -> Any:
        raise AssertionError("options and environment are enough")

    given = cli_jobs.client_of(parse("list", "--server", "http://h:1/", "--api-key", "opt"), no_settings, {cli_jobs.API_KEY_ENV: "env"})
    assert given == cli_jobs.Client("http://h:1", "opt")
    with pytest.raises(ConfigError, match="no API key"):
        cli_jobs.client_of(parse("list"), lambda _: app_settings(), {})


def test_an_unreachable_server_is_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["job", "status", "j-1", "--server", server, "--api-key", "k"]) == cli_jobs.EXIT_ERROR
    assert f"cannot reach {server}" in capsys.readouterr().err


# ---- waiting: a sequence of records, time moved by hand ----------------------------------------


class Records:
    """The records a job's polls return, one per poll (the last one again after the end), and
    the waits between polls, which move the clock instead of sleeping."""

    def __init__(self, *records: dict[str, Any]) -> None:
        self.left = list(records)
        self.clock = Clock(0.0)
        self.waits: list[float] = []

    def fetch(self) -> dict[str, Any]:
        return self.left.pop(0) if len(self.left) > 1 else self.left[0]

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)

    def poller(self, timeout: float | None = None) -> cli_jobs.Poller:
        return cli_jobs.Poller(self.fetch, 0.5, timeout, self.clock, self.sleep)


RUNNING = {**RECORD, "State": "running", "Progress": 10}


def test_wait_prints_a_line_per_change_until_the_job_ends() -> None:
    records = Records({**RECORD, "State": "queued", "Progress": 0}, RUNNING, RUNNING, {**RUNNING, "Progress": 60}, RECORD)
    out = io.StringIO()
    assert records.poller().with_lines(out) == RECORD
    assert out.getvalue().splitlines() == [
        "j-0123456789abcdef queued 0%",
        "j-0123456789abcdef running 10%",
        "j-0123456789abcdef running 60%",
        "j-0123456789abcdef succeeded 100%",
    ]
    assert records.waits == [0.5] * 4


def test_wait_gives_up_after_its_timeout() -> None:
    records = Records(RUNNING)
    assert records.poller(timeout=2.0).with_lines(io.StringIO()) is None
    assert records.clock() == 2.0


def test_wait_draws_a_bar_on_a_terminal() -> None:
    from rich.console import Console

    screen = io.StringIO()
    records = Records(RUNNING, {**RUNNING, "Progress": 55}, FAILED)
    assert records.poller().with_bar("j-0123456789abcdef", Console(file=screen, force_terminal=True, width=100)) == FAILED
    assert "j-0123456789abcdef failed" in screen.getvalue() and "40%" in screen.getvalue()


# ---- end to end, once the jobs engine is in ---------------------------------------------


def test_submit_wait_status_list_and_cancel_against_the_server(tmp_path: Path, sources: dict[str, Source]) -> None:
    pytest.importorskip("livetx.batch.runner", reason="the jobs engine (livetx/batch/runner.py) is not in this branch")
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sources["mp4-30"].path, media / "a.mp4")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"Clips": [{"URI": "oss://local/a.mp4"}], "Output": {"URI": "oss://local/out/a.mp4", "Format": "mp4"}}))
    with launch_server(tmp_path, media) as server:

        def job(*argv: str) -> subprocess.CompletedProcess[str]:
            # the server and key from the server's settings (LIVETX_SERVER_PORT, LIVETX_API_KEYS)
            command = [sys.executable, "-m", "livetx", "job", *argv]
            return subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=300)

        submitted = job("submit", str(body), "--idempotency-key", "cli-e2e", "--json")
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["JobId"]
        again = job("submit", str(body), "--idempotency-key", "cli-e2e", "--json")
        assert json.loads(again.stdout)["JobId"] == job_id  # the same key: the same job

        waited = job("wait", job_id, "--timeout", "240")
        assert waited.returncode == cli_jobs.EXIT_SUCCEEDED, waited.stdout + waited.stderr
        assert f"{job_id} succeeded 100%" in waited.stdout and "oss://local/out/a.mp4" in waited.stdout  # plain lines: not a TTY

        status = json.loads(job("status", job_id, "--json").stdout)
        assert status["State"] == "succeeded" and status["Outputs"][0]["Size"] > 0
        assert job_id in job("list", "--state", "succeeded").stdout
        assert job("status", "j-ffffffffffffffff").returncode == cli_jobs.EXIT_NOT_FOUND
        assert job("wait", "j-ffffffffffffffff").returncode == cli_jobs.EXIT_NOT_FOUND

        # a second job, in a paused pipeline (so still queued), cancelled: its wait ends with the cancelled status
        paused = urllib.request.Request(
            f"{server.base_url}/api/v1/pipelines/held",
            data=json.dumps({"Paused": True}).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(paused, timeout=30) as created:
            assert created.status == 201
        second_body = {"Clips": [{"URI": "oss://local/a.mp4"}], "Output": {"URI": "oss://local/out/b.mp4", "Format": "mp4"}}
        body.write_text(json.dumps({**second_body, "Pipeline": "held"}))
        second = json.loads(job("submit", str(body), "--json").stdout)["JobId"]
        assert json.loads(job("status", second, "--json").stdout)["State"] == "queued"
        cancelled = job("cancel", second, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        ended = job("wait", second, "--timeout", "120")
        assert ended.returncode == cli_jobs.EXIT_CANCELLED, ended.stdout + ended.stderr
        assert f"{second} cancelled" in ended.stdout
