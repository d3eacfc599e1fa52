"""Turn benchmarks/results/*.json into PNG charts and the results table of benchmarks/README.md.

python benchmarks/report.py
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows() -> list[tuple[str, str, str, str]]:
    """(measurement, livetx, anchor, ratio) for every result present."""
    out: list[tuple[str, str, str, str]] = []
    latency = load("segment_latency")
    if latency:
        for case, row in latency["results"].items():
            anchor = f"{row['ffmpeg_s']:.3f} s" if "ffmpeg_s" in row else "-"
            ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
            out.append((f"cold segment {case} vs ffmpeg CLI", f"{row['livetx_s']:.3f} s", anchor, ratio))
    cost = load("transcode_cost")
    if cost:
        for plan, row in cost["whole_title"].items():
            if "ffmpeg_cpu_s" in row:
                out.append(
                    (
                        f"whole-title CPU, {plan}, vs one-pass HLS",
                        f"{row['livetx_cpu_s']:.1f} s",
                        f"{row['ffmpeg_cpu_s']:.1f} s",
                        f"{row['cpu_ratio']:.2f}",
                    )
                )
        seek = cost["seek"]
        out.append(
            ("segment at 90 % vs at 10 %", f"{seek['at_90pct_s']:.2f} s", f"{seek['at_10pct_s']:.2f} s", f"{seek['ratio_90_over_10']:.2f}")
        )
    load_ = load("origin_load")
    if load_:
        c = load_["coalescing"]
        out.append(
            (
                f"{c['requests']} cold requests, one segment",
                f"{c['transcodes']} transcode, p99 {c['p99_s']:.2f} s",
                f"p50 {c['p50_s']:.2f} s",
                "-",
            )
        )
        w = load_["warm_playlists"]
        out.append(("warm media playlist, 200 clients", f"{w['requests_per_s']:.0f} req/s, p99 {w['p99_ms']:.1f} ms", "-", "-"))
        cached = load_["cached_segments"]
        anchor = f"{cached['nginx']['mb_per_s']:.0f} MB/s" if "nginx" in cached else "-"
        ratio = f"{cached['throughput_ratio_livetx_over_nginx']:.2f}" if "nginx" in cached else "-"
        out.append(("cached segments, 64 connections, vs nginx", f"{cached['livetx']['mb_per_s']:.0f} MB/s", anchor, ratio))
        on, off = load_["playback_lookahead_on"], load_["playback_lookahead_off"]
        out.append(
            (
                "playback at 1x from cold: stalls, lookahead on vs off",
                f"{on['stalls']} ({on['stalled_s']:.1f} s)",
                f"{off['stalls']} ({off['stalled_s']:.1f} s)",
                "-",
            )
        )
    out += hot_path_rows()
    out += encryption_rows()
    out += jobs_rows()
    s3 = load("s3_origin")
    if s3:
        out.append(
            (
                "S3 bytes read for one 10 s segment",
                f"{s3['segment_10s_source_bytes'] / 1e6:.1f} MB",
                f"{s3['source_bytes'] / 1e6:.0f} MB file",
                f"{s3['segment_10s_share_of_file']:.3f}",
            )
        )
        out.append(
            (
                "first segment 3 s after the master, pre-transcode on vs off",
                f"{s3['first_segment_initd6000_delay3_s']:.3f} s",
                f"{s3['first_segment_initd0_delay3_s']:.3f} s",
                "-",
            )
        )
    overload = load("overload")
    if overload:
        answers = overload["first_answers"]
        out.append(
            (
                f"{overload['requests']} distinct cold segments at once, 2 workers, max_queue {overload['max_queue']}",
                f"{answers.get('200', 0)} served (p99 {overload['served_p99_s']:.1f} s), {answers.get('503', 0)} refused "
                f"(p99 {overload['refused_p99_ms']:.0f} ms)",
                f"all served after retries in {overload['all_served_s']:.0f} s; RSS peak {overload['server_rss_peak_mib']:.0f} MiB",
                "-",
            )
        )
    cluster = load("cluster_burst")
    if cluster:
        for name in ("1 origin", "3 origins, Valkey", "3 origins, no Valkey"):
            if name in cluster:
                row = cluster[name]
                out.append(
                    (
                        f"{row['requests']} cold requests for {row['distinct_segments']} segments, {name}",
                        f"{row['transcodes_per_segment']:.2f} transcodes per segment, p99 {row['p99_s']:.2f} s",
                        f"p50 {row['p50_s']:.2f} s",
                        "-",
                    )
                )
    chaos = load("chaos")
    if chaos:
        events = ", ".join(f"{n} {what}" for what, n in chaos["chaos"].items())
        errors = sum(chaos["player_errors"].values())
        checked = sum(chaos["objects_verified"].values())
        origins = chaos.get("origins", 1)
        fleet = f", {origins} origins through {chaos['through']}" if origins > 1 else ""
        out.append(
            (
                f"chaos, {chaos['seconds']:.0f} s, {chaos['players']} players{fleet}: {events}",
                f"{chaos['segments_received']} segments played, {errors} player errors after retries",
                f"{checked} cached segments verified, {len(chaos['object_problems'])} wrong",
                "-",
            )
        )
    bframes = load("bframes_cost")
    if bframes:
        without_b, with_b = bframes["without_bframes"], bframes["with_bframes"]
        out.append(
            (
                "bytes without B-frames vs with 3 (crf 23, mandelbrot 720p)",
                f"{without_b['bytes'] / 1e6:.2f} MB, SSIM {without_b['ssim']:.4f}",
                f"{with_b['bytes'] / 1e6:.2f} MB, SSIM {with_b['ssim']:.4f}",
                f"{bframes['size_ratio']:.2f}",
            )
        )
    return out


def _rate(row: dict[str, Any]) -> str:
    return f"{row['requests_per_s']:,.0f} req/s, p99 {row['p99_ms']:.0f} ms"


def hot_path_rows() -> list[tuple[str, str, str, str]]:
    """hot_path.py: the cached segment and its media playlist against nginx and aiohttp."""
    hot = load("hot_path")
    if not hot:
        return []
    out: list[tuple[str, str, str, str]] = []
    size = f"{hot['segment_bytes'] / 1e3:.0f} KB"
    livetx, ratios = hot["livetx"], hot["ratios"]
    if "nginx" in hot:
        out.append(
            (
                f"cached segment ({size}), 64 connections, 1 process vs nginx 1 worker",
                _rate(livetx["segment"]),
                _rate(hot["nginx"]["segment"]),
                f"{ratios['segment_over_nginx_1_worker']:.2f} (CPU per request: {ratios['segment_cpu_nginx_1_worker_over_livetx']:.2f})",
            )
        )
    aiohttp = hot["aiohttp"]
    out.append(
        (
            "cached segment vs aiohttp's minimal handler: bytes / FileResponse",
            _rate(livetx["segment"]),
            f"{aiohttp['bytes.ts']['requests_per_s']:,.0f} / {aiohttp['file.ts']['requests_per_s']:,.0f} req/s",
            f"{ratios['segment_over_aiohttp_bytes']:.2f} / {ratios['segment_over_aiohttp_file']:.2f}",
        )
    )
    out.append(
        (
            f"warm media playlist ({hot['playlist_bytes']} B), 200 connections, vs aiohttp's minimal handler",
            _rate(livetx["playlist"]),
            _rate(aiohttp["main.m3u8"]),
            f"{ratios['playlist_over_aiohttp']:.2f} (CPU per request: {ratios['playlist_cpu_aiohttp_over_livetx']:.2f})",
        )
    )
    many = [key for key in hot if key.startswith("livetx_") and key.endswith("_processes")]
    for key in many:
        n = key.split("_")[1]
        nginx = hot.get(f"nginx_{n}_workers")
        for case, clients in (("segment", 64), ("playlist", 200)):
            out.append(
                (
                    f"cached {case}, {clients} connections, livetx --processes {n} vs nginx {n} workers",
                    _rate(hot[key][case]),
                    _rate(nginx[case]) if nginx else "-",
                    f"{ratios[f'{case}_{n}_processes_over_nginx_{n}_workers']:.2f}" if nginx else "-",
                )
            )
    if not many:
        out.append(("cached segment, livetx --processes N vs nginx N workers", "not available: no `serve --processes`", "-", "-"))
    return out


def jobs_rows() -> list[tuple[str, str, str, str]]:
    """jobs.py: a file job's throughput against the ffmpeg CLI making the same MP4."""
    found = load("jobs")
    if not found:
        return []
    median, seconds = found["median"], found["media_s"]
    anchor = median["ffmpeg"]
    return [
        (
            f"job to MP4, {seconds:.0f} s of 720p, {label}, vs ffmpeg CLI (throughput)",
            f"{median[case]['throughput_x']:.2f}x real time, CPU {median[case]['cpu_s']:.1f} s",
            f"{anchor['throughput_x']:.2f}x real time, CPU {anchor['cpu_s']:.1f} s",
            f"{median[case]['throughput_ratio_over_ffmpeg']:.2f}",
        )
        for case, label in (("job_1_clip", "1 clip"), ("job_3_clips", "3 clips"))
    ]


