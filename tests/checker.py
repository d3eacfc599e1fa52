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
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from livetx.media.sample import read_index

TS_CLOCK = 90000
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


def decode_video(container: av.container.InputContainer) -> VideoTrack:
    track = VideoTrack([], [], [])
    for frame in container.decode(container.streams.video[0]):
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


def open_joined(segments: Iterable[bytes]) -> av.container.InputContainer:
    """The segments back to back, as one stream through one demuxer and decoder."""
    return av.open(io.BytesIO(b"".join(segments)), format="mpegts")


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


def check_tone(
    track: AudioTrack, tone_hz: float, amplitude: float = 0.5, block: int = 1024, skip_head: int = 2, skip_tail: int = 2
) -> ToneReport:
    """Fit the tone's phase and amplitude in each block and compare with the ideal tone at that time."""
    rate = track.sample_rate
    start_sample = round((Fraction(track.first_pts, TS_CLOCK) - TS_OFFSET) * rate)
    blocks = len(track.samples) // block
    worst_phase = worst_amp = 0.0
    worst_block = -1
    for b in range(skip_head, blocks - skip_tail):
        x = track.samples[b * block : (b + 1) * block]
        n = np.arange(start_sample + b * block, start_sample + (b + 1) * block)
        w = 2 * np.pi * tone_hz * n / rate
        basis = np.stack([np.sin(w), np.cos(w)], axis=1)
        (a, c), *_ = np.linalg.lstsq(basis, x, rcond=None)
        phase = abs(math.atan2(c, a))  # 0 when x == amplitude * sin(w)
        amp = abs(math.hypot(a, c) / amplitude - 1)
        if phase > worst_phase:
            worst_phase, worst_block = phase, b
        worst_amp = max(worst_amp, amp)
    return ToneReport(blocks, worst_phase, worst_amp, worst_block)


def residual_peaks(track: AudioTrack, tone_hz: float, amplitude: float = 0.5) -> np.ndarray:
    """|decoded - ideal tone| per sample: a click is a spike in it."""
    rate = track.sample_rate
    start_sample = round((Fraction(track.first_pts, TS_CLOCK) - TS_OFFSET) * rate)
    n = np.arange(start_sample, start_sample + len(track.samples))
    return np.abs(track.samples - amplitude * np.sin(2 * np.pi * tone_hz * n / rate))
