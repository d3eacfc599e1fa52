"""Copy renditions (issue 22): what a copied (remuxed) segment costs against a transcoded one of
the same window, and its bytes against the source's for that window.

One synthetic source: 1280x720 30 fps H.264 (x264 superfast, a keyframe every 2 s) with AAC,
`--seconds` long, in MP4. For each of `--rounds` windows of 6 s (on keyframes), in this
process, one after another:

  - the copy: `vcodec=copy` (the source's packets into fMP4), AAC made on its grid as every
    rendition's is, and the same without audio (the video's own cost);
  - the anchor: an H.264 rendition of the same size and window (x264 veryfast, crf 23), fMP4,
    with the same audio.

Each is timed (wall, and this process's CPU: the workers' encoder threads run in it). Medians
are printed with their ratios, and the copy's bytes against the source's packets in the window.

    python benchmarks/copy_cost.py [--seconds 60] [--rounds 5]

Writes benchmarks/results/copy_cost.json. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livetx.media.model import AudioSpec, SegmentJob, VideoSpec
from livetx.media.sample import SampleSpec, write_sample
from livetx.media.transcode import transcode_segment

WINDOW = Fraction(6)
RESULTS = Path(__file__).resolve().parent / "results" / "copy_cost.json"


def timed(make: Callable[[], bytes]) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    size = len(make())
    return time.perf_counter() - wall, time.process_time() - cpu, size


def segment(job: SegmentJob) -> bytes:
    return transcode_segment(job).data


def source_bytes(path: Path, start: Fraction, stop: Fraction) -> int:
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        assert stream.time_base is not None
        return sum(p.size for p in src.demux(stream) if p.pts is not None and start <= p.pts * stream.time_base < stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "source.mp4"
        spec = SampleSpec(seconds=float(args.seconds), gop=60)
        write_sample(path, spec)
        fps = spec.fps
        audio = AudioSpec(48000, 2)

        def job(codec: str, start: Fraction, with_audio: bool = True) -> SegmentJob:
            video = VideoSpec(codec, spec.width, spec.height, fps, crf=None if codec == "copy" else 23.0)
            return SegmentJob(
                str(path),
                Fraction(0),
                start,
                start + WINDOW,
                video,
                audio if with_audio else None,
                video_stream=0,
                audio_stream=1 if with_audio else None,
                container="fmp4",
            )

        rows: dict[str, list[tuple[float, float, int]]] = {"copy": [], "copy, video only": [], "transcode": []}
        ratio_bytes = []
        last = Fraction(args.seconds) - WINDOW
        for n in range(args.rounds):
            start = (last * n / max(1, args.rounds - 1)) // 2 * 2  # on a keyframe (every 2 s)
            rows["copy"].append(timed(partial(segment, job("copy", start))))
            rows["copy, video only"].append(timed(partial(segment, job("copy", start, False))))
            rows["transcode"].append(timed(partial(segment, job("h264", start))))
            ratio_bytes.append(rows["copy, video only"][-1][2] / source_bytes(path, start, start + WINDOW))
    medians = {name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)) for name, runs in rows.items()}
    anchor_wall, anchor_cpu = medians["transcode"]
    result = {
        "source": f"{spec.width}x{spec.height} {fps} fps H.264 + AAC, keyframe every 2 s, {args.seconds} s",
        "window_s": float(WINDOW),
        "rounds": args.rounds,
        "seconds": {name: {"wall": round(w, 4), "cpu": round(c, 4)} for name, (w, c) in medians.items()},
        "ratio_to_transcode": {
            name: {"wall": round(w / anchor_wall, 3), "cpu": round(c / anchor_cpu, 3)} for name, (w, c) in medians.items()
        },
        "copy_video_bytes_vs_source_window": round(statistics.median(ratio_bytes), 4),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'6 s window, median':24}{'wall s':>9}{'CPU s':>9}{'wall ×':>9}{'CPU ×':>9}")
    for name, (wall, cpu) in medians.items():
        print(f"{name:24}{wall:>9.3f}{cpu:>9.3f}{wall / anchor_wall:>9.3f}{cpu / anchor_cpu:>9.3f}")
    print(f"copy's video bytes / the source's in the window: {result['copy_video_bytes_vs_source_window']}")


if __name__ == "__main__":
    main()
