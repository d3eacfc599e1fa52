"""The request contract of a background job: a composite (livetx/concat.py) and where its output
goes, from `POST /api/v1/jobs` or from OSS `x-oss-async-process=video/concat,...|sys/saveas,...`.
Pure: no aiohttp, no storage I/O.

The JSON form is concat.COMPOSITE's fields at the top level (Clips, Align, Format, Container,
Video, Audio) plus:
  Output    {"URI": "oss://bucket/key.mp4", "Format": "mp4" | "mov" | "mkv" | "ts" | "webm" | "m4a" | "mp3"}
            (required; m4a: AAC audio only, in MP4; mp3: an MP3 file; Format defaults to the
            top-level Format), or
            segmented: {"URI": "oss://bucket/prefix", "Format": "ts" | "mp4", "Segment":
            {"Format": "hls" | "dash", "Duration": 10}}: `<prefix>.m3u8` and its segments next
            to it, as OSS `/segment,f_hls` and hls/m3u8 name them; dash (Format mp4: DASH needs
            fMP4) adds `<prefix>.mpd` over the same stored segments
  Template  the name of a stored template (livetx/batch/templates.py): its parameters are the
            output's, and the request's own fields (Video, Audio, Container) override them, as
            IMM `Targets[i].Template` does (templates.over_template); the record's `Work` keeps
            the resolved parameters, so editing the template later changes no submitted job
  Pipeline  the queue the job runs in ("default"; livetx/batch/pipelines.py): an Output.URI
            with no scheme (`clips/a.mp4`) is a key under the pipeline's OutputPrefix
  Notify    {"URL": "https://..."}: a webhook when the job ends
  UserData  text given back in the record and the notification
Every refusal is a ParameterError naming the field as the request wrote it (`Output.URI`,
`Clips[2].StartTime`); a value livetx parses but does not make yet is a 422 (check_makeable).

A parsed request is a `JobRequest`: the composite, the output key and format, and two JSON
forms: `request` (normalised, what GET shows) and `work` (store keys and parameter values, what
the runner makes: it never maps a URI again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from livetx.batch import pipelines, snapshots, templates
from livetx.batch.snapshots import PICTURE_FORMATS, SNAPSHOT, SnapshotPlan
from livetx.composite import ClipField, json_field
from livetx.concat import (
    COMPOSITE,
    SEGMENT_FORMATS,
    Clip,
    Composite,
    ConcatRequest,
    SegmentParams,
    check_makeable,
    concat_params,
    json_name,
    make_composite,
    oss_clip_field,
    parse_composite,
)
from livetx.contract import Choice, Field, Shape, Text, Via, spec_of
from livetx.errors import LimitExceeded, LivetxError, OutputReserved, ParameterError, ParameterUnsupported
from livetx.jobs import URI, KeyFor
from livetx.media.params import PRESETS
from livetx.settings import LimitsSettings
from livetx.storage.base import check_key, is_hidden
from livetx.titles import PER_RENDITION

FILE_FORMATS = ("mp4", "mov", "mkv", "ts", "webm", "m4a", "mp3")
# the audio-only formats (livetx's, not video/concat's `f`): the codec each holds, and the `f`
# of the composite (m4a: an MP4 file with no video; mp3: an MP3 file, no container)
AUDIO_ONLY: dict[str, tuple[str, str | None]] = {"m4a": ("aac", "mp4"), "mp3": ("mp3", None)}
CONTAINER_OF = {
    "mp4": "mp4",
    "mov": "mov",
    "mkv": "matroska",
    "ts": "mpegts",
    "webm": "webm",
    "m4a": "ipod",
    "mp3": "mp3",
}  # PyAV muxer names
DEFAULT_PIPELINE = pipelines.DEFAULT

SEGMENTED_FORMATS = ("ts", "mp4")  # the Output.Format of a segmented output: its segments' container (ts, fMP4)
DASH_FORMAT = "mp4"  # the one Output.Format of a DASH segmented output (fMP4 segments)
SEGMENT = Shape(
    {
        "Format": Field(
            Choice(SEGMENT_FORMATS),
            required=True,
            doc="hls: a media playlist and its segments; dash: an MPD (<URI>.mpd) too, over the same fMP4 segments (Output.Format mp4)",
        ),
        "Duration": Field(Via("t", spec_of(SegmentParams, "t"), scale=1000), doc="seconds per segment"),
    }
)
OUTPUT = Shape(
    {
        "URI": Field(
            URI,
            required=True,
            doc="oss://bucket/key (or s3://) of the output object (segmented: its prefix), in the output store; a key with no"
            " scheme (clips/a.mp4) is placed under the pipeline's OutputPrefix",
        ),
        "Format": Field(
            Choice(FILE_FORMATS + PICTURE_FORMATS),
            doc="the file's container (m4a: AAC audio only, in MP4; mp3: an MP3 file); default: the top-level Format."
            " With Snapshot: the pictures' format (jpg, webp, png; default: the URI's suffix)",
        ),
        "Segment": Field(SEGMENT, doc="segmented output: <URI>.m3u8 and <URI>-<token>-<n>.ts (Format mp4: fMP4), the whole title made"),
    }
)
NOTIFY = Shape({"URL": Field(Text("an http(s) URL", max_length=2048), required=True, doc="the webhook receiver (see README: Webhooks)")})
JOB_REQUEST = Shape(
    {
        **COMPOSITE.fields,
        "Output": Field(OUTPUT, required=True, doc="where the job's file goes: written whole once the job succeeds, else never"),
        "Template": Field(
            templates.NAME,
            doc="the name of a stored template (PUT /api/v1/templates/{name}) whose parameters the output starts from;"
            " the request's own fields override them",
        ),
        "Pipeline": Field(templates.NAME, doc="the queue the job runs in (PUT /api/v1/pipelines/{name}); default: default"),
        "Snapshot": Field(
            SNAPSHOT,
            doc="a snapshot job: pictures of the one clip at Times, or from Time every Interval seconds (MPS SnapshotConfig),"
            " each written to Output.URI with {Count} as its number (00001)",
        ),
        "Notify": Field(NOTIFY, doc="a webhook POSTed, signed, when the job ends (succeeded, failed or cancelled)"),
        "UserData": Field(Text("text of at most 1024 characters", max_length=1024), doc="given back as it is"),
    },
    doc="a background job: a composite of 1 to 11 clips joined into one file, one clip made into HLS (Output.Segment),"
    " or pictures of one clip (Snapshot)",
)
COMPOSITE_FIELDS = tuple(COMPOSITE.fields)


@dataclass(frozen=True)
class JobRequest:
    composite: Composite
    output_key: str
    output_uri: str
    format: str  # one of FILE_FORMATS
    pipeline: str = DEFAULT_PIPELINE
    notify_url: str | None = None
    topic: str | None = None  # OSS /notify
    user_data: str | None = None
    request: Mapping[str, Any] | None = None  # normalised JSON (GET shows it)
    oss: bool = False  # made by OSS: errors name OSS fields
    segment_ms: int | None = None  # segmented output (HLS): ms per segment; output_key is then the prefix
    dash: bool = False  # segmented output with an MPD too (Segment.Format dash, OSS /segment,f_dash)
    source_index: int | None = None  # OSS: the place of the source object among the clips (its fields: pre[i], sur[i])
    snapshot: SnapshotPlan | None = None  # a snapshot job: its pictures (output_key and output_uri hold {Count})

    def field(self, name: str) -> str:
        """A parameter in the request's own terms (`fps`, or `Video.TranscodeVideo.FrameRate`)."""
        return name if self.oss else json_name(name)

    @property
    def clip_field(self) -> ClipField:
        """How a refusal names clip i's field: `Clips[2].URI`, or OSS `sur[1].o` (`key`: the source object)."""
        return json_field if self.source_index is None else oss_clip_field(self.source_index)

    @property
    def work(self) -> dict[str, Any]:
        """What the runner makes, in store keys: `from_work` gives the composite back."""
        params = self.composite.params
        changed = {f.name: json_value(getattr(params, f.name)) for f in fields(params) if getattr(params, f.name) != f.default}
        return {
            "Clips": [[c.key, c.ss_ms, c.t_ms] for c in self.composite.clips],
            "Params": changed,
            "OutputKey": self.output_key,
            "OutputURI": self.output_uri,
            "Format": self.format,
            "SegmentMs": self.segment_ms,
            **({"Dash": True} if self.dash else {}),
            **({"SourceIndex": self.source_index} if self.source_index is not None else {}),
            **({"Snapshot": self.snapshot.to_json()} if self.snapshot is not None else {}),
        }

    def meaning(self) -> str:
        """A hash of what the request asks for (an Idempotency-Key's repeat must ask the same)."""
        text = json.dumps([self.work, self.pipeline, self.notify_url, self.topic, self.user_data], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def json_value(value: Any) -> Any:
    """A parameter's value as JSON writes it (a ratio as "30000/1001"), which its spec reads back."""
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class Work:
    """A record's `Work`, read back."""

    composite: Composite
    output_key: str
    output_uri: str
    format: str
    segment_ms: int | None = None
    profile: str | None = None  # segmented: the playlist job's profile (j-<id>) the title plays under
    source_index: int | None = None  # an OSS job's: see JobRequest
    mpd_key: str | None = None  # segmented, dash: the MPD written next to the playlist
    mpd_uri: str | None = None
    snapshot: SnapshotPlan | None = None  # a snapshot job: the pictures (their times resolved at submission)

    @property
    def clip_field(self) -> ClipField:
        """How a refusal names clip i's field: `Clips[2].URI`, or OSS `sur[1].o`."""
        return json_field if self.source_index is None else oss_clip_field(self.source_index)


def from_work(work: Mapping[str, Any]) -> Work:
    clips = [Clip(str(key), int(ss), int(t)) for key, ss, t in work["Clips"]]
    composite = make_composite(clips, concat_params(dict(work["Params"])))
    segment, profile, source_index = work.get("SegmentMs"), work.get("Profile"), work.get("SourceIndex")
    return Work(
        composite,
        str(work["OutputKey"]),
        str(work["OutputURI"]),
        str(work["Format"]),
        int(segment) if segment is not None else None,
        str(profile) if profile is not None else None,
        int(source_index) if source_index is not None else None,
        str(work["MpdKey"]) if work.get("MpdKey") is not None else None,
        str(work["MpdURI"]) if work.get("MpdURI") is not None else None,
        snapshots.from_json(work["Snapshot"]) if work.get("Snapshot") is not None else None,
    )


def _output_key(uri: str, output_key_for: KeyFor, field: str) -> str:
    key = output_key_for(uri, field)
    try:
        check_key(key)
    except LivetxError as exc:
        raise ParameterError(field, f"an object URI with a valid key ({exc.message})") from None
    if is_hidden(key):
        raise OutputReserved(f"{field} names a hidden key, where livetx keeps its own records", parameter=field)
    return key


def check_segmented_clips(composite: Composite, field: str) -> None:
    """A segmented output (`Output.Segment`, OSS `/segment`) is a playlist job of one source
    (livetx/jobs.py, published with publishing.py's workflow, whose targets are one source's
    title): it takes one clip. A composite of several plays as HLS on demand instead
    (`POST /api/v1/composites`, OSS `x-oss-process=video/concat` without sys/saveas), or is
    joined into one file (a job without `Segment`)."""
    if len(composite.clips) > 1:
        raise ParameterUnsupported(
            field,
            "absent with more than one clip: a segmented job publishes one source's playlist; play a composite on demand"
            " (POST /api/v1/composites, or x-oss-process=video/concat) or join it into one file",
        )


def check_asked(request: JobRequest, limits: LimitsSettings) -> None:
    """What the request asks for, against `[limits]` (the planned title is checked too, by the runner)."""
    params = request.composite.params
    if params.fps is not None and params.fps > limits.max_fps:
        raise LimitExceeded(request.field("fps"), f"at most {limits.max_fps} fps (limits.max_fps)")
    slowest = PRESETS.index(limits.slowest_preset)
    if PRESETS.index(params.preset) > slowest:
        raise LimitExceeded(request.field("preset"), f"one of {', '.join(PRESETS[: slowest + 1])} (limits.slowest_preset)")
    if params.s is not None:
        width, _, height = params.s.partition("x")
        w, h = int(width or 0), int(height or 0)
        if max(w, h) > limits.max_side or w * h > limits.max_pixels:
            raise LimitExceeded(request.field("s"), f"an output of at most {limits.max_pixels} pixels and {limits.max_side} per side")
    clips = request.composite.clips
    if clips and all(c.t_ms for c in clips) and sum(c.t_ms for c in clips) > limits.max_job_seconds * 1000:
        raise LimitExceeded("Clips" if not request.oss else "t", f"at most {limits.max_job_seconds} s of output (limits.max_job_seconds)")


def job_template(params: Mapping[str, Any]) -> dict[str, Any]:
    """What a job takes of a template: its rendition parameters. Its playback parameters
    (segment timing, lookahead: titles.PER_RENDITION) are a player's, and left out; encryption
    is refused (a job's output is written in the clear), naming `Template`."""
    if params.get("encryption", "none") != "none":
        raise ParameterError("Template", "a template without encryption: a job's output is written in the clear")
    return {k: v for k, v in params.items() if k not in PER_RENDITION}


def template_name(body: Any) -> str | None:
    """The template a job request names, read before it is parsed so that its parameters can be
    fetched (anything malformed is left to the parser to refuse)."""
    name = body.get("Template") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def pipeline_name(body: Any) -> str:
    """The pipeline a job request names, checked (a ParameterError naming `Pipeline`), read
    before it is parsed: the pipeline's OutputPrefix places its output."""
    name = body.get("Pipeline", DEFAULT_PIPELINE) if isinstance(body, dict) else DEFAULT_PIPELINE
    checked: str = templates.NAME.check(name, "Pipeline")
    return checked


def parse_job(
    body: Any,
    source_key_for: KeyFor,
    output_key_for: KeyFor,
    limits: LimitsSettings,
    template_for: templates.Lookup = templates.none_stored,
    output_prefix: str = "",
) -> JobRequest:
    """`POST /api/v1/jobs`'s body, checked; every refusal names its field. `template_for`: the
    template it names, resolved (TemplateStore.lookup); `output_prefix`: its pipeline's."""
    parsed = JOB_REQUEST.parse(body)
    output = parsed["Output"]
    top = parsed.get("Format")
    fmt = output.get("Format") or (top if top in FILE_FORMATS else None)
    segment = output.get("Segment")
    snapshot = snapshots.parse_snapshot(parsed["Snapshot"]) if "Snapshot" in parsed else None
    if snapshot is not None:
        if segment is not None:
            raise ParameterError("Output.Segment", "absent with Snapshot (pictures, not segments)")
        fmt = snapshots.picture_format(output)
    elif fmt in PICTURE_FORMATS:
        raise ParameterError("Output.Format", f"one of {', '.join(FILE_FORMATS)} (a picture format with Snapshot only)")
    if segment is not None:
        dash = segment["Format"] == "dash"
        fmt = fmt or ("mp4" if dash else "ts")
        if fmt not in SEGMENTED_FORMATS:
            raise ParameterError("Output.Format", f"{' or '.join(SEGMENTED_FORMATS)} with Output.Segment (the segments' container)")
        if dash and fmt != DASH_FORMAT:
            raise ParameterError("Output.Format", f"{DASH_FORMAT} (or absent) with Output.Segment.Format dash: DASH needs fMP4 segments")
    if fmt is None:
        raise ParameterError("Output.Format", f"one of {', '.join(FILE_FORMATS)} (or a top-level Format)")
    container = AUDIO_ONLY[fmt][1] if fmt in AUDIO_ONLY else None if snapshot is not None else fmt
    if top is not None and snapshot is not None:
        raise ParameterError("Format", "absent with Snapshot (Output.Format is the pictures')")
    if top is not None and output.get("Format") is not None and top != container:
        raise ParameterError("Format", f"{container} as Output.Format says, or absent" if container else f"absent with Output.Format {fmt}")
    raw = {k: body[k] for k in COMPOSITE_FIELDS if k in body}
    if container is None:
        raw.pop("Format", None)
    else:
        raw["Format"] = container
    if fmt in AUDIO_ONLY:
        codec = AUDIO_ONLY[fmt][0]
        video = dict(raw.get("Video") or {})
        if video.get("Disable") == 0:
            raise ParameterError("Video.Disable", f"1 (or absent) with Output.Format {fmt}: an audio-only file")
        raw["Video"] = {**video, "Disable": 1}
        audio = dict(raw.get("Audio") or {})
        transcode = dict(audio.get("TranscodeAudio") or {})
        if str(transcode.get("Codec", codec)).lower() != codec:
            raise ParameterError("Audio.TranscodeAudio.Codec", f"{codec} (or absent) with Output.Format {fmt}")
        raw["Audio"] = {**audio, "TranscodeAudio": {**transcode, "Codec": codec}}
    uris: dict[str, str] = {}

    def key_for(uri: str, field: str) -> str:
        key = source_key_for(uri, field)
        uris.setdefault(key, uri)
        return key

    template = job_template(template_for(parsed["Template"], "Template")) if "Template" in parsed else {}
    composite = parse_composite(raw, key_for, template)
    check_makeable(composite, json_name, file=segment is None)
    if segment is not None:
        check_segmented_clips(composite, "Output.Segment")
    if snapshot is not None and len(composite.clips) > 1:
        raise ParameterError("Clips", "one clip with Snapshot (the pictures are of one clip)")
    output_key = _output_key(output["URI"], pipelines.under_prefix(output_prefix, output_key_for), "Output.URI")
    output_uri = output["URI"] if pipelines.is_uri(output["URI"]) else output_key  # a relative name: the key it is under the prefix
    pipeline = parsed.get("Pipeline", DEFAULT_PIPELINE)
    notify = parsed.get("Notify")
    normal = {k: v for k, v in body.items() if k not in ("Notify", "UserData")}
    normal["Output"] = {"URI": output_uri, "Format": fmt}
    normal["Pipeline"] = pipeline
    if segment is not None:
        normal["Output"]["Segment"] = segment
    request = JobRequest(
        composite,
        output_key,
        output_uri,
        fmt,
        pipeline,
        notify_url=notify["URL"] if notify else None,
        user_data=parsed.get("UserData"),
        request=normal,
        segment_ms=None if segment is None else segment.get("Duration", SegmentParams().t),
        dash=segment is not None and segment["Format"] == "dash",
        snapshot=snapshot,
    )
    check_asked(request, limits)
    return request


def from_oss(concat: ConcatRequest, output_key_for: KeyFor, limits: LimitsSettings) -> JobRequest:
    """An OSS `video/concat,...|sys/saveas,...[/notify,topic_...]` request (parsed by
    concat.parse_oss_concat), as a job."""
    composite = concat.composite
    check_makeable(composite, file=concat.segment is None)
    fmt = composite.params.f
    if fmt is None or fmt not in FILE_FORMATS or fmt in AUDIO_ONLY:
        raise ParameterUnsupported("f", f"one of {', '.join(f for f in FILE_FORMATS if f not in AUDIO_ONLY)}")
    segment_ms = None
    if concat.segment is not None:
        if concat.segment.f == "dash" and fmt != DASH_FORMAT:
            raise ParameterError("f", f"{DASH_FORMAT} with /segment,f_dash: DASH needs fMP4 segments")
        segment_ms = concat.segment.t
        check_segmented_clips(composite, "/segment")
    uri = concat.saveas.uri
    key = _output_key(uri, output_key_for, "sys/saveas.o")
    work_request = {"Process": "video/concat", "Source": concat.source_key, "Output": {"URI": uri, "Format": fmt}}
    request = JobRequest(
        composite,
        key,
        uri,
        fmt,
        topic=concat.notify,
        request=work_request,
        oss=True,
        segment_ms=segment_ms,
        dash=concat.segment is not None and concat.segment.f == "dash",
        source_index=concat.source_index,
    )
    check_asked(request, limits)
    return request
