"""The request contract of a concatenation (a composite title): clips in play order and the
output they are joined into, read from OSS `video/concat` or from livetx's JSON form.

Pure: no aiohttp, no av, no storage I/O (livetx.storage.base is imported for its key checks
only). This module is the one source of truth for what a concatenation request says; the
routes, the planner and the job runner build on its model.

The model:
- `Clip(key, ss_ms, t_ms)`: a source key and a window of it (t_ms 0: to the end).
- `ConcatParams`: the output parameters. A rendition's (livetx/media/params.py RenditionParams,
  so `resolve_video`/`resolve_audio` take it), with what video/concat adds or changes declared
  once below: `f`, `vcodec` (vp9), `vn`, `g` (default 150), `acodec`, `adepth`, `align`.
- `Composite(clips, params)`: at most MAX_CLIPS clips in play order; `align` (params.align) is
  the index, in play order, of the clip whose fps, size, sample rate and channels are the
  defaults of the output.
- `ConcatRequest`: an OSS request, the composite with where the source object stands among
  its clips (`source_index`), `sys/saveas`, an optional `/segment` and `/notify`.

OSS `video/concat` (../shared/reference/cloud-api-facts.md section 4):
`video/concat,<param>_<value>,.../pre,o_<b64url>[,ss_<ms>][,t_<ms>]/sur,o_...[/segment,f_hls,t_<ms>]
|sys/saveas,b_<b64url>,o_<b64url>[/notify,topic_<b64url>]`. Reading of "in the order /pre
and /sur appear, around the source object": the request is made on the source object, every
/pre part is a clip joined before it and every /sur part one joined after it; the /pre clips
play in the order they are written, then the source (its window is the action-level `ss` and
`t`), then the /sur clips in the order they are written. Where a /pre stands relative to a
/sur does not matter. A clip's `o` is an object key in the source's bucket. `/segment` is a
part of the video/concat step; `/notify`'s topic is base64url like every other name. A request
with no /pre or /sur part is a composite of one clip (the JSON form allows one clip too). Besides
video/concat's parameters, livetx takes `preset` (a rendition parameter); `container` is not one
of them (`f` is the container; the JSON form's `Container` is the HLS segment container).

What is parsed is what the reference defines, every value of it (vp9, flac, mxf, ...);
`MAKES` is the one place that says what livetx makes today, and `check_makeable` refuses
the rest with a 422 (ParameterUnsupported) naming the parameter. Routes call it after parsing.
Refusals while parsing are 400 ParameterErrors naming the field as the request wrote it: the
OSS parameter (`vcodec`, `pre[1].ss`, `sys/saveas.o`), or the JSON path
(`Clips[2].StartTime`, `Audio.TranscodeAudio.BitDepth`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from livetx.batch import templates
from livetx.contract import Choice, Field, Integer, ListOf, Shape, Spec, Text, Via, param, param_names, parse_params, spec_of
from livetx.errors import LivetxError, ParameterError, ParameterUnsupported
from livetx.jobs import OSS_BASE64, URI, WATERMARK, KeyFor, b64_text, oss_option, shape_names, shape_params
from livetx.media.params import SAMPLE_RATES, SWITCH, RenditionParams, TitleParams, settle_rendition
from livetx.storage.base import check_key, check_source_key

MAX_CLIPS = 11  # clips in one concatenation, the source object included (video/concat's limit)
FORMATS = ("mp4", "mkv", "mov", "asf", "avi", "mxf", "ts", "flv", "webm")  # video/concat's `f`
VIDEO_CODECS = ("h264", "h265", "vp9")
AUDIO_CODECS = ("mp3", "aac", "flac", "vorbis", "ac3", "opus", "pcm")
SEGMENT_FORMATS = ("hls", "dash")
SEGMENTED = ("mp4", "ts")  # the `f` a /segment output may have

# What livetx makes today, by parameter: everything else the reference defines is parsed and
# then refused by `check_makeable` (422). Widen this as the job runner learns more.
MAKES: Mapping[str, tuple[str, ...]] = {
    "f": ("mp4", "mov", "mkv", "ts", "webm"),
    "vcodec": ("h264", "h265", "vp9"),
    "acodec": ("aac", "mp3", "opus", "flac"),
}
# What livetx makes only in a job's file (a job's remux re-encodes the segments' AAC, batch/remux.py):
# a composite played on demand, and a segmented job's HLS, are AAC.
FILE_ONLY: Mapping[str, tuple[str, ...]] = {"vcodec": ("vp9",), "acodec": ("mp3", "opus", "flac")}
# What livetx makes in a container, where it makes less there than MAKES (422 otherwise): WebM
# holds VP9 and Opus, and VP9 (fMP4 segments, batch/work.py) goes into WebM, Matroska or MP4.
CONTAINER_MAKES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "webm": {"vcodec": ("vp9",), "acodec": ("opus",)},
    "ts": {"vcodec": ("h264", "h265")},
    "mov": {"vcodec": ("h264", "h265")},
}

# The reference's container/codec exclusions: f -> the codecs it cannot carry.
VIDEO_REFUSED: Mapping[str, tuple[str, ...]] = {"mxf": ("h265",), "flv": ("h265",)}
AUDIO_REFUSED: Mapping[str, tuple[str, ...]] = {
    "mp4": ("pcm",),
    "mov": ("flac", "opus"),
    "asf": ("opus",),
    "avi": ("opus",),
    "ts": ("flac", "vorbis", "pcm"),
    "flv": ("flac", "vorbis", "opus", "pcm"),
    "mxf": tuple(c for c in AUDIO_CODECS if c != "pcm"),  # only pcm audio
}
# The reference's codec limits: acodec -> (the sample rates it takes, its most channels).
AUDIO_LIMITS: Mapping[str, tuple[tuple[int, ...], int | None]] = {
    "mp3": (tuple(r for r in SAMPLE_RATES if r <= 48000), 2),
    "opus": ((8000, 12000, 16000, 24000, 48000), None),
    "ac3": ((32000, 44100, 48000), 6),
}
DEPTH_CODECS = ("flac",)  # the acodecs `adepth` applies to


@dataclass(frozen=True)
class ConcatParams(RenditionParams):
    """The output of a concatenation: a rendition's parameters, with what video/concat adds or
    changes (each declared once here; the others are RenditionParams')."""

    vcodec: str = param(Choice(VIDEO_CODECS), "h264", "video codec")
    g: int | None = param(Integer(1, 100000), 150, "GOP length in frames")
    acodec: str = param(Choice(AUDIO_CODECS), "aac", "audio codec")
    vn: int = param(SWITCH, 0, "1: no video")
    adepth: int | None = param(Choice((16, 24)), None, "audio sample depth in bits (acodec flac only)")
    f: str | None = param(
        Choice(FORMATS), None, "the output file's container (required by video/concat); unset: a composite title played as HLS"
    )
    align: int = param(
        Integer(0, MAX_CLIPS - 1),
        0,
        "the index, in play order, of the clip whose frame rate, size, sample rate and channels are the output's defaults",
    )


@dataclass(frozen=True)
class Clip:
    """One clip: a source key and its window (ms; t_ms 0: to the end of the source)."""

    key: str
    ss_ms: int = 0
    t_ms: int = 0


@dataclass(frozen=True)
class Composite:
    """A concatenation: its clips in play order (1 to MAX_CLIPS) and its output parameters."""

    clips: tuple[Clip, ...]
    params: ConcatParams

    @property
    def align(self) -> int:
        return self.params.align


@dataclass(frozen=True)
class SegmentParams:
    """video/concat's `/segment`: the output split into HLS or DASH."""

    f: str | None = param(Choice(SEGMENT_FORMATS), None, "hls or dash (the output's f: mp4 or ts)")
    t: int = param(spec_of(TitleParams, "st"), TitleParams().st, "ms per segment")


@dataclass(frozen=True)
class SaveAs:
    """`sys/saveas`: where the output goes (decoded from base64url)."""

    bucket: str
    object: str

    @property
    def uri(self) -> str:
        return f"oss://{self.bucket}/{self.object}"


@dataclass(frozen=True)
class ConcatRequest:
    """An OSS `video/concat` request: the composite, the place of the source object among its
    clips (the number of /pre parts), and its outputs."""

    composite: Composite
    source_index: int
    saveas: SaveAs
    segment: SegmentParams | None = None
    notify: str | None = None  # the notification topic

    @property
    def source_key(self) -> str:
        return self.composite.clips[self.source_index].key


# ---- checks shared by both forms --------------------------------------------------------

CLIP_SS = spec_of(TitleParams, "ss")
CLIP_T = spec_of(TitleParams, "t")
TOPIC = Text("a topic name of at most 256 characters", max_length=256)


def clip_key(key: str, field: str) -> str:
    """A clip's source key, checked as any source's (no hidden part, not a playlist)."""
    try:
        return check_source_key(key)
    except LivetxError as exc:
        raise ParameterError(field, f"a source key ({exc.message})") from None


def _check_output(values: Mapping[str, Any]) -> None:
    """The combinations of output parameters the reference refuses (each parameter was checked
    alone by its spec, and the rendition exclusions by settle_rendition)."""
    f, vcodec, acodec = values["f"], values["vcodec"], values["acodec"]
    if values["vn"] and values["an"]:
        raise ParameterError("vn", "0 with an=1 (vn=1 and an=1 leave nothing to output)")
    if not values["vn"] and vcodec in VIDEO_REFUSED.get(f, ()):
        raise ParameterError("vcodec", f"a codec other than {', '.join(VIDEO_REFUSED[f])} with f={f}")
    if values["adepth"] is not None and acodec not in DEPTH_CODECS:
        raise ParameterError("adepth", f"unset unless acodec is {' or '.join(DEPTH_CODECS)}")
    if values["an"]:
        return
    if acodec in AUDIO_REFUSED.get(f, ()):
        allowed = [c for c in AUDIO_CODECS if c not in AUDIO_REFUSED[f]]
        raise ParameterError("acodec", f"one of {', '.join(allowed)} with f={f}")
    rates, channels = AUDIO_LIMITS.get(acodec, (SAMPLE_RATES, None))
    if values["ar"] is not None and values["ar"] not in rates:
        raise ParameterError("ar", f"one of {', '.join(map(str, rates))} with acodec={acodec}")
    if values["ac"] is not None and channels is not None and values["ac"] > channels:
        raise ParameterError("ac", f"at most {channels} with acodec={acodec}")


def concat_params(params: Mapping[str, Any]) -> ConcatParams:
    """The output parameters, each checked by its spec, then together."""
    values = settle_rendition(parse_params(ConcatParams, params))
    _check_output(values)
    return ConcatParams(**values)


def make_composite(clips: list[Clip], params: ConcatParams) -> Composite:
    """The clips and parameters as one composite: 1 to MAX_CLIPS clips, `align` one of them."""
    if not 0 < len(clips) <= MAX_CLIPS:
        raise ParameterError("clips", f"from 1 to {MAX_CLIPS} clips")
    if params.align >= len(clips):
        raise ParameterError("align", f"from 0 to {len(clips) - 1}: the index of a clip in play order ({len(clips)} clips)")
    return Composite(tuple(clips), params)


def check_makeable(request: Composite | ConcatRequest, name_of: Callable[[str], str] = str, file: bool = False) -> None:
    """Refuse (422, naming the parameter) what the reference defines but livetx does not make
    yet (MAKES), not in the asked container (CONTAINER_MAKES), or only in a job's file
    (FILE_ONLY; `file`: the output is one); a codec is not asked for when its stream is
    dropped (vn, an)."""
    params = request.composite.params if isinstance(request, ConcatRequest) else request.params
    asked = {"f": params.f, "vcodec": None if params.vn else params.vcodec, "acodec": None if params.an else params.acodec}
    for name, value in asked.items():
        if value is not None and value not in MAKES[name]:
            raise ParameterUnsupported(name_of(name), f"one of {', '.join(MAKES[name])}: livetx does not make {value} yet")
        within = CONTAINER_MAKES.get(params.f or "", {}).get(name)
        if value is not None and within is not None and value not in within:
            raise ParameterUnsupported(name_of(name), f"one of {', '.join(within)} with f={params.f}: livetx does not make {value} in it")
        if not file and value in FILE_ONLY.get(name, ()):
            makes = [v for v in MAKES[name] if v not in FILE_ONLY[name]]
            raise ParameterUnsupported(name_of(name), f"one of {', '.join(makes)}: livetx makes {value} only in a job's file output")


# ---- OSS video/concat -------------------------------------------------------------------

HEAD = "video/concat"
SAVEAS = "sys/saveas"
CLIP_PARTS = ("pre", "sur")
# the action-level parameters: the source's window, and the output's (not `container`: `f` is it)
OSS_PARAMS = ("ss", "t", *(name for name in param_names(ConcatParams) if name != "container"))
OSS_FORM = f"{HEAD},<param>_<value>,.../pre,o_<b64url>[,ss_<ms>][,t_<ms>]/sur,...|{SAVEAS},b_<b64url>,o_<b64url>[/notify,topic_<b64url>]"


def _options(items: list[str], field: str, known: tuple[str, ...], what: str) -> dict[str, str]:
    """`<name>_<value>` items -> {name: value}: each a known name, given once."""
    out: dict[str, str] = {}
    for item in items:
        name, value = oss_option(item) if "_" in item else (item, "")
        if not name:
            raise ParameterError(field or "x-oss-async-process", "<name>_<value> items separated by ','")
        where = f"{field}.{name}" if field else name
        if name not in known:
            raise ParameterError(where, f"{what} (unknown parameter)")
        if name in out:
            raise ParameterError(where, "given once")
        out[name] = value
    return out


def _clip(part: str, field: str) -> Clip:
    options = _options(part.split(",")[1:], field, ("o", "ss", "t"), "o, ss or t")
    if "o" not in options:
        raise ParameterError(f"{field}.o", "o_<b64url of the clip's object key> (required)")
    key = clip_key(b64_text(options["o"], f"{field}.o"), f"{field}.o")
    ss = CLIP_SS.check(options["ss"], f"{field}.ss") if options.get("ss") else 0
    t = CLIP_T.check(options["t"], f"{field}.t") if options.get("t") else 0
    return Clip(key, ss, t)


def _segment(part: str) -> SegmentParams:
    options = _options(part.split(",")[1:], "segment", ("f", "t"), "f or t")
    try:
        segment = SegmentParams(**parse_params(SegmentParams, options))
    except ParameterError as exc:
        raise ParameterError(f"segment.{exc.name}", str(exc.details.get("allowed", exc.message))) from None
    if segment.f is None:
        raise ParameterError("segment.f", "f_hls or f_dash (required)")
    return segment


def _saveas(step: str) -> tuple[SaveAs, str | None]:
    if not step.startswith(SAVEAS):
        raise ParameterError(SAVEAS, f"{SAVEAS},b_<b64url bucket>,o_<b64url object key>")
    first, *rest = step[len(SAVEAS) :].split("/")
    options = _options(first.split(",")[1:] if first else [], SAVEAS, ("b", "o"), "b or o")
    for name in ("b", "o"):
        if name not in options:
            raise ParameterError(f"{SAVEAS}.{name}", f"{name}_<b64url> (required)")
    bucket, obj = b64_text(options["b"], f"{SAVEAS}.b"), b64_text(options["o"], f"{SAVEAS}.o")
    try:
        check_key(obj)
    except LivetxError as exc:
        raise ParameterError(f"{SAVEAS}.o", f"an object key ({exc.message})") from None
    notify = None
    for part in rest:
        name, *items = part.split(",")
        if name != "notify" or notify is not None:
            raise ParameterError(f"{SAVEAS}/{name}", "one /notify,topic_<b64url> after sys/saveas")
        topic = _options(items, "notify", ("topic",), "topic").get("topic")
        if not topic:
            raise ParameterError("notify.topic", "topic_<b64url of the topic> (required)")
        notify = TOPIC.check(b64_text(topic, "notify.topic"), "notify.topic")
    return SaveAs(bucket, obj), notify


def parse_oss_concat(source_key: str, process: str) -> ConcatRequest:
    """`video/concat,...|sys/saveas,...` made on the object `source_key` (the module's
    docstring says how it reads); every refusal is a ParameterError naming the OSS field."""
    steps = process.split("|")
    if not steps[0].startswith(HEAD) or len(steps) != 2:
        raise ParameterError("x-oss-async-process", OSS_FORM)
    composite, source_index, segment = _oss_action(source_key, steps[0], "x-oss-async-process", need_f=True)
    saveas, notify = _saveas(steps[1])
    return ConcatRequest(composite, source_index, saveas, segment, notify)


ON_DEMAND_FORM = f"{HEAD},<param>_<value>,.../pre,o_<b64url>[,ss_<ms>][,t_<ms>]/sur,... (no sys/saveas: played on demand)"


def parse_oss_composite(source_key: str, process: str) -> tuple[Composite, int]:
    """`video/concat,...` without `sys/saveas` (x-oss-process): a composite title played on
    demand; the composite and the source object's index among its clips. `f` and `/segment`
    describe a file and are refused here."""
    if not process.startswith(HEAD) or "|" in process:
        raise ParameterError("x-oss-process", ON_DEMAND_FORM)
    composite, source_index, segment = _oss_action(source_key, process, "x-oss-process", need_f=False)
    if segment is not None:
        raise ParameterError("/segment", "absent: a composite played on demand is HLS already (/segment is for a saved file)")
    if composite.params.f is not None:
        raise ParameterError("f", "absent: a composite played on demand is HLS (f is the container of a saved file)")
    return composite, source_index


def oss_clip_field(source_index: int) -> Callable[[int, str], str]:
    """The OSS field of clip `index` (its /pre or /sur part, or the action's own `ss` for the
    source object), for composite.build_composite_title's refusals."""

    def field(index: int, name: str) -> str:
        what = {"URI": "o", "StartTime": "ss"}.get(name, name)
        if index < source_index:
            return f"pre[{index}].{what}"
        if index > source_index:
            return f"sur[{index - source_index - 1}].{what}"
        return "key" if what == "o" else what

    return field


def _oss_action(source_key: str, step: str, form_field: str, need_f: bool) -> tuple[Composite, int, SegmentParams | None]:
    """The video/concat step: the composite, the source's index among its clips, and /segment."""
    action, *parts = step[len(HEAD) :].split("/")
    if action and not action.startswith(","):
        raise ParameterError(form_field, OSS_FORM if need_f else ON_DEMAND_FORM)
    values = _options(action.split(",")[1:], "", OSS_PARAMS, f"a parameter of {HEAD}: {', '.join(OSS_PARAMS)}")
    values |= {name: b64_text(value, name) for name, value in values.items() if name in OSS_BASE64}
    source = clip_key(source_key, "key")
    ss_text, t_text = values.pop("ss", ""), values.pop("t", "")
    ss = CLIP_SS.check(ss_text, "ss") if ss_text else 0
    t = CLIP_T.check(t_text, "t") if t_text else 0
    clips: dict[str, list[Clip]] = {"pre": [], "sur": []}
    segment: SegmentParams | None = None
    for part in parts:
        kind = part.split(",")[0]
        if kind in CLIP_PARTS:
            field = f"{kind}[{len(clips[kind])}]"
            if len(clips["pre"]) + len(clips["sur"]) + 1 >= MAX_CLIPS:
                raise ParameterError(field, f"at most {MAX_CLIPS} clips in all: the source and {MAX_CLIPS - 1} /pre and /sur parts")
            clips[kind].append(_clip(part, field))
        elif kind == "segment" and segment is None:
            segment = _segment(part)
        else:
            raise ParameterError(f"/{kind}", "/pre, /sur, or one /segment,f_hls|dash,t_<ms>")
    if need_f and not values.get("f"):
        raise ParameterError("f", f"one of {', '.join(FORMATS)} (required: the output's container)")
    params = concat_params(values)
    if segment is not None and params.f not in SEGMENTED:
        raise ParameterError("f", f"{' or '.join(SEGMENTED)} with /segment")
    joined = [*clips["pre"], Clip(source, ss, t), *clips["sur"]]
    return make_composite(joined, params), len(clips["pre"]), segment


def _oss_value(value: Any) -> str:
    """A value as OSS text. A ratio (fps 30000/1001) cannot be written with its '/' there (it
    separates parts): nine decimals, which FPS's nearest-fraction rule reads back exactly."""
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{float(value):.9f}".rstrip("0")
    return f"{value:g}" if isinstance(value, float) else str(value)


def _changed(obj: Any) -> dict[str, Any]:
    """The fields of a params dataclass that differ from their defaults."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) != f.default}


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _oss_clip(kind: str, clip: Clip) -> str:
    options = [f"o_{_b64url(clip.key)}"] + [f"{n}_{v}" for n, v in (("ss", clip.ss_ms), ("t", clip.t_ms)) if v]
    return f"/{kind}," + ",".join(options)


def to_oss(request: ConcatRequest) -> str:
    """The process string of a request: parse_oss_concat(request.source_key, it) gives it back."""
    clips = request.composite.clips
    source = clips[request.source_index]
    params = _changed(request.composite.params)
    action = [f"{n}_{_oss_value(v)}" for n, v in (("ss", source.ss_ms), ("t", source.t_ms)) if v]
    action += [f"{n}_{_b64url(v) if n in OSS_BASE64 else _oss_value(v)}" for n, v in params.items()]
    parts = [_oss_clip("pre", c) for c in clips[: request.source_index]] + [_oss_clip("sur", c) for c in clips[request.source_index + 1 :]]
    if request.segment is not None:
        parts.append(f"/segment,f_{request.segment.f},t_{request.segment.t}")
    saveas = f"{SAVEAS},b_{_b64url(request.saveas.bucket)},o_{_b64url(request.saveas.object)}"
    notify = f"/notify,topic_{_b64url(request.notify)}" if request.notify is not None else ""
    return ",".join([HEAD, *action]) + "".join(parts) + "|" + saveas + notify


# ---- the JSON form --------------------------------------------------------------------


def _as(name: str, scale: int = 1, lower: bool = False) -> Spec:
    """A JSON field checked as the parameter `name` (the bound lives with the parameter)."""
    return Via(name, spec_of(ConcatParams, name), scale=scale, lower=lower)


CLIP = Shape(
    {
        "URI": Field(URI, required=True, doc="oss://bucket/key or s3://bucket/key of the clip's source"),
        "StartTime": Field(Via("ss", CLIP_SS, scale=1000), doc="seconds into the source where the clip starts"),
        "Duration": Field(Via("t", CLIP_T, scale=1000), doc="seconds of the source in the clip; 0 or absent: to the end"),
    }
)
TRANSCODE_VIDEO = Shape(
    {
        "Codec": Field(_as("vcodec", lower=True)),
        "Bitrate": Field(_as("vb"), doc="bit/s; with CRF, the cap of a quality-mode encode"),
        "BitrateOption": Field(_as("vbopt"), doc="a higher Bitrate than the source's: 0 as asked, 1 the source's, 2 an error"),
        "BufferSize": Field(_as("bufsize"), doc="VBV buffer with CRF, bit"),
        "CRF": Field(_as("crf")),
        "FrameRate": Field(_as("fps")),
        "FrameRateOption": Field(_as("fpsopt"), doc="a higher FrameRate than the source's: 0 as asked, 1 the source's, 2 an error"),
        "Resolution": Field(_as("s"), doc="WxH, Wx or xH: a missing side follows the aspect ratio"),
        "ResolutionOption": Field(_as("sopt"), doc="a larger Resolution than the source's: 0 as asked, 1 the source's area, 2 an error"),
        "ScaleType": Field(_as("scaletype", lower=True)),
        "AdaptiveRotation": Field(_as("arotate"), doc="1: a WxH Resolution turns with a source shown at 90 or 270 degrees"),
        "PixelFormat": Field(_as("pixfmt", lower=True)),
        "GOPSize": Field(_as("g"), doc="frames per GOP"),
        "Preset": Field(_as("preset", lower=True), doc="livetx extension: the x264/x265 preset"),
    }
)
TRANSCODE_AUDIO = Shape(
    {
        "Codec": Field(_as("acodec", lower=True)),
        "Bitrate": Field(_as("ab"), doc="bit/s"),
        "BitrateOption": Field(_as("abopt"), doc="a higher Bitrate than the source's: 0 as asked, 1 the source's, 2 an error"),
        "Quality": Field(_as("aq"), doc="0-100, instead of Bitrate"),
        "SampleRate": Field(_as("ar"), doc="Hz"),
        "Channels": Field(_as("ac")),
        "BitDepth": Field(_as("adepth"), doc="16 or 24, flac only"),
    }
)
COMPOSITE = Shape(
    {
        "Clips": Field(ListOf(CLIP, 1, MAX_CLIPS, "clips"), required=True, doc="the clips in play order"),
        "Align": Field(_as("align"), doc="the index of the clip whose frame rate, size, sample rate and channels are the defaults"),
        "Format": Field(_as("f", lower=True), doc="the output file's container (video/concat's f); absent: played as HLS"),
        "Container": Field(_as("container", lower=True), doc="the HLS segment container: ts or fmp4"),
        "Video": Field(Shape({"Disable": Field(_as("vn"), doc="1: no video"), "TranscodeVideo": Field(TRANSCODE_VIDEO)})),
        "Audio": Field(Shape({"Disable": Field(_as("an"), doc="1: no audio"), "TranscodeAudio": Field(TRANSCODE_AUDIO)})),
        "Watermark": Field(WATERMARK, doc="an image (URI) or text (Content) drawn over every frame of the output (MPS names)"),
    },
    doc="a composite title: clips joined in play order into one output",
)
JSON_NAMES = {**shape_names(COMPOSITE), "maxrate": "Video.TranscodeVideo.Bitrate", "clips": "Clips", "wm_image": "Watermark.URI"}


def parse_composite(body: Any, source_key_for: KeyFor, template: Mapping[str, Any] | None = None) -> Composite:
    """The JSON form; every refusal is a ParameterError naming the JSON field (`Clips[1].URI`).
    `source_key_for` maps a clip's URI to its key in the source store (Storage.key_for_uri).
    `template`: the output parameters the body's own fields override (a job's `Template`,
    resolved; templates.over_template); a refusal of one only it set names `Template`."""
    request = COMPOSITE.parse(body)
    clips = []
    for i, item in enumerate(request["Clips"]):
        field = f"Clips[{i}]"
        key = clip_key(source_key_for(item["URI"], f"{field}.URI"), f"{field}.URI")
        clips.append(Clip(key, item.get("StartTime", 0), item.get("Duration", 0)))
    own = shape_params(request, COMPOSITE)
    if "URI" in request.get("Watermark", {}):
        own["wm_image"] = source_key_for(request["Watermark"]["URI"], "Watermark.URI")
    try:
        return make_composite(clips, concat_params(templates.over_template(template or {}, own)))
    except ParameterError as exc:
        allowed = str(exc.details.get("allowed", exc.message))
        if exc.name in templates.from_template(template or {}, own):
            raise ParameterError("Template", f"a template whose {exc.name} fits this job: {allowed}") from None
        raise ParameterError(json_name(exc.name), allowed) from None


def json_name(name: str) -> str:
    """The JSON field that sets a parameter (`adepth` -> `Audio.TranscodeAudio.BitDepth`):
    `check_makeable(composite, json_name)` names the JSON form's fields."""
    return JSON_NAMES.get(name, name)


def to_json(value: Composite, uri_for: Callable[[str], str]) -> dict[str, Any]:
    """The JSON form of a composite: parse_composite gives it back. `uri_for`: key -> URI."""
    clips = []
    for clip in value.clips:
        item: dict[str, Any] = {"URI": uri_for(clip.key)}
        item |= {name: ms / 1000 for name, ms in (("StartTime", clip.ss_ms), ("Duration", clip.t_ms)) if ms}
        clips.append(item)
    body: dict[str, Any] = {"Clips": clips}
    params = _changed(value.params)
    if "crf" in params and "maxrate" in params:  # both: CRF with Bitrate as the cap
        params["vb"] = params.pop("maxrate")
    if "wm_image" in params:
        params["wm_image"] = uri_for(params["wm_image"])
    for name, v in params.items():
        path = JSON_NAMES[name].split(".")
        where = body
        for key in path[:-1]:
            where = where.setdefault(key, {})
        where[path[-1]] = _json_value(v)
    return body


def _json_value(value: Any) -> Any:
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return value
