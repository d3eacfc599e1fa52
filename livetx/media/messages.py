"""What crosses the pipe between a pool and its worker processes, as small frozen dataclasses.

Parent -> worker: a job (`SegmentJob`, `PictureJob` or `ProbeJob`), or `Cancel`. Worker -> parent: `Ready`
once at start, then one `Reply` per job; a segment job's reply may follow `Chunk`s, the
segment's bytes as they are muxed (streamed to a client while the rest is made). The parent's side of a job (`_Worker.call` in
`livetx.media.pool`) ends in an `Outcome`: the worker's reply, or what happened to the worker
instead (`TimedOut`, `WorkerLost`, `WorkerUnavailable`), after which the worker was replaced.

Everything here is picklable: an error travels as its class (pickled by name) and message,
never as an exception object, whose constructor arguments may not survive a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeAlias, TypeVar

from livetx.errors import LivetxError

R = TypeVar("R")


@dataclass(frozen=True)
class Ready:
    """Worker -> parent, once: imports done, jobs welcome."""

    pid: int


@dataclass(frozen=True)
class Cancel:
    """Parent -> worker: give up the current job (a no-op when it arrives after the job ended)."""


@dataclass(frozen=True)
class Chunk:
    """Worker -> parent, before a segment job's `Done`: the next bytes of the segment, whole TS
    packets or whole fMP4 boxes. The chunks of one attempt concatenate to the `Done` result's
    data; a job run again (preempted, or its worker replaced) starts its chunks over."""

    data: bytes


@dataclass(frozen=True)
class Done(Generic[R]):
    """The job's result."""

    result: R


@dataclass(frozen=True)
class Failed:
    """The job raised `kind(message)`; an unexpected exception is reported as TranscodeFailed
    with its type name only (its message may name the file)."""

    kind: type[LivetxError]
    message: str


@dataclass(frozen=True)
class Cancelled:
    """The job stopped on a `Cancel` (preempted for a client); it may be queued again."""


class Preempted(Exception):
    """Raised inside a job that saw a `Cancel` (its `should_stop` said so): the pool asked this
    (background) job to give its worker to a waiting client. Never crosses the pipe: the
    worker replies `Cancelled`."""


# ---- parent side only: the worker did not reply, and has been replaced ------------------


@dataclass(frozen=True)
class TimedOut:
    """The job overran its time limit: its worker was killed and replaced."""

    reason: ClassVar[str] = "transcode_timeout"
    message: str


@dataclass(frozen=True)
class WorkerLost:
    """The worker died under the job (killed from outside, a crash) and was replaced."""

    reason: ClassVar[str] = "transcode_failed"
    message: str


@dataclass(frozen=True)
class WorkerUnavailable:
    """The worker could not be started at all (the probe pool starts workers on demand)."""

    reason: ClassVar[str] = "worker_unavailable"
    message: str


Reply: TypeAlias = Done[R] | Failed | Cancelled
Restarted: TypeAlias = TimedOut | WorkerLost | WorkerUnavailable
Outcome: TypeAlias = Done[R] | Failed | Cancelled | TimedOut | WorkerLost | WorkerUnavailable
