"""Pictures (issue 20): the latency of a cold snapshot against `ffmpeg -ss T -i src -frames:v 1`,
and what a storyboard costs per minute of title.

One synthetic H.264/AAC source (1280x720, 30 fps, 2 s GOP, `--seconds` long). Each round:

  - ffmpeg (the anchor, run by this script): `ffmpeg -ss T -i src -frames:v 1 -q:v 3 out.jpg`,
    an input seek (to the keyframe before T, then decoded to T: the exact frame), its wall time;
  - a livetx snapshot of a fresh hard link of the source (a new title: nothing cached, the
    title's probe included, as a first viewer's would), `GET .../snapshot.jpg?t=<T ms>` timed
    from the request to the last byte; then the same with `mode=key` (the keyframe before T,
    no decoding past it) on another fresh link; then the first URL again (served from cache).
  - a storyboard of another fresh link: `storyboard.vtt` and then every sheet it names, one
    after another, timed, with the CPU of the server and its workers (/proc): seconds of wall
    and CPU per minute of title.

T is mid-GOP (the keyframe 1.5 s before it): the exact frame costs a GOP's worth of decoding,
as most times a viewer picks would. Each picture is checked (it decodes, at the size asked)
before it counts. `--rounds N`: N rounds, the medians kept.

    python benchmarks/pictures.py [--seconds 60] [--rounds 3]

Writes benchmarks/results/pictures.json and prints a table. Not a pass/fail test; needs the
ffmpeg CLI (apt-get install ffmpeg).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from PIL import Image

from benchmarks.jobs import call, process_cpu
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import Server, launch_server

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH = 1280


def fetch(url: str) -> tuple[float, bytes]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - began, body


def title_url(server: Server, key: str, name: str, query: str = "") -> str:
    """A URL of `name` under the title's prefix, with a title-scoped token."""
    signed = call(server, "POST", "/api/v1/sign", {"key": key, "scope": "title"})["url"]
    parts = urllib.parse.urlsplit(signed)
    path = parts.path.rsplit("/", 1)[0] + "/" + name
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "&".join(q for q in (query, parts.query) if q), ""))


def ffmpeg_snapshot(src: Path, at: float, out: Path) -> float:
    began = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{at:.3f}", "-i", str(src), "-frames:v", "1", "-q:v", "3", str(out)], check=True)
    return time.perf_counter() - began


def check(body: bytes, width: int) -> None:
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        if image.width != width:
            raise RuntimeError(f"a picture {image.width} wide, not {width}")


def storyboard(server: Server, key: str) -> dict[str, float]:
    cpu_before, began = process_cpu(server.process.pid), time.perf_counter()
    vtt_url = title_url(server, key, "storyboard.vtt")
    _, text = fetch(vtt_url)
    sheets = list(dict.fromkeys(re.findall(r"^(\S+?)#xywh=", text.decode(), flags=re.MULTILINE)))
    for sheet in sheets:
        _, body = fetch(urllib.parse.urljoin(vtt_url, sheet))
        with Image.open(io.BytesIO(body)) as image:
            image.load()
    return {"wall_s": time.perf_counter() - began, "cpu_s": process_cpu(server.process.pid) - cpu_before, "sheets": len(sheets)}


def measure(seconds: float, rounds: int) -> dict[str, Any]:
    spec = SampleSpec(seconds=seconds, width=WIDTH, height=720, fps=Fraction(30), gop=60)
    at = min(seconds - 1, 31.5)  # 1.5 s past a keyframe (every 2 s)
    runs: dict[str, list[float]] = {"ffmpeg": [], "snapshot_cold": [], "snapshot_key_cold": [], "snapshot_cached": []}
    boards: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="livetx-pictures-bench-") as tmp_name:
        tmp = Path(tmp_name)
        media = tmp / "media"
        media.mkdir()
        src = media / "src.mp4"
        write_sample(src, spec)
        env = {"LIVETX_TRANSCODE_WORKERS": "2", "LIVETX_CACHE_LOOKAHEAD": "false", "LIVETX_PROFILES_DEFAULT_INITD": "0"}
        with launch_server(tmp / "home", media, **env) as server:
            for r in range(rounds):
                runs["ffmpeg"].append(ffmpeg_snapshot(src, at, tmp / f"ffmpeg-{r}.jpg"))
                for case, query in (("snapshot_cold", ""), ("snapshot_key_cold", "&mode=key")):
                    name = f"{case}-{r}.mp4"
                    os.link(src, media / name)
                    url = title_url(server, name, "snapshot.jpg", f"t={round(at * 1000)}{query}")
                    took, body = fetch(url)
                    check(body, WIDTH)
                    runs[case].append(took)
                    if case == "snapshot_cold":
                        took, body = fetch(url)
                        check(body, WIDTH)
                        runs["snapshot_cached"].append(took)
                name = f"storyboard-{r}.mp4"
                os.link(src, media / name)
                boards.append(storyboard(server, name))
    median = {case: statistics.median(values) for case, values in runs.items()}
    ratios = {case: median[case] / median["ffmpeg"] for case in runs if case != "ffmpeg"}
    minutes = seconds / 60
    board = {k: statistics.median(b[k] for b in boards) for k in boards[0]}
    per_minute = {"wall_s": board["wall_s"] / minutes, "cpu_s": board["cpu_s"] / minutes, "sheets": board["sheets"]}
    return {
        "media_s": seconds,
        "at_s": at,
        "rounds": rounds,
        "runs": runs,
        "median_s": median,
        "ratio_over_ffmpeg": ratios,
        "storyboard_runs": boards,
        "storyboard_per_title_minute": per_minute,
    }


def table(results: dict[str, Any]) -> str:
    median, ratios = results["median_s"], results["ratio_over_ffmpeg"]
    lines = [
        f"a snapshot at {results['at_s']} s of {results['media_s']:.0f} s of 1280x720 30 fps, 2 s GOP "
        f"(median of {results['rounds']}; load average {results['machine']['load_before']:.2f} before)",
        "",
        f"{'case':<40} {'wall ms':>8} {'vs ffmpeg':>10}",
        f"{'ffmpeg -ss T -i src -frames:v 1 (anchor)':<40} {1000 * median['ffmpeg']:>8.0f} {'-':>10}",
    ]
    for case, label in (
        ("snapshot_cold", "livetx snapshot, cold (probe included)"),
        ("snapshot_key_cold", "livetx snapshot mode=key, cold"),
        ("snapshot_cached", "livetx snapshot, cached"),
    ):
        lines.append(f"{label:<40} {1000 * median[case]:>8.0f} {ratios[case]:>10.2f}")
    board = results["storyboard_per_title_minute"]
    lines += ["", f"storyboard: {board['sheets']:.0f} sheets; per title minute {board['wall_s']:.2f} s wall, {board['cpu_s']:.2f} s CPU"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs the ffmpeg CLI: apt-get install ffmpeg")
    results = {"machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}, **measure(args.seconds, args.rounds)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pictures.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
