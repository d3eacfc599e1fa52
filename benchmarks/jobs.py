"""Background jobs (livetx/batch/): throughput of a file job against the ffmpeg CLI making the
same file.

One synthetic H.264/AAC source (1280x720, 30 fps, 2 s GOP, `--seconds` long) is made into an
MP4 of the same size three ways, each from a cold cache, one after another:

  - ffmpeg (the anchor, run by this script): `ffmpeg -i src -c:v libx264 -preset veryfast -crf 23
    -x264-params bframes=0 -c:a aac -b:a 128k out.mp4`, its wall time and CPU (user + sys of
    the child);
  - a livetx job of the source as one clip (`POST /api/v1/jobs`, CRF 23, veryfast, AAC 128
    kbit/s: the same encoder settings), timed from the POST to the record's `succeeded`: the
    segments made at `Priority.JOB` by the server's workers (`transcode.workers` 2), joined
    without re-encoding, written in one PUT; its CPU is the server's and its workers' (/proc);
  - the same source as 3 clips of a third each (a composite: the joins' path), timed the same.

Each livetx run uses its own hard link of the source under a new key, so no segment is shared
with an earlier run. Throughput is seconds of media made per wall second; the ratio is livetx's
over ffmpeg's (above 1: livetx faster). Each file is checked (frames, duration) before it counts.
`--rounds N`: each case N times, the medians kept.

    python benchmarks/jobs.py [--seconds 60] [--rounds 1]

Writes benchmarks/results/jobs.json and prints a table. Not a pass/fail test; needs the ffmpeg
CLI (apt-get install ffmpeg).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import av

from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import Server, launch_server

RESULTS = Path(__file__).resolve().parent / "results"
FFMPEG = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-x264-params", "bframes=0", "-c:a", "aac", "-b:a", "128k"]
ENCODER = {"Video": {"TranscodeVideo": {"CRF": 23, "Preset": "veryfast"}}, "Audio": {"TranscodeAudio": {"Bitrate": 128000}}}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + sys seconds of `pid` and its children (the server's workers), living or reaped."""
    total = 0.0
    for task in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
        total += (utime + stime + cutime + cstime) / CLOCK_TICKS
    return total


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    found = [int(x) for x in out.split()]
    return found + [grand for child in found for grand in children(child)]


def frames_and_seconds(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        count = sum(1 for _ in container.demux(video) if _.size)
        return count, float(container.duration or 0) / av.time_base


def ffmpeg_run(src: Path, out: Path) -> dict[str, float]:
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *FFMPEG, str(out)], check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def call(server: Server, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    request = urllib.request.Request(server.base_url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def job_run(server: Server, clips: list[dict[str, Any]], output: str) -> dict[str, float]:
    body = {"Clips": clips, **ENCODER, "Output": {"URI": f"oss://local/{output}", "Format": "mp4"}}
    cpu_before, began = process_cpu(server.process.pid), time.perf_counter()
    submitted = call(server, "POST", "/api/v1/jobs", body)
    while (record := call(server, "GET", f"/api/v1/jobs/{submitted['JobId']}"))["State"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.05)  # a measurement's poll, not a test's synchronisation
    wall = time.perf_counter() - began
    if record["State"] != "succeeded":
        raise RuntimeError(f"job {record['JobId']} {record['State']}: {record['Error']}")
    return {"wall_s": wall, "cpu_s": process_cpu(server.process.pid) - cpu_before}


def measure(seconds: float, rounds: int) -> dict[str, Any]:
    spec = SampleSpec(seconds=seconds, width=1280, height=720, fps=Fraction(30), gop=60)
    frames = round(seconds * 30)
    runs: dict[str, list[dict[str, float]]] = {"ffmpeg": [], "job_1_clip": [], "job_3_clips": []}
    with tempfile.TemporaryDirectory(prefix="livetx-jobs-bench-") as tmp_name:
        tmp = Path(tmp_name)
        media = tmp / "media"
        media.mkdir()
        src = media / "src.mp4"
        write_sample(src, spec)
        env = {"LIVETX_TRANSCODE_WORKERS": "2", "LIVETX_JOBS_POLL": "0.2", "LIVETX_CACHE_LOOKAHEAD": "false"}
        with launch_server(tmp / "home", media, **env) as server:
            for r in range(rounds):
                out = tmp / f"ffmpeg-{r}.mp4"
                runs["ffmpeg"].append(ffmpeg_run(src, out))
                check(out, frames, seconds)
                one = f"one-{r}.mp4"
                os.link(src, media / one)
                runs["job_1_clip"].append(job_run(server, [{"URI": f"oss://local/{one}"}], f"out/{one}"))
                check(media / ".livetx" / "out" / one, frames, seconds)
                third = seconds / 3
                clips = []
                for i in range(3):
                    name = f"three-{r}-{i}.mp4"
                    os.link(src, media / name)
                    clips.append({"URI": f"oss://local/{name}", "StartTime": i * third, "Duration": third})
                runs["job_3_clips"].append(job_run(server, clips, f"out/three-{r}.mp4"))
                check(media / ".livetx" / "out" / f"three-{r}.mp4", frames, seconds)
    median = {case: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for case, rs in runs.items()}
    anchor = median["ffmpeg"]
    for case in ("job_1_clip", "job_3_clips"):
        row = median[case]
        row["throughput_x"] = seconds / row["wall_s"]
        row["throughput_ratio_over_ffmpeg"] = anchor["wall_s"] / row["wall_s"]
        row["cpu_ratio_over_ffmpeg"] = row["cpu_s"] / anchor["cpu_s"]
    anchor["throughput_x"] = seconds / anchor["wall_s"]
    return {"media_s": seconds, "rounds": rounds, "runs": runs, "median": median}


def check(path: Path, frames: int, seconds: float) -> None:
    """A file counts only if it holds the whole title."""
    count, duration = frames_and_seconds(path)
    if count != frames or abs(duration - seconds) > 0.1:
        raise RuntimeError(f"{path.name}: {count} frames, {duration:.3f} s; expected {frames}, {seconds} s")


def table(results: dict[str, Any]) -> str:
    median = results["median"]
    machine = results["machine"]
    lines = [
        f"{results['media_s']:.0f} s of 1280x720 30 fps to MP4 (median of {results['rounds']}; "
        f"load average {machine['load_before']:.2f} before)",
        "",
    ]
    lines.append(f"{'case':<34} {'wall s':>7} {'CPU s':>7} {'x real':>7} {'vs ffmpeg':>10} {'CPU ratio':>10}")
    for case, label in (("ffmpeg", "ffmpeg CLI (anchor)"), ("job_1_clip", "livetx job, 1 clip"), ("job_3_clips", "livetx job, 3 clips")):
        row = median[case]
        ratio = f"{row['throughput_ratio_over_ffmpeg']:.2f}" if "throughput_ratio_over_ffmpeg" in row else "-"
        cpu_ratio = f"{row['cpu_ratio_over_ffmpeg']:.2f}" if "cpu_ratio_over_ffmpeg" in row else "-"
        lines.append(f"{label:<34} {row['wall_s']:>7.2f} {row['cpu_s']:>7.2f} {row['throughput_x']:>7.2f} {ratio:>10} {cpu_ratio:>10}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs the ffmpeg CLI: apt-get install ffmpeg")
    # the machine is shared: the 1-minute load average before the run says how quiet it was
    # (after it, the run's own x264 threads are in it)
    results = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}, **measure(args.seconds, args.rounds)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "jobs.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
