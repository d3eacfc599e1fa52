"""Whole-title CPU of per-segment transcoding against ffmpeg's one-pass HLS encode, and seek cost.

1. A 1080p H.264 source (synthetic, PyAV) is transcoded to 720p as independent segments,
   one after another in this process; its CPU time (user + sys, all threads) is compared
   with `ffmpeg -f hls` encoding the same title in one pass with the same encoder settings.
2. Seek cost: on a 10-minute source, a 10 s segment at 90 % of the title against one at 10 %.

Writes benchmarks/results/transcode_cost.json. Not a pass/fail test; needs the ffmpeg CLI for (1).

    python benchmarks/transcode_cost.py [--seconds 40] [--segment 4] [--long-minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment

RESULTS = Path(__file__).resolve().parent / "results"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-x264-params", "open-gop=0", "-c:a", "aac", "-b:a", "128k"]


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def job(src: Path, start: Fraction, stop: Fraction, fps: Fraction) -> SegmentJob:
    video = VideoSpec("h264", 1280, 720, fps, preset="veryfast")
    return SegmentJob(str(src), Fraction(0), start, stop, video, AudioSpec(48000, 2, 128000), 0, 1)


def whole_title(tmp: Path, seconds: float, segment: int) -> dict[str, float]:
    src = tmp / "title1080.mp4"
    write_sample(src, SampleSpec(seconds=seconds, width=1920, height=1080, gop=60))
    fps = probe(str(src)).video.fps  # type: ignore[union-attr]
    before, began = cpu(resource.RUSAGE_SELF), time.perf_counter()
    for start in range(0, int(seconds), segment):
        transcode_segment(job(src, Fraction(start), Fraction(min(start + segment, seconds)), fps))
    row = {"livetx_cpu_s": cpu(resource.RUSAGE_SELF) - before, "livetx_wall_s": time.perf_counter() - began}
    if shutil.which("ffmpeg"):
        out = tmp / "hls"
        out.mkdir()
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", "scale=1280:720", *X264]
        cmd += ["-f", "hls", "-hls_time", str(segment), "-hls_playlist_type", "vod", str(out / "index.m3u8")]
        before, began = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, check=True)
        row |= {"ffmpeg_cpu_s": cpu(resource.RUSAGE_CHILDREN) - before, "ffmpeg_wall_s": time.perf_counter() - began}
        row["cpu_ratio"] = row["livetx_cpu_s"] / row["ffmpeg_cpu_s"]
        row["wall_ratio"] = row["livetx_wall_s"] / row["ffmpeg_wall_s"]
    return row


def seek_cost(tmp: Path, minutes: float) -> dict[str, float]:
    seconds = minutes * 60
    src = tmp / "long.mp4"
    write_sample(src, SampleSpec(seconds=seconds, width=640, height=360, gop=60, preset="ultrafast"))
    fps = probe(str(src)).video.fps  # type: ignore[union-attr]
    times = {}
    for share in (0.1, 0.9):
        start = Fraction(round(seconds * share))
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            transcode_segment(job(src, start, start + 10, fps))
            runs.append(time.perf_counter() - began)
        times[f"at_{int(share * 100)}pct_s"] = min(runs)
    times["ratio_90_over_10"] = times["at_90pct_s"] / times["at_10pct_s"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--segment", type=int, default=4)
    parser.add_argument("--long-minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "machine": {"cpus": os.cpu_count()},
            "whole_title": whole_title(Path(tmp), args.seconds, args.segment),
            "seek": seek_cost(Path(tmp), args.long_minutes),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transcode_cost.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
