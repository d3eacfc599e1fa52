"""Measured segment sizes, and the BANDWIDTH and AVERAGE-BANDWIDTH they give each rendition.

Invariants:
- `_sizes[spec id][n]` is the byte size of segment n of that rendition as last made or read
  by this process; at most `MEASURED_RENDITIONS` renditions are kept, the least recently
  measured forgotten first.
- `_bandwidths[spec id]` is present only while it was computed from the current sizes: any
  new size drops it. It is bounded by `MEASURED_RENDITIONS` too, oldest entry first.
"""

from __future__ import annotations

import math

from livetx.lru import Lru
from livetx.titles import Rendition

MEASURED_RENDITIONS = 4096  # renditions whose segment sizes are remembered


class BandwidthMeter:
    def __init__(self, capacity: int = MEASURED_RENDITIONS) -> None:
        self.capacity = capacity
        self._sizes: Lru[str, dict[int, int]] = Lru(capacity)  # spec id -> segment -> bytes
        self._bandwidths: Lru[str, tuple[int, int]] = Lru(capacity)  # spec id -> bandwidth(), until a size changes

    def measure(self, rendition: Rendition, index: int, size: int) -> None:
        sizes = self._sizes.peek(rendition.spec_id) or {}
        sizes[index] = size
        self._sizes.put(rendition.spec_id, sizes)
        self._bandwidths.pop(rendition.spec_id)

    def measured(self, rendition: Rendition) -> list[int]:
        """The indexes of the rendition's segments whose size is known."""
        return list(self._sizes.peek(rendition.spec_id) or {})

    def bandwidth(self, rendition: Rendition) -> tuple[int, int]:
        """(BANDWIDTH, AVERAGE-BANDWIDTH) in bit/s. Once segments of the rendition have been
        made or read, the average is their measured mean and the peak their highest rate;
        until every segment is measured, the peak is never below the estimate."""
        sizes = self._sizes.peek(rendition.spec_id)
        if not sizes:
            return rendition.bandwidth, rendition.average_bandwidth
        # asked on every master playlist and status call; recomputed after a size changes
        known = self._bandwidths.peek(rendition.spec_id)
        if known is not None:
            return known
        rates = [float(8 * size / rendition.windows[i].duration) for i, size in sizes.items()]
        average = float(8 * sum(sizes.values()) / sum(rendition.windows[i].duration for i in sizes))
        peak = max(rates)
        if len(sizes) < len(rendition.windows):
            peak = max(peak, float(rendition.bandwidth))
        answer = (math.ceil(peak), math.ceil(average))
        self._bandwidths.put(rendition.spec_id, answer)
        return answer
