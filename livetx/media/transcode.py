"""The worker: one segment job in, one MPEG-TS or fMP4 segment out.

Runs in a pool process (see `livetx.media.pool`), so everything crossing the boundary is a
frozen, picklable dataclass. A segment is made alone, yet joins its neighbours as if the
title had been encoded in one pass:

- Video. Output frame k sits at title time k/fps. Each decoded source frame gets the slot
  round(t * fps) of its time t; output frame k shows the last source frame whose slot is
  <= k (FFmpeg's `fps` filter rule). The rule depends only on source timestamps, so every
  segment picks the same frames for the same slots. A fresh encoder per segment makes the
  first frame an IDR; the GOP is closed; source picture types are cleared. A watermark
  (`SegmentJob.overlay`) is blended into each scaled frame before it is encoded
  (livetx/media/overlay.py), once per source frame.
- Audio. AAC packets sit on one 1024-sample grid from title time 0. Segment n carries the
  packets whose start falls in its window. The encoder is fed a few frames of pre-roll
  before the first kept packet and post-roll after the last (and its priming packet is
  dropped), so the kept packets are the ones a one-pass encode would have made, up to
  quantisation, and the decoder's overlap-add joins them without a click.
- Timestamps are title time plus one constant offset (TS_OFFSET, 1.4 s as FFmpeg's HLS
  output) in every segment, with `avoid_negative_ts` off so the muxer shifts nothing.

An fMP4 (CMAF) segment has the same frames, AAC packets and timing, with B-frames on, and no
offset: the mp4 muxer (FMP4_OPTIONS) cuts it into fragments of about FRAGMENT_SECONDS; the
first one's `tfdt` is the first packet's DTS, which is absolute title time (`frag_discont`, no
edit list), each next one's follows on from the sample durations before it, and
`negative_cts_offsets` moves video DTS up by the encoder's reorder delay D, so the segment
starts at the window's start with composition offsets down to -D (`trun` version 1). A
fragment is cut when either track reaches the duration, so the last may hold a few AAC
packets only (the audio window runs up to a frame past the video's). Only `moof`+`mdat` are kept. The
init segment (`ftyp`+`moov`) comes from a muxer given the same streams and no packet: it holds
the encoder headers, which depend on the spec alone, so it is the same whichever window is
made first. FFmpeg's own mp4 demuxer shows such video D late (it shifts negative offsets up);
browsers' players apply them as written.

A copy ("remux") rendition (`VideoSpec.codec == "copy"`, fMP4 only) decodes no video: its
window starts and stops on source keyframes (the planner's job), and the segment carries the
source's video packets shown in it, payloads untouched, re-timed to title time on the 90 kHz
clock (`_CopyCursor`), with the audio made as above. Its init segment's video sample entry is
the source stream's (avcC/hvcC from its headers, HEVC tagged `hvc1`), so the init reads the
source's headers, and is still the same whichever window is made first. What cannot be cut or
muxed unchanged is refused: a window edge off a keyframe, an open GOP, in-band parameter sets
(Annex B, as MPEG-TS holds), codecs other than H.264 and HEVC.

Packets are muxed as they are made: video as the encoder returns them, audio an AAC frame at a
time once its samples settle (AUDIO_SETTLE), a copy rendition's video at the end. The muxer
interleaves the streams by DTS (STREAMED_MUX_OPTIONS), so the bytes are those of muxing every
packet sorted at the end (MPEG-TS segments were checked byte-identical across this change). The
muxer writes through a `_Sink`, which may stream the segment (`transcode_segment`'s `emit`) once
the attempt is known good: a seek that landed too late is found on each stream's first frame,
and nothing goes out before both have been checked.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, TypeVar

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from livetx.crypto import cbcs
from livetx.errors import SourceUnreadable, TranscodeFailed
from livetx.media.boxes import MEDIA_BOXES, split_fragment
from livetx.media.colour import ColourInfo, output_tags
from livetx.media.colour_frames import FrameColour
from livetx.media.messages import Preempted
from livetx.media.model import AudioSpec, SegmentJob, SegmentResult, VideoSpec
from livetx.media.overlay import overlay_frame
from livetx.media.remote import open_job_source
from livetx.media.scheduling import drop_realtime
from livetx.media.subtitle_reader import subtitle_segment
from livetx.media.timeline import MPEG_TS_CLOCK, TS_OFFSET
from livetx.media.watermark import Overlay

AAC_FRAME = 1024
# what a copy rendition can carry: codecs whose MP4/Matroska packets are length-prefixed NAL
# units with the parameter sets out of band (avcC, hvcC), as an fMP4 sample entry needs them
COPY_CODECS = {"h264", "hevc"}
COLOR_RANGE_LIMITED = 1  # AVCOL_RANGE_MPEG
TS_OPTIONS = {"mpegts_copyts": "1", "avoid_negative_ts": "disabled"}
# Audio-only MPEG-TS (an audio rendition, an audio-only source): AAC frames grouped into PES
# packets (up to the muxer's 2930 bytes, about 0.17 s at 128 kbit/s) instead of one PES per
# frame, and PAT/PMT/SDT once at the segment's start instead of ten times a second: 32 % fewer
# bytes at 128 kbit/s, the same frames and timestamps. Its output is versioned in the spec ids
# of such renditions (titles.TS_AUDIO_MUX).
TS_AUDIO_OPTIONS = TS_OPTIONS | {"max_delay": "700000", "pat_period": "3600", "sdt_period": "3600"}
# An fMP4 segment is cut into fragments (moof+mdat) of about this long, each a CMAF chunk:
# the muxer writes a fragment out as soon as it is cut, so a streamed segment's first bytes
# leave after about a second of it is made instead of after all of it, and a player can
# append each chunk as it comes. Only the first fragment starts on the IDR frame (CMAF allows
# chunks that do not). Shorter fragments cost a moof (~100 bytes a track) each.
FRAGMENT_SECONDS = Fraction(1)
FMP4_OPTIONS = {
    # a fragment every FRAGMENT_SECONDS of a track (the last written at close: frag_custom);
    # moov empty (init apart); each tfdt = the fragment's first DTS (frag_discont: the first
    # fragment's is absolute title time, the next ones continue from it); no mfra; CMAF brands
    # with signed composition offsets
    "movflags": "frag_custom+empty_moov+default_base_moof+frag_discont+skip_trailer+cmaf+negative_cts_offsets",
    "frag_duration": str(int(FRAGMENT_SECONDS * 1_000_000)),  # microseconds
    "use_editlist": "0",  # else frag_start follows the first PTS, and video lands D late
    "avoid_negative_ts": "disabled",  # else each segment is shifted to start at 0
    "video_track_timescale": str(MPEG_TS_CLOCK),
    "fflags": "+bitexact",  # no library version in the init: the same bytes across upgrades
}
# How a segment's packets reach the muxer as they are made (both containers): packets of the
# two streams leave the interleaving queue in DTS order only once each stream has one queued
# (no limit on how far one stream may run ahead: a copy rendition's video comes at the end),
# so the output is the one-pass order whenever each stream arrives in DTS order; and the
# muxer's I/O buffer is flushed after every packet, so its bytes reach `_Sink` when muxed (a
# fragment when the mp4 muxer cuts it). FFmpeg's default (-1) flushes so too on a custom I/O
# whose minimum packet size is unset, as PyAV's; said here so it does not hang on that.
STREAMED_MUX_OPTIONS = {"max_interleave_delta": "0", "flush_packets": "1"}
TS_PACKET = 188
# A streamed MPEG-TS segment goes out in chunks of at least this many bytes (whole TS
# packets; the rest at the end): about 0.1 s of a 1.5 Mbit/s rendition, few enough pipe
# messages per segment, small enough that the first bytes leave right after the first frames.
# An fMP4 segment goes out a fragment at a time.
STREAM_CHUNK = 16 * 1024
AUDIO_PREROLL_FRAMES = 4
AUDIO_POSTROLL_FRAMES = 2
# Audio is encoded as it is decoded, an AAC frame once the decode position is this far past
# its last sample: far more than source frames overlap (timestamp jitter, snapped to the codec
# grid, stays under a frame) so no later frame writes into samples already encoded, little
# enough that the muxer, which holds video until audio of the same time arrives, is not held.
AUDIO_SETTLE = Fraction(1, 4)
FADE_SECONDS = 0.005  # a composite clip's audio fades in and out over this at its joins
DECODE_THREADING = "AUTO"  # frame + slice threads for the source decoder
SEEK_BACKOFF = (Fraction(1), Fraction(5), Fraction(30), None)  # seconds before the need; None: from the start


ENCODERS: dict[str, Literal["libx264", "libx265", "libsvtav1", "libvpx-vp9"]] = {
    "h264": "libx264",
    "h265": "libx265",
    "av1": "libsvtav1",
    "vp9": "libvpx-vp9",  # a job's WebM only (batch/work.py asks for it; the playlist API does not take vp9)
}
# libvpx-vp9 runs with the realtime deadline (the good/best ones are far slower than a
# segment's budget); each x264 preset name takes a realtime cpu-used of about the same rank.
VP9_CPU_USED = {
    "ultrafast": 8, "superfast": 8, "veryfast": 8, "faster": 7, "fast": 7,
    "medium": 6, "slow": 6, "slower": 5, "veryslow": 5,
}  # fmt: skip
VP9_MAX_CRF = 63  # libvpx's quality scale runs 0-63 like SVT-AV1's
# SVT-AV1 numbers its presets 0 (slowest) to 13 (fastest); each x264 preset name takes the
# SVT-AV1 preset of about the same rank, so the default veryfast is 11 (M11: a 720p 2 s
# segment in a few seconds on one core) and `limits.slowest_preset` bounds AV1 too.
SVT_AV1_PRESETS = {
    "ultrafast": 13, "superfast": 12, "veryfast": 11, "faster": 10, "fast": 9,
    "medium": 8, "slow": 6, "slower": 5, "veryslow": 4,
}  # fmt: skip
SVT_AV1_MAX_CRF = 63  # `crf` is on x264's 0-51 scale; SVT-AV1's runs 0-63 (crf 23 -> 28)
SVT_LOG = "1"  # errors only: SVT-AV1 otherwise prints its banner and settings on every encoder

_StreamT = TypeVar("_StreamT", bound=Stream)
_FrameT = TypeVar("_FrameT", VideoFrame, AudioFrame)


def transcode_segment(
    job: SegmentJob,
    should_stop: Callable[[], bool] | None = None,
    origin: str | None = None,
    emit: Callable[[bytes], None] | None = None,
) -> SegmentResult:
    """Module-level entry point for the process pool (a subtitle job goes to
    `livetx.media.subtitle_reader`: a WebVTT segment). `should_stop` is polled between packets;
    when it returns True the transcode stops with `Preempted`. A remote source is read only from
    `origin` (see `open_source`). Error messages never carry the source's path or URL.

    With `emit`, a media segment in the clear is streamed while it is made: `emit` gets
    successive chunks (whole TS packets; whole fMP4 fragments, moof+mdat) whose concatenation is
    the returned `data`, the first once the attempt is known good (see `_Sink`). An error after
    the first chunk raises as without `emit` (what was sent is then to be thrown away). An init
    segment, a subtitle segment and a sample-encrypted one (encrypted whole, at the end) are not
    streamed."""
    began = time.perf_counter()
    if job.init:
        init = init_segment(job, origin)
        if job.samples is not None:
            init = cbcs.protect_init(init, job.samples.key_id, job.samples.iv)
        return SegmentResult(init, 0, 0, time.perf_counter() - began, 0)
    if job.subtitle_stream is not None:
        return subtitle_segment(job, should_stop, origin)
    fetched = 0
    for seeks, backoff in enumerate(SEEK_BACKOFF, start=1):
        made, read = _attempt(job, backoff, should_stop, origin, emit if job.samples is None else None)
        fetched += read
        if made is not None:
            data, frames, packets = made
            if job.samples is not None:
                tracks = (
                    _tracks(job.video, job.audio)
                    if not (job.video is not None and job.video.copies)
                    else cbcs.tracks_of(init_segment(job, origin))
                )
                data = cbcs.protect_fragment(data, job.samples.key, job.samples.iv, tracks)
            return SegmentResult(data, frames, packets, time.perf_counter() - began, seeks, fetched)
    raise TranscodeFailed("could not position the source at the segment start")  # pragma: no cover


def _attempt(
    job: SegmentJob,
    backoff: Fraction | None,
    should_stop: Callable[[], bool] | None,
    origin: str | None,
    emit: Callable[[bytes], None] | None = None,
) -> tuple[tuple[bytes, int, int] | None, int]:
    """One try at the segment from a seek `backoff` seconds before it: what `_Segment.run` made
    (None: landed too late, and nothing was emitted), and the bytes fetched from a remote source for it."""
    with open_job_source(job, origin) as (src, counter):
        made = _Segment(job, src, should_stop, emit).run(backoff)
        return made, counter()


@functools.lru_cache(maxsize=64)
def _tracks(video: VideoSpec | None, audio: AudioSpec | None) -> dict[int, cbcs.TrackCrypt]:
    """What cbcs needs to know of a rendition's tracks (track ids, codecs, parameter sets), from
    its clear init segment: made once per spec in this worker."""
    return cbcs.tracks_of(init_segment(SegmentJob("", Fraction(0), Fraction(0), Fraction(0), video, audio, container="fmp4", init=True)))


def init_segment(job: SegmentJob, origin: str | None = None) -> bytes:
    """An fMP4 rendition's init segment: `ftyp`+`moov`, from the encoder headers alone; a copy
    rendition's video sample entry comes from the source stream's headers (read from `origin`
    when remote), so it too is the same whichever segment is made first."""
    if job.video is not None and job.video.copies:
        with open_job_source(job, origin) as (src, _):
            return _init_bytes(job, _source_stream(src, job.video_stream, VideoStream))
    return _init_bytes(job, None)


def _init_bytes(job: SegmentJob, copy_from: VideoStream | None) -> bytes:
    out_buf = io.BytesIO()
    with av.open(out_buf, "w", format="mp4", options=FMP4_OPTIONS) as out:
        if copy_from is not None:
            _open_copy(out, copy_from, job.container)
        elif job.video is not None:
            _open_video(out, job.video, job.container, job.intra_only)
        if job.audio is not None:
            _open_audio(out, job.audio)
        out.start_encoding()
        drop_realtime()  # the encoder opened: no thread of it stays real-time
    init, media = split_fragment(out_buf.getvalue())
    if media:  # pragma: no cover - no packet was muxed
        raise TranscodeFailed("init segment holds media")
    return init


@dataclass(frozen=True)
class _VideoWindow:
    """The output frames [first, end) of the title's frame grid that this segment carries."""

    first: int
    end: int


