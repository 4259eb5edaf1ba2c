"""The training loop behind ``train.py``: data, model, optimizer, steps, validation, checkpoints, resume.

The loop is driven from Python, one compiled :class:`TrainStep` call per batch (graph mode) or eager (PyNative);
losses are read back once per ``log_interval`` steps (:mod:`.loss_window`), so the host does not wait for the device
after every step. With ``dataset_sink_mode: True`` on GPU/Ascend batches reach the device through MindSpore's data
queue (``mindspore.data_sink``). The training tree is scanned once per run; each epoch gets a new pipeline on it
whose data order depends only on ``seed + epoch``, so a resumed run sees the batches an uninterrupted run would have
seen. (Dropout masks are not reproduced: MindSpore does not expose its kernels' random state.)

A write that fails (disk full, no permission: checkpoints, ``config.yaml``, ``train.log``, ``metrics.jsonl``,
``class_names.json``) ends the run with one :class:`~mindcv_mobilenet.utils.errors.WriteError` naming the file, the
cause, the last complete checkpoint and the ``--resume`` command that continues from it; no partial file is left.

``MINDCV_MOBILENET_DEBUG_DIR`` (for tests): every rank writes the digest and labels of each batch it trained on to
``samples_rank<r>.jsonl`` and its final weights to ``weights_rank<r>.npz`` there.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import mindspore as ms
import numpy as np
from mindspore import nn

from ..constants import program
from ..data import create_dataset, create_loader, save_class_names
from ..data.dataset import DataSource, dataset_for_data_dir, load_source
from ..data.loader import loader_steps
from ..data.preprocessing import resolve_data_config
from ..models import create_model, get_model_config
from ..models.input_norm import NormalizedInput
from ..runtime import jit_forward, set_mode
from ..utils.errors import UserError, WriteError
from ..utils.fileio import appending, make_folder
from ..utils.logs import setup_logging
from .amp import apply_amp
from .checkpoint_manager import (
    RUN_CONFIG_FILE,
    CheckpointManager,
    TrainState,
    restore_training_checkpoint,
    training_checkpoint,
    write_run_config,
)
from .distributed import DistInfo, Reducer, init_distributed, launched_ranks
from .ema import EMA
from .finetune import FeatureCache, HeadOnFeatures, cache_features, freeze_backbone, freeze_batchnorm, layer_lr_scales
from .loss import create_loss
from .loss_window import LossWindow, NonFiniteLoss, StepResult
from .metrics import AverageMeter, RunLog, evaluate, format_seconds
from .monitor import METRICS_FILE, RunMonitor, require_tensorboardx, tensorboard_dir
from .optim import create_optimizer
from .scheduler import create_scheduler
from .train_step import TrainStep

_logger = logging.getLogger("mindcv_mobilenet")
DEBUG_ENV = "MINDCV_MOBILENET_DEBUG_DIR"


class TrainingError(UserError):
    """Training cannot go on (a non-finite loss); the message says where it stopped and what was kept."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    ms.set_seed(seed)
    ms.dataset.config.set_seed(seed)


def _augmentation(cfg: argparse.Namespace) -> dict:
    """The recipe's training augmentation keys (preprocessing itself is the data config's)."""
    return {"auto_augment": cfg.auto_augment, "scale": tuple(cfg.scale), "ratio": tuple(cfg.ratio),
            "hflip": cfg.hflip, "vflip": cfg.vflip, "color_jitter": cfg.color_jitter, "re_prob": cfg.re_prob,
            "re_scale": tuple(cfg.re_scale), "re_ratio": tuple(cfg.re_ratio), "re_value": cfg.re_value,
            "re_max_attempts": cfg.re_max_attempts}


