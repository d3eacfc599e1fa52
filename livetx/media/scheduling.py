"""Keep encoder threads off real-time scheduling.

SVT-AV1 (libsvtav1, the AV1 encoder in the PyAV wheel) switches the thread that opens an
encoder, and every thread it starts, to SCHED_FIFO priority 99 when the process may (as root,
or with CAP_SYS_NICE). Measured: after opening one, 38 threads of the process ran SCHED_FIFO.
A transcode worker at FIFO 99 starves the host's event loops, the other workers and anything
else; and a process started by such a thread inherits the policy (a browser launched by the
tests after an AV1 encode spun at FIFO 99 and took both cores). So every thread goes back to
the normal policy as soon as an encoder has opened, and after each job.
"""

from __future__ import annotations

import os

_REALTIME = frozenset(getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name))


def drop_realtime() -> int:
    """Every thread of this process that runs a real-time policy goes back to SCHED_OTHER;
    returns how many did (0 where the platform has no such thing)."""
    if not _REALTIME or not hasattr(os, "sched_setscheduler"):
        return 0
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return 0
    dropped = 0
    for name in threads:
        tid = int(name)
        try:
            if os.sched_getscheduler(tid) in _REALTIME:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                dropped += 1
        except OSError:  # the thread ended meanwhile
            continue
    return dropped
