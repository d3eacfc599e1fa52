"""The fidelity checker: decode what livetx made and compare it with what the synthetic source holds.

Sources from `livetx.media.sample` carry each frame's index in blocks along the top edge and a
pure tone as audio. After transcoding, every decoded frame must show the index of the source
frame due at its timestamp, and the audio must be the tone: right amplitude and, block by
block, the phase the tone has at that timestamp. A gap, an overlap or a misaligned splice
shows up as a phase error, even where AAC's overlap-add hides the click.
"""

from __future__ import annotations

import io
import math
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import av
import av.bitstream
import numpy as np

from livetx.media.sample import read_index

TS_CLOCK = 90000
T = TypeVar("T")
TS_OFFSET = Fraction(7, 5)


@dataclass
class VideoTrack:
    indexes: list[int]
    pts: list[int]  # 90 kHz
    keyframes: list[bool]


@dataclass
class AudioTrack:
    samples: np.ndarray  # first channel, float
    first_pts: int  # 90 kHz
    pts: list[int]
    sample_rate: int


def decode_video(container: av.container.InputContainer, drawn_width: int | None = None) -> VideoTrack:
    """Frame indexes, PTS and key flags. `drawn_width`: the width the source was drawn at, for
    renditions scaled by a ratio its index blocks don't divide evenly (frames are scaled back)."""
    track = VideoTrack([], [], [])
    for frame in container.decode(container.streams.video[0]):
        if drawn_width and frame.width != drawn_width:
            height = round(frame.height * drawn_width / frame.width / 2) * 2
            track.indexes.append(read_index(frame.to_ndarray(format="gray", width=drawn_width, height=height)))
        else:
            track.indexes.append(read_index(frame.to_ndarray(format="gray")))
        track.pts.append(int(frame.pts * frame.time_base * TS_CLOCK))
        track.keyframes.append(bool(frame.key_frame))
    return track


def decode_audio(container: av.container.InputContainer) -> AudioTrack:
    chunks, pts = [], []
    rate = 0
    for frame in container.decode(container.streams.audio[0]):
        chunks.append(frame.to_ndarray()[0].astype(np.float64))
        pts.append(int(frame.pts * frame.time_base * TS_CLOCK))
        rate = frame.sample_rate
    return AudioTrack(np.concatenate(chunks) if chunks else np.zeros(0), pts[0] if pts else 0, pts, rate)


def open_joined(segments: Iterable[bytes], format: str = "mpegts", options: dict[str, str] | None = None) -> av.container.InputContainer:
    """The segments back to back, as one stream through one demuxer and decoder (fMP4: the
    init segment first, format "mp4"); `options`: the demuxer's."""
    return av.open(io.BytesIO(b"".join(segments)), format=format, options=options or {})


