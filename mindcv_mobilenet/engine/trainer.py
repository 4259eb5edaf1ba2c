"""Training as ``train.py`` runs it: :func:`train` prepares the run folder, builds the run and drives its epochs.

Each part takes and returns values: :func:`~.run.build_run` (what a run trains with, built once; every loader in
:mod:`.training_data`), :func:`~.epoch.train_one_epoch`, :func:`~.evaluation.evaluate_epoch`,
:meth:`~.checkpoint_manager.CheckpointManager.save_epoch`, and :mod:`.debug_dump` (what each rank trained on, for the
tests). The options are read, never changed: the preprocessing resolved for the run is written with them to the run's
``config.yaml`` (validate/infer read it from there) from a copy, and kept in the run (``run.data.preprocessing``).

A write that fails (disk full, no permission: checkpoints, ``config.yaml``, ``train.log``, ``metrics.jsonl``,
``class_names.json``) ends the run with one :class:`~mindcv_mobilenet.utils.errors.WriteError` naming the file and the
cause, a non-finite loss with one :class:`~.epoch.TrainingError`; either says what was kept: the last complete
checkpoint and the ``--resume`` command that continues from it. No partial file is left.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import replace

import yaml

from ..constants import program
from ..data import save_class_names
from ..data.dataset import dataset_for_data_dir
from ..data.preprocessing import DataConfig, resolve_data_config
from ..models import get_model_config
from ..runtime import set_mode
from ..utils.errors import WriteError
from ..utils.fileio import appending, make_folder
from ..utils.logs import setup_logging
from .checkpoint_manager import RUN_CONFIG_FILE, CheckpointManager, TrainState, write_run_config
from .debug_dump import DebugDump
from .distributed import DistInfo, init_distributed, launched_ranks
from .epoch import TrainingError, train_one_epoch
from .evaluation import evaluate_epoch
from .metrics import RunLog, format_seconds
from .monitor import METRICS_FILE, RunMonitor, require_tensorboardx, tensorboard_dir
from .run import TrainingRun, build_run, seed_everything
from .training_data import TrainingData

__all__ = ["TrainingError", "train"]

_logger = logging.getLogger("mindcv_mobilenet")


def train(cfg: argparse.Namespace) -> dict:
    """Train as ``cfg`` says (``cfg`` is left as it is); return a summary (best/last Top-1, checkpoint paths,
    per-step losses)."""
    if tensorboard_dir(cfg):
        require_tensorboardx()  # before anything starts: one line naming the package
    set_mode(cfg.mode, cfg.device_target)
    seed_everything(cfg.seed)
    info = init_distributed(cfg.distribute)
    manager = CheckpointManager(cfg.ckpt_save_dir, cfg.model, cfg.keep_checkpoint_max, enabled=info.is_main,
                                every=cfg.ckpt_save_interval, epochs=cfg.epoch_size)
    try:
        with _run_logging(cfg.ckpt_save_dir, info.is_main):
            return _train(cfg, info, manager)
    except (WriteError, TrainingError) as err:
        launched = info.distributed or launched_ranks() > 1  # several ranks: the hint says to resume under a launcher
        raise type(err)(f"{err}; {manager.resume_hint(_resume_command(cfg), launched=launched)}") from None


@contextlib.contextmanager
def _run_logging(run_dir: str, is_main: bool) -> Iterator[None]:
    """While the run goes on: the run folder exists and its lines go to stdout and ``train.log`` (rank 0; the other
    ranks show warnings only)."""
    handlers: list[logging.Handler] = []
    try:
        if is_main:
            make_folder(run_dir, "--ckpt_save_dir")
        handlers = setup_logging("stdout", logging.INFO if is_main else logging.WARNING,
                                 os.path.join(run_dir, "train.log") if run_dir and is_main else None)
        yield
    finally:
        for handler in handlers:
            _logger.removeHandler(handler)
            with contextlib.suppress(OSError):  # a full disk fails the last flush too; the error is on its way
                handler.close()


def _resume_command(cfg: argparse.Namespace) -> str | None:
    """The command (without ``--resume``) that continues this run from its ``config.yaml``; None before it exists."""
    run_config = os.path.join(cfg.ckpt_save_dir, RUN_CONFIG_FILE)
    if not os.path.isfile(run_config):
        return None
    keep_out = " --ckpt_path ''" if cfg.ckpt_path else ""  # the run's initial weights would conflict with --resume
    return f"python {program('train')} -c {shlex.quote(run_config)}{keep_out}"


def _run_config(cfg: argparse.Namespace, preprocessing: DataConfig) -> dict:
    """The options as the run uses them, for its ``config.yaml``: a copy of ``cfg`` holding the resolved
    preprocessing (validate/infer read it from there)."""
    return vars(cfg) | preprocessing.as_settings()


def _train(cfg: argparse.Namespace, info: DistInfo, manager: CheckpointManager) -> dict:
    run_dir = cfg.ckpt_save_dir
    log = RunLog(os.path.join(run_dir, METRICS_FILE), info.is_main)
    monitor = RunMonitor(run_dir, tensorboard_dir(cfg), info.is_main, title=f"{cfg.model}: {run_dir}")
    try:
        preprocessing = resolve_data_config(cfg, get_model_config(cfg.model),
                                            default_dataset=dataset_for_data_dir(cfg.data_dir))
        if info.is_main:
            saved = _run_config(cfg, preprocessing)
            write_run_config(saved, os.path.join(run_dir, RUN_CONFIG_FILE))
            _logger.info("config:\n%s", yaml.safe_dump(saved, sort_keys=False, default_flow_style=None).rstrip())
        run = build_run(cfg, info, preprocessing)
        if info.is_main:
            _save_class_list(run.data, run_dir)
        return _train_epochs(run, manager, log, monitor)
    finally:
        monitor.close()


def _train_epochs(run: TrainingRun, manager: CheckpointManager, log: RunLog, monitor: RunMonitor) -> dict:
    """The epochs left from ``run.start``: train, validate when due, checkpoint, record."""
    cfg, state, debug = run.cfg, run.start, DebugDump(run.info.rank)
    losses: list[float] = []
    last_val: dict | None = None
    for epoch in range(state.epoch, cfg.epoch_size):
        result = train_one_epoch(run, state, epoch, log, debug)
        state, losses, eval_time, val = result.state, losses + result.losses, 0.0, {}
        if run.data.val_source is not None and (state.epoch % cfg.val_interval == 0 or state.epoch == cfg.epoch_size):
            last_val = evaluate_epoch(run)
            eval_time = last_val["time"]
            val = {"val_top1": last_val["top1"], "val_top5": last_val["top5"], "val_loss": last_val["loss"],
                   "val_images": last_val["count"]}
        improved = bool(val) and val["val_top1"] > state.best_top1
        if improved:
            state = replace(state, best_top1=val["val_top1"])
        remaining = cfg.epoch_size - state.epoch
        record = result.record | val | {
            "epoch_time": result.seconds + eval_time,
            "eta": remaining * (result.step_seconds * run.steps_per_epoch + eval_time),
            "best_top1": state.best_top1 if state.best_top1 >= 0 else None}
        checkpoint = manager.save_epoch(run.checkpoint(state), state.epoch, run.steps_per_epoch, improved)
        if checkpoint:
            record["checkpoint"] = checkpoint
        with appending(log.metrics_path) if log.metrics_path else contextlib.nullcontext():
            log.epoch(record)
        monitor.epoch(record)
    debug.weights(run.model)
    return _finish(run, state, manager, last_val, losses, time.time() - log.start)


def _save_class_list(data: TrainingData, run_dir: str) -> None:
    """``class_names.json`` beside the checkpoints: the training data's class names in label order (folder names,
    CIFAR-10's names, synsets), so infer.py prints them and validate.py checks a folder's classes against them."""
    names = data.train_source.class_names
    if len(names) == data.num_classes:
        save_class_names(names, run_dir)
    else:
        _logger.info("no class_names.json written: the data set has %d classes, the model %d (num_classes)",
                     len(names), data.num_classes)


def _finish(run: TrainingRun, state: TrainState, manager: CheckpointManager, last_val: dict | None,
            losses: list[float], total: float) -> dict:
    """The run's summary; rank 0 says where the weights are and how to use them."""
    cfg = run.cfg
    best_path = manager.best_path if os.path.exists(manager.best_path) else None
    summary = {
        "run_dir": cfg.ckpt_save_dir, "epochs": cfg.epoch_size, "global_step": state.global_step,
        "best_top1": state.best_top1 if state.best_top1 >= 0 else None,
        "last_val": last_val, "checkpoint": manager.last_path, "best_checkpoint": best_path,
        "step_losses": losses, "time": total,
    }
    if run.info.is_main:
        best = (f"best val_top1 {state.best_top1:.2f}% ({best_path or 'its checkpoint was not written'}), "
                if state.best_top1 >= 0 else "")
        _logger.info("done in %s: %slast checkpoint %s", format_seconds(total), best, manager.last_path)
        weights = best_path or manager.last_path
        _logger.info("next: python validate.py --model %s --ckpt_path %s\n"
                     "      python infer.py --model %s --ckpt_path %s --image_path photo.jpg",
                     cfg.model, weights, cfg.model, weights)
    return summary
