"""Prometheus metrics at /metrics (prometheus-client), one registry per app.

This module knows prometheus-client only: the middleware and response hook that observe
requests are in web/middleware.py, the /metrics handler in web/routes.py, its token check in
web/auth.py. Request counts, latency and bytes are observed by middleware and a response-prepare hook;
transcode durations by the segment service; queue depth, in-flight transcodes, singleflight
joins, cache hits and misses by tier, worker restarts and storage errors are read from the
pool and the service when scraped, so nothing is counted twice. The coordination engine's
state (livetx/cluster/) is read the same way; the cluster-wide list of leases it shows is
fetched by the async /metrics handler before the (synchronous) collectors run. With
`server.metrics_token` set, a scrape needs it as a bearer token.

With several server processes (`livetx serve --processes N`), a scrape answers for all of
them (livetx/web/siblings.py gathers them): `all_processes` labels each process's series with
`process="<index>"` and puts them together, family by family.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from livetx.cache.pictures import PictureService
    from livetx.cache.service import SegmentService
    from livetx.cluster.flight import ClusterFlight
    from livetx.media.pool import TranscodePool

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TRANSCODE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_bound: Callable[[float], str] = floatToGoString  # a bucket bound as prometheus-client spells it ("1.0", "+Inf")
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpCounts()
        self.registry.register(self.http)
        self.transcode = Histogram(
            "livetx_transcode_seconds",
            "Wall time of one segment transcode, by rendition",
            ["rendition"],
            buckets=TRANSCODE_BUCKETS,
            registry=self.registry,
        )

        self.loop_lag = Histogram(
            "livetx_event_loop_lag_seconds",
            "How late the event loop woke a sleeping task (time every request waited behind other work)",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

        self.keys = Counter(
            "livetx_key_requests",
            "Content key requests that passed the token check, by result (served, limited: over encryption.key_requests)",
            ["result"],
            registry=self.registry,
        )

    def count_key(self, result: str) -> None:
        self.keys.labels(result=result).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http.observe(route, method, status, seconds)

    def count_bytes(self, route: str, sent: int) -> None:
        self.http.count_bytes(route, sent)

    def observe_transcode(self, rendition: str, seconds: float) -> None:
        self.transcode.labels(rendition=rendition).observe(seconds)


class HttpCounts(Collector):
    """Requests by route, method and status, their latency by route, and the response bytes by
    route: counted in plain numbers on the event loop (every request), made into metric
    families when scraped. A prometheus Counter or Histogram takes a lock on every
    observation, and a Histogram walks its buckets in Python; the families are the ones they
    would give, `_created` samples included."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], list[float]] = {}  # (route, method, status) -> [count, created]
        # route -> observations in each bucket (the last: above every bound), sum, created
        self._latency: dict[str, list[float]] = {}
        self._bytes: dict[str, list[float]] = {}  # route -> [bytes, created]

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counted = self._requests.get((route, method, status))
        if counted is None:
            counted = self._requests[route, method, status] = [0, time.time()]
        counted[0] += 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0, time.time()]
        latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # a bound counts what equals it
        latency[-2] += seconds

    def count_bytes(self, route: str, sent: int) -> None:
        counted = self._bytes.get(route)
        if counted is None:
            counted = self._bytes[route] = [0, time.time()]
        counted[0] += sent

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "livetx_http_requests", "HTTP requests by route, method and status", labels=["route", "method", "status"]
        )
        for (route, method, status), (count, created) in list(self._requests.items()):
            requests.add_metric([route, method, str(status)], count, created=created)
        yield requests
        latency = HistogramMetricFamily("livetx_http_request_seconds", "Time to the response, by route", labels=["route"])
        bounds = [_bound(bound) for bound in (*LATENCY_BUCKETS, math.inf)]
        for route, row in list(self._latency.items()):
            latency.add_metric([route], list(zip(bounds, itertools.accumulate(row[: len(bounds)]), strict=True)), row[-2])
            latency.samples.append(Sample(latency.name + "_created", {"route": route}, row[-1], None))
        yield latency
        sent = CounterMetricFamily("livetx_http_response_bytes", "Response body bytes sent, by route", labels=["route"])
        for route, (count, created) in list(self._bytes.items()):
            sent.add_metric([route], count, created=created)
        yield sent


