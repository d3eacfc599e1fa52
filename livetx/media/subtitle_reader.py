"""The worker side of an embedded text subtitle track: one WebVTT segment, no video decoded.

A job with `subtitle_stream` asks for the cues of that source stream overlapping title time
[start, stop). The source is opened as a transcode opens it (`open_job_source`: pin, open
options, remote origin). Every other stream is set to `Discard.all`: PyAV's `demux(stream)`
only filters what FFmpeg has already read (measured in docs/probes/subtitle_seek.py). An MP4
then reads only the subtitle samples; a Matroska file, being interleaved, is still read whole
over the span (its other packets are dropped unparsed).

Where to start reading. A cue shown at the window start may have started before it. An
MP4/MOV track's samples tile its timeline (each lasts until the next starts; a text track
fills its gaps with empty samples), so a backward seek to the window start lands on the
sample covering it, and nothing earlier is needed. Elsewhere (Matroska, ...) cues are blocks
that may overlap and leave gaps, and the seek lands at a video keyframe with no regard for
them (FFmpeg's Matroska demuxer once moved back to the last indexed cue within 30 s; the one
under PyAV 18 does not, measured in tests/test_subtitle_reader.py), so the read starts
LOOKBACK seconds before the window: a cue shown at the window start that began longer ago
than that is left out of the segment (it is in the earlier ones). The seek is on the video
stream (keyframes: it lands at or before the target), else the audio, else the track itself.
Reading ends at the first packet starting at or after the window's stop.

Each packet is decoded by the stream's own decoder: FFmpeg turns SubRip, ASS/SSA, WebVTT and
mov_text alike into ASS events, which `livetx.subtitles.ass.event_text` turns into WebVTT text
and settings. A cue lasts the packet's duration (else the decoder's end_display_time); its
times are title time (source time - origin), a start before title 0 held at 0. The segment is
`render_segment` of the window's cues (`span_cues`: every cue overlapping it, unclipped), with
the X-TIMESTAMP-MAP of the video's container.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
from av.container import InputContainer
from av.packet import Packet
from av.stream import Discard, Disposition, Stream
from av.subtitles.stream import SubtitleStream
from av.subtitles.subtitle import AssSubtitle

from livetx.errors import TranscodeFailed
from livetx.media.messages import Preempted
from livetx.media.model import SegmentJob, SegmentResult, is_mp4_family
from livetx.media.probe import is_bitmap_subtitle
from livetx.media.remote import open_job_source
from livetx.subtitles.ass import event_text
from livetx.subtitles.cues import Cue, from_seconds, normalise
from livetx.subtitles.webvtt import render_segment, span_cues

LOOKBACK = Fraction(30)  # seconds read before the window start, for cues that span it (FFmpeg's old Matroska rule)
UNTIL_NEXT = 0xFFFFFFFF  # an end_display_time meaning "until the next cue": no known end


def subtitle_segment(job: SegmentJob, should_stop: Callable[[], bool] | None = None, origin: str | None = None) -> SegmentResult:
    """The WebVTT segment of `job` (UTF-8), as a SegmentResult with no frames or packets made.
    `should_stop` is polled between packets (True: stop with `Preempted`); `origin` as for
    `transcode_segment`."""
    began = time.perf_counter()
    with open_job_source(job, origin) as (src, fetched):
        cues = read_cues(src, job, should_stop)
        read = fetched()
    data = render_segment(cues, job.container).encode()
    return SegmentResult(data, 0, 0, time.perf_counter() - began, 1, read)


def read_cues(
    src: InputContainer, job: SegmentJob, should_stop: Callable[[], bool] | None = None, lookback: Fraction | None = None
) -> list[Cue]:
    """The cues of `job`'s subtitle stream overlapping its window, title time, in cue order.
    `lookback`: seconds read before the window (None: the container's, see the module)."""
    stream = _text_stream(src, job.subtitle_stream)
    for other in src.streams:
        if other is not stream:
            other.discard = Discard.all
    if lookback is None:
        lookback = Fraction(0) if is_mp4_family(src.format.name) else LOOKBACK  # (its text samples tile the timeline)
    _seek(src, stream, job.origin + job.start - lookback, job.origin)
    cues = [cue for packet in _packets(src, stream, job.origin + job.stop, should_stop) for cue in _cues(stream, packet, job.origin)]
    return span_cues(normalise(cues), job.start, job.stop)


def _text_stream(src: InputContainer, index: int | None) -> SubtitleStream:
    """The source's stream `index`, which must be a text subtitle track."""
    stream = src.streams[index] if index is not None and 0 <= index < len(src.streams) else None
    if not isinstance(stream, SubtitleStream):
        raise TranscodeFailed(f"source stream {index} is not the subtitle track the plan expects")
    if is_bitmap_subtitle(stream.codec_context.name):
        raise TranscodeFailed(f"source stream {index} holds bitmap subtitles ({stream.codec_context.name}): not converted to WebVTT")
    return stream


def _seek(src: InputContainer, stream: SubtitleStream, to: Fraction, origin: Fraction) -> None:
    """Seek backwards to source time `to`, on the video stream if there is one (else audio, else
    the subtitle stream itself); no seek when `to` is at or before `origin` (read from the start)."""
    if to <= origin:
        return
    anchor = _anchor(src) or stream
    assert anchor.time_base is not None
    src.seek(int(to / anchor.time_base), stream=anchor, backward=True, any_frame=anchor is stream)


def _anchor(src: InputContainer) -> Stream | None:
    """The stream to seek on: the first video stream (not a cover picture), else the first audio."""
    videos = [s for s in src.streams.video if not s.disposition & Disposition.attached_pic]
    return next(iter(videos + list(src.streams.audio)), None)


def _packets(
    src: InputContainer, stream: SubtitleStream, stop: Fraction, should_stop: Callable[[], bool] | None
) -> Iterator[Packet[SubtitleStream]]:
    """The stream's timed packets from where the source stands, up to the first one starting
    at or after source time `stop`."""
    for packet in src.demux(stream):
        if should_stop is not None and should_stop():
            raise Preempted
        if packet.pts is None or packet.time_base is None or not packet.size:
            continue  # demux's final empty packet, or one that cannot be placed
        if packet.pts * packet.time_base >= stop:
            return
        yield packet


def _cues(stream: SubtitleStream, packet: Packet[SubtitleStream], origin: Fraction) -> list[Cue]:
    """The cues of one packet (one per decoded event), title time; none when the packet decodes
    to nothing (mov_text's empty gap samples), does not decode, or has no known end."""
    assert packet.pts is not None and packet.time_base is not None
    try:
        decoded = stream.decode2(packet)
    except av.InvalidDataError:
        return []  # a corrupt cue is left out, not the whole segment
    if decoded is None:
        return []
    start = packet.pts * packet.time_base - origin
    if packet.duration:
        end = start + packet.duration * packet.time_base
    elif decoded.end_display_time != UNTIL_NEXT:
        end = start + Fraction(decoded.end_display_time, 1000)
    else:
        return []
    start += Fraction(decoded.start_display_time, 1000)
    events = [event_text(rect.ass.decode("utf-8", "replace")) for rect in decoded if isinstance(rect, AssSubtitle) and rect.type == b"ass"]
    return [from_seconds(max(start, Fraction(0)), end, text, settings) for text, settings in events]