@dataclass(frozen=True)
class _AudioWindow:
    """The AAC frames [first, end) of the title's 1024-sample grid that this segment keeps, and
    the output samples [feed_first, feed_end) fed to the encoder (with pre- and post-roll).

    A composite title's clip plays its audio in output samples [play_lo, play_hi) (None: no
    bound), silence outside, faded over FADE_SECONDS inside each bound. At a clip join at title
    time T, AAC frame F = floor(T / frame) is silent in both clips' views, and its packet is the
    later clip's: a segment ending at a join keeps packets before F, one starting there keeps F
    on. Decoded frame F is the overlap-add of the earlier clip's last packet (encoded from its
    view) and the later clip's first (from the other view): the two views agree there (both
    silent), so the join decodes without aliasing though each side was encoded alone. (Were the
    later clip heard from T on a grid point, frame F would mix its audio, windowed and aliased,
    with the earlier clip's silence: measured as a 0.5 error at such a join.) It costs one AAC
    frame of silence per join, straddling T or, when T is on the grid, right after it."""

    first: int
    end: int
    feed_first: int
    feed_end: int
    play_lo: int | None = None
    play_hi: int | None = None


@dataclass(frozen=True)
class _Window:
    """Everything fixed about one attempt before the source is read: each stream's window (None:
    the stream is not made) and the source time to seek back from (None: read from the start)."""

    video: _VideoWindow | None
    audio: _AudioWindow | None
    seek_to: Fraction | None


