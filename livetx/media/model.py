"""The typed data that crosses module and process boundaries: what a source holds, and one segment job.

Frozen and picklable; no av import, so planning and validation stay pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any


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


@dataclass(frozen=True)
class VideoSpec:
    codec: str  # "h264" | "h265"
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
    threads: int = 0  # 0: let the encoder pick


@dataclass(frozen=True)
class AudioSpec:
    sample_rate: int
    channels: int
    bitrate: int = 128000
    codec: str = "aac"


@dataclass(frozen=True)
class SegmentJob:
    """Make the segment covering title time [start, stop) of `source`."""

    source: str
    origin: Fraction  # source time (seconds) of title time 0
    start: Fraction
    stop: Fraction
    video: VideoSpec | None
    audio: AudioSpec | None
    video_stream: int | None = None
    audio_stream: int | None = None
    open_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentResult:
    data: bytes
    video_frames: int
    audio_packets: int
    seconds: float  # wall time in the worker
    source_seeks: int
