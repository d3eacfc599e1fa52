"""Shared tools of the attack tests: each test in this folder attacks the real `livetx serve`
(see `tests.conftest.launch_server`) as an outsider with a token or an API key would.

`watch(server)` runs a block of attacks while a thread polls /healthz, and checks afterwards
that the event loop never stalled: no observation of the server's own lag monitor landed
above `max_lag`, and /healthz answered within `healthz_p99` at the 99th percentile.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server

LAG_METRIC = "livetx_event_loop_lag_seconds"


def lag_buckets(base_url: str, headers: dict[str, str] | None = None) -> dict[float, float]:
    """Cumulative counts of a server's lag histogram, by upper bound (inf included)."""
    request = urllib.request.Request(base_url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == LAG_METRIC:
            for sample in family.samples:
                if sample.name == LAG_METRIC + "_bucket":
                    out[float(sample.labels["le"])] = sample.value
    assert out, "the server exports no event-loop lag histogram"
    return out


def over(buckets: dict[float, float], bound: float) -> float:
    """Observations above `bound` (which must be a bucket bound)."""
    return buckets[float("inf")] - buckets[bound]


@dataclass
class Watch:
    healthz: list[float] = field(default_factory=list)  # seconds per /healthz answer
    lag_over: float = 0  # lag observations above the bound during the block

    @property
    def healthz_p99(self) -> float:
        ordered = sorted(self.healthz)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


@contextmanager
def watch(
    server: Server, max_lag: float = 0.1, healthz_p99: float = 0.05, metrics_headers: dict[str, str] | None = None
) -> Iterator[Watch]:
    """Run the block while /healthz is polled; then assert the loop never lagged beyond
    `max_lag` (per the server's histogram) and /healthz's p99 stayed under `healthz_p99`."""
    result = Watch()
    before = lag_buckets(server.base_url, metrics_headers)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            with urllib.request.urlopen(server.base_url + "/healthz", timeout=10) as response:
                response.read()
            result.healthz.append(time.perf_counter() - began)
            stop.wait(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield result
    finally:
        stop.set()
        poller.join(timeout=15)
    result.lag_over = over(lag_buckets(server.base_url, metrics_headers), max_lag) - over(before, max_lag)
    assert result.lag_over == 0, f"the event loop lagged over {max_lag * 1000:g} ms {result.lag_over:g} times"
    assert result.healthz, "no /healthz answer during the block"
    assert result.healthz_p99 < healthz_p99, f"/healthz p99 {result.healthz_p99 * 1000:.1f} ms"


def call(
    server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the server; (status, headers, body), errors included."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def api(server: Server, path: str, body: Any = None, key: str | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    """A bearer-key API call; (status, parsed JSON body)."""
    headers = {"Authorization": f"Bearer {key or server.api_key}", "Content-Type": "application/json"}
    status, _, payload = call(server, "POST" if body is not None or raw is not None else "GET", path, body, headers, raw)
    return status, json.loads(payload) if payload else None
