"""fMP4 (CMAF) renditions with B-frames: bytes and quality against ffmpeg's one-pass HLS, and their cost.

On the synthetic 1920x1080 30 fps H.264 source the other benchmarks use, scaled to 1280x720:

1. Bytes and quality. livetx makes every segment of a whole title on its own, in shuffled
   order, through the real code (a profile, `build_title`, the planner's windows, `Title.job`,
   `transcode_segment`), for three renditions: fMP4 H.264 and fMP4 HEVC (B-frames on) and
   MPEG-TS H.264 (no B-frames). The init segment and the segments, joined in order, are
   compared with ffmpeg's one-pass HLS of the same title with the same encoder settings
   (preset veryfast, livetx's default crf 23 for both codecs, closed GOP, x264/x265 default
   B-frames in fMP4, none in TS), each with an IDR forced at the same segment boundaries
   (`-force_key_frames`, `-forced-idr 1`). Quality: ffmpeg's ssim and psnr filters against the
   source scaled the same way (bicubic), frame by frame in decode order.
2. Cost. Whole-title CPU (user + sys, all threads) of livetx's segments and of each ffmpeg run
   (the runs in (1)); cold latency of a 2 s window at 0 and a 10 s window mid-title in a warm
   worker, per container, against a fresh `ffmpeg -ss S -t D` process with the same settings
   (fragmented MP4 with B-frames, or MPEG-TS without).

Writes benchmarks/results/cmaf_cost.json and prints a table. Not a pass/fail test; needs the
ffmpeg CLI (Debian's 5.1 is what the README's figures used).

    python benchmarks/cmaf_cost.py [--seconds 26] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from livetx.media.model import INIT, SegmentJob
from livetx.media.probe import probe
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment
from livetx.storage.base import ObjectInfo
from livetx.titles import Rendition, Title, build_title, parse_profile

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = "1280x720"
# the renditions measured, as a profile's config table would give them
RENDITIONS = {
    "h264_fmp4": {"vcodec": "h264", "container": "fmp4", "s": SIZE},
    "h264_ts": {"vcodec": "h264", "container": "ts", "s": SIZE},
    "h265_fmp4": {"vcodec": "h265", "container": "fmp4", "s": SIZE},
    "h264_lossless": {"vcodec": "h264", "container": "fmp4", "s": SIZE, "crf": 0},  # the scaler check alone
}
ANCHOR_OF = {"h264_fmp4": "h264_fmp4", "h264_ts": "h264_fmp4", "h265_fmp4": "h265_fmp4"}  # what each is compared with


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stderr


def encoder_args(rendition: Rendition) -> list[str]:
    """ffmpeg's encoder options for what livetx makes of `rendition` (`_open_video`'s settings)."""
    video, audio = rendition.video, rendition.audio
    assert video is not None and audio is not None and video.crf is not None
    params = "open-gop=0" + (":bframes=0" if rendition.container == "ts" else "")
    if video.codec == "h264":
        args = ["-c:v", "libx264", "-x264-params", params]
    else:
        args = ["-c:v", "libx265", "-x265-params", params, "-tag:v", "hvc1"]
    args += ["-preset", video.preset, "-crf", f"{video.crf:g}", "-forced-idr", "1", "-pix_fmt", video.pix_fmt]
    return [*args, "-c:a", "aac", "-b:a", str(audio.bitrate), "-ar", str(audio.sample_rate), "-ac", str(audio.channels)]


def ffmpeg_title(src: Path, title: Title, rendition: Rendition, out: Path) -> tuple[Path, float, float]:
    """ffmpeg's one-pass HLS of the whole title, IDRs at the planner's boundaries, joined into
    one file: (file, CPU s, wall s)."""
    video = rendition.video
    assert video is not None
    out.mkdir()
    keys = ",".join(f"{float(w.start):.6f}" for w in rendition.windows)
    fmp4 = rendition.container == "fmp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-t", f"{float(title.duration):.6f}"]
    cmd += ["-vf", f"scale={video.width}:{video.height}", *encoder_args(rendition), "-force_key_frames", keys]
    cmd += ["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]
    cmd += ["-hls_segment_filename", str(out / ("%03d.m4s" if fmp4 else "%03d.ts"))]
    if fmp4:
        cmd += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"]
    before, began = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    run([*cmd, str(out / "index.m3u8")])
    spent, wall = cpu(resource.RUSAGE_CHILDREN) - before, time.perf_counter() - began
    parts = [out / "init.mp4"] if fmp4 else []
    parts += [out / line for line in (out / "index.m3u8").read_text().splitlines() if line and not line.startswith("#")]
    joined = out.with_suffix(".mp4" if fmp4 else ".ts")
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    return joined, spent, wall


def livetx_title(src: Path, title: Title, rendition: Rendition, out: Path, seed: int) -> tuple[Path, float, float]:
    """Every segment made alone, in shuffled order, in this process; init + segments joined in
    order: (file, CPU s, wall s)."""
    order = list(range(len(rendition.windows)))
    random.Random(seed).shuffle(order)
    made: dict[int, bytes] = {}
    before, began = cpu(resource.RUSAGE_SELF), time.perf_counter()
    init = transcode_segment(title.job(rendition, INIT, str(src))).data if rendition.container == "fmp4" else b""
    for index in order:
        made[index] = transcode_segment(title.job(rendition, index, str(src))).data
    spent, wall = cpu(resource.RUSAGE_SELF) - before, time.perf_counter() - began
    out.write_bytes(init + b"".join(made[i] for i in sorted(made)))
    return out, spent, wall


def measure(out: Path, src: Path, rendition: Rendition) -> dict[str, Any]:
    """Bytes (file, video packets) and SSIM/PSNR against the source scaled the same way,
    frames paired in order (FFmpeg's mp4 demuxer shows fMP4 video D late; see transcode.py)."""
    video = rendition.video
    assert video is not None
    sizes = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=size", "-of", "csv=p=0", str(out)],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    # frame n at n/fps on both sides, exactly (setpts=N/FPS/TB truncates, and pairs neighbours)
    order = f"settb={video.fps.denominator}/{video.fps.numerator},setpts=N"
    scaled = f"[1:v]scale={video.width}:{video.height},{order},split[b0][b1]"
    graph = f"[0:v]{order},split[a0][a1];{scaled};[a0][b0]ssim=shortest=1;[a1][b1]psnr=shortest=1"
    log = run(["ffmpeg", "-i", str(out), "-i", str(src), "-lavfi", graph, "-f", "null", "-"])
    ssim = re.search(r"SSIM .*All:([0-9.]+)", log)
    psnr = re.search(r"PSNR .*average:([0-9.]+)", log)
    assert ssim and psnr, log[-500:]
    return {
        "bytes": out.stat().st_size,
        "video_bytes": sum(int(s.split(",")[0]) for s in sizes),
        "video_frames": len(sizes),
        "ssim": float(ssim.group(1)),
        "psnr_db": float(psnr.group(1)),
    }


def quality(tmp: Path, src: Path, title: Title, seed: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for rendition in title.renditions:
        name = rendition.name
        if name not in ANCHOR_OF:
            continue
        suffix = "mp4" if rendition.container == "fmp4" else "ts"
        path, spent, wall = livetx_title(src, title, rendition, tmp / f"livetx_{name}.{suffix}", seed)
        rows[name] = {"livetx": measure(path, src, rendition) | {"cpu_s": spent, "wall_s": wall, "segments": len(rendition.windows)}}
        path, spent, wall = ffmpeg_title(src, title, rendition, tmp / f"ffmpeg_{name}")
        rows[name]["ffmpeg"] = measure(path, src, rendition) | {"cpu_s": spent, "wall_s": wall}
        print(f"{name}: {json.dumps(rows[name])}", flush=True)
    for name, row in rows.items():
        ours, theirs = row["livetx"], rows[ANCHOR_OF[name]]["ffmpeg"]
        row["anchor"] = f"ffmpeg {ANCHOR_OF[name]}"
        row["bytes_ratio"] = ours["bytes"] / theirs["bytes"]
        row["video_bytes_ratio"] = ours["video_bytes"] / theirs["video_bytes"]
        row["ssim_delta"] = ours["ssim"] - theirs["ssim"]
        row["psnr_delta_db"] = ours["psnr_db"] - theirs["psnr_db"]
        row["cpu_ratio"] = ours["cpu_s"] / row["ffmpeg"]["cpu_s"]  # against its own container's one-pass run
    return rows


def scaler_check(tmp: Path, src: Path, title: Title) -> dict[str, Any]:
    """Quality of livetx's first segment encoded losslessly (x264 crf 0): the ceiling its
    scaling (PyAV's FFmpeg) sets against the reference scaled by the ffmpeg CLI."""
    rendition = title.rendition("h264_lossless")
    out = tmp / "lossless.mp4"
    job = title.job(rendition, 0, str(src))
    out.write_bytes(transcode_segment(title.job(rendition, INIT, str(src))).data + transcode_segment(job).data)
    return measure(out, src, rendition)


def warm() -> None:
    import av  # noqa: F401


def timed_job(job: SegmentJob) -> float:
    began = time.perf_counter()
    transcode_segment(job)
    return time.perf_counter() - began


def ffmpeg_segment(src: Path, rendition: Rendition, start: float, duration: float, out: Path) -> float:
    """A fresh ffmpeg process making one segment, as a one-shot segmenter would."""
    video = rendition.video
    assert video is not None
    cmd = ["ffmpeg", "-v", "error", "-y", "-ss", f"{start}", "-i", str(src), "-t", f"{duration}"]
    cmd += ["-vf", f"scale={video.width}:{video.height}", *encoder_args(rendition)]
    if rendition.container == "fmp4":
        cmd += ["-f", "mp4", "-movflags", "frag_custom+empty_moov+default_base_moof+cmaf"]
    else:
        cmd += ["-f", "mpegts"]
    began = time.perf_counter()
    run([*cmd, str(out)])
    return time.perf_counter() - began


def latency(tmp: Path, src: Path, title: Title, repeat: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=1, initializer=warm) as pool:
        pool.submit(warm).result()
        for rendition in title.renditions:
            if rendition.name not in ("h264_fmp4", "h264_ts"):
                continue
            windows = rendition.windows
            short = windows[0]
            long = next(w for w in windows[len(windows) // 2 :] + windows if w.duration == 10)
            for case, window in (("2s@0", short), (f"10s@{float(long.start):g}", long)):
                job = title.job(rendition, window.index, str(src))
                ours = [pool.submit(timed_job, job).result() for _ in range(repeat)]
                out = tmp / f"seg_{rendition.name}"
                theirs = [ffmpeg_segment(src, rendition, float(window.start), float(window.duration), out) for _ in range(repeat)]
                row = {"livetx_s": statistics.median(ours), "ffmpeg_s": statistics.median(theirs)}
                row["ratio"] = row["livetx_s"] / row["ffmpeg_s"]
                rows[f"{rendition.name} {case}"] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=26.0, help="source length (default 26: 2,2,2,10,10 s segments)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per latency case (median)")
    parser.add_argument("--seed", type=int, default=15, help="segment order shuffle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        src = tmp / "title1080.mp4"
        write_sample(src, SampleSpec(seconds=args.seconds, width=1920, height=1080, gop=60))
        info = probe(str(src))
        profile = parse_profile("cmaf_cost", {"renditions": RENDITIONS})
        title = build_title(ObjectInfo(src.name, src.stat().st_size, "bench"), info, profile)
        assert [r.name for r in title.renditions] == list(RENDITIONS)
        results = {
            "machine": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
            "load1_before": os.getloadavg()[0],
            "seconds": float(title.duration),
            "segments_s": [float(w.duration) for w in title.renditions[0].windows],
            "quality": quality(tmp, src, title, args.seed),
            "scaler_ceiling": scaler_check(tmp, src, title),
            "latency": latency(tmp, src, title, args.repeat),
        }
    fmp4, ts = results["quality"]["h264_fmp4"]["livetx"], results["quality"]["h264_ts"]["livetx"]
    results["fmp4_over_ts"] = {
        "cpu": fmp4["cpu_s"] / ts["cpu_s"],
        "bytes": fmp4["bytes"] / ts["bytes"],
        **{case.split(" ", 1)[1]: row["livetx_s"] / results["latency"][f"h264_ts {case.split(' ', 1)[1]}"]["livetx_s"]
           for case, row in results["latency"].items() if case.startswith("h264_fmp4")},
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cmaf_cost.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'rendition':10} {'livetx bytes':>12} {'ffmpeg bytes':>12} {'ratio':>6} {'video':>6}", end="")
    print(f" {'SSIM':>14} {'PSNR dB':>13} {'CPU s':>11}")
    for name, row in results["quality"].items():
        ours, theirs = row["livetx"], row["ffmpeg"]
        anchor = results["quality"][ANCHOR_OF[name]]["ffmpeg"]
        print(
            f"{name:10} {ours['bytes']:12} {anchor['bytes']:12} {row['bytes_ratio']:6.3f} {row['video_bytes_ratio']:6.3f} "
            f"{ours['ssim']:.4f}/{anchor['ssim']:.4f} {ours['psnr_db']:.2f}/{anchor['psnr_db']:.2f} "
            f"{ours['cpu_s']:5.1f}/{theirs['cpu_s']:5.1f}"
        )
    print(f"\n{'latency case':22} {'livetx s':>9} {'ffmpeg s':>9} {'ratio':>6}")
    for case, row in results["latency"].items():
        print(f"{case:22} {row['livetx_s']:9.3f} {row['ffmpeg_s']:9.3f} {row['ratio']:6.2f}")
    ceiling = results["scaler_ceiling"]
    print(f"\nscaler ceiling (livetx lossless, 2 s): SSIM {ceiling['ssim']:.4f}, PSNR {ceiling['psnr_db']:.2f} dB")
    print(f"\nfMP4 over TS (livetx): {json.dumps(results['fmp4_over_ts'])}")


if __name__ == "__main__":
    main()
