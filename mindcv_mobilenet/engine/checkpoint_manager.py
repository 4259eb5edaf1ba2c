"""Training checkpoints: what goes in them, which are kept, and how a run resumes from one.

A checkpoint holds the model's own parameters under their names (``validate.py``/``infer.py`` load it with
``load_model_weights``), the EMA copies as ``ema.<name>``, and everything else under ``train_state.``: optimizer
slots and ``global_step`` (``train_state.opt.<name>``), the loss scale, the epoch, the global step, the steps per
epoch and the best Top-1 so far. Resuming reads all of it from the file's contents, never from its name.

Files: ``<model>-<epoch>_<step>.ckpt`` every ``ckpt_save_interval`` epochs and after the last (the last
``keep_checkpoint_max`` kept), ``<model>_best.ckpt`` (highest validation Top-1, never pruned), beside the run's
resolved options (:data:`RUN_CONFIG_FILE`, :func:`write_run_config`). All writes are atomic. The names are made and
read here only: :func:`run_checkpoint` is the checkpoint validate/infer/export take from a run folder,
:func:`run_config_path` the options of the run that wrote a checkpoint, :meth:`CheckpointManager.resume_hint` the
checkpoint a stopped run continues from.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from mindspore import Parameter, Tensor, nn

from ..utils.checkpoint import load_model_weights, read_checkpoint, save_checkpoint
from ..utils.errors import CheckpointError, ConfigError
from ..utils.fileio import atomic_path
from .ema import EMA, EMA_PREFIX

_logger = logging.getLogger("mindcv_mobilenet")

STATE_PREFIX = "train_state."
OPT_PREFIX = STATE_PREFIX + "opt."
RUN_CONFIG_FILE = "config.yaml"  # a run folder's resolved options: train.py -c <it> runs it again
# keys a run's config.yaml written by an older train.py holds under another name -> the name now
RENAMED_RUN_KEYS = {"image_resize": "image_size"}


@dataclass(frozen=True)
class TrainState:
    """Where a run stands: completed epochs, optimizer steps taken, and the best validation Top-1 so far."""

    epoch: int = 0
    global_step: int = 0
    best_top1: float = -1.0


def optimizer_state(optimizer: nn.Optimizer, model: nn.Cell) -> dict[str, Parameter]:
    """The optimizer's own parameters (moments, ``global_step``, ...), i.e. all but the model's weights."""
    model_names = {p.name for p in model.get_parameters()}
    return {p.name: p for p in optimizer.get_parameters() if p.name not in model_names}


def training_checkpoint(model: nn.Cell, optimizer: nn.Optimizer, extra_state: dict[str, Parameter],
                        ema: EMA | None, state: TrainState, steps_per_epoch: int) -> dict:
    """name -> tensor/array of everything a resume needs (see the module docstring)."""
    entries: dict = {p.name: p for p in model.get_parameters()}
    if ema is not None:
        entries.update(ema.state())
    entries.update({OPT_PREFIX + k: v for k, v in optimizer_state(optimizer, model).items()})
    entries.update({STATE_PREFIX + k: v for k, v in extra_state.items()})
    entries[STATE_PREFIX + "epoch"] = np.array(state.epoch, np.int64)
    entries[STATE_PREFIX + "global_step"] = np.array(state.global_step, np.int64)
    entries[STATE_PREFIX + "best_top1"] = np.array(state.best_top1, np.float64)
    entries[STATE_PREFIX + "steps_per_epoch"] = np.array(steps_per_epoch, np.int64)
    return entries


def _value(entry) -> np.ndarray:
    return entry.asnumpy() if hasattr(entry, "asnumpy") else np.asarray(entry)


def _set(param: Parameter, value: np.ndarray, source: str) -> None:
    if tuple(value.shape) != tuple(param.shape):
        raise CheckpointError(f"{source}: {param.name} has shape {tuple(value.shape)}, the run {tuple(param.shape)}")
    param.set_data(Tensor(value, param.dtype))


def restore_training_checkpoint(path: str, model: nn.Cell, optimizer: nn.Optimizer, extra_state: dict[str, Parameter],
                                ema: EMA | None, steps_per_epoch: int) -> TrainState:
    """Load weights, optimizer, loss scale and EMA from ``path`` and return the run state stored in it."""
    params = read_checkpoint(path)
    if STATE_PREFIX + "epoch" not in params:
        raise CheckpointError(f"{path} is not a training checkpoint (no train_state entries): use --ckpt_path to start "
                              "from its weights instead of --resume")
    saved_steps = int(_value(params[STATE_PREFIX + "steps_per_epoch"]))
    if saved_steps != steps_per_epoch:
        raise CheckpointError(f"{path} was written with {saved_steps} steps per epoch, this run has {steps_per_epoch}: "
                              "resume with the same data, batch_size and number of ranks")
    weights = {k: v for k, v in params.items() if not k.startswith(EMA_PREFIX)}
    load_model_weights(model, weights, source=path, new_classifier=False, hint="cannot resume this run from it")
    for name, param in optimizer_state(optimizer, model).items():
        key = OPT_PREFIX + name
        if key not in params:
            raise CheckpointError(f"{path} has no optimizer state '{name}': was it written with another optimizer "
                                  "(opt) than this run?")
        _set(param, _value(params[key]), path)
    for name, param in extra_state.items():
        if STATE_PREFIX + name in params:
            _set(param, _value(params[STATE_PREFIX + name]), path)
    if ema is not None:
        if any(k.startswith(EMA_PREFIX) for k in params):
            ema.load_state(params)
        else:
            _logger.warning("%s has no EMA weights: the EMA starts from the restored weights", path)
            for w, e in zip(ema.weights, ema.ema_weights, strict=True):
                e.set_data(Tensor(w.asnumpy(), e.dtype))
    return TrainState(epoch=int(_value(params[STATE_PREFIX + "epoch"])),
                      global_step=int(_value(params[STATE_PREFIX + "global_step"])),
                      best_top1=float(_value(params[STATE_PREFIX + "best_top1"])))


def best_checkpoint_path(save_dir: str, prefix: str) -> str:
    return os.path.join(save_dir, f"{prefix}_best.ckpt")


def periodic_checkpoints(save_dir: str, prefix: str) -> list[str]:
    """The ``<prefix>-<epoch>_<step>.ckpt`` files in ``save_dir``, oldest first (by time written, then epoch, step)."""
    pattern = re.compile(re.escape(prefix) + r"-(\d+)_(\d+)\.ckpt$")
    found = []
    for name in os.listdir(save_dir) if os.path.isdir(save_dir) else []:
        match = pattern.match(name)
        path = os.path.join(save_dir, name)
        if match and os.path.isfile(path):
            found.append(((os.path.getmtime(path), int(match[1]), int(match[2])), path))
    return [path for _, path in sorted(found)]


def run_checkpoint(save_dir: str, prefix: str) -> str | None:
    """The checkpoint a run folder offers for evaluation: ``<prefix>_best.ckpt``, else the newest periodic one."""
    best = best_checkpoint_path(save_dir, prefix)
    if os.path.isfile(best):
        return best
    periodic = periodic_checkpoints(save_dir, prefix)
    return periodic[-1] if periodic else None


def run_config_path(ckpt_path: str) -> str:
    """Where the options of the run that wrote ``ckpt_path`` are: the ``config.yaml`` beside it."""
    return os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), RUN_CONFIG_FILE)


def write_run_config(values: Mapping[str, Any], path: str) -> str:
    """Write a run's resolved options as YAML, atomically (``config``, the recipe's own path, left out); the file loads
    back with ``-c``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("# resolved configuration of this run; rerun with: -c " + os.path.basename(path) + "\n")
        yaml.safe_dump({k: v for k, v in values.items() if k != "config"}, f, sort_keys=False,
                       default_flow_style=None)
    return path


