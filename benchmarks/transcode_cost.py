"""Whole-title CPU of per-segment transcoding against ffmpeg's one-pass HLS encode, and seek cost.

1. A 1080p H.264 source (synthetic, PyAV) is transcoded to 720p as independent segments,
   one after another in this process, under two plans (the default 2,2,2 s then 10 s, and
   uniform 4 s segments); its CPU time (user + sys, all threads) is compared
   with `ffmpeg -f hls` encoding the same title in one pass with the same encoder settings.
2. Seek cost: on a 10-minute 1080p source (to 720p), a 10 s segment at 90 % of the title against one at 10 %.

Writes benchmarks/results/transcode_cost.json. Not a pass/fail test; needs the ffmpeg CLI for (1).

    python benchmarks/transcode_cost.py [--seconds 40] [--long-minutes 10]
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
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-x264-params", "open-gop=0:bframes=0", "-c:a", "aac", "-b:a", "128k"]


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def job(src: Path, start: Fraction, stop: Fraction, fps: Fraction) -> SegmentJob:
    video = VideoSpec("h264", 1280, 720, fps, preset="veryfast")
    return SegmentJob(str(src), Fraction(0), start, stop, video, AudioSpec(48000, 2, 128000), 0, 1)


def boundaries(seconds: float, initial: list[int], regular: int) -> list[tuple[Fraction, Fraction]]:
    """Segment windows: the initial segments, then regular ones, the last cut at the end."""
    edges, at = [], 0
    for length in initial:
        edges.append((at, at + length))
        at += length
    while at < seconds:
        edges.append((at, at + regular))
        at += regular
    return [(Fraction(a), Fraction(min(b, seconds))) for a, b in edges if a < seconds]


PLANS = {
    "default 2,2,2 then 10 s": ([2, 2, 2], 10),
    "4 s segments": ([], 4),
}


def whole_title(tmp: Path, seconds: float) -> dict[str, dict[str, float]]:
    src = tmp / "title1080.mp4"
    write_sample(src, SampleSpec(seconds=seconds, width=1920, height=1080, gop=60))
    fps = probe(str(src)).video.fps  # type: ignore[union-attr]
    rows: dict[str, dict[str, float]] = {}
    for name, (initial, regular) in PLANS.items():
        before, began = cpu(resource.RUSAGE_SELF), time.perf_counter()
        for start, stop in boundaries(seconds, initial, regular):
            transcode_segment(job(src, start, stop, fps))
        rows[name] = {"livetx_cpu_s": cpu(resource.RUSAGE_SELF) - before, "livetx_wall_s": time.perf_counter() - began}
    if shutil.which("ffmpeg"):
        out = tmp / "hls"
        out.mkdir()
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", "scale=1280:720", *X264]
        cmd += ["-f", "hls", "-hls_time", "10", "-hls_playlist_type", "vod", str(out / "index.m3u8")]
        before, began = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, check=True)
        one_pass = {"ffmpeg_cpu_s": cpu(resource.RUSAGE_CHILDREN) - before, "ffmpeg_wall_s": time.perf_counter() - began}
        for row in rows.values():
            row |= one_pass
            row["cpu_ratio"] = row["livetx_cpu_s"] / row["ffmpeg_cpu_s"]
            row["wall_ratio"] = row["livetx_wall_s"] / row["ffmpeg_wall_s"]
    return rows


def seek_cost(tmp: Path, minutes: float) -> dict[str, float]:
    seconds = minutes * 60
    src = tmp / "long.mp4"
    write_sample(src, SampleSpec(seconds=seconds, width=1920, height=1080, gop=60, preset="ultrafast"))
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
    parser.add_argument("--long-minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "machine": {"cpus": os.cpu_count()},
            "whole_title": whole_title(Path(tmp), args.seconds),
            "seek": seek_cost(Path(tmp), args.long_minutes),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transcode_cost.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