def _window(job: SegmentJob, video: VideoSpec | None, audio: AudioSpec | None, backoff: Fraction | None) -> _Window:
    """The windows of the streams made (`video`, `audio`: their specs, or None), and where to seek:
    `backoff` seconds before the earliest title time any stream needs (None: no seek)."""
    need = job.stop  # earliest title time any stream needs
    video_window = audio_window = None
    if video is not None:
        fps = video.fps
        video_window = _VideoWindow(round(job.start * fps), round(job.stop * fps))
        need = min(need, Fraction(video_window.first) / fps)
    if audio is not None:
        audio_window = _audio_window(job, audio.sample_rate)
        # (what comes before a composite clip's audio is silence: no need to read it)
        need = min(need, Fraction(max(audio_window.feed_first, audio_window.play_lo or 0), audio.sample_rate))
    seek_to = None if backoff is None else job.origin + need - backoff
    if seek_to is not None and seek_to <= job.origin:
        seek_to = None
    return _Window(video_window, audio_window, seek_to)


def _audio_window(job: SegmentJob, rate: int) -> _AudioWindow:
    """The AAC frames the segment keeps and the samples fed for them; a composite clip's
    `audio_span` moves the kept frames at its joins and bounds where its audio plays."""
    a_first = math.ceil(job.start * rate / AAC_FRAME)  # first kept AAC frame
    a_end = math.ceil(job.stop * rate / AAC_FRAME)
    play_lo = play_hi = None
    if job.audio_span is not None:  # a composite's clip (see _AudioWindow)
        span_start, span_stop = job.audio_span
        join_frame = math.floor(span_start * rate / AAC_FRAME)  # silent in both views
        if span_start > 0:
            play_lo = (join_frame + 1) * AAC_FRAME
            a_first = join_frame if job.start == span_start else a_first
        if span_stop is not None:
            end_frame = math.floor(span_stop * rate / AAC_FRAME)
            play_hi = end_frame * AAC_FRAME
            a_end = end_frame if job.stop == span_stop else a_end
    feed_first = max(0, a_first - AUDIO_PREROLL_FRAMES) * AAC_FRAME  # sample
    feed_end = (a_end + AUDIO_POSTROLL_FRAMES) * AAC_FRAME
    return _AudioWindow(a_first, a_end, feed_first, feed_end, play_lo, play_hi)


