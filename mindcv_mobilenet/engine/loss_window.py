"""Read training losses back from the device once per window of steps instead of after every step.

``float(loss.asnumpy())`` after each step makes the host wait for the device, so on a GPU/Ascend the next batch is
not queued while the current one runs. :class:`LossWindow` keeps the loss, overflow flag and batch size of each step
as device tensors and reads the whole window at once (every ``log_interval`` steps and at the end of an epoch); a
non-finite loss is still found, with the exact step where it first appeared, before any checkpoint is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mindspore import Tensor


@dataclass(frozen=True)
class StepResult:
    """One step as read back: its index in the epoch, loss, whether the update was applied, batch size."""

    step: int
    loss: float
    applied: bool
    batch: int


class NonFiniteLoss(Exception):
    """A step's loss was NaN or infinite (``step`` is its index in the epoch)."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss} at step {step}")
        self.step = step
        self.loss = loss


class LossWindow:
    """Collects per-step device outputs; :meth:`read` syncs once and returns them as numbers."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, Tensor, Tensor, int]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, step: int, loss: Tensor, finite: Tensor, batch: int) -> None:
        self._pending.append((step, loss, finite, batch))

    def read(self) -> list[StepResult]:
        """The pending steps in order; raises :class:`NonFiniteLoss` at the first non-finite one (after which
        nothing of the window is returned, as training stops)."""
        pending, self._pending = self._pending, []
        results = []
        for step, loss, finite, batch in pending:  # the first asnumpy waits for the device; the rest are ready
            value = float(loss.asnumpy())
            if not math.isfinite(value):
                raise NonFiniteLoss(step, value)
            results.append(StepResult(step, value, bool(finite.asnumpy()), batch))
        return results
