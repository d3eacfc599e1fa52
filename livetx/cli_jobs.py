"""`livetx job submit|status|wait|cancel|list`: the jobs API of a running server, over HTTP.

The server is `--server` (default: `server.public_url` of the settings, the address `livetx
serve` listens on), the API key `--api-key`, else the environment's LIVETX_API_KEY, else the
first key of the settings (`api.key_file`: `make run` writes `var/api.key`; or LIVETX_API_KEYS).

The API (POST, GET and DELETE /api/v1/jobs[/<id>]) answers with job records: `JobId`, `State`
(queued, running, succeeded, failed, cancelled), `Progress` (percent), `CreatedAt`,
`StartedAt`, `FinishedAt`, `Outputs` ([{"URI", "Size"}]) and `Error` ({"Code", "Message"} or
null). `wait` polls the record every `--interval` seconds, with a progress bar (rich) when
stdout is a terminal and one plain line per change otherwise, and its exit status says how the
job ended (EXIT_* below). `status`, `cancel`, `submit` and `list` print the record(s), or the
API's JSON with `--json`.

The pure parts (arguments, the text of a record, the exit status of a record) are separate from
the one function that talks HTTP, `call`, which uses the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from livetx.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console  # imported when a bar is shown: the CLI's other commands never load rich

API_KEY_ENV = "LIVETX_API_KEY"
JOBS_PATH = "/api/v1/jobs"
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_INTERVAL = 0.5  # seconds between two polls of `wait`
HTTP_TIMEOUT = 30.0  # seconds one API call may take

# exit statuses (2, as for every livetx command: an error talking to the server or in the config)
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_CANCELLED = 3
EXIT_NOT_FOUND = 4
EXIT_TIMEOUT = 5  # `wait --timeout` ran out before the job ended
EXIT_BY_STATE = {"succeeded": EXIT_SUCCEEDED, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


class ApiError(Exception):
    """An answer other than 2xx (its JSON error, when it has one), or no answer at all (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})" if code else message)
        self.status = status
        self.code = code
        self.message = message


# ---- arguments ------------------------------------------------------------------------------


def add_parser(sub: Any, settings_of: Callable[[argparse.Namespace], Any]) -> None:
    """`livetx job ...` under the main parser's subcommands; `settings_of(args)` loads the settings
    (only when --server or the API key is left out)."""
    job = sub.add_parser("job", help="submit, watch, cancel and list jobs on a running server")
    common = argparse.ArgumentParser(add_help=False)  # the options of every verb
    common.add_argument("--server", help="the server's URL (default: server.public_url, where `livetx serve` listens)")
    common.add_argument("--api-key", help=f"the API key (default: ${API_KEY_ENV}, else the first key of api.key_file)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    verbs = job.add_subparsers(dest="verb", required=True)

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=text, parents=[common])
        return parser

    submit = verb("submit", "submit a job: its JSON body from a file, or '-' for stdin")
    submit.add_argument("body", help="a file holding the job's JSON body, or '-' to read it from stdin")
    submit.add_argument("--idempotency-key", help="sent as Idempotency-Key: the same key and body give the same job")
    submit.add_argument("--wait", action="store_true", help="then wait for it, as `livetx job wait`")
    _wait_options(submit)

    status = verb("status", "print a job's record")
    status.add_argument("job_id", metavar="JOB_ID")

    wait = verb("wait", "wait for a job to end; exit 0 when it succeeded (1 failed, 3 cancelled, 4 not found)")
    wait.add_argument("job_id", metavar="JOB_ID")
    _wait_options(wait)

    cancel = verb("cancel", "cancel a job")
    cancel.add_argument("job_id", metavar="JOB_ID")

    listing = verb("list", "list jobs")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--pipeline")
    listing.add_argument("--limit", type=int)
    job.set_defaults(func=lambda args: run(args, settings_of))


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=POLL_INTERVAL, help=f"seconds between polls (default {POLL_INTERVAL})")
    parser.add_argument("--timeout", type=float, help="give up (exit 5) after this many seconds")