class _Sink:
    """The file object the segment's muxer writes to, written straight through (no seek, so
    nothing written is rewritten), and what of it is the segment: every MPEG-TS byte; of fMP4
    the fragment boxes (as `split_fragment`: the init's ftyp+moov, made on its own, dropped).

    `pump` cuts what was written into the segment (whole TS packets, whole boxes) and, once
    `armed` and given `emit`, sends it: MPEG-TS when STREAM_CHUNK bytes are waiting, fMP4 at each
    fragment's end (its mdat), the rest at `finish`. Not armed, nothing leaves: an attempt that
    lands too late is thrown away unseen."""

    def __init__(self, fmp4: bool, emit: Callable[[bytes], None] | None) -> None:
        self.fmp4 = fmp4
        self.emit = emit
        self.armed = False
        self.raw = bytearray()  # written, not yet cut
        self.data = bytearray()  # the segment so far
        self.cut = 0  # data[:cut] may go out on its own (whole TS packets, whole fragments)
        self.sent = 0  # data[:sent] went out

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:
        self.raw += chunk
        return len(chunk)

    def pump(self) -> None:
        if self.fmp4:
            self._cut_fragments()
        else:
            self._cut_packets()
        if self.emit is not None and self.armed and self.cut > self.sent and (self.fmp4 or self.cut - self.sent >= STREAM_CHUNK):
            self._send(self.cut)

    def finish(self) -> bytes:
        """After the muxer closed: the segment, all of it sent when streaming."""
        self.pump()
        if self.raw:
            raise TranscodeFailed(f"the muxer left {len(self.raw)} bytes that are not a whole {'box' if self.fmp4 else 'TS packet'}")
        if self.emit is not None and len(self.data) > self.sent:
            self._send(len(self.data))
        return bytes(self.data)

    def _send(self, upto: int) -> None:
        assert self.emit is not None
        chunk = bytes(self.data[self.sent : upto])
        self.sent = upto
        self.emit(chunk)

    def _cut_packets(self) -> None:
        whole = len(self.raw) - len(self.raw) % TS_PACKET
        if whole:
            self.data += self.raw[:whole]
            del self.raw[:whole]
            self.cut = len(self.data)

    def _cut_fragments(self) -> None:
        while len(self.raw) >= 8:
            size, kind = struct.unpack_from(">I4s", self.raw)
            if size == 1:
                if len(self.raw) < 16:
                    return
                (size,) = struct.unpack_from(">Q", self.raw, 8)
            if size < 8:  # (0: to the end of the file; the mp4 muxer sizes every box it writes)
                raise TranscodeFailed(f"the muxer wrote a box {kind!r} of size {size}")
            if len(self.raw) < size:
                return
            if kind in MEDIA_BOXES:
                self.data += self.raw[:size]
                if kind == b"mdat":  # a fragment's end
                    self.cut = len(self.data)
            del self.raw[:size]


class _Segment:
    def __init__(
        self,
        job: SegmentJob,
        src: InputContainer,
        should_stop: Callable[[], bool] | None = None,
        emit: Callable[[bytes], None] | None = None,
    ) -> None:
        self.job = job
        self.src = src
        self.should_stop = should_stop
        self.emit = emit
        self.vin = _source_stream(src, job.video_stream, VideoStream) if job.video is not None else None
        self.ain = _source_stream(src, job.audio_stream, AudioStream) if job.audio is not None else None
        if self.vin is None and self.ain is None:
            raise SourceUnreadable("no stream to transcode")
        if self.vin is not None:
            self.vin.codec_context.thread_type = DECODE_THREADING
        self.sink = _Sink(job.container == "fmp4", emit)
        self.out: OutputContainer | None = None

    def run(self, backoff: Fraction | None) -> tuple[bytes, int, int] | None:
        """The segment (TS or fMP4 fragment bytes, video frames, audio packets) from a seek
        `backoff` seconds before it; None when the source landed too late (the caller backs off
        further). Packets are muxed as the encoders make them; the muxed bytes go to `emit` once
        each stream's first frame has shown the seek was early enough (`_demux`)."""
        video_spec = self.job.video if self.vin is not None else None
        audio_spec = self.job.audio if self.ain is not None else None
        window = _window(self.job, video_spec, audio_spec, backoff)
        if window.seek_to is not None:
            self._seek(window.seek_to)
        fmp4 = self.job.container == "fmp4"
        options = FMP4_OPTIONS if fmp4 else TS_AUDIO_OPTIONS if self.job.video is None else TS_OPTIONS
        with av.open(self.sink, "w", format="mp4" if fmp4 else "mpegts", options=options | STREAMED_MUX_OPTIONS) as out:
            self.out = out
            video = self._video(out, window)
            audio = self._audio(out, window)
            if not self._demux(video, audio):
                return None  # landed too late: back off (nothing was emitted)
            # (at the end of the file, demux's final empty packets have drained the decoders)
            if video is not None:
                video.finish()
            packets = audio.finish() if audio is not None else 0
        self.sink.armed = True  # (a stream whose first frame never came was not checked: as ever)
        return self.sink.finish(), (video.emitted if video is not None else 0), packets

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        """Mux packets as an encoder (or the copy cursor) gives them, in its stream's DTS order;
        the muxer interleaves the streams (STREAMED_MUX_OPTIONS)."""
        assert self.out is not None
        for packet in packets:
            self.out.mux(packet)
        self.sink.pump()

    def _seek(self, to: Fraction) -> None:
        anchor = self.vin if self.vin is not None else self.ain
        assert anchor is not None and anchor.time_base is not None
        self.src.seek(int(to / anchor.time_base), stream=anchor, backward=True, any_frame=False)

    def _video(self, out: OutputContainer, window: _Window) -> _VideoCursor | _CopyCursor | None:
        if self.vin is None or self.job.video is None or window.video is None:
            return None
        if self.job.video is not None and self.job.video.copies:
            if self.job.overlay is not None or self.job.intra_only:
                raise TranscodeFailed("a copy rendition cannot carry a watermark or be an I-frame rendition")
            copied = _open_copy(out, self.vin, self.job.container)
            job = self.job
            return _CopyCursor(
                self.vin, copied, self.job.video.fps, job.origin, (job.start, job.stop), verify=window.seek_to is not None, mux=self._mux
            )
        stream = _open_video(out, self.job.video, self.job.container, self.job.intra_only)
        # after a seek, the first decoded frame must be early enough
        cursor = _VideoCursor(
            self.vin,
            stream,
            self.job.video,
            self.job.origin,
            window.video,
            _offset(self.job),
            verify=window.seek_to is not None,
            colour=self.job.source_colour,
            mux=self._mux,
        )
        cursor.overlay = self.job.overlay
        return cursor

    def _audio(self, out: OutputContainer, window: _Window) -> _AudioBuffer | None:
        if self.ain is None or self.job.audio is None or window.audio is None:
            return None
        stream = _open_audio(out, self.job.audio)
        verify = window.seek_to is not None
        return _AudioBuffer(self.ain, stream, self.job.audio, self.job.origin, window.audio, _offset(self.job), verify, mux=self._mux)

    def _demux(self, video: _VideoCursor | _CopyCursor | None, audio: _AudioBuffer | None) -> bool:
        """Decode the source into `video` and `audio` until both have their windows (or the file
        ends). False when the first frame after the seek starts after a window. Once neither
        stream has a first frame left to check, the sink is armed: what was muxed may go out."""
        streams = [s for s in (self.vin, self.ain) if s is not None]
        for packet in self.src.demux(streams):
            if self.should_stop is not None and self.should_stop():
                raise Preempted
            if video is not None and packet.stream is self.vin:
                if not video.feed(packet):
                    return False
            elif audio is not None and packet.stream is self.ain:
                if not audio.feed(packet):
                    return False
            if not self.sink.armed and (video is None or not video.verify) and (audio is None or not audio.verify):
                self.sink.armed = True
                self.sink.pump()
            if (video is None or video.done) and (audio is None or audio.done):
                break
        return True


