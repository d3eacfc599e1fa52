"""The checks of a 3-clip concatenation, shared by the composite played on demand
(tests/test_composite.py) and the same concatenation run as a job (tests/test_batch_concat.py).

The clips: MP4 30 fps 48 kHz 16:9, Matroska 25 fps 44.1 kHz 4:3, MPEG-TS 29.97 fps 48 kHz 4:3
(tests/conftest.py SOURCES), each with its own window. `clips` below is the composite's answer
(`POST /api/v1/composites` "Clips": each clip's Start and Duration in title seconds).
`offset`: what title time 0 is in the container's clock (TS_OFFSET in MPEG-TS, 0 in MP4)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from livetx.media.probe import probe
from livetx.media.sample import read_index
from tests.checker import TS_CLOCK, AudioTrack, check_tone, decode_audio, reference_indexes
from tests.conftest import Source

CLIPS = (("mp4-30", 500, 4000), ("mkv-25-44k", 1000, 3000), ("ts-2997", 0, 0))  # (source, ss ms, t ms)
OUT_FPS = Fraction(30)  # the align clip's (clip 0)
OUT_SIZE = (320, 180)
TONE_HZ = 440.0
MAX_SLOPE = 0.5 * 2 * np.pi * TONE_HZ / 44100  # the tone's steepest step between samples
FADE = 240  # samples: 5 ms at 48 kHz (media/transcode.py FADE_SECONDS)
NEAR = 3072  # samples either side of a join looked at

ClipTimes = Sequence[dict[str, Any]]  # [{"Start": s, "Duration": s}, ...] in play order


def clip_geometry(clips: ClipTimes, sources: dict[str, Source]) -> list[tuple[Source, Fraction, int, int]]:
    """(source, origin, first output frame, end output frame) of each clip."""
    out = []
    for (name, ss, _), clip in zip(CLIPS, clips, strict=True):
        info = probe(str(sources[name].path))
        assert info.video is not None and info.video.start is not None
        start = Fraction(clip["Start"]).limit_denominator(1000)
        first, end = round(start * OUT_FPS), round((start + Fraction(clip["Duration"]).limit_denominator(1000)) * OUT_FPS)
        out.append((sources[name], info.video.start + Fraction(ss, 1000) - start, first, end))
    return out


def shown(frame: av.VideoFrame, source: Source) -> int:
    """The index a frame shows, its clip's picture cut out of the black bars and scaled back."""
    width, height = source.spec.width, source.spec.height
    pic_h = OUT_SIZE[1]
    pic_w = min(OUT_SIZE[0], round(width * pic_h / height / 2) * 2)
    dx = ((OUT_SIZE[0] - pic_w) // 4) * 2
    luma = frame.to_ndarray(format="gray")[:, dx : dx + pic_w]
    if (pic_w, pic_h) != (width, height):
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(luma), format="gray")
        luma = picture.reformat(width=width, height=height).to_ndarray()
    return read_index(luma)


def check_frames(
    joined: av.container.InputContainer, clips: ClipTimes, sources: dict[str, Source], offset: Fraction, shifted: bool
) -> None:
    """Every output frame once, in order, showing the source frame its clip's timestamps say.
    `shifted`: the demuxer shows video late by its reorder delay (FFmpeg's mp4 demuxer, fMP4)."""
    geometry = clip_geometry(clips, sources)
    total = geometry[-1][3]
    expected = {}
    for source, origin, first, end in geometry:
        reference = reference_indexes(str(source.path), origin, OUT_FPS, end)
        expected |= {k: (source, reference[k]) for k in range(first, end)}
    seen: dict[int, int] = {}
    shift: Fraction | None = None
    for frame in joined.decode(joined.streams.video[0]):
        assert (frame.width, frame.height) == OUT_SIZE
        time = frame.pts * frame.time_base - offset
        shift = time if shift is None and shifted else shift or Fraction(0)
        k = round((time - shift) * OUT_FPS)
        assert k not in seen, f"output frame {k} twice"
        source, _ = expected[k]
        seen[k] = shown(frame, source)
    assert sorted(seen) == list(range(total))  # no frame missing
    assert [seen[k] for k in range(total)] == [expected[k][1] for k in range(total)]


@dataclass
class Join:
    at: float  # title seconds
    silent: int  # samples of silence around it
    steepest: float  # largest step between neighbouring samples near it
    error: float  # largest difference from the tones as designed: each clip's, faded, the frame of the join silent


