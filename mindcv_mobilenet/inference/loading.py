"""One way to get a ready-to-run model for validate, infer, export and the benchmarks.

Validation and inference need the whole network from the weights, classifier included: a checkpoint of a fine-tuned
model carries its own number of classes, which is read from the file instead of asked for, and a classifier that
does not load (``create_model`` tolerates that for fine-tuning) is an error here.

Which weights: ``--ckpt_path``, else the published ones with ``--pretrained``, else (:func:`use_run_checkpoint`,
called by validate.py, infer.py and export.py after parsing) what train.py wrote for the model in ``ckpt_save_dir``,
so the model_zoo's sequence ``train.py``, then ``validate.py``/``infer.py`` naming no checkpoint, evaluates it.
The options of the run that wrote a checkpoint (its ``config.yaml``) are read here too (:func:`training_run_config`):
the preprocessing resolver takes the keys the command line leaves unset from them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from mindspore import nn

from ..data.preprocessing import from_training_run
from ..engine.checkpoint_manager import read_run_config, run_checkpoint, run_config_path
from ..engine.distributed import launched_rank
from ..models import create_model, get_model_config
from ..models.registry import classifier_name
from ..utils.checkpoint import load_model_weights, pretrained_checkpoint_path, read_checkpoint
from ..utils.download import file_digest
from ..utils.errors import ConfigError, UserError

_logger = logging.getLogger("mindcv_mobilenet")


@dataclass
class LoadedModel:
    """A model in inference mode and where its weights came from.

    ``weights_id`` is the SHA-256 of the weights file (plus ``+ema`` for the EMA copy): the key under which derived
    artefacts (exported ONNX files) are cached. It is None for randomly initialised weights, which are never cached.
    """

    model: nn.Cell
    model_name: str
    num_classes: int
    in_channels: int
    weights: str
    weights_id: str | None
    ckpt_path: str = ""


def use_run_checkpoint(cfg: argparse.Namespace) -> str | None:
    """With neither ``ckpt_path`` nor ``pretrained``: the checkpoint train.py wrote for ``cfg.model`` in
    ``cfg.ckpt_save_dir`` (``<model>_best.ckpt``, else the newest ``<model>-E_S.ckpt``) becomes ``cfg.ckpt_path``,
    treated as if given (its run's ``config.yaml`` supplies the preprocessing: :func:`training_run_config`). One note
    line names it. Returns it, or None (nothing there: the caller's "no weights" stands)."""
    if cfg.ckpt_path or cfg.pretrained:
        return None
    path = run_checkpoint(cfg.ckpt_save_dir, cfg.model)
    if path is None:
        return None
    cfg.ckpt_path = path
    if launched_rank() == 0:
        print(f"note: no --ckpt_path or --pretrained: using {path}, the checkpoint train.py wrote for {cfg.model} in "
              f"ckpt_save_dir {cfg.ckpt_save_dir}", file=sys.stderr, flush=True)
    return path


def training_run_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The options of the train.py run that wrote ``args.ckpt_path`` (the ``config.yaml`` beside it), for the
    preprocessing resolver (``resolve_data_config(args, model, run_config)``), so that a fine-tuned model is evaluated
    the way it was trained; None without one. One note (rank 0) names the preprocessing keys it supplies; a file that
    cannot be read is ignored with a warning."""
    ckpt_path = getattr(args, "ckpt_path", "")
    if not ckpt_path:
        return None
    path = run_config_path(ckpt_path)
    if not os.path.isfile(path):
        return None
    try:
        values = read_run_config(path)
    except ConfigError as err:
        print(f"warning: ignoring {path}: {err}", file=sys.stderr, flush=True)
        return None
    adopted = from_training_run(args, values)
    if adopted and launched_rank() == 0:
        shown = ", ".join(f"{k}={v}" for k, v in adopted.items())
        print(f"note: preprocessing from the training run's {path}: {shown}", file=sys.stderr, flush=True)
    return values


def checkpoint_classes(params: dict, model_name: str, ema: bool = False) -> int | None:
    """Outputs of the classifier stored in a checkpoint (None when it has no classifier of this model family)."""
    config = get_model_config(model_name)
    key = ("ema." if ema else "") + f"{classifier_name(model_name)}.weight"
    if key not in params:
        return None
    classes = int(params[key].shape[0])
    if classes == config.checkpoint_num_classes == 1001:
        return config.num_classes  # mindcv's V1 weights: the extra background class is cut off when loading
    return classes


def load_model(
    model_name: str,
    ckpt_path: str = "",
    pretrained: bool = False,
    num_classes: int | None = None,
    in_channels: int = 3,
    ema: bool = False,
    require_weights: bool = True,
) -> LoadedModel:
    """Build ``model_name`` with all its weights from ``ckpt_path`` (or the published ones with ``pretrained``).

    ``num_classes`` defaults to the checkpoint's classifier size. ``require_weights=False`` allows random weights
    (export, speed measurements); otherwise a model without weights is a :class:`UserError`.
    """
    config = get_model_config(model_name)  # unknown names: one error with the closest ones
    path = ckpt_path
    if ckpt_path and pretrained:
        _logger.info("--ckpt_path given: using %s, not the published weights", ckpt_path)
    elif pretrained:
        path = pretrained_checkpoint_path(model_name, config)
    if not path:
        if require_weights:
            raise UserError(f"no weights for {model_name}: pass --pretrained (published weights) or --ckpt_path FILE")
        _logger.warning("%s: no --pretrained or --ckpt_path: random weights", model_name)
        model = create_model(model_name, num_classes=num_classes, in_channels=in_channels)
        model.set_train(False)
        return LoadedModel(model, model_name, model.num_classes, in_channels, "random initialisation", None)

    params = read_checkpoint(path)
    stored = checkpoint_classes(params, model_name, ema)
    num_classes = num_classes or stored
    model = create_model(model_name, num_classes=num_classes, in_channels=in_channels)
    # strict (another model's checkpoint is an error); messages name the file
    load_model_weights(model, params, ema=ema, source=path, new_classifier=False,
                       hint="leave --num_classes unset to use the checkpoint's")
    model.set_train(False)
    weights_id = file_digest(path) + ("+ema" if ema else "")
    return LoadedModel(model, model_name, model.num_classes, in_channels, os.path.abspath(path), weights_id,
                       ckpt_path)