def _offset(job: SegmentJob) -> Fraction:
    """Seconds added to every timestamp: TS_OFFSET in MPEG-TS; none in fMP4, whose negative
    composition offsets keep the first DTS out of the way."""
    return TS_OFFSET if job.container == "ts" else Fraction(0)


def _source_stream(src: InputContainer, index: int | None, kind: type[_StreamT]) -> _StreamT | None:
    """The source's stream `index` (None: none wanted), which must be of the `kind` planned."""
    if index is None:
        return None
    stream = src.streams[index]
    if not isinstance(stream, kind):
        raise TranscodeFailed(f"source stream {index} is not the {kind.__name__} the plan expects")
    return stream


def _open_video(out: OutputContainer, spec: VideoSpec, container: str, intra_only: bool = False) -> VideoStream:
    if spec.codec == "av1":
        os.environ.setdefault("SVT_LOG", SVT_LOG)  # read when an encoder opens
    stream = out.add_stream(ENCODERS[spec.codec], rate=spec.fps)
    ctx = stream.codec_context
    ctx.width, ctx.height = spec.width, spec.height
    ctx.pix_fmt = spec.pix_fmt
    ctx.time_base = Fraction(1, MPEG_TS_CLOCK)
    ctx.framerate = spec.fps
    ctx.thread_type = "FRAME"
    ctx.thread_count = spec.threads
    # every output says what its colour is, in the VUI (and the mp4 muxer's colr box): BT.709
    # limited range for SDR, BT.2020 with HLG or PQ for an HDR rendition
    ctx.color_primaries, ctx.color_trc, ctx.colorspace = output_tags(spec.dynamic_range)
    ctx.color_range = COLOR_RANGE_LIMITED
    if spec.codec == "av1":
        ctx.options = _svt_av1_options(ctx, spec)
        return stream
    if spec.codec == "vp9":
        ctx.options = _vp9_options(ctx, spec)
        return stream
    options = {"preset": spec.preset}
    x_params = ["open-gop=0"]
    if container == "ts":
        if spec.codec == "h264":
            x_params.append("aud=1")
        # No B-frames in MPEG-TS, in any segment: DTS equals PTS, so the title's first frame
        # is decoded where audio starts (hls.js anchors its timeline there and would see a
        # reorder-delay hole), and DTS rise one frame at a time across every boundary. A
        # B-frame delay in some segments only would step DTS back at the joins. fMP4 carries
        # the composition offsets, so it keeps the encoder's default B-frames.
        x_params.append("bframes=0")
    elif intra_only:  # an I-frame rendition's lone frame, and its init segment's headers: no reorder delay declared
        x_params.append("bframes=0")
    if spec.bitrate:
        ctx.bit_rate = spec.bitrate
    elif spec.crf is not None:
        options["crf"] = f"{spec.crf:g}"
    if spec.maxrate:
        x_params += [f"vbv-maxrate={spec.maxrate // 1000}", f"vbv-bufsize={(spec.bufsize or 2 * spec.maxrate) // 1000}"]
    if spec.gop:
        ctx.gop_size = spec.gop
    options["x264-params" if spec.codec == "h264" else "x265-params"] = ":".join(x_params)
    if spec.codec == "h265":
        x_params += ["log-level=error", *_hdr_params(spec)]  # (x265 prints its settings on every encoder otherwise)
        options["x265-params"] = ":".join(x_params)
        options["tag"] = "hvc1"
        if container == "fmp4":
            stream.codec_tag = "hvc1"  # the sample entry Apple's players need (the option above leaves mp4's hev1)
    ctx.options = options
    return stream


def _open_copy(out: OutputContainer, source: VideoStream, container: str) -> VideoStream:
    """The output stream of a copy rendition: the source stream's codec parameters (its avcC or
    hvcC, so the sample entry is the source's own), on the 90 kHz clock; HEVC tagged `hvc1`
    (every parameter set in the sample entry), as Apple's players need. Refuses what the
    packets cannot be muxed from unchanged."""
    if container != "fmp4":
        raise TranscodeFailed("a copy rendition is made in fMP4 only")
    name = source.codec_context.name
    if name not in COPY_CODECS:
        raise TranscodeFailed(f"cannot copy {name} video (only {', '.join(sorted(COPY_CODECS))})")
    extradata = source.codec_context.extradata
    if not extradata or extradata[0] != 1:  # an avcC/hvcC record starts with version 1; Annex B with a start code
        raise TranscodeFailed("cannot copy video whose parameter sets are in band (Annex B, as in MPEG-TS)")
    stream = out.add_stream_from_template(source)
    stream.time_base = Fraction(1, MPEG_TS_CLOCK)
    if name == "hevc":
        stream.codec_tag = "hvc1"
    return stream


def _hdr_params(spec: VideoSpec) -> list[str]:
    """x265's HDR metadata for a PQ rendition: the source's mastering display and content light
    level, written as SEI with the stream headers (each segment is a fresh encoder: its first frame).
    No repeat-headers: an hvc1 sample entry holds every parameter set, none may be in band."""
    if spec.dynamic_range != "pq":
        return []
    params = ["hdr10=1"]
    if spec.mastering is not None:
        params.append(f"master-display={spec.mastering.x265()}")
    if spec.content_light is not None:
        params.append(f"max-cll={spec.content_light.max_cll},{spec.content_light.max_fall}")
    return params