def _tone_fit(samples: np.ndarray, first: int, rate: int) -> tuple[float, float]:
    """(sin, cos) amplitudes of the tone in `samples`, which start at title sample `first`."""
    w = 2 * np.pi * TONE_HZ * np.arange(first, first + len(samples)) / rate
    (a, c), *_ = np.linalg.lstsq(np.stack([np.sin(w), np.cos(w)], axis=1), samples, rcond=None)
    return float(a), float(c)


def joins(track: AudioTrack, clips: ClipTimes, offset: Fraction) -> list[Join]:
    """Each join measured against the design (livetx/media/transcode.py `_AudioWindow`): clip A
    plays up to AAC frame floor(T) fading out over its last 5 ms, clip B from the frame after it
    fading in; the tone of each is fitted away from the join."""
    rate = track.sample_rate
    zero = round((Fraction(track.first_pts, TS_CLOCK) - offset) * rate)  # title sample of samples[0]
    bounds = [round(Fraction(c["Start"]) * rate) for c in clips] + [len(track.samples) + zero]
    fits = [_tone_fit(track.samples[a - zero + NEAR : b - zero - NEAR], a + NEAR, rate) for a, b in itertools.pairwise(bounds)]
    out = []
    for i, at in enumerate(bounds[1:-1]):
        n = np.arange(at - NEAR, at + NEAR)
        near = track.samples[n - zero]
        hi, lo = at // 1024 * 1024, (at // 1024 + 1) * 1024  # frame floor(T) is silent
        w = 2 * np.pi * TONE_HZ * n / rate
        (a1, c1), (a2, c2) = fits[i], fits[i + 1]
        fade_out = np.clip((hi - n) / FADE, 0, 1)
        fade_in = np.clip((n - lo + 1) / FADE, 0, 1)
        design = (a1 * np.sin(w) + c1 * np.cos(w)) * fade_out + (a2 * np.sin(w) + c2 * np.cos(w)) * fade_in
        quiet = np.abs(near) < 1e-3
        run = best = 0
        for q in quiet:
            run = run + 1 if q else 0
            best = max(best, run)
        out.append(Join(at / rate, best, float(np.max(np.abs(np.diff(near)))), float(np.max(np.abs(near - design)))))
    return out


def check_audio(joined: av.container.InputContainer, clips: ClipTimes, duration: float, offset: Fraction, slack: int = 0) -> None:
    """AAC frames back to back, one silent frame and two 5 ms fades at each join (no gap, no
    overlap, no click), and inside each clip the tone's phase and level kept. `slack`: 90 kHz
    ticks a frame's time may be off by where the container rounds it (Matroska: to 1 ms)."""
    channels = joined.streams.audio[0].channels
    track = decode_audio(joined)
    rate = track.sample_rate
    assert (rate, channels) == (48000, 2)  # the align clip's
    step = 1024 * TS_CLOCK // rate
    assert all(abs(b - a - step) <= slack for a, b in itertools.pairwise(track.pts)), "AAC frames not back to back"
    assert abs(len(track.samples) - duration * rate) <= 1024
    for join in joins(track, clips, offset):
        # one silent AAC frame (the one the join falls in), and the two 5 ms fades
        assert 1024 <= join.silent <= 1024 + 2 * FADE, join
        assert join.steepest < 1.5 * MAX_SLOPE, join  # a click is a step far steeper than the tone's
        # measured: 0.002 at the 4 s join; 0.011 at the 7 s one, whose clip starts at its source's first
        # sample (the source's own first AAC frame has no overlap partner); 0.5 with the straddling
        # frame's packet left to the earlier clip
        assert join.error < 0.02, join
    # inside each clip the tone keeps its phase and level across its segment joins
    starts = [Fraction(c["Start"]).limit_denominator(1000) for c in clips] + [Fraction(duration)]
    first = Fraction(track.first_pts, TS_CLOCK) - offset
    for lo, hi in itertools.pairwise(starts):
        a, b = round((lo - first) * rate) + 2048, round((hi - first) * rate) - 2048
        part = AudioTrack(track.samples[a:b], track.first_pts + a * TS_CLOCK // rate, [], rate)
        report = check_tone(part, TONE_HZ, relative=True)
        assert report.worst_phase < 0.05 and report.worst_amplitude < 0.05, report
