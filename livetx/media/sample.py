"""Synthetic test sources made with PyAV: a moving pattern whose frames carry their index, and a pure tone.

Each video frame shows, along its top edge, its own index as a row of black/white blocks
(most significant bit first), so a decoder can tell exactly which source frame it is looking
at after any amount of transcoding. A seven-segment counter in the middle shows the same
number to a person. The audio is a sine of one frequency on every channel, so a splice
shows up as a phase jump.

The same generator makes the `make run` sample and the fixtures of the test-suite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from livetx.media.scheduling import drop_realtime

INDEX_BITS = 20  # up to ~9.7 h at 30 fps


def index_block_size(width: int) -> int:
    """Side of one index block in pixels: the row of blocks takes about 60% of the width."""
    return max(4, (width * 3 // 5) // INDEX_BITS)


# A frame is drawn straight into its YUV 4:2:0 planes (no RGB conversion per frame).
Planes = tuple[np.ndarray, np.ndarray, np.ndarray]
WHITE = (235, 128, 128)
BLACK = (16, 128, 128)


def _yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def _fill(planes: Planes, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
    """Paint a rectangle; chroma covers the 2x2 blocks the rectangle starts in."""
    luma, cb, cr = planes
    luma[y : y + h, x : x + w] = colour[0]
    cx0, cy0, cx1, cy1 = x // 2, y // 2, (x + w + 1) // 2, (y + h + 1) // 2
    cb[cy0:cy1, cx0:cx1] = colour[1]
    cr[cy0:cy1, cx0:cx1] = colour[2]


def draw_index(planes: Planes, index: int) -> None:
    """Paint `index` as INDEX_BITS black/white blocks along the top-left edge."""
    size = index_block_size(planes[0].shape[1])
    for bit in range(INDEX_BITS):
        on = (index >> (INDEX_BITS - 1 - bit)) & 1
        _fill(planes, bit * size, 0, size, size, WHITE if on else BLACK)


def read_index(luma: np.ndarray) -> int:
    """Read back the index painted by `draw_index` from a decoded luma plane (any 8-bit Y)."""
    size = index_block_size(luma.shape[1])
    lo, hi = size // 4, size - size // 4
    value = 0
    for bit in range(INDEX_BITS):
        block = luma[lo:hi, bit * size + lo : bit * size + hi]
        value = (value << 1) | int(block.mean() > 128)
    return value


# Seven-segment digits: segments a b c d e f g.
_SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg",
    "5": "acdfg", "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}  # fmt: skip


def _draw_digit(planes: Planes, x: int, y: int, w: int, h: int, digit: str) -> None:
    t = max(2, w // 6)
    half = h // 2
    boxes = {
        "a": (x, y, w, t),
        "b": (x + w - t, y, t, half),
        "c": (x + w - t, y + half, t, h - half),
        "d": (x, y + h - t, w, t),
        "e": (x, y + half, t, h - half),
        "f": (x, y, t, half),
        "g": (x, y + half - t // 2, w, t),
    }
    for seg in _SEGMENTS[digit]:
        _fill(planes, *boxes[seg], WHITE)


def draw_counter(planes: Planes, text: str) -> None:
    height, width = planes[0].shape
    dh = max(8, height // 6)
    dw = dh // 2
    gap = max(2, dw // 3)
    total = len(text) * (dw + gap)
    x0 = max(0, (width - total) // 2)
    y0 = (height - dh) // 2
    _fill(planes, x0 - gap, y0 - gap, total + 2 * gap, dh + 2 * gap, BLACK)
    for i, ch in enumerate(text):
        _draw_digit(planes, x0 + i * (dw + gap), y0, dw, dh, ch)


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. Defaults are the `make run` sample."""

    seconds: float = 60.0
    width: int = 1280
    height: int = 720
    fps: Fraction = Fraction(30)
    sample_rate: int = 48000
    channels: int = 2
    tone_hz: float = 440.0
    container: str | None = None  # from the file name when None
    vcodec: str | None = "libx264"
    acodec: str | None = "aac"
    pix_fmt: str = "yuv420p"
    gop: int = 60
    preset: str = "superfast"
    video_bitrate: int | None = None  # for codecs without a quality mode (mpeg2video, mpeg4, wmv2)
    video_options: tuple[tuple[str, str], ...] = ()  # encoder options, e.g. (("cpu-used", "8"),)
    audio_options: tuple[tuple[str, str], ...] = ()
    sar: Fraction | None = None  # sample aspect ratio to declare (non-square pixels)
    vfr: bool = False  # jitter frame times (variable frame rate; use a ms-based container)
    start_offset: float = 0.0  # seconds added to every timestamp (e.g. 36000: a TS starting at 10 h)
    rotation: int = 0  # display rotation to declare (MP4/MOV), counter-clockwise degrees


_BARS = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]


