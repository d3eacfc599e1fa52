"""What encoding without B-frames costs in bitrate, at livetx's default settings.

livetx encodes every segment without B-frames, so that DTS equal PTS and rise one frame at a time
across segment joins (the README says why). This measures the price: the same source through
libx264 veryfast crf 23 with x264's default 3 B-frames and with none, then size and quality
against the lossless source (ffmpeg's psnr and ssim filters). The source is FFmpeg's mandelbrot
zoom, lossless, so fine moving detail makes the difference visible. Needs the ffmpeg CLI.

    python benchmarks/bframes_cost.py [--seconds 10]

Writes benchmarks/results/bframes_cost.json. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stderr


def measure(src: Path, out: Path, bframes: int) -> dict[str, float]:
    run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
         "-x264-params", f"bframes={bframes}", "-f", "mpegts", str(out)])  # fmt: skip
    log = run(["ffmpeg", "-i", str(out), "-i", str(src), "-lavfi", "[0:v][1:v]ssim;[0:v][1:v]psnr", "-f", "null", "-"])
    ssim = re.search(r"SSIM .*All:([0-9.]+)", log)
    psnr = re.search(r"PSNR .*average:([0-9.]+)", log)
    assert ssim and psnr, log[-500:]
    return {"bytes": out.stat().st_size, "ssim": float(ssim.group(1)), "psnr_db": float(psnr.group(1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "mandelbrot.mkv"
        run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "mandelbrot=s=1280x720:r=25", "-t", f"{args.seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", str(src)])  # fmt: skip
        with_b = measure(src, Path(tmp) / "b3.ts", 3)
        without_b = measure(src, Path(tmp) / "b0.ts", 0)
    result = {"with_bframes": with_b, "without_bframes": without_b, "size_ratio": without_b["bytes"] / with_b["bytes"]}
    print(f"{'':16}{'bytes':>12}{'SSIM':>9}{'PSNR dB':>9}")
    for name, row in (("3 B-frames", with_b), ("no B-frames", without_b)):
        print(f"{name:16}{row['bytes']:>12}{row['ssim']:>9.4f}{row['psnr_db']:>9.2f}")
    print(f"size without / with B-frames: {result['size_ratio']:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bframes_cost.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