def build_loader(cfg: argparse.Namespace, split: str, training: bool, info: DistInfo, num_classes: int | None = None,
                 data_source: DataSource | None = None, host_normalized: bool = False):
    """The batched pipeline of ``split`` for this rank (its shard), from the recipe's data and augmentation keys.

    ``data_source`` (from :func:`load_source`) reuses an already scanned tree instead of scanning ``split`` again.
    With ``normalize_on_device`` the images are uint8 for :class:`NormalizedInput` unless ``host_normalized`` (for
    images given to the bare model).
    """
    sharded = info.distributed
    dataset = create_dataset(
        cfg.dataset, root=cfg.data_dir or None, split=split, shuffle=cfg.shuffle and training,
        num_samples=cfg.num_samples, num_parallel_workers=cfg.num_parallel_workers,
        num_shards=info.size if sharded else None, shard_id=info.rank if sharded else None,
        download=cfg.dataset_download, data_source=data_source,
    )
    num_classes = num_classes or dataset.info.num_classes
    settings = resolve_data_config(cfg, get_model_config(cfg.model))
    transform = settings.transforms(training, **(_augmentation(cfg) if training else {}))
    loader = create_loader(
        dataset, batch_size=cfg.batch_size, drop_remainder=training and cfg.drop_remainder, is_training=training,
        mixup=cfg.mixup if training else 0.0, cutmix=cfg.cutmix if training else 0.0,
        cutmix_prob=cfg.cutmix_prob, num_classes=num_classes, transform=transform,
        num_parallel_workers=cfg.num_parallel_workers, label_smoothing=cfg.label_smoothing,
        normalize_on_device=cfg.normalize_on_device and not host_normalized,
    )
    return loader


def iterate(loader) -> Iterator:
    """One pass over a loader as (image, label) tensors."""
    yield from loader.create_tuple_iterator(num_epochs=1, output_numpy=False)


class _DebugDump:
    """Per-rank record of the batches seen and the final weights (see the module docstring)."""

    def __init__(self, rank: int) -> None:
        self.folder = os.environ.get(DEBUG_ENV)
        self.rank = rank
        if self.folder:
            os.makedirs(self.folder, exist_ok=True)
            self.samples = os.path.join(self.folder, f"samples_rank{rank}.jsonl")

        self._pending: dict[int, dict] = {}

    def batch(self, epoch: int, step: int, images, labels) -> None:
        """Note the batch; it is written with its loss by :meth:`losses`."""
        if not self.folder:
            return
        image_np, label_np = images.asnumpy(), labels.asnumpy()
        self._pending[step] = {"epoch": epoch, "step": step, "labels": label_np.reshape(len(label_np), -1)
                               .argmax(-1).tolist() if label_np.ndim > 1 else label_np.tolist(),
                               "digest": hashlib.sha1(image_np.tobytes()).hexdigest()}

    def losses(self, results: list[StepResult]) -> None:
        if not self.folder:
            return
        with open(self.samples, "a", encoding="utf-8") as f:
            for result in results:
                record = self._pending.pop(result.step, None)
                if record is not None:
                    f.write(json.dumps(record | {"loss": result.loss}) + "\n")

    def weights(self, model: nn.Cell) -> None:
        if self.folder:
            np.savez(os.path.join(self.folder, f"weights_rank{self.rank}.npz"),
                     **{p.name: p.asnumpy() for p in model.get_parameters()})


def train(cfg: argparse.Namespace) -> dict:
    """Train as ``cfg`` says; return a summary (best/last Top-1, checkpoint paths, per-step losses)."""
    if tensorboard_dir(cfg):
        require_tensorboardx()  # before anything starts: one line naming the package
    set_mode(cfg.mode, cfg.device_target)
    seed_everything(cfg.seed)
    info = init_distributed(cfg.distribute)
    run_dir = cfg.ckpt_save_dir
    manager = CheckpointManager(run_dir, cfg.model, cfg.keep_checkpoint_max, enabled=info.is_main)
    handlers: list[logging.Handler] = []
    try:
        if info.is_main:
            make_folder(run_dir, "--ckpt_save_dir")
        handlers = setup_logging("stdout", logging.INFO if info.is_main else logging.WARNING,
                                 os.path.join(run_dir, "train.log") if run_dir and info.is_main else None)
        return _train(cfg, info, run_dir, manager)
    except WriteError as err:
        raise WriteError(f"{err}; {_what_is_kept(cfg, manager)}") from None
    finally:
        for handler in handlers:
            _logger.removeHandler(handler)
            with contextlib.suppress(OSError):  # a full disk fails the last flush too; the error is on its way
                handler.close()


