"""A progress line for long evaluations, and the timing that separates compilation from steady throughput."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator


class Progress:
    """Counts images as batches are consumed; prints a refreshing bar on a terminal, else ~10 step lines per run.

    ``images_per_s`` excludes the first batch (graph compilation, pipeline start-up) when there is more than one.
    """

    def __init__(self, total_steps: int, what: str = "validate", enabled: bool = True, stream=None) -> None:
        self.total_steps = max(int(total_steps), 1)
        self.what = what
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = max(1, self.total_steps // 10)
        self.steps = 0
        self.images = 0
        self.start = time.perf_counter()
        self.first_done: float | None = None
        self.first_images = 0
        self.end: float | None = None
        self._last_print = 0.0

    def track(self, batches: Iterable) -> Iterator:
        """Yield ``(images, labels)`` from ``batches``, counting each once the consumer asks for the next."""
        self.start = time.perf_counter()
        for batch in batches:
            yield batch
            self.update(len(batch[1]))
        self.finish()

    def update(self, n: int) -> None:
        self.steps += 1
        self.images += n
        now = time.perf_counter()
        if self.first_done is None:
            self.first_done, self.first_images = now, n
        if not self.enabled:
            return
        if self.tty and (now - self._last_print > 0.2 or self.steps >= self.total_steps):
            self._last_print = now
            done = min(self.steps / self.total_steps, 1.0)
            bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
            print(f"\r{self.what} [{bar}] {self.steps}/{self.total_steps} batches, {self.images} images, "
                  f"{self.images_per_s:.1f} img/s", end="", file=self.stream, flush=True)
        elif not self.tty and (self.steps % self.every == 0 or self.steps == self.total_steps):
            print(f"{self.what}: step {self.steps}/{self.total_steps}, {self.images} images, "
                  f"{self.images_per_s:.1f} img/s", file=self.stream, flush=True)

    def finish(self) -> None:
        self.end = time.perf_counter()
        if self.enabled and self.tty and self.steps:
            print(file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return (self.end or time.perf_counter()) - self.start

    @property
    def images_per_s(self) -> float:
        now = self.end or time.perf_counter()
        if self.first_done is not None and self.images > self.first_images and now > self.first_done:
            return (self.images - self.first_images) / (now - self.first_done)
        return self.images / max(now - self.start, 1e-9)
