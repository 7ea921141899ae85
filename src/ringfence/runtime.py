"""Process-wide switches that only entry points may throw: pausing Python's cyclic garbage collector.

Building millions of small acyclic objects (a generated fleet, the assessment's host index) triggers
dozens of full collections that each walk every live object; pausing the collector saves about a
quarter of the time at a million hosts.  The collector is process state, so the pure domain never
touches it: the entry points that run such work (``ringfence simulate``, an assessment, ``fleet
generate``, the benchmarks) wrap it in :func:`collector_paused`.

Pauses nest and may overlap across threads (the API runs simulations and assessments in its thread
pool): the collector is off while any pause is active and is switched back on when the last one ends,
but only if it was on when the first one began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_active = 0
_restore = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the duration of the block (restored on any exit, see the module doc)."""
    global _active, _restore  # the collector is process state; this counter is its one guard
    with _lock:
        if _active == 0:
            _restore = gc.isenabled()
            gc.disable()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _restore:
                gc.enable()