@dataclass
class TrainingRun:
    """Everything one run trains with, built once by :func:`build_run` and used by the epoch loop."""

    cfg: argparse.Namespace
    info: DistInfo
    model: nn.Cell  # the weights that are saved
    network: nn.Cell  # what the step runs: the model, or it behind input normalisation / on cached features
    step_cell: TrainStep
    optimizer: nn.Optimizer
    ema: EMA | None
    lrs: np.ndarray
    num_classes: int
    steps_per_epoch: int
    train_source: DataSource
    val_source: DataSource | None
    train_cache: FeatureCache | None
    val_cache: FeatureCache | None
    state: TrainState
    manager: CheckpointManager
    reducer: Reducer
    log: RunLog
    debug: _DebugDump
    sink: bool
    step_losses: list[float] = field(default_factory=list)

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.info.size

    def extra_state(self) -> dict:
        """Step-cell and EMA counters saved with the weights (so resume continues them)."""
        return self.step_cell.state() | ({"ema_updates": self.ema.updates} if self.ema is not None else {})


def _train(cfg: argparse.Namespace, info: DistInfo, run_dir: str, manager: CheckpointManager) -> dict:
    log = RunLog(os.path.join(run_dir, METRICS_FILE), info.is_main)
    monitor = RunMonitor(run_dir, tensorboard_dir(cfg), info.is_main, title=f"{cfg.model}: {run_dir}")
    try:
        return _train_epochs(cfg, info, run_dir, manager, log, monitor)
    finally:
        monitor.close()


def _train_epochs(cfg: argparse.Namespace, info: DistInfo, run_dir: str, manager: CheckpointManager, log: RunLog,
                  monitor: RunMonitor) -> dict:
    settings = resolve_data_config(cfg, get_model_config(cfg.model), default_dataset=dataset_for_data_dir(cfg.data_dir))
    for key, value in settings.as_settings().items():
        setattr(cfg, key, value)  # config.yaml records the preprocessing used; validate/infer read it from there
    if info.is_main:
        write_run_config(vars(cfg), os.path.join(run_dir, RUN_CONFIG_FILE))
        _logger.info("config:\n%s", cfg)
    run = build_run(cfg, info, log, manager)
    if info.is_main:
        save_class_list(run, run_dir)
    last_val: dict | None = None
    for epoch in range(run.state.epoch, cfg.epoch_size):
        record, train_time, step_time = train_one_epoch(run, epoch)
        share_reads(run, run.train_source)
        eval_time = 0.0
        if run.val_source is not None and (run.state.epoch % cfg.val_interval == 0
                                           or run.state.epoch == cfg.epoch_size):
            last_val = evaluate_epoch(run)
            share_reads(run, run.val_source)
            eval_time = last_val["time"]
            record.update(val_top1=last_val["top1"], val_top5=last_val["top5"], val_loss=last_val["loss"],
                          val_images=last_val["count"])
        improved = "val_top1" in record and record["val_top1"] > run.state.best_top1
        if improved:
            run.state.best_top1 = record["val_top1"]
        remaining = cfg.epoch_size - run.state.epoch
        record.update(epoch_time=train_time + eval_time, eta=remaining * (step_time * run.steps_per_epoch + eval_time),
                      best_top1=run.state.best_top1 if run.state.best_top1 >= 0 else None)
        save_checkpoints(run, record, improved)
        with appending(log.metrics_path) if log.metrics_path else contextlib.nullcontext():
            log.epoch(record)
        monitor.epoch(record)
    run.debug.weights(run.model)
    return _finish(run, last_val, time.time() - log.start)


