"""The one timing rule of every benchmark: the first call alone (compile or set-up), then the median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def first_and_median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of the next ``repeats`` calls, at least one).

    ``fn`` must wait for its result (``.asnumpy()``), or asynchronous devices would time the launch only.
    """
    (first,) = call_times(fn, 1)
    return first, statistics.median(call_times(fn, max(1, repeats)))


def call_times(fn: Callable[[], object], count: int) -> list[float]:
    """Seconds of each of ``count`` calls of ``fn`` (which must wait for its result, as above)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
