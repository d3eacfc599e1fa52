"""Header probe: what a source holds, read from its container headers without decoding a frame."""

from __future__ import annotations

from fractions import Fraction

import av

from livetx.errors import SourceUnreadable
from livetx.media.model import AudioInfo, MediaInfo, VideoInfo


def _seconds(value: int | None, time_base: Fraction | None) -> Fraction | None:
    if value is None or time_base is None:
        return None
    return value * time_base


def probe(source: str, options: dict[str, str] | None = None) -> MediaInfo:
    """Open `source` (a path or URL), read its headers, and describe it."""
    try:
        container = av.open(source, options=options or {}, timeout=30)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise SourceUnreadable(f"cannot open source: {type(exc).__name__}") from exc
    with container:
        video = audio = None
        if container.streams.video:
            vs = container.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            if vs.codec_context.width and rate:
                video = VideoInfo(
                    index=vs.index,
                    codec=vs.codec_context.name,
                    width=vs.codec_context.width,
                    height=vs.codec_context.height,
                    fps=Fraction(rate).limit_denominator(1001 * 1000),
                    pix_fmt=vs.codec_context.pix_fmt,
                    start=_seconds(vs.start_time, vs.time_base),
                )
        if container.streams.audio:
            aud = container.streams.audio[0]
            if aud.codec_context.sample_rate:
                audio = AudioInfo(
                    index=aud.index,
                    codec=aud.codec_context.name,
                    sample_rate=aud.codec_context.sample_rate,
                    channels=aud.codec_context.channels,
                    start=_seconds(aud.start_time, aud.time_base),
                )
        if video is None and audio is None:
            raise SourceUnreadable("source has no decodable video or audio stream")
        if not container.duration or container.duration <= 0:
            raise SourceUnreadable("source duration is unknown")
        start = Fraction(container.start_time or 0, 1_000_000)
        return MediaInfo(
            format=container.format.name,
            duration=Fraction(container.duration, 1_000_000),
            start=start,
            video=video,
            audio=audio,
        )