def build_run(cfg: argparse.Namespace, info: DistInfo, log: RunLog, manager: CheckpointManager) -> TrainingRun:
    """Data, model (weights loaded, fine-tuning applied), optimizer, step cell and resumed state."""
    seed_everything(cfg.seed)
    # scanned once: each epoch builds a new pipeline (reseeded shuffle) on this source
    train_source = load_source(cfg.dataset, cfg.data_dir or None, cfg.train_split, cfg.dataset_download)
    train_loader = build_loader(cfg, cfg.train_split, True, info, cfg.num_classes, train_source)
    num_classes = cfg.num_classes or train_loader.info.num_classes
    steps_per_epoch = loader_steps(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"no full batch of {cfg.batch_size} in the training data: lower batch_size")
    val_source = (load_source(cfg.dataset, cfg.data_dir or None, cfg.val_split, cfg.dataset_download)
                  if cfg.val_while_train else None)

    model = create_model(cfg.model, num_classes=num_classes, pretrained=cfg.pretrained, in_channels=cfg.in_channels,
                         checkpoint_path=cfg.ckpt_path or None, drop_rate=cfg.drop_rate)
    _prepare_finetune(cfg, model, num_classes, train_source)
    train_cache = val_cache = None
    if cfg.freeze_backbone:  # the head trains on features computed once (engine/finetune.py)
        train_cache = cache_features(
            model, iterate(build_loader(cfg, cfg.train_split, False, info, num_classes, train_source)), "training")
        val_cache = (cache_features(model, iterate(build_loader(cfg, cfg.val_split, False, info, num_classes,
                                                                val_source)), "validation")
                     if val_source is not None else None)
        steps_per_epoch = train_cache.steps(cfg.batch_size, cfg.drop_remainder)  # = the loader's, checked above
    if cfg.mode == 1 and cfg.pynative_jit:
        jit_forward(model)
    if train_cache is not None:
        network = HeadOnFeatures(model)
    elif train_loader.info.input_normalization is not None:  # uint8 batches, normalised in the network's first op
        network = NormalizedInput(model, *train_loader.info.input_normalization)
    else:
        network = model
    network = apply_amp(network, cfg.amp_level)
    lrs = create_scheduler(steps_per_epoch, cfg.scheduler, cfg.lr, cfg.min_lr, cfg.warmup_epochs, cfg.warmup_factor,
                           cfg.decay_epochs, cfg.decay_rate, cfg.multi_step_decay_milestones, cfg.epoch_size,
                           cfg.lr_epoch_stair, cfg.num_cycles, cfg.cycle_decay)
    params = model.trainable_params()
    optimizer = create_optimizer(params, cfg.opt, lrs, cfg.weight_decay, cfg.momentum, cfg.use_nesterov,
                                 cfg.filter_bias_and_bn, cfg.eps,
                                 layer_lr_scales(params, cfg.layer_decay) if cfg.layer_decay else None)
    ema = EMA(model, cfg.ema_decay) if cfg.ema else None
    step_cell = TrainStep(nn.WithLossCell(network, create_loss(cfg.loss, cfg.label_smoothing)), optimizer,
                          cfg.loss_scale, cfg.dynamic_loss_scale, cfg.loss_scale_window, cfg.clip_grad,
                          cfg.clip_value, ema)
    step_cell.set_train(True)
    run = TrainingRun(cfg, info, model, network, step_cell, optimizer, ema, lrs, num_classes, steps_per_epoch,
                      train_source, val_source, train_cache, val_cache, TrainState(), manager,
                      Reducer(info), log, _DebugDump(info.rank),
                      sink=use_sink_mode(cfg.dataset_sink_mode) and train_cache is None)
    if cfg.resume:
        run.state = restore_training_checkpoint(cfg.resume, model, optimizer, run.extra_state(), ema,
                                                steps_per_epoch)
        _logger.info("resumed from %s: %d epochs and %d steps done", cfg.resume, run.state.epoch,
                     run.state.global_step)
    _logger.info("%s: %d classes, %d steps/epoch, global batch %d (%d x %d ranks), %s mode, amp %s, %s", cfg.model,
                 num_classes, steps_per_epoch, run.global_batch, cfg.batch_size, info.size,
                 "graph" if cfg.mode == 0 else "PyNative", cfg.amp_level, cfg.opt)
    return run


