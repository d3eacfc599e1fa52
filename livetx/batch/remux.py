"""A job's segments joined into one file, in a worker process: their packets copied, not
re-encoded (PyAV), into the container the job asked for (the audio re-encoded once when the
job asks for a codec other than AAC, below).

The segments are one rendition's MPEG-TS segments in order, as the segment path made them:
their timestamps are title time plus TS_OFFSET on one continuous clock (media/transcode.py),
and their AAC is on one grid, so their packets, read in order, are the packets of one stream.
A composite's segments (several clips) are no different: each clip's timestamps are mapped to
title time when its segments are made (its `origin`), every clip boundary is a segment
boundary, and the AAC frame a join falls in is made once, silent, so the joins need nothing
here: no gap, no overlap, no reset (tests/test_batch_concat.py checks every container).
MPEG-TS output keeps the clock as it is (as FFmpeg's HLS output has it); the other containers
start at 0 (TS_OFFSET taken off). The muxers insert the ADTS-to-AudioSpecificConfig filter
that MP4, MOV and Matroska need for AAC from MPEG-TS. The seal after each segment (a null TS
packet) is dropped by the demuxer. A VP9 job's segments are fMP4 (MPEG-TS has no VP9): its
init segment then its fragments, read as one fragmented MP4 whose clock is title time (each
fragment's tfdt), so nothing is taken off.

An output whose audio codec is not AAC (`RemuxJob.audio`: mp3, opus, flac) has its audio
re-encoded once, here, in one pass: the segments' AAC (made at a high bitrate for this, see
work.py) is decoded in order, its samples stamped on one continuous count from the first
frame's time (the segments' audio is one grid: a gap cannot appear), resampled where the codec
needs it (`encoder_rate`: the codec's rates in concat.AUDIO_LIMITS; Opus takes 48 kHz, MP3 at
most 48 kHz) and encoded with the asked bitrate (FLAC: lossless, 16 or 24 bits). The encoder's
delay (MP3 and Opus priming) is the muxers' business: FFmpeg stamps the packets early by it
and writes it where the container keeps it (MP3: the LAME header; Matroska and WebM:
CodecDelay; MP4: an edit list), so a decoder gives back the samples at their times. Video
packets are still copied.

`remux` is the process boundary: one frozen job in, one frozen result out (a module-level
function a ProcessPoolExecutor runs). Nothing here touches storage.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from livetx.concat import AUDIO_LIMITS
from livetx.media.params import SAMPLE_RATES
from livetx.media.timeline import TS_OFFSET

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import OutputContainer
    from av.packet import Packet
    from av.stream import Stream

# the joined segments are livetx's own, read with their format forced; still, the demuxer may open
# nothing but that one local file (an MP4 data reference, an HLS or concat entry: refused)
LOCAL_ONLY = {"protocol_whitelist": "file", "enable_drefs": "0"}
ENCODERS = {"mp3": "libmp3lame", "opus": "libopus", "flac": "flac"}  # acodec -> the FFmpeg encoder
FLAC_FORMATS = {16: "s16", 24: "s32"}  # adepth -> the sample format FLAC is fed (s32 holds 24 bits)


@dataclass(frozen=True)
class AudioOut:
    """The audio a file is re-encoded to (its codec other than AAC)."""

    codec: str  # one of ENCODERS
    bitrate: int  # bit/s (FLAC: unused, lossless)
    depth: int | None = None  # FLAC: 16 or 24 bits (16 when unset)


def encoder_rate(codec: str, rate: int) -> int:
    """The sample rate `codec` encodes audio of `rate` at: the rate itself when the codec takes
    it, else the lowest rate it takes above it (else its highest)."""
    rates = AUDIO_LIMITS.get(codec, (SAMPLE_RATES, None))[0]
    if rate in rates:
        return rate
    return min((r for r in rates if r > rate), default=max(rates))


@dataclass(frozen=True)
class RemuxJob:
    inputs: tuple[str, ...]  # paths of the MPEG-TS segments, in play order
    output: str  # path of the file to write
    container: str  # PyAV (FFmpeg) muxer name: mp4, mov, matroska, mpegts, ipod
    audio_only: bool = False
    audio: AudioOut | None = None  # re-encode the audio to this; None: copy its packets
    segments: str = "mpegts"  # the segments' demuxer: mpegts, or mp4 (fMP4: the init segment, then the fragments)


@dataclass(frozen=True)
class RemuxResult:
    size: int  # bytes of the output file
    packets: int
    duration: float  # seconds, from the first packet to the end of the last


def _joined(job: RemuxJob) -> str:
    """The segments as one file: a TS stream is a sequence of packets, and an init segment
    followed by fragments is a fragmented MP4 file, so they join as they are."""
    path = job.output + ".ts-in"
    with open(path, "wb") as out:
        for name in job.inputs:
            with open(name, "rb") as part:
                shutil.copyfileobj(part, out, 1024 * 1024)
    return path


class _Reencoder:
    """The joined AAC decoded and encoded again (see the module docstring)."""

    def __init__(self, out: OutputContainer, source: Stream, audio: AudioOut, shift: Fraction) -> None:
        from av.audio.stream import AudioStream

        assert isinstance(source, AudioStream)
        self.source: AudioStream = source
        self.in_rate = source.codec_context.sample_rate
        rate = encoder_rate(audio.codec, self.in_rate)
        options = {"bits_per_raw_sample": str(audio.depth)} if audio.codec == "flac" and audio.depth == 24 else {}
        stream = out.add_stream(ENCODERS[audio.codec], rate=rate, options=options)
        assert isinstance(stream, AudioStream)
        self.stream: AudioStream = stream
        context = stream.codec_context
        context.layout = source.codec_context.layout  # the segments' channels, as they are
        if audio.codec == "flac":
            context.format = FLAC_FORMATS[audio.depth or 16]
        else:
            context.bit_rate = audio.bitrate
        self.stream.time_base = Fraction(1, rate)
        self.shift = shift
        self.next: int | None = None  # the next decoded sample's index, in title time at the input rate

    def frames(self, packet: Packet[Stream] | None) -> list[Packet[Stream]]:
        """The encoder's packets for what decoding `packet` gives (None: flush both)."""
        out: list[Packet[Stream]] = []
        for frame in self.source.codec_context.decode(packet):
            if self.next is None:
                assert frame.pts is not None and frame.time_base is not None
                self.next = round((frame.pts * frame.time_base - self.shift) * self.in_rate)
            frame.pts, frame.time_base = self.next, Fraction(1, self.in_rate)
            self.next += frame.samples
            out += self.stream.encode(frame)
        if packet is None:
            out += self.stream.encode(None)
        return out


