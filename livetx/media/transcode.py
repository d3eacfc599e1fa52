"""The worker: one segment job in, one MPEG-TS segment out.

Runs in a pool process (see `livetx.media.pool`), so everything crossing the boundary is a
frozen, picklable dataclass. A segment is made alone, yet joins its neighbours as if the
title had been encoded in one pass:

- Video. Output frame k sits at title time k/fps. Each decoded source frame gets the slot
  round(t * fps) of its time t; output frame k shows the last source frame whose slot is
  <= k (FFmpeg's `fps` filter rule). The rule depends only on source timestamps, so every
  segment picks the same frames for the same slots. A fresh encoder per segment makes the
  first frame an IDR; the GOP is closed; source picture types are cleared.
- Audio. AAC packets sit on one 1024-sample grid from title time 0. Segment n carries the
  packets whose start falls in its window. The encoder is fed a few frames of pre-roll
  before the first kept packet and post-roll after the last (and its priming packet is
  dropped), so the kept packets are the ones a one-pass encode would have made, up to
  quantisation, and the decoder's overlap-add joins them without a click.
- Timestamps are title time plus one constant offset (TS_OFFSET, 1.4 s as FFmpeg's HLS
  output) in every segment, with `avoid_negative_ts` off so the muxer shifts nothing.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np

from livetx.errors import SourceChanged, SourceUnreadable, TranscodeFailed
from livetx.media.model import AudioSpec, SegmentJob, SegmentResult, VideoSpec
from livetx.media.remote import VersionMismatch, describe_error, open_container, open_source

AAC_FRAME = 1024
TS_OFFSET = Fraction(7, 5)  # seconds added to every timestamp
MPEG_TS_CLOCK = 90000
AUDIO_PREROLL_FRAMES = 4
AUDIO_POSTROLL_FRAMES = 2
DECODE_THREADING = "AUTO"  # frame + slice threads for the source decoder
SEEK_BACKOFF = (Fraction(1), Fraction(5), Fraction(30), None)  # seconds before the need; None: from the start


ENCODERS = {"h264": "libx264", "h265": "libx265"}


class Preempted(Exception):
    """The pool asked this (background) transcode to give its worker to a waiting client."""


def transcode_segment(job: SegmentJob, should_stop: Callable[[], bool] | None = None, origin: str | None = None) -> SegmentResult:
    """Module-level entry point for the process pool. `should_stop` is polled between packets;
    when it returns True the transcode stops with `Preempted`. A remote source is read only from
    `origin` (see `open_source`). Error messages never carry the source's path or URL."""
    began = time.perf_counter()
    seeks = 0
    fetched = 0
    for backoff in SEEK_BACKOFF:
        seeks += 1
        try:
            with open_source(job.source, job.source_pin, origin) as (target, counter):
                with open_container(target, extra=job.open_options) as src:
                    try:
                        made = _Segment(job, src, should_stop).run(backoff)
                    finally:
                        fetched += counter()
        except VersionMismatch as exc:
            raise SourceChanged(f"{exc}; reload the playlist") from None
        except (av.FFmpegError, OSError) as exc:
            raise TranscodeFailed(f"transcode failed: {describe_error(exc)}") from None
        if made is not None:
            data, frames, packets = made
            return SegmentResult(data, frames, packets, time.perf_counter() - began, seeks, fetched)
    raise TranscodeFailed("could not position the source at the segment start")  # pragma: no cover