def _epoch_batches(run: TrainingRun, epoch: int) -> tuple[Iterator, Callable | None]:
    """(this epoch's batches, the data-sink step or None): cached features, the device queue, or a new pipeline."""
    cfg = run.cfg
    if run.train_cache is not None:
        return run.train_cache.batches(cfg.batch_size, cfg.drop_remainder, seed=cfg.seed + epoch), None
    loader = build_loader(cfg, cfg.train_split, True, run.info, run.num_classes, run.train_source)
    if run.sink:
        sink_step = ms.data_sink(run.step_cell, loader, jit_config=ms.JitConfig() if cfg.mode == 0 else None)
        return ((None, None) for _ in range(run.steps_per_epoch)), sink_step
    return iterate(loader), None


def train_one_epoch(run: TrainingRun, epoch: int) -> tuple[dict, float, float]:
    """Train epoch ``epoch`` (0-based); losses are read back every ``log_interval`` steps, not after each one.

    Returns (the epoch's record: train loss over ranks, lr, images/s, skipped steps, ``steps``: the mean loss and
    the lr at each read-back, this rank's; seconds it took; seconds per step after the first, which includes
    compilation)."""
    cfg, state = run.cfg, run.state
    seed_everything(cfg.seed + epoch)  # the epoch's shuffle and augmentation depend on the epoch only
    meter, skipped, window, points = AverageMeter(), 0, LossWindow(), []
    read_every = cfg.log_interval or run.steps_per_epoch

    def read_losses() -> int:
        """Account the losses waiting on the device; a non-finite one stops training. Returns the skipped steps."""
        try:
            results = window.read()
        except NonFiniteLoss as err:
            raise TrainingError(_non_finite_message(err.loss, epoch, err.step, run.manager.last_complete())) \
                from None
        run.debug.losses(results)
        counted = _count_steps(results, state, meter, run.step_losses)
        if results:  # one point per read-back (every log_interval steps): the curves' per-step loss and lr
            window_loss = sum(r.loss * r.batch for r in results) / max(sum(r.batch for r in results), 1)
            points.append({"step": state.global_step, "epoch": round(epoch + (results[-1].step + 1) /
                                                                     run.steps_per_epoch, 4),
                           "loss": window_loss, "lr": _lr_at(run.lrs, max(state.global_step - 1, 0))})
        return counted

    start, first_step_end = time.time(), None
    batches, sink_step = _epoch_batches(run, epoch)
    for i, (images, labels) in enumerate(batches):
        loss, finite, scale = sink_step() if sink_step else run.step_cell(images, labels)
        window.add(i, loss, finite, cfg.batch_size if labels is None else len(labels))
        if labels is not None:
            run.debug.batch(epoch, i, images, labels)
        # read losses back every read_every steps (and after step 1, which times start-up and compilation)
        if i == 0 or (i + 1) % read_every == 0:
            skipped += read_losses()
        if first_step_end is None:
            first_step_end = time.time()
        if cfg.log_interval and (i + 1) % cfg.log_interval == 0 and i + 1 < run.steps_per_epoch:
            rate = i * run.global_batch / max(time.time() - first_step_end, 1e-9) if i else 0.0
            run.log.step(epoch + 1, cfg.epoch_size, i + 1, run.steps_per_epoch, meter.mean,
                         _lr_at(run.lrs, state.global_step), rate,
                         float(scale.asnumpy()) if cfg.dynamic_loss_scale else None)
    skipped += read_losses()
    steps_done = i + 1
    train_time = time.time() - start
    steady = (time.time() - first_step_end) / (steps_done - 1) if steps_done > 1 else train_time
    loss_sum, loss_count = run.reducer.sum([meter.total, meter.count])
    run.reducer.average_batchnorm(run.model)
    state.epoch = epoch + 1
    record = {"epoch": epoch + 1, "epochs": cfg.epoch_size, "train_loss": loss_sum / max(loss_count, 1),
              "lr": _lr_at(run.lrs, max(state.global_step - 1, 0)), "images_per_s": run.global_batch / steady,
              "global_step": state.global_step, "skipped_steps": skipped, "steps": points}
    return record, train_time, steady


