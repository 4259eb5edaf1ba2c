"""Validation while training: Top-1/Top-5/loss of the run's network after an epoch, exact over ranks."""

from __future__ import annotations

import contextlib
import time

from .metrics import evaluate
from .run import TrainingRun


def evaluate_epoch(run: TrainingRun) -> dict:
    """Top-1/Top-5/loss on the validation split (with the EMA weights when kept), exact over ranks; adds ``time``.

    Every rank must call it (the counts are summed over ranks); it then merges what the ranks' readers found.
    """
    start = time.time()
    with run.ema.swapped_in() if run.ema is not None else contextlib.nullcontext():
        metrics = evaluate(run.network, run.data.validation_batches(), run.reducer)
    metrics["time"] = time.time() - start
    run.data.share_reads(run.data.val_source, run.reducer)
    return metrics