def encryption_rows() -> list[tuple[str, str, str, str]]:
    """encryption.py: cached AES-128 segments against clear ones; encrypting per response."""
    found = load("encryption")
    if not found:
        return []
    served, designs = found["serving"], found["designs"]
    size = f"{served['segment_bytes']['aes128'] / 1e3:.0f} KB"
    return [
        (
            f"cached AES-128 segment ({size}), 64 connections, vs the same clear",
            _rate(served["aes128"]),
            _rate(served["clear"]),
            f"{served['ratios']['aes128_over_clear_requests_per_s']:.2f} (CPU per request: "
            f"{served['ratios']['aes128_over_clear_cpu_per_request']:.2f})",
        ),
        (
            "CPU per GB: AES-128 made once (encrypt + a seal check's decrypt) vs encrypted per response",
            f"{designs['stored_encrypted_s_per_gb_made']:.2f} s per GB made",
            f"{designs['encrypt_per_response_s_per_gb_served']:.2f} s per GB served",
            "-",
        ),
        (
            "CPU per GB served: encrypting per response vs livetx serving clear",
            f"{designs['encrypt_per_response_s_per_gb_served']:.2f} s",
            f"{designs['clear_serving_s_per_gb_served']:.2f} s",
            f"{designs['encrypt_per_response_over_clear_serving']:.2f}",
        ),
    ]