def save_class_list(run: TrainingRun, run_dir: str) -> None:
    """``class_names.json`` beside the checkpoints: the training data's class names in label order (folder names,
    CIFAR-10's names, synsets), so infer.py prints them and validate.py checks a folder's classes against them."""
    names = run.train_source.class_names
    if len(names) == run.num_classes:
        save_class_names(names, run_dir)
    else:
        _logger.info("no class_names.json written: the data set has %d classes, the model %d (num_classes)",
                     len(names), run.num_classes)


def evaluate_epoch(run: TrainingRun) -> dict:
    """Top-1/Top-5/loss on the validation split (with the EMA weights when kept), exact over ranks; adds ``time``."""
    start = time.time()
    cfg = run.cfg
    if run.val_cache is not None:
        batches = run.val_cache.batches(cfg.batch_size)
    else:  # a new pipeline each time: once every file has been read, it reads them in C++ (data/folder.py)
        batches = iterate(build_loader(cfg, cfg.val_split, False, run.info, run.num_classes, run.val_source))
    if run.ema is not None:
        with run.ema.swapped_in():
            metrics = evaluate(run.network, batches, run.reducer)
    else:
        metrics = evaluate(run.network, batches, run.reducer)
    return metrics | {"time": time.time() - start}


def share_reads(run: TrainingRun, source: DataSource) -> None:
    """Merge what the ranks' readers found in their shards, so every rank can switch to reading in C++."""
    if run.info.distributed:
        source.share_reads(run.reducer.sum, run.info.size)


def save_checkpoints(run: TrainingRun, record: dict, improved: bool) -> None:
    """The periodic checkpoint every ``ckpt_save_interval`` epochs (and at the end), the best one when improved."""
    cfg, state = run.cfg, run.state
    save_now = state.epoch % cfg.ckpt_save_interval == 0 or state.epoch == cfg.epoch_size
    if not (save_now or improved):
        return
    entries = training_checkpoint(run.model, run.optimizer, run.extra_state(), run.ema, state, run.steps_per_epoch)
    if save_now:
        record["checkpoint"] = run.manager.save(entries, state.epoch, state.epoch * run.steps_per_epoch)
    if improved:
        run.manager.save_best(entries)