@dataclass(frozen=True)
class Client:
    server: str
    api_key: str


def client_of(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], Any], environ: Mapping[str, str]) -> Client:
    """The server and API key: the options, then the environment, then the settings."""
    server, api_key = args.server, args.api_key or environ.get(API_KEY_ENV)
    if not server or not api_key:
        settings = settings_of(args)
        server = server or settings.server.public_url
        if not api_key:
            if not settings.api.keys:
                raise ConfigError(f"no API key: pass --api-key, set {API_KEY_ENV}, or configure api.key_file (`livetx keygen`)")
            api_key = settings.api.keys[0].secret.decode()
    return Client(server.rstrip("/"), api_key)


# ---- records as text, and exit statuses -------------------------------------------------------


def exit_status(record: Mapping[str, Any]) -> int | None:
    """How a job that ended ends the command; None while it has not ended."""
    return EXIT_BY_STATE.get(str(record.get("State")))


def progress_of(record: Mapping[str, Any]) -> float:
    """The record's progress in percent, within 0-100 (100 once it succeeded)."""
    if record.get("State") == "succeeded":
        return 100.0
    value = record.get("Progress")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return 0.0
    return min(100.0, max(0.0, float(value)))


def size_text(size: Any) -> str:
    if not isinstance(size, int) or isinstance(size, bool):
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def status_line(record: Mapping[str, Any]) -> str:
    """One line: `<id> <state> <progress>%`, and the error when it failed."""
    line = f"{record.get('JobId', '?')} {record.get('State', '?')} {progress_of(record):.0f}%"
    error = record.get("Error")
    if isinstance(error, Mapping):
        line += f" {error.get('Code', '?')}: {error.get('Message', '')}"
    return line


def format_record(record: Mapping[str, Any]) -> str:
    """A job record as a few lines of text."""
    lines = [f"job       {record.get('JobId', '?')}", f"state     {record.get('State', '?')} ({progress_of(record):.0f}%)"]
    if record.get("Pipeline"):
        lines.append(f"pipeline  {record['Pipeline']}")
    for name, label in (("CreatedAt", "created"), ("StartedAt", "started"), ("FinishedAt", "finished")):
        if record.get(name):
            lines.append(f"{label:<9} {record[name]}")
    outputs = record.get("Outputs")
    for output in outputs if isinstance(outputs, list) else []:
        if isinstance(output, Mapping):
            lines.append(f"output    {output.get('URI', '?')} ({size_text(output.get('Size'))})")
    error = record.get("Error")
    if isinstance(error, Mapping):
        lines.append(f"error     {error.get('Code', '?')}: {error.get('Message', '')}")
    return "\n".join(lines)


def format_list(records: list[Mapping[str, Any]]) -> str:
    """Jobs as aligned columns: id, state, progress, created."""
    rows = [("JOB", "STATE", "PROGRESS", "CREATED")]
    rows += [(str(r.get("JobId", "?")), str(r.get("State", "?")), f"{progress_of(r):.0f}%", str(r.get("CreatedAt") or "")) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


def list_query(state: str | None, pipeline: str | None, limit: int | None) -> str:
    """`?state=...&pipeline=...&limit=...` with the filters given, else ""."""
    query = {name: value for name, value in (("state", state), ("pipeline", pipeline), ("limit", limit)) if value is not None}
    return "?" + urlencode(query) if query else ""


def job_path(job_id: str) -> str:
    return f"{JOBS_PATH}/{quote(job_id, safe='')}"


def read_body(source: str, stdin: IO[str]) -> Any:
    """The job's JSON body from a file, or from stdin for '-'."""
    text = stdin.read() if source == "-" else Path(source).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"the job body is not JSON: {exc.msg} at character {exc.pos}") from None


# ---- HTTP -----------------------------------------------------------------------------------


