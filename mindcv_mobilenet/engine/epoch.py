"""One training epoch: batches in, one compiled :class:`~.train_step.TrainStep` call per batch, an epoch record out.

The loop is driven from Python (graph mode: the step is compiled once; PyNative: eager). Losses are read back once
per ``log_interval`` steps (:mod:`.loss_window`), so the host does not wait for the device after every step. With
``dataset_sink_mode: True`` on GPU/Ascend batches reach the device through MindSpore's data queue
(``mindspore.data_sink``). Each epoch gets a new pipeline seeded by ``seed + epoch``, so a resumed run sees the batches
an uninterrupted run would have seen. (Dropout masks are not reproduced: MindSpore does not expose its kernels' random
state.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import mindspore as ms

from ..utils.errors import UserError
from .checkpoint_manager import TrainState
from .debug_dump import DebugDump
from .loss_window import LossWindow, NonFiniteLoss
from .metrics import AverageMeter, RunLog
from .run import TrainingRun, seed_everything
from .training_data import iterate


class TrainingError(UserError):
    """Training cannot go on (a non-finite loss); the message says where it stopped (the trainer adds what was
    kept)."""


@dataclass(frozen=True)
class EpochResult:
    """What an epoch did: its record (for metrics.jsonl), the state after it, this rank's loss at every step, the
    seconds it took and the seconds per step after the first (the first includes compilation)."""

    record: dict
    state: TrainState
    losses: list[float]
    seconds: float
    step_seconds: float


def _batches(run: TrainingRun, epoch: int) -> tuple[Iterator, Callable | None]:
    """(this epoch's batches, the data-sink step or None): cached features, the device queue, or a new pipeline."""
    if run.data.train_cache is not None:
        return run.data.cached_batches(epoch), None
    loader = run.data.training_loader()
    if run.sink:
        sink_step = ms.data_sink(run.step_cell, loader, jit_config=ms.JitConfig() if run.cfg.mode == 0 else None)
        return ((None, None) for _ in range(run.steps_per_epoch)), sink_step
    return iterate(loader), None


def train_one_epoch(run: TrainingRun, state: TrainState, epoch: int, log: RunLog, debug: DebugDump) -> EpochResult:
    """Train epoch ``epoch`` (0-based) from ``state``; losses are read back every ``log_interval`` steps.

    The record holds the train loss over ranks, the lr, images/s, skipped steps and ``steps``: the mean loss and the
    lr at each read-back (this rank's). A non-finite loss raises :class:`TrainingError`. At the end the ranks merge
    what their readers found, so that every rank can read the files in C++ from then on.
    """
    cfg = run.cfg
    seed_everything(cfg.seed + epoch)  # the epoch's shuffle and augmentation depend on the epoch only
    meter, window, losses, points = AverageMeter(), LossWindow(), [], []
    global_step, skipped = state.global_step, 0
    read_every = cfg.log_interval or run.steps_per_epoch

    def read_losses() -> None:
        """Account the losses waiting on the device; a non-finite one stops training."""
        nonlocal global_step, skipped
        try:
            results = window.read()
        except NonFiniteLoss as err:
            raise TrainingError(f"loss is {err.loss} at epoch {epoch + 1}, step {err.step + 1}: training stopped "
                                "(lower lr, or set clip_grad: True, or warmup_epochs higher)") from None
        debug.losses(results)
        applied = sum(r.applied for r in results)  # the others overflowed: skipped, no update
        global_step, skipped = global_step + applied, skipped + len(results) - applied
        for result in results:
            losses.append(result.loss)
            meter.update(result.loss, result.batch)
        if results:  # one point per read-back (every log_interval steps): the curves' per-step loss and lr
            window_loss = sum(r.loss * r.batch for r in results) / max(sum(r.batch for r in results), 1)
            points.append({"step": global_step, "epoch": round(epoch + (results[-1].step + 1) / run.steps_per_epoch, 4),
                           "loss": window_loss, "lr": run.lr_at(max(global_step - 1, 0))})

    start, first_step_end = time.time(), None
    batches, sink_step = _batches(run, epoch)
    for i, (images, labels) in enumerate(batches):
        loss, finite, scale = sink_step() if sink_step else run.step_cell(images, labels)
        window.add(i, loss, finite, cfg.batch_size if labels is None else len(labels))
        if labels is not None:
            debug.batch(epoch, i, images, labels)
        # read losses back every read_every steps (and after step 1, which times start-up and compilation)
        if i == 0 or (i + 1) % read_every == 0:
            read_losses()
        if first_step_end is None:
            first_step_end = time.time()
        if cfg.log_interval and (i + 1) % cfg.log_interval == 0 and i + 1 < run.steps_per_epoch:
            rate = i * run.global_batch / max(time.time() - first_step_end, 1e-9) if i else 0.0
            log.step(epoch + 1, cfg.epoch_size, i + 1, run.steps_per_epoch, meter.mean, run.lr_at(global_step), rate,
                     float(scale.asnumpy()) if cfg.dynamic_loss_scale else None)
    read_losses()
    steps_done = i + 1
    seconds = time.time() - start
    steady = (time.time() - first_step_end) / (steps_done - 1) if steps_done > 1 else seconds
    loss_sum, loss_count = run.reducer.sum([meter.total, meter.count])
    run.reducer.average_batchnorm(run.model)
    run.data.share_reads(run.data.train_source, run.reducer)
    record = {"epoch": epoch + 1, "epochs": cfg.epoch_size, "train_loss": loss_sum / max(loss_count, 1),
              "lr": run.lr_at(max(global_step - 1, 0)), "images_per_s": run.global_batch / steady,
              "global_step": global_step, "skipped_steps": skipped, "steps": points}
    return EpochResult(record, replace(state, epoch=epoch + 1, global_step=global_step), losses, seconds, steady)
