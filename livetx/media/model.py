"""The typed data that crosses module and process boundaries: what a source holds, and one segment job.

Frozen and picklable; no av import, so planning and validation stay pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Literal

from livetx.media.colour import ColourInfo, ContentLight, DolbyVision, DynamicRange, MasteringDisplay
from livetx.media.watermark import Overlay

RECORD_VERSION = 5  # of the probe record; bump when its facts change meaning or grow (an older record is probed again)

# FFmpeg's names of the MP4/MOV demuxer (`mov,mp4,m4a,3gp,3g2,mj2`): its text samples tile the
# timeline, and its muxers flag the first track of each kind default by themselves
MP4_FAMILY = frozenset({"mov", "mp4"})


def is_mp4_family(format_name: str) -> bool:
    """Whether FFmpeg's comma-separated demuxer name `format_name` is the MP4/MOV one."""
    return not MP4_FAMILY.isdisjoint(format_name.split(","))


# What a stream's disposition can say about its role (FFmpeg's flag names), in this order.
ROLES = ("comment", "visual_impaired", "hearing_impaired", "descriptions", "captions", "dub", "original")


@dataclass(frozen=True)
class VideoInfo:
    index: int
    codec: str
    width: int
    height: int
    fps: Fraction
    pix_fmt: str | None
    start: Fraction | None  # seconds, stream start time
    end: Fraction | None = None  # seconds: end of the last packet, from the tail probe
    sar: Fraction | None = None  # sample (pixel) aspect ratio when not 1:1
    bit_rate: int | None = None  # bit/s, when the headers say
    rotation: int = 0  # counter-clockwise degrees to turn the coded picture for display (0/90/180/270)
    colour: ColourInfo = field(default_factory=ColourInfo)  # primaries, transfer, matrix, range and HDR metadata, from the headers
    profile: str | None = None  # FFmpeg's name of the codec profile ("High", "Main 10", ...), when the headers say
    level: int | None = None  # the codec level as coded: H.264 level_idc (41: 4.1), HEVC general_level_idc (123: 4.1)
    # source seconds (presentation time) of every keyframe, from the container's index
    # (media/keyframes.py); None: no cheap index, an incomplete one, or more than MAX_KEYFRAMES
    keyframes: tuple[Fraction, ...] | None = None

    @property
    def display_size(self) -> tuple[Fraction, Fraction]:
        """Width and height as shown: square pixels, turned by the rotation."""
        width = self.width * self.sar if self.sar else Fraction(self.width)
        if self.rotation in (90, 270):
            return Fraction(self.height), width
        return width, Fraction(self.height)


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    start: Fraction | None
    end: Fraction | None = None
    bit_rate: int | None = None


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of the source, as its headers describe it (every one, not only `MediaInfo.audio`)."""

    index: int
    codec: str
    channels: int
    layout: str | None  # FFmpeg's name of the channel layout: "stereo", "5.1", ...
    sample_rate: int
    bit_rate: int | None = None
    language: str | None = None  # the container's ISO 639 tag as written; None when absent or "und"
    title: str | None = None  # Matroska `title`, MP4 `name` (never MP4's `handler_name`)
    default: bool = False
    forced: bool = False
    roles: tuple[str, ...] = ()  # of ROLES, from the disposition
    start: Fraction | None = None  # seconds, stream start time
    end: Fraction | None = None  # seconds: end of the last packet, from the tail probe


@dataclass(frozen=True)
class SubtitleTrack:
    """One subtitle stream of the source. `bitmap`: pictures (PGS, DVB, VobSub), not text."""

    index: int
    codec: str  # FFmpeg's name: "srt", "ssa" (ASS in Matroska), "ass", "webvtt", "mov_text", "hdmv_pgs_subtitle", ...
    bitmap: bool
    language: str | None = None
    title: str | None = None
    default: bool = False
    forced: bool = False
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class MediaInfo:
    """The facts a playlist needs: container, duration, the first video and audio streams (what a
    muxed rendition is made of), and every audio and subtitle track."""

    format: str
    duration: Fraction  # seconds
    start: Fraction  # seconds: the container's start time
    video: VideoInfo | None
    audio: AudioInfo | None  # the source's first audio stream
    audio_tracks: tuple[AudioTrack, ...] = ()  # every decodable audio stream, in stream order
    subtitle_tracks: tuple[SubtitleTrack, ...] = ()

    def audio_track(self, index: int) -> AudioTrack | None:
        """The audio track of source stream `index`, if there is one."""
        return next((t for t in self.audio_tracks if t.index == index), None)

    @property
    def default_audio_track(self) -> AudioTrack | None:
        """The track a player starts with: the first flagged default, else the first."""
        return next((t for t in self.audio_tracks if t.default), self.audio_tracks[0] if self.audio_tracks else None)

    @property
    def end(self) -> Fraction:
        """Where the last stream ends: measured by the tail probe, else from the header duration."""
        ends = [s.end for s in (self.video, self.audio) if s is not None and s.end is not None]
        return max(ends) if ends else self.start + self.duration

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Fraction):
                return float(value) if value.denominator != 1 else value.numerator
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))  # type: ignore[no-any-return]

    def to_record(self) -> dict[str, Any]:
        """Lossless JSON form (fractions kept exact), for the probe record in storage."""

        def exact(value: Any) -> Any:
            if isinstance(value, Fraction):
                return {"fraction": f"{value.numerator}/{value.denominator}"}
            if isinstance(value, dict):
                return {k: exact(v) for k, v in value.items()}
            if isinstance(value, tuple | list):
                return [exact(v) for v in value]
            return value

        return {"version": RECORD_VERSION, "info": exact(asdict(self))}

    @classmethod
    def from_record(cls, record: Any) -> MediaInfo:
        """Inverse of `to_record`; ValueError for anything else (an old or foreign record)."""

        def exact(value: Any) -> Any:
            if isinstance(value, dict):
                if set(value) == {"fraction"}:
                    return Fraction(value["fraction"])
                return {k: exact(v) for k, v in value.items()}
            if isinstance(value, list):
                return tuple(exact(v) for v in value)
            return value

        try:
            if record["version"] != RECORD_VERSION:
                raise ValueError("probe record version")
            info = exact(record["info"])
            video = _video_info(info["video"]) if info["video"] else None
            audio = AudioInfo(**info["audio"]) if info["audio"] else None
            audio_tracks = tuple(AudioTrack(**t) for t in info["audio_tracks"])
            subtitle_tracks = tuple(SubtitleTrack(**t) for t in info["subtitle_tracks"])
            return cls(info["format"], info["duration"], info["start"], video, audio, audio_tracks, subtitle_tracks)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a probe record: {exc}") from None


def _video_info(fields: dict[str, Any]) -> VideoInfo:
    """A VideoInfo from its record's fields (the colour description is nested)."""
    colour = dict(fields.get("colour") or {})
    for key, kind in (("mastering", MasteringDisplay), ("content_light", ContentLight), ("dolby_vision", DolbyVision)):
        if colour.get(key) is not None:
            colour[key] = kind(**colour[key])
    return VideoInfo(**(fields | {"colour": ColourInfo(**colour)}))