def charts() -> list[str]:
    made = []
    latency, load_ = load("segment_latency"), load("origin_load")
    if latency and all("ffmpeg_s" in r for r in latency["results"].values()):
        cases = list(latency["results"])
        fig, ax = plt.subplots(figsize=(6, 3.2))
        xs = range(len(cases))
        ax.bar([x - 0.2 for x in xs], [latency["results"][c]["livetx_s"] for c in cases], 0.4, label="livetx (warm worker)")
        ax.bar([x + 0.2 for x in xs], [latency["results"][c]["ffmpeg_s"] for c in cases], 0.4, label="ffmpeg CLI")
        ax.set_xticks(list(xs), cases)
        ax.set_ylabel("seconds")
        ax.set_title("Cold segment latency, 1080p to 720p")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "segment_latency.png", dpi=120)
        made.append("segment_latency.png")
    if load_:
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
        cached = load_["cached_segments"]
        names = [n for n in ("livetx", "nginx") if n in cached]
        left.bar(names, [cached[n]["mb_per_s"] for n in names], color=["#4c72b0", "#55a868"][: len(names)])
        left.set_title("Cached segments (MB/s)")
        on, off = load_["playback_lookahead_on"], load_["playback_lookahead_off"]
        right.bar(["lookahead on", "lookahead off"], [on["stalled_s"], off["stalled_s"]], color=["#4c72b0", "#c44e52"])
        right.set_title("Playback from cold: seconds stalled")
        fig.tight_layout()
        fig.savefig(RESULTS / "origin_load.png", dpi=120)
        made.append("origin_load.png")
    return made


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    made = charts()
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    lines = [BEGIN, f"Machine: {machine}. Charts (not committed): {', '.join(f'results/{m}' for m in made) or 'none'}.", ""]
    lines += ["| measurement | livetx | anchor | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows()]
    lines.append(END)
    text = README.read_text()
    block = "\n".join(lines)
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), block, text, flags=re.S) if BEGIN in text else text + "\n" + block + "\n"
    README.write_text(text)
    print(block)


if __name__ == "__main__":
    main()