class StateCollector(Collector):
    """Pool and cache state, read at scrape time (`pool` and `service` give None until started)."""

    def __init__(
        self,
        pool: Callable[[], TranscodePool | None],
        service: Callable[[], SegmentService | None],
        pictures: Callable[[], PictureService | None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.service = service
        self.pictures = pictures

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        pool = self.pool()
        service = self.service()
        pictures = self.pictures()
        if pictures is not None:  # snapshots, posters, storyboard sheets (livetx/cache/pictures.py)
            yield CounterMetricFamily("livetx_pictures_made", "Pictures made by the pool", value=pictures.stats.made)
            yield CounterMetricFamily("livetx_picture_hits", "Pictures found made", value=pictures.stats.hits)
            yield CounterMetricFamily("livetx_pictures_corrupt", "Cached pictures whose seal did not hold", value=pictures.stats.corrupt)
        if pool is not None:
            yield GaugeMetricFamily("livetx_transcode_queue_depth", "Transcode jobs waiting for a worker", value=pool.stats.queued)
            yield GaugeMetricFamily("livetx_transcodes_in_flight", "Transcodes running now", value=pool.stats.in_flight)
            yield GaugeMetricFamily("livetx_transcode_workers", "Worker processes alive", value=len(pool.worker_pids()))
            yield CounterMetricFamily("livetx_worker_restarts", "Workers killed and replaced", value=pool.stats.restarts)
            preempted = pool.stats.preempted
            yield CounterMetricFamily("livetx_transcode_preemptions", "Background transcodes stopped for a client", value=preempted)
            yield CounterMetricFamily("livetx_transcode_failures", "Transcodes that failed", value=pool.stats.failed)
            yield CounterMetricFamily("livetx_transcode_retries", "Jobs run again after their worker died", value=pool.stats.retried)
            yield CounterMetricFamily(
                "livetx_transcode_refused", "Background jobs not run: their segment's lease was taken elsewhere", value=pool.stats.refused
            )
            if pool.host is not None:  # several server processes share the host's transcode slots
                waits, waiting, deferred = pool.stats.host_waits, pool.stats.host_waiting, pool.stats.host_deferred
                yield CounterMetricFamily("livetx_host_slot_waits", "Client transcodes that waited for a host slot", value=waits)
                yield GaugeMetricFamily("livetx_host_slot_waiting", "Client transcodes waiting for a host slot now", value=waiting)
                yield CounterMetricFamily("livetx_host_slot_deferred", "Background transcodes put back: the host was busy", value=deferred)
        if service is not None:
            stats = service.stats
            hits = CounterMetricFamily("livetx_cache_hits", "Segment cache hits by tier", labels=["tier"])
            for tier, count in stats.hits.items():
                hits.add_metric([tier], count)
            yield hits
            yield CounterMetricFamily("livetx_cache_misses", "Segment cache misses", value=stats.misses)
            yield CounterMetricFamily("livetx_singleflight_joins", "Requests that joined a transcode already running", value=stats.joins)
            yield CounterMetricFamily("livetx_transcodes", "Segments transcoded", value=stats.transcodes)
            yield CounterMetricFamily("livetx_storage_errors", "Storage calls that failed", value=stats.storage_errors)
            yield CounterMetricFamily("livetx_writeback_failures", "Write-backs given up", value=stats.writeback_failures)
            yield GaugeMetricFamily("livetx_writebacks_pending", "Write-backs not yet stored", value=service.pending_writebacks)
            yield CounterMetricFamily("livetx_prefetched", "Segments made ahead (pre-transcode, lookahead)", value=stats.prefetched)
            refused = CounterMetricFamily("livetx_prefetch_refused", "Segments not made ahead: over a budget", labels=["budget"])
            for budget, count in service.budgets.refused.items():
                refused.add_metric([budget], count)
            yield refused
            yield CounterMetricFamily("livetx_prefetch_dropped", "Segments not made ahead: too many pending", value=stats.prefetch_dropped)
            yield CounterMetricFamily("livetx_source_bytes", "Bytes read from remote sources", value=stats.source_bytes)
            breaker = getattr(service.output, "breaker", None)
            if breaker is not None:
                yield GaugeMetricFamily("livetx_storage_breaker_open", "1 while S3 calls fail fast", value=int(breaker.state != "closed"))
                yield CounterMetricFamily("livetx_storage_breaker_rejected", "S3 calls failed fast by the breaker", value=breaker.rejected)
            yield CounterMetricFamily("livetx_overloaded", "Requests answered 503 by admission control", value=stats.overloaded)
            yield CounterMetricFamily(
                "livetx_segments_streamed", "Client requests answered while their segment was being made", value=stats.streamed
            )
            yield CounterMetricFamily(
                "livetx_streams_aborted",
                "Streamed segment responses cut off because the segment was not made",
                value=stats.streams_aborted,
            )
            yield CounterMetricFamily("livetx_writebacks_dropped", "Write-backs dropped (memory bound)", value=stats.writebacks_dropped)
            yield CounterMetricFamily("livetx_corrupt_segments", "Cached copies that failed their seal check", value=stats.corrupt)


class ClusterCollector(Collector):
    """The coordination engine and its leases (`cluster` gives None without an engine)."""

    def __init__(self, cluster: Callable[[], ClusterFlight | None]) -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        cluster = self.cluster()
        if cluster is None:
            return
        state = cluster.state()
        up = GaugeMetricFamily("livetx_coordination_up", "1 while the coordination engine answers", labels=["engine"])
        up.add_metric([state.engine], int(state.up))
        yield up
        yield CounterMetricFamily(
            "livetx_coordination_fallbacks", "Segments made without a lease: the engine was down", value=cluster.uncoordinated
        )
        yield GaugeMetricFamily("livetx_leases_held", "Segment leases this process holds", value=state.held)
        yield GaugeMetricFamily("livetx_lease_waiting", "Segments this process waits on, leased by another", value=state.waiting)
        yield CounterMetricFamily("livetx_lease_waits", "Segments waited for while another process held their lease", value=cluster.waits)
        yield CounterMetricFamily(
            "livetx_lease_takeovers", "Segments made after their lease ended without them in storage", value=cluster.takeovers
        )
        yield CounterMetricFamily("livetx_leases_lost", "Leases found gone when renewed", value=state.lost)
        if state.listed:
            yield from cluster_leases(state.holders, state.truncated)


def cluster_leases(holders: Mapping[str, str], truncated: bool) -> Iterator[GaugeMetricFamily]:
    """Cluster-wide leases, as last listed: a count by owner, and one series per lease."""
    by_owner = GaugeMetricFamily("livetx_cluster_leases", "Segment leases held cluster-wide, by owner (host:pid:id)", labels=["owner"])
    for owner, count in sorted(Tally(holders.values()).items()):
        by_owner.add_metric([owner], count)
    yield by_owner
    each = GaugeMetricFamily("livetx_cluster_lease", "1 for each segment lease held cluster-wide, with its owner", labels=["key", "owner"])
    for key, owner in sorted(holders.items()):
        each.add_metric([key, owner], 1)
    yield each
    yield GaugeMetricFamily("livetx_cluster_leases_truncated", "1 when more leases are held than listed", value=int(truncated))


PROCESS_LABEL = "process"


def families(text: str) -> list[Metric]:
    """A registry's exposition text (another process's) as metric families."""
    return list(text_string_to_metric_families(text))


def all_processes(per_process: Mapping[str, Iterable[Metric] | None]) -> bytes:
    """The exposition text of several processes' families: every sample labelled with its
    process, the families of one name put together, and `livetx_server_process_up` saying
    which processes answered (those given None did not)."""
    merged: dict[str, Metric] = {}
    up = GaugeMetricFamily("livetx_server_process_up", "1 for each server process that answered this scrape", labels=[PROCESS_LABEL])
    for process, found in per_process.items():
        up.add_metric([process], 0 if found is None else 1)
        for family in found or ():
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
            into.samples += [
                Sample(sample.name, {**sample.labels, PROCESS_LABEL: process}, sample.value, sample.timestamp, sample.exemplar)
                for sample in family.samples
            ]
    return generate_latest(_Families([up, *merged.values()]))


class _Families(Collector):
    def __init__(self, found: list[Metric]) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        return iter(self.found)
