"""What one training run trains with, built once from the options: :func:`build_run` -> :class:`TrainingRun`.

Building it reads the options and changes nothing in them: the resolved preprocessing is the run's
(``run.data.preprocessing``), the state a resumed run starts from is ``run.start``.
"""

from __future__ import annotations

import argparse
import logging
import random
from dataclasses import dataclass, replace

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn

from ..data.preprocessing import DataConfig
from ..models import create_model
from ..models.input_norm import NormalizedInput
from ..runtime import jit_forward
from .amp import apply_amp
from .checkpoint_manager import TrainState, restore_training_checkpoint, training_checkpoint
from .distributed import DistInfo, Reducer
from .ema import EMA
from .finetune import HeadOnFeatures, layer_lr_scales, prepare_finetune
from .loss import create_loss
from .optim import create_optimizer
from .scheduler import create_scheduler
from .train_step import TrainStep
from .training_data import TrainingData, load_training_data

_logger = logging.getLogger("mindcv_mobilenet")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    ms.set_seed(seed)
    ms.dataset.config.set_seed(seed)


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


@dataclass(frozen=True)
class TrainingRun:
    """Everything one run trains with: its data, the model and what trains it, and where it starts."""

    cfg: argparse.Namespace
    info: DistInfo
    data: TrainingData
    model: nn.Cell  # the weights that are saved
    network: nn.Cell  # what the step runs: the model, or it behind input normalisation / on cached features
    step_cell: TrainStep
    optimizer: nn.Optimizer
    ema: EMA | None
    lrs: np.ndarray  # the learning rate of every step
    reducer: Reducer
    sink: bool  # batches reach the device through MindSpore's data queue (:func:`use_sink_mode`)
    start: TrainState  # fresh, or where the resumed checkpoint stopped

    @property
    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.info.size

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (the last one after the schedule's end)."""
        return float(self.lrs[min(step, len(self.lrs) - 1)])

    def extra_state(self) -> dict[str, Parameter]:
        """Step-cell and EMA counters saved with the weights (so resume continues them)."""
        return self.step_cell.state() | ({"ema_updates": self.ema.updates} if self.ema is not None else {})

    def checkpoint(self, state: TrainState) -> dict:
        """The entries of a training checkpoint at ``state`` (weights, optimizer, counters, EMA, state)."""
        return training_checkpoint(self.model, self.optimizer, self.extra_state(), self.ema, state,
                                   self.steps_per_epoch)


def _network(cfg: argparse.Namespace, model: nn.Cell, data: TrainingData) -> nn.Cell:
    """What the step runs: the classifier on cached features, the model behind on-device input normalisation (uint8
    batches), or the model; in the mixed precision ``amp_level`` asks for."""
    if cfg.mode == 1 and cfg.pynative_jit:
        jit_forward(model)
    if data.train_cache is not None:
        network = HeadOnFeatures(model)
    elif data.input_normalization is not None:
        network = NormalizedInput(model, *data.input_normalization)
    else:
        network = model
    return apply_amp(network, cfg.amp_level)


def build_run(cfg: argparse.Namespace, info: DistInfo, preprocessing: DataConfig) -> TrainingRun:
    """Data, model (weights loaded, fine-tuning applied), optimizer, step cell and the state to start from."""
    seed_everything(cfg.seed)
    data = load_training_data(cfg, info, preprocessing)
    model = create_model(cfg.model, num_classes=data.num_classes, pretrained=cfg.pretrained,
                         in_channels=cfg.in_channels, checkpoint_path=cfg.ckpt_path or None, drop_rate=cfg.drop_rate)
    prepare_finetune(cfg, model, data.calibration_images)
    if cfg.freeze_backbone:  # the head trains on features computed once (engine/finetune.py)
        data = data.with_cached_features(model)
    network = _network(cfg, model, data)
    lrs = create_scheduler(data.steps_per_epoch, cfg.scheduler, cfg.lr, cfg.min_lr, cfg.warmup_epochs,
                           cfg.warmup_factor, cfg.decay_epochs, cfg.decay_rate, cfg.multi_step_decay_milestones,
                           cfg.epoch_size, cfg.lr_epoch_stair, cfg.num_cycles, cfg.cycle_decay)
    params = model.trainable_params()
    optimizer = create_optimizer(params, cfg.opt, lrs, cfg.weight_decay, cfg.momentum, cfg.use_nesterov,
                                 cfg.filter_bias_and_bn, cfg.eps,
                                 layer_lr_scales(params, cfg.layer_decay) if cfg.layer_decay else None)
    ema = EMA(model, cfg.ema_decay) if cfg.ema else None
    step_cell = TrainStep(nn.WithLossCell(network, create_loss(cfg.loss, cfg.label_smoothing)), optimizer,
                          cfg.loss_scale, cfg.dynamic_loss_scale, cfg.loss_scale_window, cfg.clip_grad,
                          cfg.clip_value, ema)
    step_cell.set_train(True)
    run = TrainingRun(cfg, info, data, model, network, step_cell, optimizer, ema, lrs, Reducer(info),
                      sink=use_sink_mode(cfg.dataset_sink_mode) and data.train_cache is None, start=TrainState())
    if cfg.resume:
        start = restore_training_checkpoint(cfg.resume, model, optimizer, run.extra_state(), ema,
                                            data.steps_per_epoch)
        _logger.info("resumed from %s: %d epochs and %d steps done", cfg.resume, start.epoch, start.global_step)
        run = replace(run, start=start)
    _logger.info("%s: %d classes, %d steps/epoch, global batch %d (%d x %d ranks), %s mode, amp %s, %s", cfg.model,
                 data.num_classes, data.steps_per_epoch, run.global_batch, cfg.batch_size, info.size,
                 "graph" if cfg.mode == 0 else "PyNative", cfg.amp_level, cfg.opt)
    return run