def in_own_process(function: Callable[..., T], *args: Any, timeout: float = 120) -> T | None:
    """`function(*args)` run in a spawned process of its own (module-level, picklable); None if
    that process died. For decoding what is meant to be undecodable: FFmpeg's decoder fed
    encrypted slices has crashed a test process (a segfault turning a garbled frame into an
    array), and a crash, like a refusal, recovers nothing."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as apart:
        try:
            return apart.submit(function, *args).result(timeout=timeout)
        except BrokenProcessPool:
            return None


def open_fmp4(init: bytes, segments: Iterable[bytes], key: bytes | None = None) -> av.container.InputContainer:
    """An fMP4 rendition as a player appends it: its init segment, then media segments, through
    one mp4 demuxer; `key`: the content key of a 'cbcs' (SAMPLE-AES) rendition, which the
    demuxer decrypts the samples with (FFmpeg's `decryption_key`)."""
    return open_joined([init, *segments], format="mp4", options={"decryption_key": key.hex()} if key else None)


def decode_switching(pieces: Iterable[tuple[bytes, bytes]], drawn_width: int | None = None) -> VideoTrack:
    """Video of (init, media segment) pairs played in order, switching renditions as hls.js
    does: a new init segment, then the new rendition's segment. Segments that share an init go
    through one mp4 demuxer; at a switch a new demuxer reads the new init (as MSE re-reads it).
    One decoder decodes everything, the parameter sets each init carries put in band
    (`*_mp4toannexb`), so a frame lost, repeated or reordered at a switch shows in the indexes."""
    runs: list[tuple[bytes, list[bytes]]] = []
    for init, segment in pieces:
        if runs and runs[-1][0] == init:
            runs[-1][1].append(segment)
        else:
            runs.append((init, [segment]))
    track = VideoTrack([], [], [])
    decoder: av.VideoCodecContext | None = None

    def take(frames: Iterable[av.VideoFrame], time_base: Fraction) -> None:
        for frame in frames:
            if drawn_width and frame.width != drawn_width:
                height = round(frame.height * drawn_width / frame.width / 2) * 2
                track.indexes.append(read_index(frame.to_ndarray(format="gray", width=drawn_width, height=height)))
            else:
                track.indexes.append(read_index(frame.to_ndarray(format="gray")))
            assert frame.pts is not None
            track.pts.append(int(frame.pts * time_base * TS_CLOCK))
            track.keyframes.append(bool(frame.key_frame))

    time_base = Fraction(1, TS_CLOCK)
    for init, segments in runs:
        with open_fmp4(init, segments) as container:
            stream = container.streams.video[0]
            name = stream.codec_context.name
            assert stream.time_base is not None
            time_base = stream.time_base
            if decoder is None:
                decoder = av.CodecContext.create(name, "r")  # type: ignore[assignment]
            assert decoder is not None and decoder.name == name, "a switch between codecs"
            annexb = av.bitstream.BitStreamFilterContext(f"{name}_mp4toannexb", stream)
            for packet in container.demux(stream):
                for out in annexb.filter(packet if packet.size else None):
                    take(decoder.decode(out), time_base)
    if decoder is not None:
        take(decoder.decode(None), time_base)
    return track


def expected_index(pts_90k: int, out_fps: Fraction, src_fps: Fraction) -> int:
    """Source frame shown at output frame time (FFmpeg fps-filter rule, as the transcoder)."""
    k = round((Fraction(pts_90k, TS_CLOCK) - TS_OFFSET) * out_fps)
    # the last source frame j with round(j / src_fps * out_fps) <= k
    j = math.floor((k + Fraction(1, 2)) * src_fps / out_fps)
    while round(Fraction(j + 1) / src_fps * out_fps) <= k:
        j += 1
    while j > 0 and round(Fraction(j) / src_fps * out_fps) > k:
        j -= 1
    return j


@dataclass
class ToneReport:
    blocks: int
    worst_phase: float  # radians
    worst_amplitude: float  # relative deviation from the expected amplitude
    worst_block: int
    offset: float  # median phase error (radians): a constant offset the source itself carries


def check_tone(
    track: AudioTrack,
    tone_hz: float,
    amplitude: float = 0.5,
    block: int = 1024,
    skip_head: int = 2,
    skip_tail: int = 2,
    relative: bool = False,
    offset: Fraction = TS_OFFSET,
) -> ToneReport:
    """Fit the tone's phase and amplitude in each block and compare with the ideal tone at that time.

    With `relative`, phase is measured against the median phase error: sources whose container
    does not record the audio encoder's delay (FLV, AVI, AC-3 ...) carry a constant offset from
    their timestamps, and what must not happen is a shift from one segment to the next; the
    amplitude is then measured against the median level, as lossy sources carry their own.
    `offset`: seconds of title time 0 in the timestamps (TS_OFFSET in MPEG-TS, 0 in fMP4).
    """
    rate = track.sample_rate
    start_sample = round((Fraction(track.first_pts, TS_CLOCK) - offset) * rate)
    blocks = len(track.samples) // block
    phases, amps = [], []
    for b in range(skip_head, blocks - skip_tail):
        x = track.samples[b * block : (b + 1) * block]
        n = np.arange(start_sample + b * block, start_sample + (b + 1) * block)
        w = 2 * np.pi * tone_hz * n / rate
        basis = np.stack([np.sin(w), np.cos(w)], axis=1)
        (a, c), *_ = np.linalg.lstsq(basis, x, rcond=None)
        phases.append(math.atan2(c, a))  # 0 when x == amplitude * sin(w)
        amps.append(math.hypot(a, c))
    errors = np.array(phases)
    offset = float(np.angle(np.mean(np.exp(1j * errors)))) if relative else 0.0
    deviation = np.abs(np.angle(np.exp(1j * (errors - offset))))
    worst = int(np.argmax(deviation))
    level = float(np.median(amps)) if relative else amplitude  # lossy sources (MP3) carry their own level
    worst_amp = float(np.max(np.abs(np.array(amps) / level - 1)))
    worst_phase, worst_block = float(deviation[worst]), worst + skip_head
    return ToneReport(blocks, worst_phase, worst_amp, worst_block, offset)


def residual_peaks(track: AudioTrack, tone_hz: float, amplitude: float = 0.5, offset: Fraction = TS_OFFSET) -> np.ndarray:
    """|decoded - ideal tone| per sample: a click is a spike in it."""
    rate = track.sample_rate
    start_sample = round((Fraction(track.first_pts, TS_CLOCK) - offset) * rate)
    n = np.arange(start_sample, start_sample + len(track.samples))
    return np.abs(track.samples - amplitude * np.sin(2 * np.pi * tone_hz * n / rate))


def reference_indexes(source: str, origin: Fraction, fps: Fraction, count: int) -> list[int]:
    """What the source's own timestamps say each output frame shows: decode it whole, in one
    pass, and apply the frame rule (the last source frame whose slot round((t - origin) * fps)
    is <= k). Sources with timestamp quirks (AVI's skipped ticks, say) are judged by this."""
    shown: list[tuple[int, int]] = []
    with av.open(source) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            slot = round((frame.pts * stream.time_base - origin) * fps)
            shown.append((slot, read_index(frame.to_ndarray(format="gray"))))
    out = []
    j = 0
    for k in range(count):
        while j + 1 < len(shown) and shown[j + 1][0] <= k:
            j += 1
        out.append(shown[j][1])
    return out
