"""Run one fuzz example under bounds: CPU time, Python heap (tracemalloc) and process RSS.

CPU time, not wall time: the machines are shared, and a bound meant to catch blow-ups (the
76 s colspan table) must not trip on a busy neighbour."""

from __future__ import annotations

import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from boeflow.core.errors import BoeflowError

T = TypeVar("T")
MAX_CPU_SECONDS = 8.0
MAX_PY_HEAP = 256 * 1024 * 1024
MAX_RSS_GROWTH = 512 * 1024 * 1024


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bounded(call: Callable[[], T], *allowed: type[BaseException]) -> T | BaseException:
    """``call()``; returns its result or the project error it raised. Anything else fails
    the example, and so does exceeding a bound."""
    rss_before = _peak_rss()
    tracemalloc.start()
    started = time.process_time()
    try:
        outcome: T | BaseException = call()
    except (BoeflowError, *allowed) as exc:
        outcome = exc
    finally:
        elapsed = time.process_time() - started
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < MAX_CPU_SECONDS, f"took {elapsed:.1f} s of CPU"
    assert heap_peak < MAX_PY_HEAP, f"Python heap peaked at {heap_peak / 1e6:.0f} MB"
    growth = _peak_rss() - rss_before
    assert growth < MAX_RSS_GROWTH, f"process RSS grew by {growth / 1e6:.0f} MB"
    return outcome
