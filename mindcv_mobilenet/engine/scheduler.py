"""Learning-rate schedules as one value per step (mindcv's names and formulas), with a linear warmup.

The trainer hands the array to the optimizer as a dynamic learning rate indexed by the optimizer's ``global_step``,
so restoring ``global_step`` on resume restores the position in the schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..utils.errors import ConfigError

SCHEDULERS = ("constant", "cosine_decay", "warmup_cosine_decay", "step_decay", "multi_step_decay",
              "exponential_decay", "polynomial_decay")


def create_scheduler(
    steps_per_epoch: int,
    scheduler: str = "constant",
    lr: float = 0.01,
    min_lr: float = 0.0,
    warmup_epochs: float = 0,
    warmup_factor: float = 0.0,
    decay_epochs: int | None = None,
    decay_rate: float = 0.9,
    milestones: Sequence[int] | None = None,
    num_epochs: int = 1,
    lr_epoch_stair: bool = False,
    num_cycles: int = 1,
    cycle_decay: float = 1.0,
) -> np.ndarray:
    """Per-step learning rates (float32, ``steps_per_epoch * num_epochs`` values).

    Warmup rises linearly from ``lr * warmup_factor`` to ``lr`` over ``warmup_epochs``. After it, with ``t`` the
    epochs since the end of warmup (fractional, or whole with ``lr_epoch_stair``), as in mindcv:

    - ``constant``: ``lr``
    - ``cosine_decay`` / ``warmup_cosine_decay``: from ``lr`` to ``min_lr`` over ``decay_epochs`` (default: all the
      remaining epochs), ``num_cycles`` times, each cycle's peak times ``cycle_decay``; ``min_lr`` afterwards
    - ``step_decay``: ``lr * decay_rate ** floor(t / decay_epochs)``
    - ``multi_step_decay``: ``lr * decay_rate ** (milestones passed)``, milestones counted like ``t``
    - ``exponential_decay``: ``lr * decay_rate ** t``
    - ``polynomial_decay``: ``lr * (1 - t / remaining_epochs) ** decay_rate``
    """
    if steps_per_epoch <= 0 or num_epochs <= 0:
        raise ConfigError(f"need at least one step and one epoch (steps_per_epoch={steps_per_epoch}, "
                          f"num_epochs={num_epochs})")
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler '{scheduler}': use one of {', '.join(SCHEDULERS)}")
    if warmup_epochs > num_epochs:
        raise ConfigError(f"warmup_epochs ({warmup_epochs}) exceeds the number of epochs ({num_epochs})")
    steps = np.arange(steps_per_epoch * num_epochs, dtype=np.float64)
    epoch = steps / steps_per_epoch
    if lr_epoch_stair:
        epoch = np.floor(epoch)
    main_epochs = num_epochs - warmup_epochs
    t = np.maximum(epoch - warmup_epochs, 0.0)
    decay_epochs = decay_epochs if decay_epochs else max(main_epochs, 1e-12)

    if scheduler == "constant":
        rates = np.full_like(t, lr)
    elif scheduler in ("cosine_decay", "warmup_cosine_decay"):
        cycle = np.floor(t / decay_epochs)
        t_cycle = t - cycle * decay_epochs
        peak = lr * cycle_decay ** np.minimum(cycle, num_cycles - 1)
        rates = min_lr + 0.5 * (peak - min_lr) * (1.0 + np.cos(np.pi * t_cycle / decay_epochs))
        rates = np.where(cycle >= num_cycles, min_lr, rates)
    elif scheduler == "step_decay":
        rates = lr * decay_rate ** np.floor(t / decay_epochs)
    elif scheduler == "multi_step_decay":
        marks = np.sort(np.asarray(list(milestones or []), dtype=np.float64))
        rates = lr * decay_rate ** np.searchsorted(marks, np.floor(t), side="right")
    elif scheduler == "exponential_decay":
        rates = lr * decay_rate**t
    else:  # polynomial_decay
        span = max(main_epochs, 1e-12)
        rates = lr * (1.0 - np.minimum(t, span) / span) ** decay_rate

    if warmup_epochs > 0:
        warm = lr * (warmup_factor + (1.0 - warmup_factor) * epoch / warmup_epochs)
        rates = np.where(epoch < warmup_epochs, warm, rates)
    return rates.astype(np.float32)
