"""A background job's record: what any origin answers for `GET /api/v1/jobs/{id}`, and what a
runner reads to take a job over. Pure: no I/O, no aiohttp.

The JSON form is PascalCase, like the IMM-style APIs: JobId, Pipeline, State, Progress,
CreatedAt, StartedAt, FinishedAt (ISO 8601 UTC), Request (the request as normalised at
submission: what the runner makes), Outputs [{URI, Size}], Error {Code, Message} or null,
Notify {URL} or {Topic}, EventId (of the job's notification, made once it ended), Deliveries
(every attempt to deliver it: EventId, Attempt, At, Status or Error, NextAttemptAt),
Delivered (true, false: given up, or null: still trying or nothing to deliver), UserData,
Attempts (runs started), Owner and LeaseUntil (the runner holding it and until when).

States: queued -> running -> succeeded | failed | cancelled; queued -> cancelled; running ->
queued (a runner that stopped, at shutdown). `transition` refuses anything else.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from livetx.notify.signing import new_event_id  # made once, when the job ends: every attempt carries it

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset((SUCCEEDED, FAILED, CANCELLED))
MOVES: Mapping[str, frozenset[str]] = {
    QUEUED: frozenset((RUNNING, CANCELLED)),
    RUNNING: frozenset((RUNNING, QUEUED, SUCCEEDED, FAILED, CANCELLED)),  # running -> running: taken over
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}
ID_CHARS = 16  # hex digits of a job id
DEFAULT_PIPELINE = "default"  # the pipeline of jobs that name none (livetx/batch/pipelines.py)
VERSION = 1


class RecordInvalid(ValueError):
    """Not a job record this version of livetx can read."""


def new_job_id() -> str:
    return secrets.token_hex(ID_CHARS // 2)


def is_job_id(text: str) -> bool:
    return len(text) == ID_CHARS and all(c in "0123456789abcdef" for c in text)


def iso(at: float) -> str:
    """Unix seconds as ISO 8601 UTC, to the millisecond."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Output:
    uri: str
    size: int


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt to deliver the job's notification, as the delivery log keeps it."""

    event_id: str
    attempt: int
    at: float
    status: int | None = None
    error: str | None = None
    next_at: float | None = None  # when the next attempt is due (None: delivered, or given up)

    def to_json(self) -> dict[str, Any]:
        return {
            "EventId": self.event_id,
            "Attempt": self.attempt,
            "At": iso(self.at),
            "Status": self.status,
            "Error": self.error,
            "NextAttemptAt": iso(self.next_at) if self.next_at is not None else None,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeliveryAttempt:
        next_at = raw.get("NextAttemptAt")
        return cls(
            str(raw["EventId"]),
            int(raw["Attempt"]),
            parse_iso(raw["At"]),
            raw.get("Status"),
            raw.get("Error"),
            parse_iso(next_at) if next_at else None,
        )


@dataclass(frozen=True)
class JobRecord:
    id: str
    request: Mapping[str, Any]  # normalised, as the client reads it back (livetx/batch/request.py)
    work: Mapping[str, Any]  # what the runner makes, in store keys (livetx/batch/request.py JobRequest.work)
    created_at: float
    pipeline: str = DEFAULT_PIPELINE
    state: str = QUEUED
    progress: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: tuple[Output, ...] = ()
    error: JobError | None = None
    notify_url: str | None = None
    topic: str | None = None
    event_id: str | None = None
    deliveries: tuple[DeliveryAttempt, ...] = ()
    delivered: bool | None = None
    user_data: str | None = None
    attempts: int = 0
    owner: str | None = None
    lease_until: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields echoed as given (OSS: the answer's TaskId)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def notice_pending(self) -> bool:
        """Ended, with a notification that is neither delivered nor given up."""
        return self.finished and self.notify_url is not None and self.delivered is None

    def transition(self, state: str, at: float, **changes: Any) -> JobRecord:
        """The record moved to `state` (ValueError for a move the states don't allow)."""
        if state not in MOVES[self.state]:
            raise ValueError(f"job {self.id}: {self.state} -> {state} is not a move a job makes")
        moved = replace(self, state=state, **changes)
        if state == RUNNING and self.state == QUEUED:
            moved = replace(moved, started_at=at)
        if state in TERMINAL:
            moved = replace(moved, finished_at=at, owner=None, lease_until=None, event_id=new_event_id())
            if state == SUCCEEDED:
                moved = replace(moved, progress=100)
        if state == QUEUED:
            moved = replace(moved, owner=None, lease_until=None)
        return moved

    def with_attempt(self, attempt: DeliveryAttempt, delivered: bool | None) -> JobRecord:
        return replace(self, deliveries=(*self.deliveries, attempt), delivered=delivered)

    # ---- JSON ------------------------------------------------------------------------------

    def notice(self) -> dict[str, Any]:
        """The body of the job's notification: the record as it ended, with its event id, without
        what changes while it is delivered (the delivery log, the claim)."""
        body = self.to_json()
        for name in ("Deliveries", "Delivered", "Owner", "LeaseUntil", "Work"):
            body.pop(name)
        return body

    def to_json(self) -> dict[str, Any]:
        notify: dict[str, str] | None = None
        if self.notify_url is not None or self.topic is not None:
            notify = {k: v for k, v in (("URL", self.notify_url), ("Topic", self.topic)) if v is not None}
        return {
            "JobId": self.id,
            "Pipeline": self.pipeline,
            "State": self.state,
            "Progress": self.progress,
            "CreatedAt": iso(self.created_at),
            "StartedAt": iso(self.started_at) if self.started_at is not None else None,
            "FinishedAt": iso(self.finished_at) if self.finished_at is not None else None,
            "Request": dict(self.request),
            "Work": dict(self.work),
            "Outputs": [{"URI": o.uri, "Size": o.size} for o in self.outputs],
            "Error": {"Code": self.error.code, "Message": self.error.message} if self.error is not None else None,
            "Notify": notify,
            "EventId": self.event_id,
            "Deliveries": [d.to_json() for d in self.deliveries],
            "Delivered": self.delivered,
            "UserData": self.user_data,
            "Attempts": self.attempts,
            "Owner": self.owner,
            "LeaseUntil": iso(self.lease_until) if self.lease_until is not None else None,
            **self.extra,
        }

    def to_stored(self) -> dict[str, Any]:
        return {"Version": VERSION, **self.to_json()}

    @classmethod
    def from_stored(cls, raw: Any) -> JobRecord:
        if not isinstance(raw, dict) or raw.get("Version") != VERSION:
            raise RecordInvalid("not a job record")
        try:
            error, notify = raw.get("Error"), raw.get("Notify") or {}
            known = {
                "Version", "JobId", "Pipeline", "State", "Progress", "CreatedAt", "StartedAt", "FinishedAt", "Request", "Work",
                "Outputs", "Error", "Notify", "EventId", "Deliveries", "Delivered", "UserData", "Attempts", "Owner", "LeaseUntil",
            }  # fmt: skip
            record = cls(
                id=str(raw["JobId"]),
                request=dict(raw["Request"]),
                work=dict(raw["Work"]),
                created_at=parse_iso(raw["CreatedAt"]),
                pipeline=str(raw["Pipeline"]),
                state=str(raw["State"]),
                progress=int(raw["Progress"]),
                started_at=parse_iso(raw["StartedAt"]) if raw.get("StartedAt") else None,
                finished_at=parse_iso(raw["FinishedAt"]) if raw.get("FinishedAt") else None,
                outputs=tuple(Output(str(o["URI"]), int(o["Size"])) for o in raw["Outputs"]),
                error=JobError(str(error["Code"]), str(error["Message"])) if error else None,
                notify_url=notify.get("URL"),
                topic=notify.get("Topic"),
                event_id=raw.get("EventId"),
                deliveries=tuple(DeliveryAttempt.from_json(d) for d in raw["Deliveries"]),
                delivered=raw.get("Delivered"),
                user_data=raw.get("UserData"),
                attempts=int(raw["Attempts"]),
                owner=raw.get("Owner"),
                lease_until=parse_iso(raw["LeaseUntil"]) if raw.get("LeaseUntil") else None,
                extra={k: v for k, v in raw.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordInvalid(f"not a job record ({type(exc).__name__})") from None
        if record.state not in STATES or not is_job_id(record.id):
            raise RecordInvalid("not a job record (state or id)")
        return record
