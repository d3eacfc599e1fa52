"""Issue 16 design probe: can one subtitle segment be read from a seek, without reading the file?

Writes a 20 s MKV and MP4 (64x64 video, 2 s GOP, an SRT / mov_text track whose cues start every
3 s and last 2.5 s, plus one long cue 8-14 s), seeks to 12 s, demuxes only the subtitle
stream (discard=all on the others) and prints which cues come out and how many bytes were read.

Run from the worktree: /work/main/.venv/bin/python docs/probes/subtitle_seek.py  (well under 1 s of CPU)
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.stream import Discard
from av.subtitles.subtitle import SubtitleSet
from tracks import ASS_HEADER, Counting  # same folder

SECONDS, FPS = 20, 25
CUES = [(Fraction(t), Fraction(t) + Fraction(5, 2)) for t in range(0, SECONDS, 3)]
LONG = (Fraction(8), Fraction(14))


def write(path: Path, fmt: str, codec: str) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        v.options = {"preset": "ultrafast", "x264-params": "keyint=50:min-keyint=50:scenecut=0"}
        s = out.add_stream(codec)
        s.metadata["language"] = "eng"
        s.codec_context.subtitle_header = ASS_HEADER
        s.time_base = Fraction(1, 1000)
        packets = []
        rng = np.random.default_rng(1)
        for i in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            packets += v.encode(frame)
        packets += v.encode(None)
        cues = sorted([*CUES, LONG]) if codec != "mov_text" else CUES  # mov_text cannot overlap
        for start, end in cues:
            text = f"0,0,Default,,0,0,0,,t={float(start):.3f}".encode()
            pkt = s.codec_context.encode_subtitle(SubtitleSet.create(text, 0, int((end - start) * 1000), int(start * 1_000_000)))
            pkt.stream, pkt.time_base = s, s.time_base
            pkt.pts = pkt.dts = int(start * 1000)
            pkt.duration = int((end - start) * 1000)
            packets.append(pkt)
        packets.sort(key=lambda p: p.dts * p.time_base if p.dts is not None else -1)
        for p in packets:
            if p.size:
                out.mux(p)


def read_from(path: Path, at: float, anchor: str) -> None:
    with Counting(str(path)) as f, av.open(f) as c:
        sub = c.streams.subtitles[0]
        video = c.streams.video[0]
        for s in c.streams:
            if s is not sub:
                s.discard = Discard.all
        seek_stream = sub if anchor == "subtitle" else video
        assert seek_stream.time_base is not None
        try:
            c.seek(int(at / seek_stream.time_base), stream=seek_stream, backward=True, any_frame=anchor == "subtitle")
        except av.FFmpegError as exc:
            print(f"  seek on {anchor}: {exc!r}")
            return
        got = []
        for packet in c.demux(sub):
            if packet.pts is None or not packet.size:
                continue
            start = packet.pts * packet.time_base
            text = [r.dialogue.decode() for r in sub.decode(packet) if r.type == b"ass"]
            got.append(f"{float(start):g}-{float(start + packet.duration * packet.time_base):g}:{''.join(text)}")
            if start > at + 3:
                break
        print(
            f"  seek {at} s on the {anchor} stream -> {got[:6]}; read {f.read_bytes} of {path.stat().st_size} bytes;"
            f" index entries: subtitle {len(sub.index_entries)}, video {len(video.index_entries)}"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt, codec in (("seek.mkv", "matroska", "subrip"), ("seek.mp4", "mp4", "mov_text")):
            path = Path(tmp) / name
            write(path, fmt, codec)
            print(f"== {name}")
            for anchor in ("video", "subtitle"):
                read_from(path, 12.0, anchor)


def index_probe() -> None:
    """The MKV subtitle track's cue index: empty at open (parsed lazily), complete after one seek."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.mkv"
        write(path, "matroska", "subrip")
        with Counting(str(path)) as f, av.open(f) as c:
            sub = c.streams.subtitles[0]
            before = len(sub.index_entries)
            c.seek(0, stream=sub, backward=True, any_frame=True)
            entries = [(e.timestamp * sub.time_base, e.pos, e.size) for e in sub.index_entries]
            print(
                f"== index.mkv: subtitle index entries at open {before}, after a seek {len(entries)}:"
                f" {[(float(t), p) for t, p, _ in entries]}; read {f.read_bytes} bytes"
            )


if __name__ == "__main__":
    main()
    index_probe()
