"""The typed data that crosses module and process boundaries: what a source holds, and one segment job.

Frozen and picklable; no av import, so planning and validation stay pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Literal

RECORD_VERSION = 1  # of the probe record; bump when VideoInfo/AudioInfo change meaning


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
class MediaInfo:
    """The facts a playlist needs: container, duration and the first video and audio streams."""

    format: str
    duration: Fraction  # seconds
    start: Fraction  # seconds: the container's start time
    video: VideoInfo | None
    audio: AudioInfo | None

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
            return value

        return plain(asdict(self))  # type: ignore[no-any-return]

    def to_record(self) -> dict[str, Any]:
        """Lossless JSON form (fractions kept exact), for the probe record in storage."""

        def exact(value: Any) -> Any:
            if isinstance(value, Fraction):
                return {"fraction": f"{value.numerator}/{value.denominator}"}
            if isinstance(value, dict):
                return {k: exact(v) for k, v in value.items()}
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
            return value

        try:
            if record["version"] != RECORD_VERSION:
                raise ValueError("probe record version")
            info = exact(record["info"])
            video = VideoInfo(**info["video"]) if info["video"] else None
            audio = AudioInfo(**info["audio"]) if info["audio"] else None
            return cls(info["format"], info["duration"], info["start"], video, audio)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a probe record: {exc}") from None


@dataclass(frozen=True)
class VideoSpec:
    codec: str  # "h264" | "h265" | "av1"
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


@dataclass(frozen=True)
class AudioSpec:
    sample_rate: int
    channels: int
    bitrate: int = 128000
    codec: str = "aac"


INIT: Literal["init"] = "init"
SegmentPart = int | Literal["init"]  # a media segment's index, or an fMP4 rendition's init segment


@dataclass(frozen=True)
class SegmentJob:
    """Make the segment covering title time [start, stop) of `source`, in `container` ("ts" or
    "fmp4"). With `init`, make an fMP4 rendition's init segment instead: from the encoder
    headers alone, reading no source (start, stop and the source fields are unused)."""

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


@dataclass(frozen=True)
class SegmentResult:
    data: bytes
    video_frames: int
    audio_packets: int
    seconds: float  # wall time in the worker
    source_seeks: int
    source_bytes: int = 0  # bytes fetched from a remote source (ranged reads); 0 for local files