class _Segment:
    def __init__(self, job: SegmentJob, src: Any, should_stop: Callable[[], bool] | None = None) -> None:
        self.job = job
        self.src = src
        self.should_stop = should_stop
        self.vin: Any = src.streams[job.video_stream] if job.video is not None and job.video_stream is not None else None
        self.ain: Any = src.streams[job.audio_stream] if job.audio is not None and job.audio_stream is not None else None
        if self.vin is None and self.ain is None:
            raise SourceUnreadable("no stream to transcode")
        if self.vin is not None:
            self.vin.codec_context.thread_type = DECODE_THREADING

    # ---- the window in each stream's units --------------------------------------------

    def run(self, backoff: Fraction | None) -> tuple[bytes, int, int] | None:
        job = self.job
        need = job.stop  # earliest title time any stream needs
        if self.vin is not None:
            assert job.video is not None
            fps = job.video.fps
            self.v_first = round(job.start * fps)
            self.v_end = round(job.stop * fps)
            need = min(need, Fraction(self.v_first) / fps)
        if self.ain is not None:
            assert job.audio is not None
            rate = job.audio.sample_rate
            self.a_first = math.ceil(job.start * rate / AAC_FRAME)  # first kept AAC frame
            self.a_end = math.ceil(job.stop * rate / AAC_FRAME)
            self.feed_first = max(0, self.a_first - AUDIO_PREROLL_FRAMES) * AAC_FRAME  # sample
            self.feed_end = (self.a_end + AUDIO_POSTROLL_FRAMES) * AAC_FRAME
            need = min(need, Fraction(self.feed_first, rate))

        seek_to = None if backoff is None else job.origin + need - backoff
        if seek_to is not None and seek_to > job.origin:
            anchor: Any = self.vin if self.vin is not None else self.ain
            self.src.seek(int(seek_to / anchor.time_base), stream=anchor, backward=True, any_frame=False)
        else:
            seek_to = None

        out_buf = io.BytesIO()
        with av.open(out_buf, "w", format="mpegts", options={"mpegts_copyts": "1", "avoid_negative_ts": "disabled"}) as out:
            vout = self._open_video(out) if self.vin is not None else None
            aout = self._open_audio(out) if self.ain is not None else None
            vstate = _VideoCursor(self, vout) if vout is not None else None
            astate = _AudioBuffer(self) if aout is not None else None
            streams = [s for s in (self.vin, self.ain) if s is not None]
            # after a seek, the first decoded frame of each stream must be early enough
            check_video = check_audio = seek_to is not None
            for packet in self.src.demux(streams):
                if self.should_stop is not None and self.should_stop():
                    raise Preempted
                if vstate is not None and packet.stream is self.vin:
                    for frame in _decode(packet):
                        if check_video and frame.pts is not None:
                            check_video = False
                            if vstate.slot(frame.pts * vstate.time_base) > self.v_first:
                                return None  # landed too late: back off
                        vstate.push(frame)
                elif astate is not None and packet.stream is self.ain:
                    for frame in _decode(packet):
                        if check_audio:
                            check_audio = False
                            if astate.position(frame) > self.feed_first:
                                return None
                        astate.push(frame)
                if (vstate is None or vstate.done) and (astate is None or astate.done):
                    break
            # (at the end of the file, demux's final empty packets have drained the decoders)
            video_packets = vstate.finish() if vstate is not None else []
            audio_packets = astate.encode(aout) if astate is not None and aout is not None else []
            encoded = video_packets + audio_packets
            # interleave by decoding time, as a one-pass mux would
            encoded.sort(key=lambda p: p.dts * p.time_base)
            for packet in encoded:
                out.mux(packet)
            frames = vstate.emitted if vstate is not None else 0
            packets = len(audio_packets)
        return out_buf.getvalue(), frames, packets

    def _open_video(self, out: Any) -> Any:
        spec = self.job.video
        assert spec is not None
        stream = out.add_stream(ENCODERS[spec.codec], rate=spec.fps)
        ctx = stream.codec_context
        ctx.width, ctx.height = spec.width, spec.height
        ctx.pix_fmt = spec.pix_fmt
        ctx.time_base = Fraction(1, MPEG_TS_CLOCK)
        ctx.framerate = spec.fps
        ctx.thread_type = "FRAME"
        ctx.thread_count = spec.threads
        options = {"preset": spec.preset}
        x_params = ["open-gop=0"]
        if spec.codec == "h264":
            x_params.append("aud=1")
        # No B-frames, in any segment: DTS equals PTS, so the title's first frame is decoded where
        # audio starts (hls.js anchors its timeline there and would see a reorder-delay hole), and
        # DTS rise one frame at a time across every boundary. A B-frame delay in some segments
        # only would step DTS back at the joins.
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
            options["tag"] = "hvc1"
        ctx.options = options
        return stream

    def _open_audio(self, out: Any) -> Any:
        spec = self.job.audio
        assert spec is not None
        stream = out.add_stream("aac", rate=spec.sample_rate)
        stream.layout = _layout(spec.channels)
        stream.codec_context.bit_rate = spec.bitrate
        stream.codec_context.time_base = Fraction(1, spec.sample_rate)
        return stream