def read_run_config(path: str) -> dict[str, Any]:
    """The options a run's ``config.yaml`` holds (as :func:`write_run_config` wrote them), under today's names (an
    older run's ``image_resize`` is ``image_size``: :data:`RENAMED_RUN_KEYS`); a file that is not YAML ``key: value``
    lines is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"not a readable YAML file: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"must hold 'key: value' lines, not a {type(data).__name__}")
    return {RENAMED_RUN_KEYS.get(k, k): v for k, v in data.items()
            if not (k in RENAMED_RUN_KEYS and RENAMED_RUN_KEYS[k] in data)}  # both: today's name wins


class CheckpointManager:
    """Writes periodic checkpoints (keeping the last ``keep_max``) and the best one; inert on ranks other than 0.

    :meth:`save_epoch` writes the periodic one every ``every`` epochs and after epoch ``epochs`` (the last).
    """

    def __init__(self, save_dir: str, prefix: str, keep_max: int, enabled: bool = True, every: int = 1,
                 epochs: int | None = None) -> None:
        self.save_dir = save_dir
        self.prefix = prefix
        self.keep_max = keep_max
        self.enabled = enabled
        self.every = every
        self.epochs = epochs
        self.best_path = best_checkpoint_path(save_dir, prefix)
        self.last_path: str | None = None
        # files of an earlier part of this run (resume): oldest first, so they are pruned first
        self.saved = periodic_checkpoints(save_dir, prefix)

    def last_complete(self) -> str | None:
        """The checkpoint written last that is complete on disk (periodic or best; an earlier part's on resume):
        where a run that stopped continues from."""
        written = [p for p in self.saved + [self.best_path] if os.path.isfile(p)]
        return max(written, key=os.path.getmtime) if written else None

    def resume_hint(self, command: str | None, launched: bool = False) -> str:
        """What a stopped run left: its last complete checkpoint and how to continue from it, ``command`` (the run's
        own, to which ``--resume`` is added; None: the user's) under the same launcher when ``launched``."""
        kept = self.last_complete()
        if kept is None:
            return "no checkpoint was written"
        resume = f"--resume {shlex.quote(kept)}"
        how = f"{command} {resume}" if command else f"your command and {resume}"
        return (f"the last complete checkpoint is {kept}: continue with {how}"
                + (" (under the same msrun/mpirun launch)" if launched else ""))

    def save_epoch(self, entries: dict, epoch: int, steps_per_epoch: int, improved: bool) -> str | None:
        """After epoch ``epoch`` (1-based): the periodic checkpoint when one is due, the best one when ``improved``.
        Returns the periodic checkpoint's path, None when none was written."""
        periodic = self.enabled and (epoch % self.every == 0 or epoch == self.epochs)
        path = self.save(entries, epoch, epoch * steps_per_epoch) if periodic else None
        if improved:
            self.save_best(entries)
        return path

    def save(self, entries: dict, epoch: int, step: int) -> str | None:
        """Write ``<prefix>-<epoch>_<step>.ckpt`` and delete the oldest beyond ``keep_max`` (only once it is written:
        a failed write leaves the earlier ones)."""
        if not self.enabled:
            return None
        path = os.path.join(self.save_dir, f"{self.prefix}-{epoch}_{step}.ckpt")
        save_checkpoint(entries, path)
        self.saved = [p for p in self.saved if p != path] + [path]
        while len(self.saved) > self.keep_max:
            old = self.saved.pop(0)
            if os.path.exists(old):
                os.remove(old)
        self.last_path = path
        return path

    def save_best(self, entries: dict) -> str | None:
        if not self.enabled:
            return None
        save_checkpoint(entries, self.best_path)
        return self.best_path