def _finish(run: TrainingRun, last_val: dict | None, total: float) -> dict:
    """The run's summary; rank 0 says where the weights are and how to use them."""
    cfg, state, manager = run.cfg, run.state, run.manager
    best_path = manager.best_path if os.path.exists(manager.best_path) else None
    summary = {
        "run_dir": cfg.ckpt_save_dir, "epochs": cfg.epoch_size, "global_step": state.global_step,
        "best_top1": state.best_top1 if state.best_top1 >= 0 else None,
        "last_val": last_val, "checkpoint": manager.last_path, "best_checkpoint": best_path,
        "step_losses": run.step_losses, "time": total,
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


def _prepare_finetune(cfg: argparse.Namespace, model: nn.Cell, num_classes: int, train_source) -> None:
    """Unfold folded BatchNorm from training images, then apply ``freeze_bn`` / ``freeze_backbone``."""
    from ..models.fuse import folded_pairs, unfold_bn

    loaded = cfg.pretrained or cfg.ckpt_path
    if cfg.freeze_backbone and not loaded and not cfg.resume:
        _logger.warning("warning: freeze_backbone without pretrained or ckpt_path weights trains a classifier on "
                        "randomly initialised features: expect accuracy near chance")
    bn_trains = not (cfg.freeze_bn or cfg.freeze_backbone)  # frozen BatchNorm keeps the folded function as it is
    folded = folded_pairs(model) if loaded and bn_trains and not cfg.resume else []
    if folded and cfg.bn_calibration_images:
        _logger.info("%s: %d BatchNorm layers carry folded weights (identity statistics); measuring their inputs on "
                     "%d training images so that they train (bn_calibration_images: 0 keeps them folded)",
                     cfg.ckpt_path or "pretrained weights", len(folded), cfg.bn_calibration_images)
        # every rank calibrates on the same images (no sharding), so the ranks start from identical weights
        calib = build_loader(cfg, cfg.train_split, False, DistInfo(), num_classes, train_source, True)
        unfold_bn(model, (images for images, _ in iterate(calib)), cfg.bn_calibration_images)
    elif folded:
        _logger.warning("warning: %d BatchNorm layers carry folded weights and bn_calibration_images is 0: training-"
                        "mode BatchNorm will rescale every layer", len(folded))
    if cfg.freeze_backbone:
        _logger.info("freeze_backbone: %d backbone parameters frozen, training the classifier only",
                     freeze_backbone(model))
    elif cfg.freeze_bn:
        _logger.info("freeze_bn: %d BatchNorm layers in inference mode", freeze_batchnorm(model))


def use_sink_mode(requested: bool) -> bool:
    """Whether batches go through MindSpore's device data queue: only asked-for and on GPU/Ascend (said once)."""
    if not requested:
        return False
    device = ms.get_context("device_target")
    if device in ("GPU", "Ascend"):
        return True
    _logger.info("dataset_sink_mode: True is not used on %s: the data queue it needs exists only on GPU/Ascend "
                 "(batches are fed from Python, losses read every log_interval steps)", device)
    return False


def _count_steps(results: list[StepResult], state: TrainState, meter: AverageMeter, step_losses: list) -> int:
    """Account read-back steps (applied steps advance ``global_step``); returns how many were skipped (overflow)."""
    skipped = 0
    for result in results:
        if result.applied:
            state.global_step += 1
        else:
            skipped += 1
        step_losses.append(result.loss)
        meter.update(result.loss, result.batch)
    return skipped


def _lr_at(lrs: np.ndarray, step: int) -> float:
    return float(lrs[min(step, len(lrs) - 1)])


def _what_is_kept(cfg: argparse.Namespace, manager: CheckpointManager) -> str:
    """After a failed write: the last complete checkpoint and the command that continues from it."""
    kept = manager.last_complete()
    if kept is None:
        return "no checkpoint was written"
    run_config = os.path.join(cfg.ckpt_save_dir, RUN_CONFIG_FILE)
    if not os.path.isfile(run_config):
        return f"the last complete checkpoint is {kept}: continue with your command and --resume {shlex.quote(kept)}"
    # the run's resolved options; its ckpt_path (initial weights) would conflict with --resume
    keep_out = " --ckpt_path ''" if getattr(cfg, "ckpt_path", "") else ""
    launcher = " (under the same msrun/mpirun launch)" if cfg.distribute or launched_ranks() > 1 else ""
    return (f"the last complete checkpoint is {kept}: continue with python {program('train')} -c "
            f"{shlex.quote(run_config)}{keep_out} --resume {shlex.quote(kept)}{launcher}")


def _non_finite_message(loss: float, epoch: int, step: int, kept: str | None) -> str:
    where = f"the last good checkpoint is {kept} (resume with --resume {kept})" if kept else "no checkpoint was saved"
    return (f"loss is {loss} at epoch {epoch + 1}, step {step + 1}: training stopped; {where}. Lower lr, or set "
            "clip_grad: True, or warmup_epochs higher")