BLACK_YUV = (16, 128, 128)


SCALER = "BICUBIC"  # swscale algorithm, as FFmpeg's scale filter defaults to
SCALER_THREADS = 1  # the encoder's frame threads already keep every core busy


def _convert(scaler: Any, frame: Any, spec: VideoSpec) -> Any:
    """Scale a decoded frame to the output.

    Plain case: swscale straight to the frame size. Otherwise, on yuv420p planes: scale to the
    picture size (before turning, so the turn moves fewer pixels), turn it upright by the
    source's rotation, then cut the middle out of it (crop) or centre it on black (fill).
    One `scaler` (a VideoReformatter) serves a whole segment, so swscale is set up once.
    """

    def scale(frame: Any, **to: Any) -> Any:
        return scaler.reformat(frame, interpolation=SCALER, threads=SCALER_THREADS, **to)

    if spec.picture is None and not spec.rotation:
        return scale(frame, width=spec.width, height=spec.height, format=spec.pix_fmt)
    pic_w, pic_h = spec.picture or (spec.width, spec.height)
    turns = spec.rotation // 90 % 4
    coded_w, coded_h = (pic_h, pic_w) if turns % 2 else (pic_w, pic_h)
    planes = scale(frame, width=coded_w, height=coded_h, format="yuv420p").to_ndarray()
    src = [planes[:coded_h], *planes[coded_h:].reshape(2, coded_h // 2, coded_w // 2)]
    if turns:
        src = [np.rot90(p, turns) for p in src]  # counter-clockwise, as the display matrix says
    out = np.empty((spec.height * 3 // 2, spec.width), dtype=np.uint8)
    dst = [out[: spec.height], *out[spec.height :].reshape(2, spec.height // 2, spec.width // 2)]
    # offsets of the picture in the frame (fill: >= 0) or of the frame in the picture (crop: >= 0), even
    dx, dy = ((spec.width - pic_w) // 4) * 2, ((spec.height - pic_h) // 4) * 2
    for plane_src, plane_dst, div in zip(src, dst, (1, 2, 2), strict=True):
        ox, oy = dx // div, dy // div
        if ox >= 0 and oy >= 0:  # fill (or the picture is the frame)
            plane_dst[:] = BLACK_YUV[0] if div == 1 else 128
            plane_dst[oy : oy + plane_src.shape[0], ox : ox + plane_src.shape[1]] = plane_src
        else:  # crop
            plane_dst[:] = plane_src[-oy : -oy + plane_dst.shape[0], -ox : -ox + plane_dst.shape[1]]
    converted = av.VideoFrame.from_ndarray(out, format="yuv420p")
    return converted if spec.pix_fmt == "yuv420p" else converted.reformat(format=spec.pix_fmt)


def _decode(packet: Any) -> list[Any]:
    """Decode one packet; a corrupt one (common right after a seek into MPEG-PS/TS) yields nothing."""
    try:
        return list(packet.decode())
    except av.InvalidDataError:
        return []


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}[channels]


class _VideoCursor:
    """Chooses, converts and encodes the output frames [v_first, v_end) from decoded source frames."""

    def __init__(self, seg: _Segment, stream: Any) -> None:
        self.seg = seg
        self.stream = stream
        self.spec: VideoSpec = seg.job.video  # type: ignore[assignment]
        self.origin = seg.job.origin
        self.time_base = seg.vin.time_base
        self.next = seg.v_first  # next output frame to emit
        self.held: Any = None  # last source frame, converted lazily
        self.held_out: Any = None
        self.scaler = av.video.reformatter.VideoReformatter()
        self.last_time: Fraction | None = None
        self.done = False
        self.emitted = 0
        self.packets: list[Any] = []

    def frame_time(self, frame: Any) -> Fraction:
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

    def push(self, frame: Any) -> None:
        if self.done:
            return
        slot = self.slot(self.frame_time(frame))
        if self.held is None:
            self.held = frame
        while self.next < min(slot, self.seg.v_end):
            self._emit()
        self.held, self.held_out = frame, None
        if slot >= self.seg.v_end:
            self.done = True

    def _emit(self) -> None:
        if self.held_out is None:
            out = _convert(self.scaler, self.held, self.spec)
            out.pict_type = av.video.frame.PictureType.NONE
            self.held_out = out
        out = self.held_out
        out.time_base = Fraction(1, MPEG_TS_CLOCK)
        out.pts = int(TS_OFFSET * MPEG_TS_CLOCK + self.next * MPEG_TS_CLOCK / self.spec.fps)
        self.packets += self.stream.encode(out)
        self.next += 1
        self.emitted += 1

    def finish(self) -> list[Any]:
        """At the end of the window or of the file: hold the last frame to the window's end, flush."""
        if self.held is not None:
            while self.next < self.seg.v_end:
                self._emit()
        self.packets += self.stream.encode(None)
        return [p for p in self.packets if p.size]


class _AudioBuffer:
    """Collects decoded source audio, on the output sample grid, for [feed_first, feed_end)."""

    def __init__(self, seg: _Segment) -> None:
        self.seg = seg
        spec: AudioSpec = seg.job.audio  # type: ignore[assignment]
        self.spec = spec
        self.origin = seg.job.origin
        self.first = seg.feed_first
        self.end = seg.feed_end
        self.samples = np.zeros((spec.channels, self.end - self.first), dtype=np.float32)
        self.time_base = seg.ain.time_base
        self.src_rate = seg.ain.codec_context.sample_rate
        self.stream_start = (seg.ain.start_time or 0) * self.time_base
        self.resampler = av.AudioResampler(format="fltp", layout=_layout(spec.channels), rate=spec.sample_rate)
        self.same_rate = self.src_rate == spec.sample_rate
        self.cursor: int | None = None  # output sample where the next resampled sample goes
        self.done = False

    def position(self, frame: Any) -> int:
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

    def push(self, frame: Any) -> None:
        if self.done:
            return
        pos = self.position(frame)
        if self.same_rate or self.cursor is None:
            self.cursor = pos
        for out in self.resampler.resample(frame):
            self._place(out)
        if self.cursor is not None and self.cursor >= self.end:
            self.done = True

    def _place(self, frame: Any) -> None:
        assert self.cursor is not None
        data = frame.to_ndarray()
        start = self.cursor
        self.cursor += data.shape[1]
        lo, hi = max(start, self.first), min(self.cursor, self.end)
        if lo < hi:
            self.samples[:, lo - self.first : hi - self.first] = data[: self.spec.channels, lo - start : hi - start]

    def encode(self, stream: Any) -> list[Any]:
        for frame in self.resampler.resample(None):
            if self.cursor is not None:
                self._place(frame)
        keep_lo = self.seg.a_first * AAC_FRAME
        keep_hi = self.seg.a_end * AAC_FRAME
        offset = int(TS_OFFSET * self.spec.sample_rate)
        kept: list[Any] = []

        def mux(packets: list[Any]) -> None:
            for packet in packets:
                if packet.pts is not None and packet.size and keep_lo <= packet.pts - offset < keep_hi:
                    kept.append(packet)

        layout = _layout(self.spec.channels)
        for at in range(0, self.samples.shape[1], AAC_FRAME):
            chunk = np.ascontiguousarray(self.samples[:, at : at + AAC_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = self.spec.sample_rate
            frame.time_base = Fraction(1, self.spec.sample_rate)
            frame.pts = offset + self.first + at
            mux(stream.encode(frame))
        mux(stream.encode(None))
        return kept
