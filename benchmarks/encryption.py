"""Encrypted HLS (issue 18): cached AES-128 segments against cached clear ones, and the CPU per
GB of encryption where livetx does it (once, when a segment is made) against where it could
be done instead (on every response), all in one run.

One `livetx serve` has two profiles made from the shipped default profile (720p, crf 23,
veryfast) with 12 s segments, identical except that one sets `encryption = "aes-128"`. The
title is hot_path.py's synthetic 720p60 clip of 30 s; the segment under load is its 4th
(12 s) in each profile, made and cached by livetx itself: the clear one sealed, the encrypted
one sealed then AES-128-CBC encrypted whole (livetx/cache/envelope.py). Both are then served
the same way (from the hot tier, or the file with sendfile), so the serving rows should match.

  - serving: wrk (one thread, 64 connections, title-scoped tokens) on each segment URL in turn,
    `--rounds` times: req/s, MB/s, and the server's CPU per request (from /proc), as CPU
    seconds per GB served;
  - (a) what this design pays, per GB made: AES-128-CBC encrypt of the sealed segment once, and
    one decrypt per seal check of a copy read back (at least one: the hot tier's);
  - (b) what storing clear and encrypting every response would pay, per GB served: the same
    segment's bytes encrypted with livetx/crypto/aes.py in this process, against the clear
    serving CPU per GB measured above (b is a floor: such a response could use neither
    sendfile nor the hot tier's bytes as they are).

The in-process figures are thread CPU seconds (time.thread_time), so other load on the machine
moves them little. The served encrypted segment is checked first: decrypted with the key from
its playlist's key URL, it is a whole sealed MPEG-TS segment.

    python benchmarks/encryption.py [--duration 5] [--rounds 3]

Needs wrk (apt-get install wrk). Writes benchmarks/results/encryption.json. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.hot_path import (
    API_KEY,
    RESULTS,
    SEGMENT_CLIENTS,
    SEGMENT_INDEX,
    TITLE,
    fetch,
    livetx_serve,
    medians,
    running,
    stored_segment,
    wrk,
)
from livetx.cache.envelope import CLEAR, Aes128
from livetx.cache.seal import TS_PACKET, is_sealed, seal
from livetx.crypto import aes
from livetx.media.sample import SampleSpec, write_sample
from tests.conftest import ROOT, free_port

CLEAR_PROFILE, AES_PROFILE = "bench_clear", "bench_aes128"
MASTER_KEYS = "bench:" + "5a" * 32  # the encryption master key (not hot_path's signing key)
GB = 1e9
MEASURE_CPU_S = 1.0  # thread CPU seconds each in-process figure is measured over (at least)


# ---- the config: two profiles, identical but for the encryption ---------------------------


def toml_tables(prefix: str, table: Mapping[str, Any]) -> str:
    """`table` as TOML under `[prefix]` (scalars and lists of them; sub-tables as their own)."""
    lines = [f"[{prefix}]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items() if not isinstance(value, dict)]
    text = "\n".join(lines) + "\n"
    for key, value in table.items():
        if isinstance(value, dict):
            text += "\n" + toml_tables(f"{prefix}.{key}", value)
    return text


def bench_config(tmp: Path) -> Path:
    """conf/livetx.toml with the two profiles added: the default one with 12 s segments (so the
    segment under load is large, as in hot_path.py), nothing made ahead, clear and AES-128."""
    shipped = ROOT / "conf" / "livetx.toml"
    default = tomllib.loads(shipped.read_text())["profiles"]["default"]
    profile = {**default, "st": 12000, "initd": 0}
    text = shipped.read_text() + "\n# benchmarks/encryption.py\n"
    text += toml_tables(f"profiles.{CLEAR_PROFILE}", profile) + "\n"
    text += toml_tables(f"profiles.{AES_PROFILE}", {**profile, "encryption": "aes-128"})
    config = tmp / "livetx.toml"
    config.write_text(text)
    return config


# ---- serving ------------------------------------------------------------------------------


def sign_title(base: str, profile: str) -> str:
    """A signed master playlist URL of the title under `profile`, title-scoped."""
    body = json.dumps({"key": TITLE, "profile": profile, "scope": "title", "ttl": 7 * 24 * 3600}).encode()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    return str(json.loads(fetch(base + "/api/v1/sign", headers, body))["url"])


def segment_url(base: str, profile: str) -> tuple[str, str | None]:
    """(the segment's URL, its EXT-X-KEY URI or None) from the title's media playlist."""
    master = sign_title(base, profile)
    variant = next(line for line in fetch(master).decode().splitlines() if line and not line.startswith("#"))
    media = urljoin(master, variant)
    key_uri, uris = None, []
    for line in fetch(media).decode().splitlines():
        if line.startswith("#EXT-X-KEY:") and 'URI="' in line:
            key_uri = urljoin(media, line.split('URI="', 1)[1].split('"', 1)[0])
        elif line and not line.startswith("#"):
            uris.append(urljoin(media, line))
    return uris[SEGMENT_INDEX], key_uri


def made(base: str, media: Path, url: str) -> Path:
    """Request the segment (it is made), wait for its write-back, and request it again until
    it is served from cache: its stored file."""
    stored = stored_segment(url, media)
    for _ in range(20):
        fetch(url)
    return stored


def check_encrypted(url: str, key_uri: str | None, stored: Path) -> None:
    """The served encrypted segment is the stored one, and decrypts (key from its key URL, IV
    its sequence number) to a sealed MPEG-TS segment."""
    if key_uri is None:
        raise RuntimeError("the AES-128 profile's media playlist has no EXT-X-KEY URI")
    served = fetch(url)
    clear = aes.decrypt(fetch(key_uri), aes.sequence_iv(SEGMENT_INDEX), served)
    if served != stored.read_bytes() or clear is None or not is_sealed(clear) or not clear.startswith(b"\x47"):
        raise RuntimeError("the served AES-128 segment does not decrypt to a sealed MPEG-TS segment")


def serving(tmp: Path, media: Path, args: argparse.Namespace, cpu: tuple[int, int] | None) -> dict[str, Any]:
    port = free_port()
    argv, env = livetx_serve(tmp, media, port, None, cpu[0] if cpu else None)
    env |= {"LIVETX_CONFIG": str(bench_config(tmp)), "LIVETX_ENCRYPTION_KEYS": MASTER_KEYS, "LIVETX_ENCRYPTION_KEY_FILE": ""}
    with running(argv, port, env, tmp / "livetx.log") as process:
        base = f"http://127.0.0.1:{port}"
        clear_url, _ = segment_url(base, CLEAR_PROFILE)
        aes_url, key_uri = segment_url(base, AES_PROFILE)
        files = {"clear": made(base, media, clear_url), "aes128": made(base, media, aes_url)}
        check_encrypted(aes_url, key_uri, files["aes128"])
        urls = {"clear": clear_url, "aes128": aes_url}
        client = cpu[1] if cpu else None
        rounds = []
        for _ in range(args.rounds):  # alternating, so drifting load on the machine hits both
            rounds.append({case: wrk(url, SEGMENT_CLIENTS, args.duration, client, [process.pid]) for case, url in urls.items()})
    sizes = {case: path.stat().st_size for case, path in files.items()}
    out: dict[str, Any] = {"segment_bytes": sizes, "files": {case: str(path) for case, path in files.items()}}
    for case in urls:
        row = medians([r[case] for r in rounds])
        row["server_cpu_s_per_gb"] = row["server_cpu_us_per_request"] * 1e-6 / sizes[case] * GB
        out[case] = row
    out["ratios"] = {
        "aes128_over_clear_requests_per_s": statistics.median(r["aes128"]["requests_per_s"] / r["clear"]["requests_per_s"] for r in rounds),
        "aes128_over_clear_cpu_per_request": statistics.median(
            r["aes128"]["server_cpu_us_per_request"] / r["clear"]["server_cpu_us_per_request"] for r in rounds
        ),
    }
    out["rounds"] = rounds
    return out


# ---- CPU per GB, in process ----------------------------------------------------------------


def cpu_s_per_gb(work: Callable[[], object], nbytes: int) -> float:
    """Thread CPU seconds per GB of `work` (one call handles `nbytes`), over >= MEASURE_CPU_S."""
    work()  # warm
    calls, began = 0, time.thread_time()
    while (used := time.thread_time() - began) < MEASURE_CPU_S:
        work()
        calls += 1
    return used / (calls * nbytes) * GB


def cpu_per_gb(clear_file: Path) -> dict[str, float]:
    """The crypto and seal figures on the clear segment's bytes (as the pool made them: its
    stored file less the seal packet)."""
    sealed = clear_file.read_bytes()
    made_bytes = sealed[:-TS_PACKET]
    if seal(made_bytes) != sealed:
        raise RuntimeError("the clear segment's stored file is not its made bytes sealed")
    key, iv = bytes(range(16)), aes.sequence_iv(SEGMENT_INDEX)
    envelope = Aes128(key, iv)
    stored = envelope.close(made_bytes)
    n = len(sealed)
    return {
        "encrypt": cpu_s_per_gb(lambda: aes.encrypt(key, iv, sealed), n),
        "decrypt": cpu_s_per_gb(lambda: aes.decrypt(key, iv, stored), n),
        "seal": cpu_s_per_gb(lambda: CLEAR.close(made_bytes), n),
        "seal_check": cpu_s_per_gb(lambda: CLEAR.holds(sealed), n),
        "aes128_close": cpu_s_per_gb(lambda: envelope.close(made_bytes), n),
        "aes128_check": cpu_s_per_gb(lambda: envelope.holds(stored), n),
    }


# ---- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    cpu = (0, 1) if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else None
    with tempfile.TemporaryDirectory(prefix="livetx-encryption-") as name:
        tmp = Path(name)
        media = tmp / "media"
        write_sample(media / TITLE, SampleSpec(seconds=30, width=1280, height=720, fps=Fraction(60)))
        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]},
            "how": {
                "client": "wrk -t1 --latency, clear and aes128 in turn each round",
                "connections": SEGMENT_CLIENTS,
                "seconds": args.duration,
                "rounds": args.rounds,
                "pinning": "server on core 0, wrk on core 1" if cpu else "none",
                "figures": "serving: the median over the rounds (ratios: the median of each round's); in process: thread CPU",
            },
        }
        served = serving(tmp, media, args, cpu)
        crypto = cpu_per_gb(Path(served.pop("files")["clear"]))
        results["machine"]["load_after"] = os.getloadavg()[0]
    results["serving"] = served
    results["cpu_s_per_gb"] = crypto
    clear_serving = served["clear"]["server_cpu_s_per_gb"]
    # (a) once per GB made: encrypt, and one decrypt per seal check of a copy read back (at least 1)
    design = crypto["encrypt"] + crypto["decrypt"]
    # (b) every GB served: encrypt on the way out
    alternative = crypto["encrypt"]
    results["designs"] = {
        "stored_encrypted_s_per_gb_made": design,
        "stored_encrypted_s_per_extra_seal_check_gb": crypto["decrypt"],
        "encrypt_per_response_s_per_gb_served": alternative,
        "clear_serving_s_per_gb_served": clear_serving,
        "encrypt_per_response_over_clear_serving": alternative / clear_serving,
    }
    return results


def table(results: dict[str, Any]) -> str:
    served, crypto, designs = results["serving"], results["cpu_s_per_gb"], results["designs"]
    lines = [
        f"{'cached segment, 64 connections':<44} {'req/s':>8} {'MB/s':>8} {'p99 ms':>8} {'CPU s/GB':>9}",
    ]
    for case in ("clear", "aes128"):
        row = served[case]
        label = f"{case} ({served['segment_bytes'][case] / 1e3:.0f} KB)"
        lines.append(
            f"{label:<44} {row['requests_per_s']:>8,.0f} {row['mb_per_s']:>8,.0f} {row['p99_ms']:>8.1f} {row['server_cpu_s_per_gb']:>9.3f}"
        )
    ratios = served["ratios"]
    lines.append(
        f"aes128 / clear, median of the rounds' ratios: req/s {ratios['aes128_over_clear_requests_per_s']:.3f}, "
        f"server CPU per request {ratios['aes128_over_clear_cpu_per_request']:.3f}"
    )
    lines.append("")
    lines.append(f"{'CPU seconds per GB (one core)':<62} {'s/GB':>7}")
    rows = [
        ("seal (both designs, at make)", crypto["seal"]),
        ("seal check (both designs, per copy read)", crypto["seal_check"]),
        ("AES-128-CBC encrypt", crypto["encrypt"]),
        ("AES-128-CBC decrypt", crypto["decrypt"]),
        ("(a) stored encrypted: encrypt + 1 decrypt, per GB made", designs["stored_encrypted_s_per_gb_made"]),
        ("(b) stored clear: encrypt per response, per GB served", designs["encrypt_per_response_s_per_gb_served"]),
        ("clear serving (livetx, measured above), per GB served", designs["clear_serving_s_per_gb_served"]),
    ]
    lines += [f"{label:<62} {value:>7.3f}" for label, value in rows]
    lines.append(f"(b) / clear serving: {designs['encrypt_per_response_over_clear_serving']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="each serving row this many times (the machine may be shared): medians")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("encryption.py skipped: it needs wrk (apt-get install wrk; `make bench` installs it when run as root)")
        return
    results = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encryption.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
