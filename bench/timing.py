"""The one timing rule of every benchmark: the first call alone (compile or set-up), then the median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def first_and_median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of the next ``repeats`` calls, at least one).

    ``fn`` must wait for its result (``.asnumpy()``), or asynchronous devices would time the launch only.
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)