def _background(width: int, height: int) -> Planes:
    """YUV colour bars twice as wide as the frame, to scroll through."""
    palette = np.array([_yuv(c) for c in _BARS], dtype=np.uint8)
    cols = np.arange(2 * width) * len(_BARS) // width % len(_BARS)
    row = palette[cols]  # (2w, 3)
    luma = np.broadcast_to(row[:, 0], (height, 2 * width))
    cb = np.broadcast_to(row[::2, 1], (height // 2, width))
    cr = np.broadcast_to(row[::2, 2], (height // 2, width))
    return luma, cb, cr


def render_frame(bg: Planes, index: int, width: int, height: int) -> np.ndarray:
    """Frame `index` as one yuv420p array of shape (height * 3 / 2, width)."""
    shift = (index * 4) % width  # even: chroma moves with luma
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma = out[:height]
    chroma = out[height:].reshape(2, height // 2, width // 2)
    luma[:] = bg[0][:, shift : shift + width]
    chroma[0] = bg[1][:, shift // 2 : shift // 2 + width // 2]
    chroma[1] = bg[2][:, shift // 2 : shift // 2 + width // 2]
    planes = (luma, chroma[0], chroma[1])
    box = max(8, height // 8)
    travel = max(1, width - box)
    bx = (index * 7) % (2 * travel)
    bx = bx if bx < travel else 2 * travel - bx
    by = height - box - max(0, height // 10)
    _fill(planes, bx, by, box, box, WHITE)
    draw_index(planes, index)
    draw_counter(planes, f"{index:06d}")
    return out


def tone(start_sample: int, count: int, sample_rate: int, tone_hz: float, channels: int) -> np.ndarray:
    """Planar float samples of the tone: shape (channels, count)."""
    n = np.arange(start_sample, start_sample + count, dtype=np.float64)
    wave = (0.5 * np.sin(2 * math.pi * tone_hz * n / sample_rate)).astype(np.float32)
    return np.repeat(wave[np.newaxis, :], channels, axis=0)


def write_sample(path: str | Path, spec: SampleSpec = SampleSpec()) -> None:
    """Write a synthetic source to `path` (the container follows the suffix unless given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    frames = round(spec.seconds * spec.fps)
    total_samples = round(spec.seconds * spec.sample_rate)
    fmt = spec.container or None
    options = {"output_ts_offset": f"{spec.start_offset}"} if spec.start_offset else {}
    with av.open(str(tmp), "w", format=fmt or _format_for(path), options=options) as out:
        vstream: Any = _add_video(out, spec) if spec.vcodec else None
        astream: Any = _add_audio(out, spec) if spec.acodec else None
        # odd sizes: drawn one pixel larger (yuv420p needs even sides), then scaled down
        draw_w, draw_h = spec.width + spec.width % 2, spec.height + spec.height % 2
        bg = _background(draw_w, draw_h)
        audio_chunk = 1024 if spec.acodec != "libopus" else 960
        next_sample = 0
        for index in range(frames if vstream else 0):
            frame = av.VideoFrame.from_ndarray(render_frame(bg, index, draw_w, draw_h), format="yuv420p")
            if spec.pix_fmt != "yuv420p" or (draw_w, draw_h) != (spec.width, spec.height):
                frame = frame.reformat(width=spec.width, height=spec.height, format=spec.pix_fmt)
            if spec.vfr:
                # variable frame rate: each frame up to 15 ms early or late, in milliseconds
                frame.pts = round(1000 * index / spec.fps + 15 * math.sin(index * 1.7))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = index
                frame.time_base = 1 / spec.fps
            packets = vstream.encode(frame)
            if index == 0:  # the encoder opened with the first frame: no thread of it stays real-time
                drop_realtime()
            for packet in packets:
                out.mux(packet)
            # keep the streams interleaved: audio up to the time of this frame
            due = min(Fraction(total_samples), (index + 1) * spec.sample_rate / spec.fps)
            while astream and next_sample < due:
                next_sample = _write_audio(out, astream, spec, next_sample, audio_chunk, total_samples)
        while astream and next_sample < total_samples:
            next_sample = _write_audio(out, astream, spec, next_sample, audio_chunk, total_samples)
        for stream in [s for s in (vstream, astream) if s is not None]:
            for packet in stream.encode():
                out.mux(packet)
    tmp.replace(path)


def _add_video(out: Any, spec: SampleSpec) -> Any:
    vstream = out.add_stream(spec.vcodec, rate=spec.fps)
    vstream.width, vstream.height = spec.width, spec.height
    vstream.pix_fmt = spec.pix_fmt
    vstream.codec_context.gop_size = spec.gop
    if spec.vfr:
        vstream.codec_context.time_base = Fraction(1, 1000)
    if spec.sar:
        vstream.codec_context.sample_aspect_ratio = spec.sar
    if spec.rotation:
        vstream.set_display_rotation(spec.rotation)
    options = dict(spec.video_options)
    if spec.vcodec in ("libx264", "libx265"):
        options.setdefault("preset", spec.preset)
        vstream.codec_context.thread_type = "FRAME"
    vstream.codec_context.options = options
    if spec.video_bitrate:
        vstream.codec_context.bit_rate = spec.video_bitrate
    return vstream


def _add_audio(out: Any, spec: SampleSpec) -> Any:
    astream = out.add_stream(spec.acodec, rate=spec.sample_rate)
    astream.layout = "mono" if spec.channels == 1 else "stereo"
    astream.codec_context.options = dict(spec.audio_options)
    astream.codec_context.bit_rate = 128000 * spec.channels // 2 if spec.acodec != "flac" else 0
    return astream


def _write_audio(out: Any, astream: Any, spec: SampleSpec, start: int, chunk: int, total: int) -> int:
    """Encode `chunk` samples of the tone from `start`; PyAV converts to the encoder's format."""
    count = min(chunk, total - start)
    planar = tone(start, count, spec.sample_rate, spec.tone_hz, spec.channels)
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="mono" if spec.channels == 1 else "stereo")
    frame.sample_rate = spec.sample_rate
    frame.pts = start
    frame.time_base = Fraction(1, spec.sample_rate)
    for packet in astream.encode(frame):
        out.mux(packet)
    return start + count


SUFFIX_FORMATS = {
    ".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".ts": "mpegts",
    ".avi": "avi", ".flv": "flv", ".mpg": "mpeg", ".wmv": "asf",
}  # fmt: skip


def _format_for(path: Path) -> str:
    return SUFFIX_FORMATS.get(path.suffix.lower(), "mp4")
