"""A synthetic source with several audio tracks (issue 16): the indexed video of
`livetx.media.sample`, then one pure tone per audio track, each with its own language, title,
disposition and channel count, so a decoded segment tells which track it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.stream import Disposition
from av.subtitles.subtitle import SubtitleSet

from livetx.media.sample import SUFFIX_FORMATS, _background, render_frame, tone


@dataclass(frozen=True)
class ToneTrack:
    tone_hz: float
    language: str | None
    title: str | None = None
    disposition: tuple[str, ...] = ()  # FFmpeg's flag names
    channels: int = 2
    channel_tones: tuple[float, ...] = ()  # one tone per channel, in layout order, instead of `tone_hz` everywhere


TRACKS = (  # source streams 1..4 (stream 0 is the video)
    ToneTrack(440.0, "eng", disposition=("default",)),
    ToneTrack(660.0, "fra", "Français"),
    ToneTrack(880.0, "eng", "Director's commentary", ("comment",)),
    ToneTrack(330.0, "deu", "Deutsch 5.1", ("visual_impaired",), channels=6),
)


@dataclass(frozen=True)
class MultiTrackSpec:
    seconds: float = 6.0
    width: int = 128  # the smallest width whose index blocks fit (and cheap to decode)
    height: int = 72
    fps: Fraction = Fraction(25)
    gop: int = 50
    sample_rate: int = 48000
    tracks: tuple[ToneTrack, ...] = TRACKS
    cues: tuple[tuple[Fraction, Fraction], ...] = ((Fraction(1), Fraction(2)),)  # each text track's cues: (start, end), s


@dataclass(frozen=True)
class TextTrack:
    codec: str  # encoder: "subrip", "ass" (Matroska), "mov_text" (MP4)
    language: str | None
    title: str | None = None
    disposition: tuple[str, ...] = ()


SUBTITLES = {  # by container; each cue's text is its start time (`t=1.000`)
    ".mkv": (TextTrack("subrip", "eng", disposition=("default",)), TextTrack("ass", "fra", "Forcés", ("forced",))),
    ".mp4": (TextTrack("mov_text", "eng", "English SDH", ("hearing_impaired",)),),
}
ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
    b"OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
    b"Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,"
    b"100,0,0,1,1,0,2,10,10,10,0\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
# A 5.1 track with a tone of its own in each channel (FL FR FC LFE BL BR), so a decoded
# 6-channel rendition shows where each channel went and a downmix which channels it took.
# Each tone sits on a whole number of cycles per AAC frame (46.875 Hz at 48 kHz) and the LFE's
# below 120 Hz (AAC codes the LFE channel band-limited).
SURROUND_TONES = (375.0, 562.5, 750.0, 93.75, 937.5, 1125.0)


def _disposition(flags: tuple[str, ...]) -> Disposition:
    disposition = Disposition(0)
    for flag in flags:
        disposition |= Disposition[flag]
    return disposition


def _subtitle_packets(out: Any, track: TextTrack, cues: tuple[tuple[Fraction, Fraction], ...]) -> list[Any]:
    stream: Any = out.add_stream(track.codec)
    if track.language:
        stream.metadata["language"] = track.language
    if track.title:
        stream.metadata["title"] = track.title
    stream.disposition = _disposition(track.disposition)
    stream.codec_context.subtitle_header = ASS_HEADER
    stream.time_base = Fraction(1, 1000)
    packets = []
    for start, end in cues:
        text = f"0,0,Default,,0,0,0,,t={float(start):.3f}".encode()
        sub = SubtitleSet.create(text, 0, int((end - start) * 1000), int(start * 1_000_000))
        packet = stream.codec_context.encode_subtitle(sub)
        packet.stream, packet.time_base = stream, stream.time_base
        packet.pts = packet.dts = int(start * 1000)
        packet.duration = int((end - start) * 1000)
        packets.append(packet)
    return packets


def write_multitrack(path: Path, spec: MultiTrackSpec = MultiTrackSpec()) -> None:
    """Write the source; all packets are made first and muxed in decoding-time order, so
    every container gets them interleaved."""
    with av.open(str(path), "w", format=SUFFIX_FORMATS[path.suffix]) as out:
        video: Any = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.codec_context.gop_size = spec.gop
        video.codec_context.options = {"preset": "ultrafast"}
        audio: list[Any] = []
        for track in spec.tracks:
            stream: Any = out.add_stream("aac", rate=spec.sample_rate)
            stream.layout = LAYOUTS[track.channels]
            stream.codec_context.bit_rate = 64000 * track.channels
            if track.language:
                stream.metadata["language"] = track.language
            if track.title:
                stream.metadata["title"] = track.title
            stream.disposition = _disposition(track.disposition)
            audio.append(stream)
        packets: list[Any] = []
        for text in SUBTITLES[path.suffix]:
            packets += _subtitle_packets(out, text, spec.cues)
        background = _background(spec.width, spec.height)
        for index in range(round(spec.seconds * spec.fps)):
            frame = av.VideoFrame.from_ndarray(render_frame(background, index, spec.width, spec.height), format="yuv420p")
            frame.pts, frame.time_base = index, 1 / spec.fps
            packets += video.encode(frame)
        packets += video.encode(None)
        total = round(spec.seconds * spec.sample_rate)
        for stream, track in zip(audio, spec.tracks, strict=True):
            for at in range(0, total, 1024):
                samples = tone(at, min(1024, total - at), spec.sample_rate, track.tone_hz, track.channels)
                for channel, hz in enumerate(track.channel_tones):
                    samples[channel] = tone(at, min(1024, total - at), spec.sample_rate, hz, 1)[0]
                if track.channels == 6 and not track.channel_tones:  # the tone in the centre only: FFmpeg's AAC encoder bends a tone
                    samples[[0, 1, 3, 4, 5]] = 0  # shared by a channel pair (phase off by 0.25 rad, measured)
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout=LAYOUTS[track.channels])
                chunk.sample_rate, chunk.pts, chunk.time_base = spec.sample_rate, at, Fraction(1, spec.sample_rate)
                packets += stream.encode(chunk)
            packets += stream.encode(None)
        packets.sort(key=lambda p: (p.dts * p.time_base, p.stream.index))
        for packet in packets:
            if packet.size:
                out.mux(packet)