def _svt_av1_options(ctx: VideoCodecContext, spec: VideoSpec) -> dict[str, str]:
    """libsvtav1's options for `spec` (fMP4 only). A fresh encoder per segment opens on a key
    frame; `irefresh-type=2` makes every later intra frame a key frame too (a closed GOP), and
    SVT-AV1 reorders nothing the container sees (no composition offsets)."""
    options = {"preset": str(SVT_AV1_PRESETS[spec.preset]), "svtav1-params": "irefresh-type=2"}
    if spec.bitrate:
        ctx.bit_rate = spec.bitrate
    elif spec.crf is not None:
        options["crf"] = str(round(spec.crf * SVT_AV1_MAX_CRF / 51))
    if spec.maxrate:  # capped CRF
        options |= {"maxrate": str(spec.maxrate), "bufsize": str(spec.bufsize or 2 * spec.maxrate)}
    if spec.gop:
        ctx.gop_size = spec.gop
    return options


def _vp9_options(ctx: VideoCodecContext, spec: VideoSpec) -> dict[str, str]:
    """libvpx-vp9's options for `spec` (fMP4 only). A fresh encoder per segment opens on a key
    frame (which resets every reference: the GOP is closed); `lag-in-frames=0` (realtime) makes
    no hidden alt-ref frame, so every packet is one shown frame and nothing is reordered."""
    options = {"deadline": "realtime", "cpu-used": str(VP9_CPU_USED[spec.preset]), "row-mt": "1", "lag-in-frames": "0"}
    if spec.bitrate:
        ctx.bit_rate = spec.bitrate
    elif spec.crf is not None:
        options |= {"crf": str(round(spec.crf * VP9_MAX_CRF / 51)), "b": "0"}  # constant quality
        if spec.maxrate:  # capped CRF
            ctx.bit_rate = spec.maxrate
            options.pop("b")
    if spec.maxrate:
        options |= {"maxrate": str(spec.maxrate), "bufsize": str(spec.bufsize or 2 * spec.maxrate)}
    if spec.gop:
        ctx.gop_size = spec.gop
    return options


def _open_audio(out: OutputContainer, spec: AudioSpec) -> AudioStream:
    stream = out.add_stream("aac", rate=spec.sample_rate)
    stream.layout = _layout(spec.channels)
    stream.codec_context.bit_rate = spec.bitrate
    stream.codec_context.time_base = Fraction(1, spec.sample_rate)
    return stream


BLACK_YUV = (16, 128, 128)  # in 8 bits; shifted left for 10
PLANAR = {"yuv420p": 0, "yuv420p10le": 2}  # the formats turned and cut as planes: their shift from 8 bits