def call(client: Client, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
    """One API call: its JSON answer; ApiError for another status or no answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(client.server + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {client.api_key}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise _api_error(exc.code, exc.read()) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(0, "", f"cannot reach {client.server}: {reason}") from None
    return json.loads(raw) if raw else None


def _api_error(status: int, raw: bytes) -> ApiError:
    try:
        error = json.loads(raw)["error"]
        return ApiError(status, str(error.get("code", "")), str(error.get("message", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(status, "", f"HTTP {status}")


# ---- the commands ---------------------------------------------------------------------------


def run(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], Any]) -> int:
    client = client_of(args, settings_of, os.environ)
    try:
        return COMMANDS[args.verb](client, args)
    except ApiError as exc:
        print(f"livetx: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND if exc.status == 404 and getattr(args, "job_id", None) else EXIT_ERROR


def _print(args: argparse.Namespace, answer: Any, text: str) -> None:
    print(json.dumps(answer, indent=2) if args.json else text, flush=True)


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    record = call(client, "POST", JOBS_PATH, read_body(args.body, sys.stdin), headers)
    if args.wait:
        if not args.json:
            print(record.get("JobId", "?"), flush=True)
        args.job_id = record.get("JobId")
        return cmd_wait(client, args)
    _print(args, record, format_record(record))
    return EXIT_SUCCEEDED


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    record = call(client, "GET", job_path(args.job_id))
    _print(args, record, format_record(record))
    return EXIT_SUCCEEDED


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    record = call(client, "DELETE", job_path(args.job_id))
    _print(args, record, format_record(record) if isinstance(record, Mapping) else f"{args.job_id} cancelled")
    return EXIT_SUCCEEDED


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    answer = call(client, "GET", JOBS_PATH + list_query(args.state, args.pipeline, args.limit))
    _print(args, answer, format_list(list(answer.get("Jobs", []))))
    return EXIT_SUCCEEDED


def cmd_wait(client: Client, args: argparse.Namespace) -> int:
    path = job_path(args.job_id)
    poll = Poller(lambda: call(client, "GET", path), args.interval, args.timeout)
    record = poll.with_bar(args.job_id) if sys.stdout.isatty() and not args.json else poll.with_lines(None if args.json else sys.stdout)
    if record is None:
        print(f"livetx: job {args.job_id} had not ended after {args.timeout:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    if args.json:
        print(json.dumps(record, indent=2), flush=True)
    else:
        print(format_record(record), flush=True)
    status = exit_status(record)
    return EXIT_ERROR if status is None else status


class Poller:
    """Polls one job (`fetch` gets its record) until it ends, or until `timeout` seconds pass
    (then None). Time and waiting are injected: `clock` and `sleep`."""

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        interval: float,
        timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fetch, self.interval, self.timeout = fetch, interval, timeout
        self.clock, self.sleep = clock, sleep

    def records(self) -> Iterator[Mapping[str, Any]]:
        """Each polled record, until one has ended or the time is up."""
        deadline = None if self.timeout is None else self.clock() + self.timeout
        while True:
            record = self.fetch()
            yield record
            if exit_status(record) is not None or (deadline is not None and self.clock() >= deadline):
                return
            self.sleep(self.interval)

    def with_lines(self, out: IO[str] | None = None) -> Mapping[str, Any] | None:
        """Plain output to `out` (None: none): a line whenever the state or the whole percent changes."""
        shown = ""
        last: Mapping[str, Any] | None = None
        for record in self.records():
            last = record
            line = status_line(record)
            if line != shown and out is not None:
                print(line, file=out, flush=True)
            shown = line
        return last if last is not None and exit_status(last) is not None else None

    def with_bar(self, label: str, console: Console | None = None) -> Mapping[str, Any] | None:
        """A rich progress bar (on `console`, else stdout), described by `label` and the job's state."""
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        last: Mapping[str, Any] | None = None
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"{label} queued", total=100.0)
            for record in self.records():
                last = record
                bar.update(task, completed=progress_of(record), description=f"{label} {record.get('State', '?')}")
        return last if last is not None and exit_status(last) is not None else None


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "submit": cmd_submit,
    "status": cmd_status,
    "wait": cmd_wait,
    "cancel": cmd_cancel,
    "list": cmd_list,
}