@dataclass(frozen=True)
class VideoSpec:
    # "h264" | "h265" | "av1" | "vp9" (a job's WebM: batch/work.py) | "copy": the source's own
    # packets (fMP4 only; width, height and fps then describe the source as planned)
    codec: str
    width: int
    height: int
    fps: Fraction
    picture: tuple[int, int] | None = None  # scaled picture size when it differs from the frame (crop, fill)
    crf: float | None = 23.0
    bitrate: int | None = None
    maxrate: int | None = None
    bufsize: int | None = None
    gop: int | None = None
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"
    rotation: int = 0  # counter-clockwise degrees to turn decoded frames upright (from the source)
    threads: int = 0  # 0: let the encoder pick
    # "sdr": BT.709, limited range, converted (and tone mapped) from any source; "hlg"/"pq": an
    # HDR rendition keeping the source's signal, BT.2020, 10 bits, with its metadata
    dynamic_range: DynamicRange = "sdr"
    mastering: MasteringDisplay | None = None  # PQ: written in the stream's SEI (the source's)
    content_light: ContentLight | None = None
    copy_codecs: str = ""  # codec "copy": the CODECS string of the source's video (its profile and level)

    @property
    def copies(self) -> bool:
        """A copy ("remux") rendition: the source's video packets, not decoded (livetx/copyplan.py)."""
        return self.codec == "copy"


