"""What the tests of background jobs share: the server's settings for quick jobs, the jobs API
called over HTTP, waiting for a job's state, where outputs land, and a webhook receiver on
loopback."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.support import wait_until

SECRET = "batch-test-secret-0123456789"
FAST = {
    "LIVETX_NOTIFY_SECRET": SECRET,
    "LIVETX_NOTIFY_ALLOW_PRIVATE_TARGETS": "true",
    "LIVETX_NOTIFY_FIRST_DELAY": "0.2",
    "LIVETX_JOBS_POLL": "0.5",
    "LIVETX_JOBS_LEASE_TTL": "3",
    "LIVETX_JOBS_PROGRESS_EVERY": "0.1",
}


# ---- helpers -------------------------------------------------------------------------------


def call(server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    hdrs = {"Authorization": f"Bearer {server.api_key}", **(headers or {})}
    if body is not None and not isinstance(body, bytes):
        hdrs["Content-Type"] = "application/json"
    request = urllib.request.Request(server.base_url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def job_body(key: str, output: str, **extra: Any) -> dict[str, Any]:
    return {"Clips": [{"URI": f"oss://local/{key}"}], "Output": {"URI": f"oss://local/{output}", "Format": "mp4"}, **extra}


def job(server: Server, job_id: str) -> dict[str, Any]:
    status, record = call(server, "GET", f"/api/v1/jobs/{job_id}")
    assert status == 200, record
    return record  # type: ignore[no-any-return]


def wait_state(server: Server, job_id: str, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    return wait_until(lambda: (r := job(server, job_id))["State"] in states and r, timeout, f"job {job_id} in {states}")


def finished(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Submit the job `body` (a new one: 201) and return its record once it has succeeded."""
    status, submitted = call(server, "POST", "/api/v1/jobs", body)
    assert status == 201, submitted
    done = wait_state(server, submitted["JobId"], ("succeeded", "failed"))
    assert done["State"] == "succeeded", done["Error"]
    return done


def output_path(server: Server, key: str) -> Path:
    return server.media / ".livetx" / key


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers the statuses of `script` in turn (then 200)."""

    script: list[int]
    got: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""


@contextmanager
def serving(state: Receiver) -> Iterator[Receiver]:
    """`state`'s receiver listening on a free loopback port (its URL set) until the block ends."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.script.pop(0) if state.script else 200
            state.got.append((dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving(Receiver([500, 500, 500])) as state:
        yield state
