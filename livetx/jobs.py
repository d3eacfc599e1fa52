"""Playlists made through the APIs (IMM GenerateVideoPlaylist, OSS `hls/m3u8`): request ->
a stored profile for one source. Pure: no aiohttp, no storage I/O.

A request becomes a profile named `j-<id>`, where the id hashes the request's meaning, so
repeating a request is idempotent. The profile is kept as a record in output storage
(`.jobs/<id>.json`): any origin process can then serve its segments. Each target names where
its objects go, as those APIs do: `<URI>.m3u8` and `<URI>-<token>-<n>.ts`.

A request's `SourceSubtitles` are subtitle files in the source store, read as the source's
sidecars are (livetx/subtitles/names.py gives their language); an API-made title has those
and no others (no sidecar discovery next to its source). They, and the source's embedded text
tracks (`SubtitleTracks`, the title's `subtitles`), are subtitle renditions of the master
playlist: a request without `MasterURI` has none.

A job writes only in its own namespace: the keys it claims (its master playlist, each
target's `<URI>.m3u8`, whose segments sit next to it, and its audio and subtitle renditions'
playlists next to the master) are recorded in output storage
(`.jobs/claims/...`), and no other job may claim them. No job may write into a configured
profile's area (`<source key>/<profile>/...`) or a hidden key (`.jobs/`, ...). Jobs are also
bounded by `[limits]` (pixels, fps, preset, renditions, pre-transcode length). Every key
shape named here is built in livetx/layout.py.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from livetx.batch import templates
from livetx.contract import Bound, Field, ListOf, Shape, Spec, Text, TextMap, Via, spec_of
from livetx.errors import LimitExceeded, LivetxError, OutputReserved, ParameterError
from livetx.layout import PLAYLIST_SUFFIX, profile_area, target_playlist_key, target_prefix, track_prefix
from livetx.media.params import (
    KNOWN_RENDITION,
    KNOWN_TITLE,
    PRESETS,
    RenditionParams,
    TitleParams,
    parse_rendition_params,
    parse_title_params,
    resolve_container,
)
from livetx.settings import LimitsSettings
from livetx.storage.base import check_source_key, is_hidden
from livetx.subtitles.names import KINDS, kind_of
from livetx.titles import PER_RENDITION, Profile, Title, check_encryption, parse_profile

JOB_PREFIX = "j-"
JOB_ID_CHARS = 16  # hex digits of a job id
RECORD_VERSION = 1
DEFAULT_LIMITS = LimitsSettings()

KeyFor = Callable[[str, str], str]  # (object URI, field name) -> key in a store
NO_TEMPLATES: templates.Lookup = templates.none_stored


@dataclass(frozen=True)
class Job:
    id: str
    source_key: str
    master_key: str | None
    table: Mapping[str, Any]  # a profile table, as in the config
    prefixes: Mapping[str, str]  # rendition name -> output key prefix
    uris: Mapping[str, str]  # rendition name -> the target URI as requested
    master_uri: str | None = None
    oss: bool = False  # made by OSS hls/m3u8 (not recorded: it only names fields in errors)
    echo: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # request fields the answer returns as given (not recorded)
    subtitles: tuple[str, ...] = ()  # source-store keys of the request's SourceSubtitles, in order
    mpd_key: str | None = None  # a DASH manifest written with the playlists (a segmented job's `<prefix>.mpd`, stored names)

    @property
    def profile_name(self) -> str:
        return JOB_PREFIX + self.id

    def field(self, rendition: str, param: str) -> str:
        """A parameter of one rendition in the request's own terms (`Targets[0].Video.
        TranscodeVideo.FrameRate` for IMM, `fps` for OSS)."""
        if self.oss:
            return param
        return f"Targets[{rendition.removeprefix('t')}].{IMM_NAMES.get(param, param)}"

    def title_field(self, param: str) -> str:
        """A parameter of the whole title in the request's own terms (`audio`: `AudioTracks`)."""
        return param if self.oss else IMM_TITLE_NAMES.get(param, param)

    def claims(self, title: Title | None = None) -> dict[str, str]:
        """Output keys this job's playlists take -> the request field that named each. A
        target's segments (`<prefix>-<spec id>-<n>.ts`) sit next to its `<prefix>.m3u8`, so
        claiming the playlist claims them too. Once the title is planned, its audio and subtitle
        renditions' playlists (next to the master, `<master stem>-a1.m3u8`, `<master stem>-s5.m3u8`)
        are claimed too, as MasterURI's."""
        out = {}
        if self.master_key is not None:
            out[self.master_key] = "MasterURI"
        for name, prefix in self.prefixes.items():
            out[target_playlist_key(prefix)] = "sys/saveas" if self.oss else f"Targets[{name.removeprefix('t')}].URI"
        for key in track_claims(self, title) if title is not None else ():
            out.setdefault(key, "MasterURI")
        if self.mpd_key is not None:  # next to the target it describes, so named by that target's field
            out[self.mpd_key] = "sys/saveas" if self.oss else "Targets[0].URI"
        return out

    def subtitle_fields(self) -> dict[str, str]:
        """Subtitle key -> the request field that named it (`SourceSubtitles[0].URI`)."""
        return {key: f"SourceSubtitles[{i}].URI" for i, key in enumerate(self.subtitles)}

    def profile(self) -> Profile:
        try:
            profile = parse_profile(self.profile_name, self.table)
        except LivetxError as exc:  # a config error in an API request is the caller's 400
            raise ParameterError("Targets", exc.message) from None
        renditions = tuple(replace(r, object_prefix=self.prefixes[r.name]) for r in profile.renditions)
        tracks = track_prefix(self.master_key) if self.master_key is not None else None
        return replace(
            profile,
            renditions=renditions,
            source_key=self.source_key,
            master_key=self.master_key,
            track_prefix=tracks,
            mpd_key=self.mpd_key,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "source_key": self.source_key,
            "master_key": self.master_key,
            "master_uri": self.master_uri,
            "table": self.table,
            "prefixes": self.prefixes,
            "uris": self.uris,
            "subtitles": list(self.subtitles),
            **({"mpd_key": self.mpd_key} if self.mpd_key is not None else {}),
        }

    @classmethod
    def from_record(cls, record: Any) -> Job:
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
            raise ValueError("not a job record")
        fields = ("id", "source_key", "master_key", "table", "prefixes", "uris", "master_uri")
        subtitles = record.get("subtitles", [])  # absent from records written before subtitles
        if not isinstance(subtitles, list) or not all(isinstance(key, str) for key in subtitles):
            raise ValueError("not a job record")
        mpd_key = record.get("mpd_key")  # only a segmented job's (Output.Segment dash)
        if mpd_key is not None and not isinstance(mpd_key, str):
            raise ValueError("not a job record")
        return cls(**{name: record[name] for name in fields}, subtitles=tuple(subtitles), mpd_key=mpd_key)


def track_claims(job: Job, title: Title) -> list[str]:
    """The playlist keys of the title's renditions no target named: its audio and subtitle
    renditions', next to the master (their segments, `<key minus .m3u8>-<spec id>-<n>`, beside them)."""
    return [target_playlist_key(r.object_prefix) for r in title.renditions if r.object_prefix and r.name not in job.prefixes]


def renamed(job: Job, exc: ParameterError) -> ParameterError:
    """A planning error about a title parameter (`audio`: a selector that matches no track;
    `encryption`: no master key configured), naming the request field that set it: the
    title's, else that of the first target setting it (`Targets[1].Encryption.Method`)."""
    field = job.title_field(exc.name)
    if field == exc.name and not job.oss:
        setting = [name for name, params in job.table.get("renditions", {}).items() if exc.name in params]
        field = job.field(setting[0], exc.name) if setting else field
    return exc if field == exc.name else type(exc)(field, str(exc.details.get("allowed", exc.message)))


def is_job_profile(name: str) -> bool:
    rest = name.removeprefix(JOB_PREFIX)
    return rest != name and len(rest) == JOB_ID_CHARS and all(c in "0123456789abcdef" for c in rest)


def check_namespace(job: Job, profile_names: Iterable[str]) -> None:
    """Refuse any claim inside what livetx keeps itself: a hidden key (`.jobs/`, output kept
    inside the source store) or the area of a configured profile, `<source key>/<profile>/...`
    (its master, media playlists, segments). A source key has at least one segment, so a
    profile folder is any folder after the first."""
    names = set(profile_names)
    for key, field in job.claims().items():
        if is_hidden(key):
            raise OutputReserved(f"{field} names a hidden key, where livetx keeps its own records", parameter=field)
        taken = profile_area(key, names)
        if taken is not None:
            raise OutputReserved(f"{field} is inside the output of profile {taken!r}, which no job may write", parameter=field)


def _plain(value: Any) -> Any:
    """A request value as its meaning: 25.0 is 25 (JSON clients spell numbers either way)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _job_id(
    source_key: str, master_key: str | None, table: Mapping[str, Any], prefixes: Mapping[str, str], subtitles: tuple[str, ...] = ()
) -> str:
    """The id hashes what the request means: field order and 25 against 25.0 don't change it
    (a repeated request must find its own job, or its claims would refuse it). Subtitles count
    only when there are some, so the ids of requests without any stay as they were."""
    meaning: list[Any] = [source_key, master_key, _plain(table), prefixes]
    if subtitles:
        meaning.append(list(subtitles))
    text = json.dumps(meaning, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- IMM GenerateVideoPlaylist: the request contract ------------------------------------


def _as(name: str, scale: int = 1, lower: bool = False) -> Spec:
    """An IMM field checked as the parameter `name` (the bound lives with the parameter)."""
    params = TitleParams if name in KNOWN_TITLE else RenditionParams
    return Via(name, spec_of(params, name), scale=scale, lower=lower)


URI = Text("an object URI such as oss://bucket/path")


@dataclass(frozen=True)
class ReferPos(Via):
    """MPS `ReferPos` (TopLeft, TopRight, BottomLeft, BottomRight; and Center), in any case, or
    livetx's own corner names, as the parameter `wm_pos`."""

    names: tuple[tuple[str, str], ...] = (
        ("topleft", "tl"), ("topright", "tr"), ("bottomleft", "bl"), ("bottomright", "br"), ("center", "c"),
    )  # fmt: skip

    def parse(self, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = dict(self.names).get(raw.lower(), raw.lower())
        return super().parse(raw)

    @property
    def allowed(self) -> str:
        return "one of TopLeft, TopRight, BottomLeft, BottomRight, Center (or tl, tr, bl, br, c)"

    def schema(self) -> dict[str, Any]:
        words = [word for pair in self.names for word in pair]  # in any case (ECMA-262 patterns have no flags)
        return {"type": "string", "pattern": "^(" + "|".join("".join(f"[{c.upper()}{c}]" for c in w) for w in words) + ")$"}


WATERMARK = Shape(
    {
        "URI": Field(URI, doc="an image watermark: the URI of a PNG, JPEG or WebP (at most 1 MiB, 4096 px a side) in the source store"),
        "Content": Field(_as("wm_text"), doc="a text watermark: one line (not with URI)"),
        "ReferPos": Field(ReferPos("wm_pos", spec_of(RenditionParams, "wm_pos")), doc="the corner it is placed in; default TopRight"),
        "Dx": Field(_as("wm_dx"), doc="pixels from the left or right edge"),
        "Dy": Field(_as("wm_dy"), doc="pixels from the top or bottom edge"),
        "Width": Field(_as("wm_width"), doc="an image's width as a fraction of the output width (0.01-1); default: its own"),
        "Alpha": Field(_as("wm_alpha"), doc="opacity, 0 to 1 (MPS FontAlpha, for images too)"),
        "FontSize": Field(_as("wm_size"), doc="pixels; default: 5 % of the output height"),
        "FontColor": Field(_as("wm_color"), doc="RGB hex: ffffff, #ff8800"),
    }
)
TEMPLATE_NAME = templates.NAME
TRANSCODE_VIDEO = Shape(
    {
        "Codec": Field(_as("vcodec", lower=True)),
        "Bitrate": Field(_as("vb"), doc="bit/s; with CRF, the cap of a quality-mode encode"),
        "CRF": Field(_as("crf")),
        "FrameRate": Field(_as("fps")),
        "Resolution": Field(_as("s"), doc="WxH, Wx or xH: a missing side follows the aspect ratio"),
        "ScaleType": Field(_as("scaletype", lower=True)),
    }
)
TRANSCODE_AUDIO = Shape(
    {
        "Codec": Field(_as("acodec", lower=True)),
        "Bitrate": Field(_as("ab"), doc="bit/s"),
        "SampleRate": Field(_as("ar"), doc="Hz"),
        "Channels": Field(_as("ac")),
    }
)
ENCRYPTION = Shape(
    {
        "Method": Field(
            _as("encryption", lower=True),
            required=True,
            doc="AES-128: each media segment encrypted whole (AES-128-CBC, EXT-X-KEY METHOD=AES-128; ts and fmp4);"
            " SAMPLE-AES: the samples of fMP4 segments (CMAF cbcs, METHOD=SAMPLE-AES; Container fmp4); NONE: clear."
            " Needs an encryption master key on the server",
        ),
        "KeyRotation": Field(_as("key_rotation"), doc="segments per content key: a new key every N segments; 0 (default): one key"),
    }
)
TARGET = Shape(
    {
        "URI": Field(URI, required=True, doc="object prefix: <URI>.m3u8 and <URI>-<token>-<n>.ts (fMP4: .m4s, and <URI>-<token>-init.mp4)"),
        "Container": Field(
            _as("container", lower=True),
            doc="livetx extension (the cloud API has no such field): ts or fmp4; default: fmp4 for h265 and av1, else ts",
        ),
        "Duration": Field(_as("st", scale=1000), doc="seconds per segment"),
        "InitialSegments": Field(_as("initial_segments", scale=1000), doc="seconds of each first, shorter segment"),
        "InitialTranscode": Field(_as("initd", scale=1000), doc="seconds pre-transcoded when the playlist is made (limits.max_initd)"),
        "TranscodeAhead": Field(_as("ta"), doc="segments made ahead of a playing client"),
        "Video": Field(Shape({"TranscodeVideo": Field(TRANSCODE_VIDEO)})),
        "Audio": Field(Shape({"TranscodeAudio": Field(TRANSCODE_AUDIO)})),
        "Template": Field(
            TEMPLATE_NAME,
            doc="livetx extension: the name of a stored template (PUT /api/v1/templates/{name}) whose parameters this"
            " target starts from; the target's own fields override them",
        ),
        "Watermark": Field(
            WATERMARK,
            doc="livetx extension (MPS names): an image (URI) or text (Content) drawn over every frame of this target",
        ),
        "Encryption": Field(
            ENCRYPTION,
            doc="livetx extension (the cloud API has no such field): the title parameters `encryption` and `key_rotation`"
            " of this target. The key URL is under the title, signed like its playlists (a player needs the PlaybackURL"
            " or another signed URL of the title); the stored <URI>.m3u8 names each key by its URL on this server, without"
            " a token. Audio renditions next to MasterURI follow the first target",
        ),
    }
)
IMM_REQUEST = Shape(
    {
        "ProjectName": Field(Text("a project name", max_length=256)),
        "SourceURI": Field(URI, required=True, doc="oss://bucket/key or s3://bucket/key of the source"),
        "MasterURI": Field(URI, doc="where the master playlist is written (an object URI ending in .m3u8)"),
        "Targets": Field(ListOf(TARGET, 1, Bound("limits.max_renditions"), "targets"), required=True),
        "AudioTracks": Field(
            _as("audio"),
            doc="livetx extension (the cloud API has no such field): the title parameter `audio`, the source's audio tracks"
            " as renditions of their own (EXT-X-MEDIA, next to the master: <MasterURI minus .m3u8>-a<stream index>): auto"
            " (default: every track when there are two or more), all, default, muxed, or selectors such as 'i2,fr'."
            " Without MasterURI each target plays alone, with the selection's default track muxed",
        ),
        "Surround": Field(
            _as("surround"),
            doc="livetx extension: 1 adds a 6-channel AAC rendition of each surround track (title parameter `surround`)",
        ),
        "SubtitleTracks": Field(
            _as("subtitles"),
            doc="livetx extension (the cloud API has no such field): the title parameter `subtitles` for the source's"
            " embedded text subtitle tracks, each a WebVTT rendition of the master (EXT-X-MEDIA TYPE=SUBTITLES, next to it:"
            " <MasterURI minus .m3u8>-s<stream index>): all (default), none, or languages and streams such as 'en,s5'."
            " Needs MasterURI unless none (SourceSubtitles always play)",
        ),
        "SourceSubtitles": Field(
            ListOf(Shape({"URI": Field(URI, required=True)}), 0, 16, "subtitle objects"),
            doc=f"subtitle files ({', '.join('.' + k for k in KINDS)}) in the source store that the API key may read, each a"
            " WebVTT rendition of the master, in this order (next to it: <MasterURI minus .m3u8>-x<8 hex digits>); language"
            " from the name (film.en.srt, sub.fr.forced.srt), else und. Needs MasterURI; a file with no usable cue is a 422",
        ),
        "UserData": Field(Text("text of at most 1024 characters", max_length=1024), doc="echoed in the answer; livetx gives it no meaning"),
        "Tags": Field(TextMap(32, 256), doc="echoed in the answer; livetx gives it no meaning"),
    }
)
ECHOED = ("UserData", "Tags")


def shape_names(shape: Shape, path: str = "") -> dict[str, str]:
    """Parameter -> the IMM field that sets it (`fps` -> `Video.TranscodeVideo.FrameRate`)."""
    out: dict[str, str] = {}
    for key, item in shape.fields.items():
        if isinstance(item.spec, Via):
            out[item.spec.name] = path + key
        elif isinstance(item.spec, Shape):
            out |= shape_names(item.spec, f"{path}{key}.")
    return out


IMM_NAMES = {**shape_names(TARGET), "maxrate": "Video.TranscodeVideo.Bitrate", "wm_image": "Watermark.URI"}
IMM_TITLE_NAMES = shape_names(IMM_REQUEST)  # `audio` -> `AudioTracks`, `surround` -> `Surround`, `subtitles` -> `SubtitleTracks`


def bounds(limits: LimitsSettings) -> dict[str, int]:
    """The values of the settings that bound request fields (see livetx.contract.Bound)."""
    return {"limits.max_renditions": limits.max_renditions, "limits.max_initd": limits.max_initd}


def imm_request(limits: LimitsSettings = DEFAULT_LIMITS) -> Shape:
    return IMM_REQUEST.bind(bounds(limits))


def template_names(body: Any, limits: LimitsSettings = DEFAULT_LIMITS) -> list[str]:
    """The templates a request's targets name (`Targets[i].Template`), read before the request
    is parsed so that their parameters can be fetched; anything malformed, or more targets than
    `limits.max_renditions` (nothing is read for those), is left to the parser to refuse."""
    targets = body.get("Targets") if isinstance(body, dict) else None
    if not isinstance(targets, list) or len(targets) > limits.max_renditions:
        return []
    return [t["Template"] for t in targets if isinstance(t, dict) and isinstance(t.get("Template"), str)]


def parse_imm(
    body: Any,
    source_key_for: KeyFor,
    output_key_for: KeyFor,
    limits: LimitsSettings = DEFAULT_LIMITS,
    template_for: templates.Lookup = NO_TEMPLATES,
) -> Job:
    """A GenerateVideoPlaylist request, validated and within `limits`; every error names its
    field. A target naming a `Template` starts from its parameters (`template_for`: the
    templates the request names, resolved), and its own fields override them."""
    request = imm_request(limits).parse(body)
    source_key = source_key_for(request["SourceURI"], "SourceURI")
    master_uri = request.get("MasterURI")
    master_key = output_key_for(master_uri, "MasterURI") if master_uri else None
    if master_key is not None and not master_key.endswith(PLAYLIST_SUFFIX):
        raise ParameterError("MasterURI", "an object URI ending in .m3u8")
    renditions: dict[str, dict[str, Any]] = {}
    prefixes: dict[str, str] = {}
    uris: dict[str, str] = {}
    for i, target in enumerate(request["Targets"]):
        field = f"Targets[{i}]"
        prefix = target_prefix(output_key_for(target["URI"], f"{field}.URI"))
        if prefix in prefixes.values():
            raise ParameterError(f"{field}.URI", "a URI no other target uses")
        own = shape_params(target)
        if "URI" in target.get("Watermark", {}):
            own["wm_image"] = source_key_for(target["Watermark"]["URI"], f"{field}.Watermark.URI")
        template = dict(template_for(target["Template"], f"{field}.Template")) if "Template" in target else {}
        params = templates.over_template({"preset": "veryfast", **template}, own)
        _validate_target(params, field, templates.from_template(template, own))
        renditions[f"t{i}"] = params
        prefixes[f"t{i}"] = prefix
        uris[f"t{i}"] = target["URI"]
    table: dict[str, Any] = {param: request[field] for param, field in IMM_TITLE_NAMES.items() if field in request}
    table["renditions"] = renditions
    subtitles = _subtitle_keys(request.get("SourceSubtitles", []), source_key_for)
    if master_key is None:
        _check_alone(request)
    job_id = _job_id(source_key, master_key, table, prefixes, subtitles)
    echo = {name: request[name] for name in ECHOED if name in request}
    job = Job(job_id, source_key, master_key, table, prefixes, uris, master_uri, echo=echo, subtitles=subtitles)
    check_limits(job, limits)
    return job


ALONE = "none without MasterURI (a subtitle rendition needs MasterURI: each target plays alone)"


def _check_alone(request: Mapping[str, Any]) -> None:
    """Without a master each target plays alone: a media playlist lists no renditions, so a
    request for subtitles there is refused rather than ignored."""
    if request.get("SourceSubtitles"):
        raise ParameterError("SourceSubtitles", ALONE)
    if "SubtitleTracks" in request and parse_title_params({"subtitles": request["SubtitleTracks"]}).subtitles != "none":
        raise ParameterError("SubtitleTracks", ALONE)


def _subtitle_keys(items: list[Mapping[str, Any]], source_key_for: KeyFor) -> tuple[str, ...]:
    """The source-store keys of `SourceSubtitles`: each a subtitle file that could be a source
    (no hidden part), named once. Whether the key may read them and whether they exist is
    checked when the job is planned (livetx/publishing.py, Catalog.plan)."""
    keys: list[str] = []
    for i, item in enumerate(items):
        field = f"SourceSubtitles[{i}].URI"
        key = source_key_for(item["URI"], field)
        try:
            check_source_key(key)
        except LivetxError as exc:
            raise ParameterError(field, f"an object URI of a subtitle file ({exc.message})") from None
        if kind_of(key) is None:
            raise ParameterError(field, f"an object URI of a subtitle file ({', '.join('.' + k for k in KINDS)})")
        if key in keys:
            raise ParameterError(field, "a URI no other subtitle uses")
        keys.append(key)
    return tuple(keys)


def shape_params(target: Mapping[str, Any], shape: Shape = TARGET) -> dict[str, Any]:
    """The parameters a checked target sets, in the parameters' own names and units."""
    out: dict[str, Any] = {}
    for key, value in target.items():
        spec = shape.fields[key].spec
        if isinstance(spec, Via):
            out[spec.name] = value
        elif isinstance(spec, Shape):
            out |= shape_params(value, spec)
    if "crf" in out and "vb" in out:  # both given: quality mode, capped at the bitrate
        out["maxrate"] = out.pop("vb")
    return out


def _validate_target(params: Mapping[str, Any], field: str, from_template: set[str] | None = None) -> None:
    """Check one target's combination of parameters now (each was checked alone by the
    contract), naming the offending field in the request's own vocabulary (`Template` for a
    parameter only its template set)."""
    own = {k: v for k, v in params.items() if k in PER_RENDITION}
    try:
        title = parse_title_params(own)
        rendition = parse_rendition_params({k: v for k, v in params.items() if k not in PER_RENDITION})
        check_encryption(title, resolve_container(rendition), rendition.vcodec)
    except ParameterError as exc:
        allowed = str(exc.details.get("allowed", exc.message))
        if exc.name in (from_template or ()):
            raise ParameterError(f"{field}.Template", f"a template whose {exc.name} fits this target: {allowed}") from None
        raise ParameterError(f"{field}.{IMM_NAMES.get(exc.name, exc.name)}", allowed) from None


# ---- OSS hls/m3u8 ---------------------------------------------------------------------


def b64_text(value: str, field: str) -> str:
    try:
        text = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ParameterError(field, "base64url text") from None
    if not text:
        raise ParameterError(field, "base64url text, not empty")
    return text


OSS_TITLE = ("ss", "t", "st", "initd", "ta")  # hls/m3u8's title parameters
# parameters whose values an OSS process string carries base64url-encoded, as OSS's own watermark
# does (`image_<b64url>`, `text_<b64url>`): a key has '/', a text ',' or '|'
OSS_BASE64 = ("wm_image", "wm_text")
# livetx's extensions of hls/m3u8 (OSS defines no such parameters): `encryption_aes-128,key_rotation_30`
OSS_EXTENSIONS = ("encryption", "key_rotation")
# parameter names with an underscore (hls/m3u8's own have none): `key_rotation_30` is key_rotation = 30
_UNDERSCORED = tuple(sorted((name for name in (*KNOWN_TITLE, *KNOWN_RENDITION) if "_" in name), key=len, reverse=True))


def oss_option(option: str) -> tuple[str, str]:
    """`<param>_<value>` -> (param, value)."""
    for name in _UNDERSCORED:
        if option.startswith(name + "_"):
            return name, option[len(name) + 1 :]
    name, sep, value = option.partition("_")
    if not sep or not name:
        raise ParameterError("x-oss-process", f"'{option}' is not <param>_<value>")
    return name, value


def parse_oss(source_key: str, process: str, output_key_for: KeyFor, limits: LimitsSettings = DEFAULT_LIMITS) -> Job:
    """`hls/m3u8,<k>_<v>,...|sys/saveas,o_<b64url>,b_<b64url>` for one source, within `limits`.
    Besides the parameters of hls/m3u8, livetx takes `container` and `encryption` and
    `key_rotation` (the title parameters of livetx/media/params.py, for the whole title)."""
    steps = process.split("|")
    head, *options = steps[0].split(",")
    if head != "hls/m3u8":
        raise ParameterError("x-oss-process", "hls/m3u8,<param>_<value>,...|sys/saveas,o_<b64url>,b_<b64url>")
    params: dict[str, Any] = {"preset": "veryfast"}
    for option in options:
        name, value = oss_option(option)
        if name in KNOWN_TITLE and name not in OSS_TITLE + OSS_EXTENSIONS:
            # OSS defines no track selection (its one rendition plays alone) nor initial segments
            raise ParameterError(
                name,
                "a parameter of hls/m3u8 or one of livetx's extensions of it (container, encryption, key_rotation): its one"
                " rendition plays alone, with muxed audio and no subtitles",
            )
        params[name] = b64_text(value, name) if name in OSS_BASE64 else value
    saveas: dict[str, str] = {}
    for item in steps[1].split(",")[1:] if len(steps) > 1 else []:
        name, _, value = item.partition("_")
        saveas[name] = value
    if len(steps) != 2 or not steps[1].startswith("sys/saveas") or "o" not in saveas or "b" not in saveas:
        raise ParameterError("sys/saveas", "sys/saveas,o_<b64url object prefix>,b_<b64url bucket>")
    bucket, prefix = b64_text(saveas["b"], "sys/saveas.b"), b64_text(saveas["o"], "sys/saveas.o")
    uri = f"oss://{bucket}/{prefix}"
    key = output_key_for(uri, "sys/saveas")
    table: dict[str, Any] = {k: params.pop(k) for k in OSS_TITLE + OSS_EXTENSIONS if k in params}
    # a ParameterError names the OSS parameter as written (st, s, ...)
    rendition = parse_rendition_params(params)
    check_encryption(parse_title_params(table), resolve_container(rendition), rendition.vcodec)
    table["renditions"] = {"t0": params}
    prefixes = {"t0": key}
    job = Job(_job_id(source_key, None, table, prefixes), source_key, None, table, prefixes, {"t0": uri}, oss=True)
    check_limits(job, limits)
    return job


# ---- limits ---------------------------------------------------------------------------


def _side(text: str) -> int:
    return int(text) if text else 0


def check_limits(job: Job, limits: LimitsSettings) -> None:
    """What the request asks for, against `[limits]`: renditions, fps, preset, declared size,
    pre-transcode length. (The planned output is checked too: `check_planned`.) Each field was
    checked alone by its contract, and each target as a whole by `_validate_target`."""
    profile = job.profile()
    if len(profile.renditions) > limits.max_renditions:
        raise LimitExceeded("Targets", f"at most {limits.max_renditions} targets (limits.max_renditions)")
    slowest = PRESETS.index(limits.slowest_preset)
    for r in profile.renditions:
        params = r.params
        if params.fps is not None and params.fps > limits.max_fps:
            raise LimitExceeded(job.field(r.name, "fps"), f"at most {limits.max_fps} fps (limits.max_fps)")
        if PRESETS.index(params.preset) > slowest:
            allowed = ", ".join(PRESETS[: slowest + 1])
            raise LimitExceeded(job.field(r.name, "preset"), f"one of {allowed} (limits.slowest_preset)")
        if params.s is not None:
            width, _, height = params.s.partition("x")
            w, h = _side(width), _side(height)
            if max(w, h) > limits.max_side or w * h > limits.max_pixels:
                raise LimitExceeded(job.field(r.name, "s"), _size_allowed(limits))
        if not 0 <= r.title.initd <= limits.max_initd:
            raise LimitExceeded(job.field(r.name, "initd"), f"from 0 to {limits.max_initd} ms pre-transcoded (limits.max_initd)")


def _size_allowed(limits: LimitsSettings) -> str:
    return f"an output of at most {limits.max_pixels} pixels and {limits.max_side} per side (limits.max_pixels, limits.max_side)"


def check_planned(job: Job, title: Title, limits: LimitsSettings) -> None:
    """The output as planned for this source (a `Wx` size, or no size, follows the source), and
    no target where an audio or subtitle rendition goes (`<master stem>-a1`, `-s5`, `-x<hash>`)."""
    tracks = set(track_claims(job, title))
    for name, prefix in job.prefixes.items():
        if target_playlist_key(prefix) in tracks:
            raise ParameterError(
                job.field(name, "URI"),
                "a URI other than those of the audio and subtitle renditions next to MasterURI (<stem>-a<n>, <stem>-s<n>, <stem>-x<hash>)",
            )
    for r in title.renditions:
        video = r.video
        if video is None:
            continue
        if max(video.width, video.height) > limits.max_side or video.width * video.height > limits.max_pixels:
            raise LimitExceeded(job.field(r.name, "s"), f"{_size_allowed(limits)}; this source makes {video.width}x{video.height}")
        if video.fps > limits.max_fps:
            raise LimitExceeded(
                job.field(r.name, "fps"), f"at most {limits.max_fps} fps (limits.max_fps); this source has {float(video.fps):g}"
            )