def remux(job: RemuxJob) -> RemuxResult:
    import av

    joined = _joined(job)
    # the segments' clock: title time plus TS_OFFSET in MPEG-TS, title time in fMP4 (its tfdt)
    shift = TS_OFFSET if job.segments == "mpegts" and job.container != "mpegts" else Fraction(0)
    packets = 0
    first: float | None = None
    last = 0.0

    def count(packet: Packet[Stream]) -> None:
        nonlocal packets, first, last
        time_base = packet.time_base
        assert time_base is not None
        start = float((packet.pts if packet.pts is not None else (packet.dts or 0)) * time_base)
        first = start if first is None else min(first, start)
        last = max(last, start + float((packet.duration or 0) * time_base))
        packets += 1

    try:
        with av.open(joined, "r", format=job.segments, options=LOCAL_ONLY) as source, av.open(job.output, "w", format=job.container) as out:
            wanted = [s for s in source.streams if s.type == "audio" or (s.type == "video" and not job.audio_only)]
            if not wanted:
                raise ValueError("the segments hold no stream to write")
            reencoder: _Reencoder | None = None
            streams: dict[int, Stream] = {}
            for s in wanted:
                if s.type == "audio" and job.audio is not None and reencoder is None:
                    reencoder = _Reencoder(out, s, job.audio, shift)
                else:
                    streams[s.index] = out.add_stream_from_template(s)
            for packet in source.demux(wanted):
                if packet.dts is None or packet.size == 0:  # the demuxer's flush packets
                    continue
                if reencoder is not None and packet.stream.index == reencoder.source.index:
                    for encoded in reencoder.frames(packet):
                        count(encoded)
                        out.mux(encoded)
                    continue
                time_base = packet.time_base
                offset = round(shift / time_base)
                packet.pts = None if packet.pts is None else packet.pts - offset
                packet.dts -= offset
                count(packet)
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
            if reencoder is not None:
                for encoded in reencoder.frames(None):
                    count(encoded)
                    out.mux(encoded)
    finally:
        os.unlink(joined)
    return RemuxResult(os.path.getsize(job.output), packets, last - (first or 0.0))
