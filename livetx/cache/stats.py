"""The segment service's counters, shared by its collaborators and read by /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CacheStats:
    hits: dict[str, int] = field(default_factory=lambda: {"hot": 0, "memory": 0, "local": 0, "storage": 0})
    misses: int = 0
    transcodes: int = 0
    joins: int = 0
    promotions: int = 0
    writebacks: int = 0
    writeback_failures: int = 0
    writebacks_dropped: int = 0  # over the memory bound: the segment is made again when asked for
    overloaded: int = 0  # requests answered 503 by admission control
    storage_errors: int = 0
    prefetched: int = 0
    prefetch_dropped: int = 0
    source_bytes: int = 0
    corrupt: int = 0  # cached copies whose seal did not match: deleted and made again
    streamed: int = 0  # client requests answered while their segment was being made
    streams_aborted: int = 0  # of those, responses cut off because the segment was not made
