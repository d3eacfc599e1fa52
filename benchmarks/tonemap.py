"""Tone mapping (issue 21): what turning a 1080p HLG frame into an SDR BT.709 one costs livetx,
against the ffmpeg CLI doing the same with zimg (`zscale`) and its `tonemap` filter.

One source: `--frames` frames of 1920x1080 HEVC Main 10, HLG BT.2020, made here with PyAV's
libx265 from a moving gradient. Both sides decode the same file; the decode alone is timed
first and taken off, so what is compared is the colour step:

  - livetx: the worker's path (livetx/media/colour_frames.py): swscale to 16-bit RGB, the
    title's 33-point table through FFmpeg's lut3d (tetrahedral), swscale to 8-bit BT.709
    YCbCr, in this process, one thread per step as the worker runs them;
  - ffmpeg (the anchor): `ffmpeg -threads 1 -filter_threads 1 -i src -vf "zscale=t=linear:npl=1000,
    format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,
    format=yuv420p" -f null -`, the recipe most guides give, its wall time less the same
    command's without `-vf`.

    python benchmarks/tonemap.py [--frames 120]

Prints the milliseconds per frame of each and their ratio, and writes
benchmarks/results/tonemap.json. Not a pass/fail test; needs the ffmpeg CLI with zscale
(Debian's: apt-get install ffmpeg).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livetx.media.colour import BT2020, TRANSFER_HLG, ColourInfo
from livetx.media.colour_frames import FrameColour

WIDTH, HEIGHT = 1920, 1080
FFMPEG_CHAIN = "zscale=t=linear:npl=1000,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
RESULTS = Path(__file__).resolve().parent / "results" / "tonemap.json"


def make_source(path: Path, frames: int) -> None:
    """An HLG BT.2020 1080p HEVC Main 10 clip: a gradient that moves, 30 fps."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx265", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p10le"
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = BT2020, TRANSFER_HLG, BT2020, 1
        ctx.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        x = np.linspace(0, 1, WIDTH)[None, :]
        y = np.linspace(0, 1, HEIGHT)[:, None]
        for n in range(frames):
            luma = (64 + 876 * ((x + y / 2 + n / 60) % 1)).astype(np.uint16)
            u = np.broadcast_to((512 + 300 * (x[:, ::2] - 0.5)).astype(np.uint16), (HEIGHT // 2, WIDTH // 2))
            v = np.broadcast_to((512 + 300 * (y[::2] - 0.5)).astype(np.uint16), (HEIGHT // 2, WIDTH // 2))
            frame = av.VideoFrame.from_ndarray(np.concatenate([luma, u, v], axis=None).reshape(-1, WIDTH), format="yuv420p10le")
            frame.pts, frame.time_base = n, Fraction(1, 30)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        return list(container.decode(stream))


def livetx_ms(frames: list[av.VideoFrame]) -> tuple[float, float]:
    """(wall, CPU) milliseconds per frame of the worker's conversion, in this process."""
    colour = ColourInfo(BT2020, TRANSFER_HLG, BT2020, False)
    converter = FrameColour(colour, "sdr", WIDTH, HEIGHT)
    converter.scale(frames[0], WIDTH, HEIGHT, "yuv420p")  # the table's file and graph, made once per worker
    began, cpu = time.perf_counter(), time.process_time()
    for frame in frames:
        converter.scale(frame, WIDTH, HEIGHT, "yuv420p")
    return (time.perf_counter() - began) * 1000 / len(frames), (time.process_time() - cpu) * 1000 / len(frames)


def ffmpeg_seconds(path: Path, chain: str | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one ffmpeg run."""
    command = ["ffmpeg", "-v", "error", "-threads", "1", "-filter_threads", "1", "-i", str(path)]
    command += ["-vf", chain] if chain else []
    command += ["-f", "null", "-"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - began, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs the ffmpeg CLI with zscale (apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "hlg1080.mp4"
        make_source(source, args.frames)
        frames = decoded(source)
        ours, ours_cpu = livetx_ms(frames)
        decode_only = ffmpeg_seconds(source, None)
        with_chain = ffmpeg_seconds(source, FFMPEG_CHAIN)
    theirs = (with_chain[0] - decode_only[0]) * 1000 / args.frames
    theirs_cpu = (with_chain[1] - decode_only[1]) * 1000 / args.frames
    result = {
        "frames": args.frames,
        "size": f"{WIDTH}x{HEIGHT}",
        "livetx_ms_per_frame": {"wall": round(ours, 2), "cpu": round(ours_cpu, 2)},
        "ffmpeg_zscale_tonemap_ms_per_frame": {"wall": round(theirs, 2), "cpu": round(theirs_cpu, 2)},
        "ratio": {"wall": round(ours / theirs, 3), "cpu": round(ours_cpu / theirs_cpu, 3)},
        "ffmpeg_chain": FFMPEG_CHAIN,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'ms per 1080p frame':34}{'wall':>10}{'CPU':>10}")
    print(f"{'livetx (swscale + lut3d 33³)':34}{ours:>10.1f}{ours_cpu:>10.1f}")
    print(f"{'ffmpeg zscale + tonemap=hable':34}{theirs:>10.1f}{theirs_cpu:>10.1f}")
    print(f"{'ratio livetx / ffmpeg':34}{ours / theirs:>10.3f}{ours_cpu / theirs_cpu:>10.3f}")


if __name__ == "__main__":
    main()
