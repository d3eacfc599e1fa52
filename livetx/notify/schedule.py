"""When a webhook delivery tries again: exponential backoff, deterministic, for a bounded time.

Pure: times are plain numbers (seconds on the caller's clock), so a job record can say when
its next attempt is due and any origin that takes the job over computes the same answer.

After attempt n (1-based) fails, the next one is due `first * 2**(n-1)` seconds later, at most
`cap` seconds later: with the defaults (1 s, 600 s) that is 1, 2, 4, ... 512, then every 10
minutes. No jitter: receivers are many and distinct, and a schedule that tests and operators
can predict is worth more than spreading one receiver's retries. An attempt that would start
more than `window` seconds after the first attempt is not made: the delivery has given up.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DOUBLINGS = 64  # 2**64 seconds exceeds any cap: the exponent stops growing there


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0  # seconds after the first failed attempt
    cap: float = 600.0  # seconds between two attempts, at most
    window: float = 24 * 3600.0  # seconds after the first attempt that attempts may start

    def __post_init__(self) -> None:
        if not (self.first > 0 and self.cap > 0 and self.window >= 0):
            raise ValueError("a backoff needs first > 0, cap > 0 and window >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt `attempt` (1-based) has failed."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        return min(self.cap, self.first * 2.0 ** min(attempt - 1, MAX_DOUBLINGS))

    def next_attempt(self, first_at: float, attempt: int, failed_at: float) -> float | None:
        """When the attempt after `attempt` is due, given when the first one started and when
        this one failed; None when that falls beyond the window: give up."""
        due = failed_at + self.delay(attempt)
        return due if due <= first_at + self.window else None


def attempt_times(backoff: Backoff, first_at: float = 0.0) -> list[float]:
    """The start of every attempt of a delivery that always fails at once: the whole schedule."""
    times, attempt = [first_at], 1
    while (due := backoff.next_attempt(first_at, attempt, times[-1])) is not None:
        times.append(due)
        attempt += 1
    return times
