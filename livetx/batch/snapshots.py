"""A snapshot job's contract (MPS SubmitSnapshotJob's SnapshotConfig, in the jobs API): frames of
one clip at given times, or every `Interval` seconds, each written whole to an object of its own.
Pure: no aiohttp, no av, no storage I/O.

In `POST /api/v1/jobs`, a request with one clip and a `Snapshot` object:
  Snapshot  {"Time": ms, "Interval": s, "Num": n}: as MPS, the first frame at Time (default 0),
            then one every Interval seconds, Num of them, or to the clip's end without Num; with
            no Interval, one frame at Time. Or {"Times": [ms, ...]}: frames at those clip times.
            And the picture: Width, Height, ScaleType (fit, fill, crop, stretch), Quality, and
            FrameType (MPS: normal, the frame shown at the time; intra, the keyframe at or
            before it), with the meanings of a snapshot URL's w, h, scaletype, q and mode
            (livetx/pictures.py SnapshotParams, which checks them).
  Output    {"URI": "oss://bucket/shots/film-{Count}.jpg", "Format": "jpg" | "webp" | "png"}:
            `{Count}` becomes the picture's number from 1, in 5 digits (00001), as MPS names
            snapshot objects; a URI without it is taken by a job of one picture only. Format
            defaults to the URI's suffix.
Times are the clip's (after its StartTime); each must fall before its end, which the
submission checks (it plans the clip), naming the field. The clip's Video parameters that make
a watermark (Video.Watermark) draw it over every picture, made for the picture's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livetx.contract import Choice, Field, Integer, ListOf, Shape, Via, spec_of
from livetx.errors import LimitExceeded, ParameterError
from livetx.pictures import DEFAULT_QUALITY, FORMATS, SnapshotParams

MAX_SNAPSHOTS = 1000  # pictures of one job
COUNT = "{Count}"  # in Output.URI: the picture's number
COUNT_DIGITS = 5
FRAME_TYPES = {"normal": "exact", "intra": "key"}  # MPS FrameType -> a snapshot's mode
PICTURE_FORMATS = tuple(FORMATS)
_TIME = Integer(0, None, "ms")

SNAPSHOT = Shape(
    {
        "Time": Field(_TIME, doc="clip time of the first picture, ms (MPS Time); default 0"),
        "Interval": Field(Integer(1, 86400, "s"), doc="seconds between pictures (MPS Interval): from Time, Num of them or to the end"),
        "Num": Field(Integer(1, MAX_SNAPSHOTS), doc="how many pictures, with Interval (MPS Num); default: to the clip's end"),
        "Times": Field(ListOf(_TIME, 1, MAX_SNAPSHOTS, "clip times in ms"), doc="clip times of the pictures, ms: instead of Time"),
        "Width": Field(Via("w", spec_of(SnapshotParams, "w")), doc="as a snapshot URL's w"),
        "Height": Field(Via("h", spec_of(SnapshotParams, "h")), doc="as a snapshot URL's h"),
        "ScaleType": Field(Via("scaletype", spec_of(SnapshotParams, "scaletype"), lower=True), doc="as a snapshot URL's scaletype"),
        "Quality": Field(Via("q", spec_of(SnapshotParams, "q")), doc="as a snapshot URL's q (JPEG, WebP)"),
        "FrameType": Field(Choice(tuple(FRAME_TYPES)), doc="normal: the frame shown at each time; intra: the keyframe at or before it"),
    },
    doc="a snapshot job: pictures of the one clip, each its own object (Output.URI with {Count})",
)


@dataclass(frozen=True)
class SnapshotPlan:
    """What a snapshot job asks for: explicit `times`, or `time` + `interval` x `num`."""

    picture: SnapshotParams  # w, h, scaletype, q, mode (t unused: the times are below)
    times: tuple[int, ...] | None = None  # ms, as asked
    time: int = 0  # ms
    interval: int | None = None  # s
    num: int | None = None

    def to_json(self) -> dict[str, Any]:
        p = self.picture
        out: dict[str, Any] = {"W": p.w, "H": p.h, "ScaleType": p.scaletype, "Q": p.q, "Mode": p.mode}
        if self.times is not None:
            return {**out, "Times": list(self.times)}
        return {**out, "Time": self.time, "Interval": self.interval, "Num": self.num}


def from_json(data: Mapping[str, Any]) -> SnapshotPlan:
    picture = SnapshotParams(w=data.get("W"), h=data.get("H"), scaletype=str(data["ScaleType"]), q=int(data["Q"]), mode=str(data["Mode"]))
    if "Times" in data:
        return SnapshotPlan(picture, times=tuple(int(t) for t in data["Times"]))
    interval, num = data.get("Interval"), data.get("Num")
    return SnapshotPlan(
        picture, time=int(data["Time"]), interval=None if interval is None else int(interval), num=None if num is None else int(num)
    )


def parse_snapshot(parsed: Mapping[str, Any]) -> SnapshotPlan:
    """The checked `Snapshot` object (SNAPSHOT's fields present), as a plan."""
    picture = SnapshotParams(
        w=parsed.get("Width"),
        h=parsed.get("Height"),
        scaletype=parsed.get("ScaleType", "fit"),
        q=parsed.get("Quality", DEFAULT_QUALITY),
        mode=FRAME_TYPES[parsed.get("FrameType", "normal")],
    )
    if "Times" in parsed:
        mixed = next((name for name in ("Time", "Interval", "Num") if name in parsed), None)
        if mixed is not None:
            raise ParameterError(f"Snapshot.{mixed}", "absent with Snapshot.Times")
        return SnapshotPlan(picture, times=tuple(parsed["Times"]))
    if "Num" in parsed and parsed["Num"] > 1 and "Interval" not in parsed:
        raise ParameterError("Snapshot.Num", "1 or absent without Snapshot.Interval (one picture at Time)")
    return SnapshotPlan(picture, time=parsed.get("Time", 0), interval=parsed.get("Interval"), num=parsed.get("Num"))


def snapshot_times(plan: SnapshotPlan, duration_ms: int) -> tuple[int, ...]:
    """The clip times (ms) of the pictures, each before the clip's end (`duration_ms`); a time
    at or past it is a ParameterError naming its field."""
    end = f"before the clip's end ({duration_ms} ms)"
    if plan.times is not None:
        for i, t in enumerate(plan.times):
            if t >= duration_ms:
                raise ParameterError(f"Snapshot.Times[{i}]", end)
        return plan.times
    if plan.time >= duration_ms:
        raise ParameterError("Snapshot.Time", end)
    if plan.interval is None:
        return (plan.time,)
    step = plan.interval * 1000
    if plan.num is not None:
        if plan.time + (plan.num - 1) * step >= duration_ms:
            raise ParameterError("Snapshot.Num", f"at most {(duration_ms - 1 - plan.time) // step + 1}: the last picture {end}")
        return tuple(plan.time + k * step for k in range(plan.num))
    times = tuple(range(plan.time, duration_ms, step))
    if len(times) > MAX_SNAPSHOTS:
        raise LimitExceeded("Snapshot.Interval", f"long enough for at most {MAX_SNAPSHOTS} pictures to the clip's end, or Num")
    return times


def resolved(plan: SnapshotPlan, duration_ms: int) -> SnapshotPlan:
    """The plan with its times listed (checked against the clip's duration), what the runner makes."""
    return SnapshotPlan(plan.picture, times=snapshot_times(plan, duration_ms))


def output_keys(pattern: str, plan: SnapshotPlan) -> tuple[str, ...]:
    """Every picture's key (or URI), numbered from 1; a pattern without {Count} for one picture only."""
    assert plan.times is not None, "resolved at submission"
    check_numbered(pattern, len(plan.times))
    return tuple(numbered(pattern, n) for n in range(1, len(plan.times) + 1))


def picture_format(output: Mapping[str, Any]) -> str:
    """Output.Format, or the suffix of Output.URI: one of the picture formats."""
    fmt = output.get("Format") or str(output["URI"]).rpartition(".")[2].lower()
    if fmt not in PICTURE_FORMATS:
        raise ParameterError("Output.Format", f"one of {', '.join(PICTURE_FORMATS)} with Snapshot (or the URI's suffix)")
    return str(fmt)


def numbered(pattern: str, n: int) -> str:
    """Picture `n`'s name (from 1): `{Count}` in `pattern` as 5 digits."""
    return pattern.replace(COUNT, f"{n:0{COUNT_DIGITS}d}")


def check_numbered(pattern: str, count: int) -> None:
    if count > 1 and COUNT not in pattern:
        raise ParameterError("Output.URI", f"a name with {COUNT} (the picture's number) for a job of {count} pictures")