@dataclass(frozen=True)
class AudioSpec:
    sample_rate: int
    channels: int
    bitrate: int = 128000
    codec: str = "aac"


INIT: Literal["init"] = "init"
SegmentPart = int | Literal["init"]  # a media segment's index, or an fMP4 rendition's init segment


@dataclass(frozen=True)
class SampleEncryption:
    """The key a `sample-aes` (CMAF cbcs) segment's samples are encrypted with, and what its init
    segment's `tenc` names: the key id and the constant IV (livetx/crypto/cbcs.py)."""

    key: bytes = field(repr=False)
    key_id: bytes
    iv: bytes = field(repr=False)


@dataclass(frozen=True)
class SegmentJob:
    """Make the segment covering title time [start, stop) of `source`, in `container` ("ts" or
    "fmp4"). With `init`, make an fMP4 rendition's init segment instead: from the encoder
    headers alone, reading no source (start, stop and the source fields are unused), except for
    a copy rendition (`video.codec == "copy"`), whose init reads the source's video headers.

    The streams made are the specs given: `video=None` makes an audio-only segment of source
    stream `audio_stream` (any audio track, as an EXT-X-MEDIA rendition needs: on the video's
    windows, the same global AAC grid and pre/post-roll, TS_OFFSET in MPEG-TS, `tfdt` = title
    time in fMP4); `audio=None` a video-only one. Its init segment is made from the same specs.

    A composite title's segment reads one clip's source: `origin` is that clip's (negative when
    the clip plays later in the title than its source time), and `audio_span` where its audio plays."""

    source: str
    origin: Fraction  # source time (seconds) of title time 0
    start: Fraction
    stop: Fraction
    video: VideoSpec | None
    audio: AudioSpec | None
    video_stream: int | None = None
    audio_stream: int | None = None
    open_options: dict[str, str] = field(default_factory=dict)
    source_pin: str = ""  # the source version the plan was made from (see `ObjectInfo.pin`)
    container: str = "ts"
    init: bool = False
    # a WebVTT segment of source subtitle stream `subtitle_stream` (video and audio None): the
    # cues overlapping [start, stop), title time, X-TIMESTAMP-MAP for the video's `container`
    subtitle_stream: int | None = None
    samples: SampleEncryption | None = None  # fMP4: encrypt the samples (init: declare it) as CMAF cbcs
    # a composite title's clip: the title time [start, stop) its audio plays in (stop None: to
    # the end). Outside it the source's audio is silence, with a short fade at its edges, and
    # the AAC frame where a clip join falls is silent in the views of both clips: see
    # media/transcode.py `_AudioWindow`.
    audio_span: tuple[Fraction, Fraction | None] | None = None
    # a watermark drawn over every output frame after scaling (livetx/media/overlay.py): small,
    # made for this output size when the title was planned
    overlay: Overlay | None = None
    # an I-frame rendition's segment (one IDR frame) or init segment: no B-frames in any container,
    # so its lone frame has no reorder delay (DTS = PTS; in fMP4 no composition offset)
    intra_only: bool = False
    # the source's colour (its clip's, in a composite), which its frames are converted from
    source_colour: ColourInfo | None = None


@dataclass(frozen=True)
class SegmentResult:
    data: bytes
    video_frames: int
    audio_packets: int
    seconds: float  # wall time in the worker
    source_seeks: int
    source_bytes: int = 0  # bytes fetched from a remote source (ranged reads); 0 for local files
