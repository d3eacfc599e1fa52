"""Cold latency of single segments: livetx's warm worker against the ffmpeg CLI, same encoder settings.

Generates a synthetic 1920x1080 H.264 source (PyAV), then for a 2 s segment at t=0 and a
10 s segment mid-title, each scaled to 1280x720, measures:
  - livetx: `transcode_segment` in a warm worker process (what the server's pool does);
  - ffmpeg: `ffmpeg -ss S -i SRC -t D -vf scale=1280:720 -c:v libx264 -preset veryfast -crf 23
    -x264-params bframes=0 -c:a aac -f mpegts` (livetx encodes without B-frames too)
    as a fresh process (skipped when the ffmpeg CLI is absent).
Prints a table and writes benchmarks/results/segment_latency.json. Not a pass/fail test.

    python benchmarks/segment_latency.py [--seconds 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment

RESULTS = Path(__file__).resolve().parent / "results"


def warm() -> None:
    import av  # noqa: F401


def timed_job(job: SegmentJob) -> float:
    began = time.perf_counter()
    transcode_segment(job)
    return time.perf_counter() - began


def ffmpeg_time(src: Path, start: float, duration: float, out: Path) -> float:
    cmd = ["ffmpeg", "-v", "error", "-y", "-ss", f"{start}", "-i", str(src), "-t", f"{duration}", "-vf", "scale=1280:720"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-x264-params", "bframes=0"]
    cmd += ["-c:a", "aac", "-b:a", "128k", "-f", "mpegts", str(out)]
    began = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.mp4"
        write_sample(src, SampleSpec(seconds=args.seconds, width=1920, height=1080))
        info = probe(str(src))
        assert info.video and info.audio
        fps = info.video.fps
        cases = {"2s@0": (Fraction(0), Fraction(2)), "10s@mid": (Fraction(int(args.seconds // 2)), Fraction(10))}
        rows = {}
        with ProcessPoolExecutor(max_workers=1, initializer=warm) as pool:
            pool.submit(warm).result()
            for name, (start, length) in cases.items():
                job = SegmentJob(
                    str(src), info.start, start, start + length,
                    VideoSpec("h264", 1280, 720, fps, preset="veryfast"), AudioSpec(48000, 2, 128000),
                    info.video.index, info.audio.index,
                )  # fmt: skip
                ours = [pool.submit(timed_job, job).result() for _ in range(args.repeat)]
                row = {"livetx_s": statistics.median(ours)}
                if shutil.which("ffmpeg"):
                    theirs = [ffmpeg_time(src, float(start), float(length), Path(tmp) / "ff.ts") for _ in range(args.repeat)]
                    row["ffmpeg_s"] = statistics.median(theirs)
                    row["ratio"] = row["livetx_s"] / row["ffmpeg_s"]
                rows[name] = row
    machine = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "segment_latency.json").write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    print(f"machine: {machine}")
    print(f"{'case':10} {'livetx s':>9} {'ffmpeg s':>9} {'ratio':>6}")
    for name, row in rows.items():
        print(f"{name:10} {row['livetx_s']:9.3f} {row.get('ffmpeg_s', float('nan')):9.3f} {row.get('ratio', float('nan')):6.2f}")


if __name__ == "__main__":
    main()
