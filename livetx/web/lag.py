"""The event-loop lag monitor: how late the loop wakes a task that asked to sleep.

A request that holds the loop (a slow parse, a big render, a stat on the loop) delays every
other client by as long as it holds it. A task sleeps `interval` seconds over and over; each
time it wakes, the time beyond `interval` is the lag every callback saw meanwhile. It goes
into a histogram (`livetx_event_loop_lag_seconds`) and the worst value into a gauge, so an
operator sees a stall, and a test can check that no observation landed above a bound while
hostile requests ran (see tests/security/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

INTERVAL = 0.02  # seconds between wake-ups: finer than any bound worth asserting (50 ms and up)


class LoopLagMonitor:
    def __init__(self, observe: Callable[[float], None], interval: float = INTERVAL) -> None:
        self.observe = observe
        self.interval = interval
        self.worst = 0.0  # seconds, since start

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - began - self.interval)
            self.worst = max(self.worst, lag)
            self.observe(lag)