def _convert(colour: FrameColour, frame: VideoFrame, spec: VideoSpec) -> VideoFrame:
    """Scale a decoded frame to the output, in the output's colour (livetx/media/colour_frames.py).

    Plain case: swscale straight to the frame size. Otherwise, on 4:2:0 planes of the output's
    depth: scale to the picture size (before turning, so the turn moves fewer pixels), turn it
    upright by the source's rotation, then cut the middle out of it (crop) or centre it on black
    (fill). One FrameColour serves a whole segment, so swscale is set up once.
    """
    if spec.picture is None and not spec.rotation:
        return colour.scale(frame, spec.width, spec.height, spec.pix_fmt)
    pic_w, pic_h = spec.picture or (spec.width, spec.height)
    turns = spec.rotation // 90 % 4
    coded_w, coded_h = (pic_h, pic_w) if turns % 2 else (pic_w, pic_h)
    planar = spec.pix_fmt if spec.pix_fmt in PLANAR else "yuv420p"
    shift = PLANAR[planar]
    planes = colour.scale(frame, coded_w, coded_h, planar).to_ndarray()
    src = [planes[:coded_h], *planes[coded_h:].reshape(2, coded_h // 2, coded_w // 2)]
    if turns:
        src = [np.rot90(p, turns) for p in src]  # counter-clockwise, as the display matrix says
    out = np.empty((spec.height * 3 // 2, spec.width), dtype=planes.dtype)
    dst = [out[: spec.height], *out[spec.height :].reshape(2, spec.height // 2, spec.width // 2)]
    # offsets of the picture in the frame (fill: >= 0) or of the frame in the picture (crop: >= 0), even
    dx, dy = ((spec.width - pic_w) // 4) * 2, ((spec.height - pic_h) // 4) * 2
    for plane_src, plane_dst, div, black in zip(src, dst, (1, 2, 2), BLACK_YUV, strict=True):
        ox, oy = dx // div, dy // div
        if ox >= 0 and oy >= 0:  # fill (or the picture is the frame)
            plane_dst[:] = black << shift
            plane_dst[oy : oy + plane_src.shape[0], ox : ox + plane_src.shape[1]] = plane_src
        else:  # crop
            plane_dst[:] = plane_src[-oy : -oy + plane_dst.shape[0], -ox : -ox + plane_dst.shape[1]]
    converted = av.VideoFrame.from_ndarray(out, format=planar)
    return converted if spec.pix_fmt == planar else converted.reformat(format=spec.pix_fmt)


def _decode(decode: Callable[[Packet[Stream]], list[_FrameT]], packet: Packet[Stream]) -> list[_FrameT]:
    """Decode one packet with its stream's `decode`; a corrupt one (common right after a seek
    into MPEG-PS/TS) yields nothing."""
    try:
        return list(decode(packet))
    except av.InvalidDataError:
        return []


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}[channels]


class _VideoCursor:
    """Chooses, converts and encodes the output frames of `window` from decoded source frames,
    and gives `mux` each packet as the encoder returns it (in decode order)."""

    def __init__(
        self,
        source: VideoStream,
        stream: VideoStream,
        spec: VideoSpec,
        origin: Fraction,
        window: _VideoWindow,
        offset: Fraction,
        verify: bool,
        colour: ColourInfo | None = None,
        mux: Callable[[list[Packet[Stream]]], None] | None = None,
    ) -> None:
        self.source = source
        self.stream = stream
        self.spec = spec
        self.origin = origin
        self.window = window
        self.offset = offset  # seconds added to every output timestamp
        assert source.time_base is not None
        self.time_base: Fraction = source.time_base
        self.verify = verify  # check that the first timed frame (after a seek) starts early enough
        self.next = window.first  # next output frame to emit
        self.held: VideoFrame | None = None  # last source frame, converted lazily
        self.held_out: VideoFrame | None = None
        self.colour = FrameColour(colour, spec.dynamic_range, source.codec_context.width, source.codec_context.height)
        self.last_time: Fraction | None = None
        self.done = False
        self.emitted = 0
        self.mux = mux or (lambda packets: None)
        self.overlay: Overlay | None = None  # a watermark, drawn over each frame after scaling

    def feed(self, packet: Packet[Stream]) -> bool:
        """Decode one source packet and take its frames. False when the first frame after a seek
        starts after the window's first output frame (the seek landed too late)."""
        for frame in _decode(self.source.decode, packet):
            if self.verify and frame.pts is not None:
                self.verify = False
                if self.slot(frame.pts * self.time_base) > self.window.first:
                    return False
            self.push(frame)
        return True

    def frame_time(self, frame: VideoFrame) -> Fraction:
        if frame.pts is not None:
            t = frame.pts * self.time_base
        elif self.last_time is not None:
            t = self.last_time + 1 / self.spec.fps
        else:
            t = self.origin
        self.last_time = Fraction(t)
        return self.last_time

    def slot(self, time: Fraction) -> int:
        """The output frame a source frame shown at `time` (source seconds) starts at."""
        return round((time - self.origin) * self.spec.fps)

    def push(self, frame: VideoFrame) -> None:
        if self.done:
            return
        slot = self.slot(self.frame_time(frame))
        if self.held is None:
            self.held = frame
        while self.next < min(slot, self.window.end):
            self._emit()
        self.held, self.held_out = frame, None
        if slot >= self.window.end:
            self.done = True

    def _emit(self) -> None:
        assert self.held is not None
        if self.held_out is None:
            out = _convert(self.colour, self.held, self.spec)
            if self.overlay is not None:  # once per source frame: a repeated frame reuses it
                out = overlay_frame(out, self.overlay)
            out.pict_type = av.video.frame.PictureType.NONE
            self.held_out = out
        out = self.held_out
        out.time_base = Fraction(1, MPEG_TS_CLOCK)
        out.pts = int(self.offset * MPEG_TS_CLOCK + self.next * MPEG_TS_CLOCK / self.spec.fps)
        self._out(self.stream.encode(out))
        if not self.emitted:  # the encoder opened with this frame: no thread of it stays real-time
            drop_realtime()
        self.next += 1
        self.emitted += 1

    def _out(self, packets: list[Packet[Stream]]) -> None:
        self.mux([p for p in packets if p.size])

    def finish(self) -> None:
        """At the end of the window or of the file: hold the last frame to the window's end, flush."""
        if self.held is not None:
            while self.next < self.window.end:
                self._emit()
        self._out(self.stream.encode(None))


class _CopyCursor:
    """Takes the source's own video packets shown in the window (title time [start, stop), source
    keyframes at both ends), in decode order, payloads untouched, re-timed to title time on the
    90 kHz clock: the same interface as `_VideoCursor`.

    Each frame's time is put on the title's frame grid (k / fps, as the transcoder's frame k)
    when it is within a millisecond of it (Matroska stores milliseconds), else kept exact. DTS
    are the sorted PTS moved back by the source's reorder delay (whole frames, as its DTS say,
    at least what the window's order needs), so it is the same in every segment and the muxer's
    `negative_cts_offsets` starts the fragment at the window's start as a transcoded one.
    They are muxed at `finish`: the audio waits for them in the muxer's interleaving queue."""

    def __init__(
        self,
        source: VideoStream,
        stream: VideoStream,
        fps: Fraction,
        origin: Fraction,
        window: tuple[Fraction, Fraction],
        verify: bool,
        mux: Callable[[list[Packet[Stream]]], None] | None = None,
    ) -> None:
        assert source.time_base is not None
        self.mux = mux or (lambda packets: None)
        self.time_base: Fraction = source.time_base
        self.stream = stream
        self.fps = fps
        self.origin = origin
        self.lo_ticks, self.hi_ticks = self._ticks(origin + window[0]), self._ticks(origin + window[1])
        self.verify = verify  # the first packet after a seek must be at or before the window's start
        self.taken: list[tuple[Packet[Stream], int]] = []  # (packet, title time in 90 kHz ticks) in decode order
        self.delay = 0  # frames: the source's reorder delay, as its DTS show
        self.next_key: int | None = None  # title time (ticks) of the keyframe at the window's end, once read
        self.done = False
        self.emitted = 0

    def feed(self, packet: Packet[Stream]) -> bool:
        """Take one source packet if it is shown in the window. False when the first packet after
        a seek is shown after the window's start (the seek landed too late). Times compare on the
        90 kHz clock, snapped to the grid (`_ticks`): a window edge given as the keyframe's time
        or as its grid frame's, in a container that rounds to milliseconds, is the same edge."""
        if self.done or packet.pts is None or not packet.size:
            return True
        t = packet.pts * self.time_base
        at = self._ticks(t)
        if self.verify:
            self.verify = False
            if at > self.lo_ticks:
                return False
        if self.next_key is not None:
            # the packet decoded after the next keyframe: one shown before it leads an open GOP,
            # whose pictures reference the previous GOP and cannot be cut there
            if at < self.next_key:
                raise TranscodeFailed("cannot copy an open-GOP source: its segments do not decode alone")
            self.done = True
        elif at >= self.hi_ticks:
            if not packet.is_keyframe:
                raise TranscodeFailed("a copy segment must end at a source keyframe")
            self.next_key = at
        elif at >= self.lo_ticks:
            if not self.taken and not (packet.is_keyframe and at == self.lo_ticks):
                raise TranscodeFailed("a copy segment must start at a source keyframe")
            if packet.dts is not None:
                self.delay = max(self.delay, round((t - packet.dts * self.time_base) * self.fps))
            self.taken.append((packet, at))
        return True

    def _ticks(self, t: Fraction) -> int:
        """Title time of source time `t` on the 90 kHz clock, on the frame grid when it is near."""
        title = t - self.origin
        slot = round(title * self.fps)
        if abs(title - slot / self.fps) <= Fraction(1, 1000):
            return int(slot * MPEG_TS_CLOCK / self.fps)  # as `_VideoCursor._emit` times frame `slot`
        return round(title * MPEG_TS_CLOCK)

    def finish(self) -> None:
        """Mux the window's packets, re-timed (their payloads as the source has them): all at the
        end, as their DTS follow from every PTS in the window (cheap: nothing is decoded)."""
        pts = [at for _, at in self.taken]
        ordered = sorted(pts)
        if len(set(ordered)) != len(ordered):
            raise TranscodeFailed("cannot copy video with two frames at one time")
        frame = MPEG_TS_CLOCK / self.fps
        shift = max([int(self.delay * frame)] + [o - p for o, p in zip(ordered, pts, strict=True)])
        out = []
        for (packet, _), p, o in zip(self.taken, pts, ordered, strict=True):
            packet.stream = self.stream
            packet.time_base = Fraction(1, MPEG_TS_CLOCK)
            packet.pts, packet.dts = p, o - shift
            packet.duration = round(frame)
            out.append(packet)
        self.emitted = len(out)
        self.mux(out)


class _AudioBuffer:
    """Collects decoded source audio, on the output sample grid, for the window's
    [feed_first, feed_end), and encodes it as it settles (AUDIO_SETTLE), an AAC frame at a time,
    giving `mux` the window's packets as the encoder returns them."""

    def __init__(
        self,
        source: AudioStream,
        stream: AudioStream,
        spec: AudioSpec,
        origin: Fraction,
        window: _AudioWindow,
        offset: Fraction,
        verify: bool,
        mux: Callable[[list[Packet[Stream]]], None] | None = None,
    ) -> None:
        self.source = source
        self.stream = stream
        self.spec = spec
        self.origin = origin
        self.window = window
        self.offset = offset  # seconds added to every output timestamp
        self.first = window.feed_first
        self.end = window.feed_end
        # the first sample that must come from the source (before it: silence in a composite's clip)
        self.needed = max(self.first, window.play_lo or 0)
        self.samples = np.zeros((spec.channels, self.end - self.first), dtype=np.float32)
        assert source.time_base is not None
        self.time_base: Fraction = source.time_base
        self.src_rate = source.codec_context.sample_rate
        self.stream_start = (source.start_time or 0) * self.time_base
        self.resampler = av.AudioResampler(format="fltp", layout=_layout(spec.channels), rate=spec.sample_rate)
        self.same_rate = self.src_rate == spec.sample_rate
        self.cursor: int | None = None  # output sample where the next resampled sample goes
        self.verify = verify  # check that the first frame (after a seek) starts early enough
        self.done = False
        self.mux = mux or (lambda packets: None)
        self.settle = math.ceil(AUDIO_SETTLE * spec.sample_rate)
        self.encoded = 0  # samples[:, :encoded] are encoded (whole AAC frames)
        self.kept = 0  # packets of the window muxed
        self.pts_offset = int(self.offset * self.spec.sample_rate)

    def feed(self, packet: Packet[Stream]) -> bool:
        """Decode one source packet and take its frames. False when the first frame after a seek
        starts after the first sample fed to the encoder (the seek landed too late)."""
        for frame in _decode(self.source.decode, packet):
            if self.verify:
                self.verify = False
                if self.position(frame) > self.needed:
                    return False
            self.push(frame)
        return True

    def position(self, frame: AudioFrame) -> int:
        """Output sample index (title time) of the first sample of a decoded source frame."""
        if frame.pts is None:
            return self.cursor if self.cursor is not None else 0
        t = frame.pts * self.time_base
        # Snap to the source codec's frame grid: containers with coarse timestamps
        # (Matroska's milliseconds) otherwise put frames a few samples off.
        size = frame.samples
        raw = (t - self.stream_start) * self.src_rate
        if size:
            snapped = round(raw / size) * size
            if abs(raw - snapped) < Fraction(size, 8):
                raw = Fraction(snapped)
        src_time = self.stream_start + raw / self.src_rate
        offset: Fraction = src_time - self.origin
        return round(offset * self.spec.sample_rate)

    def push(self, frame: AudioFrame) -> None:
        if self.done:
            return
        pos = self.position(frame)
        if self.same_rate or self.cursor is None:
            self.cursor = pos
        for out in self.resampler.resample(frame):
            self._place(out)
        if self.cursor is not None and self.cursor >= self.end:
            self.done = True
        # settled: all of the window once done (the resampler's flush lands past its end);
        # else what lies AUDIO_SETTLE before the cursor
        if self.done:
            self._encode_to(self.end)
        elif self.cursor is not None:
            self._encode_to(self.cursor - self.settle)

    def _place(self, frame: AudioFrame) -> None:
        assert self.cursor is not None
        data = frame.to_ndarray()
        start = self.cursor
        self.cursor += data.shape[1]
        lo, hi = max(start, self.first), min(self.cursor, self.end)
        if lo < hi:
            self.samples[:, lo - self.first : hi - self.first] = data[: self.spec.channels, lo - start : hi - start]

    def _silence_outside_span(self, lo: int, hi: int) -> None:
        """A composite's clip: silence outside [play_lo, play_hi), a fade inside each bound, on
        the window's samples [lo, hi) (indices into `samples`)."""
        play_lo, play_hi = self.window.play_lo, self.window.play_hi
        if play_lo is None and play_hi is None:
            return
        at = np.arange(self.first + lo, self.first + hi)
        gain = np.ones(at.shape, dtype=np.float32)
        fade = max(1, round(FADE_SECONDS * self.spec.sample_rate))
        if play_lo is not None:
            gain = np.minimum(gain, np.clip((at - play_lo + 1) / fade, 0.0, 1.0).astype(np.float32))
        if play_hi is not None:
            gain = np.minimum(gain, np.clip((play_hi - at) / fade, 0.0, 1.0).astype(np.float32))
        self.samples[:, lo:hi] *= gain

    def _encode_to(self, sample: int) -> None:
        """Encode the AAC frames that end at or before output sample `sample`, not yet encoded."""
        limit = min(sample - self.first, self.samples.shape[1])
        layout = _layout(self.spec.channels)
        while self.encoded + AAC_FRAME <= limit:
            at = self.encoded
            self._silence_outside_span(at, at + AAC_FRAME)
            chunk = np.ascontiguousarray(self.samples[:, at : at + AAC_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = self.spec.sample_rate
            frame.time_base = Fraction(1, self.spec.sample_rate)
            frame.pts = self.pts_offset + self.first + at
            self._keep(self.stream.encode(frame))
            self.encoded += AAC_FRAME

    def _keep(self, packets: list[Packet[Stream]]) -> None:
        """Mux the packets of the window's AAC frames (pre- and post-roll ones are dropped)."""
        keep_lo = self.window.first * AAC_FRAME
        keep_hi = self.window.end * AAC_FRAME
        kept = [p for p in packets if p.pts is not None and p.size and keep_lo <= p.pts - self.pts_offset < keep_hi]
        self.kept += len(kept)
        self.mux(kept)

    def finish(self) -> int:
        """At the end of the window or of the file: place what the resampler holds, encode the
        rest, flush the encoder. The number of packets kept."""
        for frame in self.resampler.resample(None):
            if self.cursor is not None:
                self._place(frame)
        self._encode_to(self.end)
        self._keep(self.stream.encode(None))
        return self.kept
