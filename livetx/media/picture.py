"""The worker's picture job: frames at source times -> one JPEG, WebP or PNG (a snapshot, a poster, or a storyboard sheet).

Runs in a pool process (`livetx.media.pool`), like a segment job. The source is opened as a
segment's is (`open_job_source`: the allow-listed demuxers, no nested opens, the pinned
version). For each time, in ascending order, it seeks to the keyframe at or before it and
decodes forward to the frame whose presentation interval holds the time (the last frame whose
time is <= t; the first frame when t comes before it, the last at the end of the stream); with
`mode="key"` it takes the keyframe the seek lands on. Between the times of a storyboard sheet it
goes on decoding forward instead of seeking again when the next time is near (SEEK_AHEAD). A seek
that lands after the time (MPEG-TS has no index) is tried again from earlier (SEEK_BACKOFF).
Each frame is turned upright by the source's rotation, scaled to the job's `Fit`, and placed
on its tile of a `columns`-wide grid (one tile: a single picture).

A poster job (`pick_bright`) looks at its times in order and keeps the first frame that is not
black or flat (mean and spread of its luma, POSTER_MIN_LUMA and POSTER_MIN_SPREAD), else the
first one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from livetx.errors import SourceUnreadable
from livetx.media.colour import ColourInfo
from livetx.media.colour_frames import sdr_rgb
from livetx.media.messages import Preempted
from livetx.media.overlay import overlay_rgb
from livetx.media.remote import open_job_source
from livetx.media.watermark import Overlay
from livetx.pictures import FORMATS, POSTER_MIN_LUMA, POSTER_MIN_SPREAD, Fit

SEEK_AHEAD = Fraction(3)  # seconds: a later time nearer than this is decoded to, not sought
# seconds before the time a seek aims at, tried in turn while the first frame it lands on comes
# after the time, or no frame comes (demuxers without an index, MPEG-TS and PS, may land late,
# or mid-GOP where nothing decodes before the end)
SEEK_BACKOFF = (Fraction(0), Fraction(1), Fraction(5), Fraction(30))
DECODE_THREADING = "AUTO"


@dataclass(frozen=True)
class PictureJob:
    """Frames of `source` at `times` (source seconds, ascending) as one picture in `format`
    (a key of `livetx.pictures.FORMATS`): tiles of a `columns`-wide grid, each the frame turned
    by `rotation` (counter-clockwise degrees) and scaled as `fit` says."""

    source: str
    video_stream: int
    times: tuple[Fraction, ...]
    fit: Fit
    format: str = "jpg"
    quality: int = 85
    mode: str = "exact"
    rotation: int = 0
    columns: int = 1
    pick_bright: bool = False  # a poster: the first bright frame of `times`, one picture
    overlay: Overlay | None = None  # the watermark drawn over each tile (made for the fit's canvas)
    open_options: dict[str, str] = field(default_factory=dict)
    source_pin: str = ""
    colour: ColourInfo | None = None  # the source's: frames are shown as an SDR rendition would (BT.709, tone mapped)


@dataclass(frozen=True)
class PictureResult:
    data: bytes
    frames: int  # frames decoded
    seeks: int
    seconds: float
    source_bytes: int = 0


def make_picture(job: PictureJob, should_stop: Callable[[], bool] | None = None, origin: str | None = None) -> PictureResult:
    """Module-level entry point for the process pool."""
    began = time.perf_counter()
    with open_job_source(job, origin) as (src, counter):
        stream = next((s for s in src.streams.video if s.index == job.video_stream), None)
        if stream is None:
            raise SourceUnreadable("the source has no video stream to take a picture of")
        stream.codec_context.thread_type = DECODE_THREADING
        reader = _Reader(src, stream, job.mode == "key")
        images = _pictures(reader, job, should_stop)
        tiles = [_fitted(i, job.fit) for i in images]
        if job.overlay is not None:  # the watermark, made for the tile's size
            tiles = [overlay_rgb(tile, job.overlay) for tile in tiles]
        data = _encode(_grid(tiles, job.fit.canvas, job.columns), job.format, job.quality)
        return PictureResult(data, reader.decoded, reader.seeks, time.perf_counter() - began, counter())


def _pictures(reader: _Reader, job: PictureJob, should_stop: Callable[[], bool] | None) -> list[Image.Image]:
    """The frames at the job's times, upright; a poster's (`pick_bright`): the first bright one,
    else the first."""
    images: list[Image.Image] = []
    for t in job.times:
        if should_stop is not None and should_stop():
            raise Preempted()
        frame = reader.frame_at(t)
        if frame is None:
            raise SourceUnreadable("no video frame could be decoded at that time")
        image = _upright(frame, job.rotation, job.colour)
        if not job.pick_bright:
            images.append(image)
        elif _bright(image):
            return [image]
        else:
            images = images or [image]
    return images


class _Reader:
    """Frames of one video stream at ascending times: seeks when it must, else decodes on."""

    def __init__(self, src: InputContainer, stream: VideoStream, key_only: bool) -> None:
        self.src = src
        self.stream = stream
        assert stream.time_base is not None
        self.time_base: Fraction = stream.time_base
        self.key_only = key_only
        self.frames: Iterator[VideoFrame] | None = None
        self.held: VideoFrame | None = None  # the last frame taken, at or before the last time asked
        self.ahead: VideoFrame | None = None  # a frame decoded past the last time asked
        self.decoded = 0
        self.seeks = 0

    def _time(self, frame: VideoFrame) -> Fraction:
        return frame.pts * self.time_base if frame.pts is not None else Fraction(frame.time or 0)

    def _seek(self, t: Fraction) -> None:
        """To the keyframe at or before `t`: the next frame (`ahead`) is the first after it."""
        for backoff in SEEK_BACKOFF:
            self.src.seek(max(0, int((t - backoff) / self.time_base)), stream=self.stream, backward=True, any_frame=False)
            self.frames = self._decode()
            self.held = None
            self.seeks += 1
            self.ahead = next(self.frames, None)
            if self.ahead is not None and self._time(self.ahead) <= t:
                return  # (landed late, or on nothing decodable: from further back)

    def _decode(self) -> Iterator[VideoFrame]:
        for packet in self.src.demux(self.stream):
            try:
                frames = packet.decode()
            except av.InvalidDataError:  # a corrupt packet (after a seek into TS): none of its frames
                continue
            for frame in frames:
                if isinstance(frame, VideoFrame):
                    self.decoded += 1
                    yield frame

    def _next(self) -> VideoFrame | None:
        if self.ahead is not None:
            frame, self.ahead = self.ahead, None
            return frame
        assert self.frames is not None
        return next(self.frames, None)

    def frame_at(self, t: Fraction) -> VideoFrame | None:
        if self.key_only:
            self._seek(t)
            return self._next()
        near = self.held is not None and self._time(self.held) <= t < self._time(self.held) + SEEK_AHEAD
        if self.frames is None or not near:
            self._seek(t)
        while True:
            frame = self._next()
            if frame is None:  # the end of the stream: the last frame shows on
                return self.held
            if self._time(frame) > t and self.held is not None:
                self.ahead = frame
                return self.held
            self.held = frame
            if self._time(frame) > t:  # t before the stream's first frame: that frame
                return frame


_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)  # counter-clockwise


def _upright(frame: VideoFrame, rotation: int, colour: ColourInfo | None) -> Image.Image:
    """The frame as an RGB image in BT.709 (converted from the source's colour as an SDR
    rendition is), turned counter-clockwise by `rotation` as the display matrix says."""
    image = Image.fromarray(sdr_rgb(frame, colour))
    turns = rotation // 90 % 4
    return image.transpose(_TURNS[turns - 1]) if turns else image


def _bright(image: Image.Image) -> bool:
    luma = np.asarray(image.convert("L"), dtype=np.float32)
    return float(luma.mean()) >= POSTER_MIN_LUMA and float(luma.std()) >= POSTER_MIN_SPREAD


def _fitted(image: Image.Image, fit: Fit) -> Image.Image:
    """Scaled to the fit's picture size, centred on its canvas (padded black, or cut)."""
    scaled = image.resize(fit.picture, Image.Resampling.BICUBIC, reducing_gap=3.0)
    if fit.picture == fit.canvas:
        return scaled
    canvas = Image.new("RGB", fit.canvas)
    canvas.paste(scaled, ((fit.canvas[0] - fit.picture[0]) // 2, (fit.canvas[1] - fit.picture[1]) // 2))
    return canvas


def _grid(tiles: list[Image.Image], tile: tuple[int, int], columns: int) -> Image.Image:
    if len(tiles) == 1:
        return tiles[0]
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (min(columns, len(tiles)) * tile[0], rows * tile[1]))
    for n, image in enumerate(tiles):
        row, column = divmod(n, columns)
        sheet.paste(image, (column * tile[0], row * tile[1]))
    return sheet


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, FORMATS[fmt], compress_level=6)
    else:
        image.save(out, FORMATS[fmt], quality=quality)
    return out.getvalue()
