"""A job's segments joined into one file, in a worker process: their packets copied, not
re-encoded (PyAV), into the container the job asked for.

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
packet) is dropped by the demuxer.

`remux` is the process boundary: one frozen job in, one frozen result out (a module-level
function a ProcessPoolExecutor runs). Nothing here touches storage.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction

from livetx.media.timeline import TS_OFFSET


@dataclass(frozen=True)
class RemuxJob:
    inputs: tuple[str, ...]  # paths of the MPEG-TS segments, in play order
    output: str  # path of the file to write
    container: str  # PyAV (FFmpeg) muxer name: mp4, mov, matroska, mpegts, ipod
    audio_only: bool = False


@dataclass(frozen=True)
class RemuxResult:
    size: int  # bytes of the output file
    packets: int
    duration: float  # seconds, from the first packet to the end of the last


def _joined(job: RemuxJob) -> str:
    """The segments as one MPEG-TS file (a TS stream is a sequence of packets: they join as they are)."""
    path = job.output + ".ts-in"
    with open(path, "wb") as out:
        for name in job.inputs:
            with open(name, "rb") as part:
                shutil.copyfileobj(part, out, 1024 * 1024)
    return path


def remux(job: RemuxJob) -> RemuxResult:
    import av

    joined = _joined(job)
    shift = Fraction(0) if job.container == "mpegts" else TS_OFFSET
    packets = 0
    first: float | None = None
    last = 0.0
    try:
        with av.open(joined, "r", format="mpegts") as source, av.open(job.output, "w", format=job.container) as out:
            wanted = [s for s in source.streams if s.type == "audio" or (s.type == "video" and not job.audio_only)]
            if not wanted:
                raise ValueError("the segments hold no stream to write")
            streams = {s.index: out.add_stream_from_template(s) for s in wanted}
            for packet in source.demux(wanted):
                if packet.dts is None or packet.size == 0:  # the demuxer's flush packets
                    continue
                time_base = packet.time_base
                offset = round(shift / time_base)
                packet.pts = None if packet.pts is None else packet.pts - offset
                packet.dts -= offset
                start = float((packet.pts if packet.pts is not None else packet.dts) * time_base)
                first = start if first is None else min(first, start)
                last = max(last, start + float((packet.duration or 0) * time_base))
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
                packets += 1
    finally:
        os.unlink(joined)
    return RemuxResult(os.path.getsize(job.output), packets, last - (first or 0.0))
