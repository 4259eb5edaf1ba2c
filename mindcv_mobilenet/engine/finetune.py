"""Fine-tuning controls: folded BatchNorm made trainable, frozen layers, layer-wise learning rates, cached features.

:func:`prepare_finetune` applies the first three to a freshly loaded model.

* ``unfold`` (automatic): weights that arrive with BatchNorm folded into the convolutions get real BatchNorm
  statistics measured on training images before training starts (:func:`~mindcv_mobilenet.models.fuse.unfold_bn`).
* ``freeze_bn``: every BatchNorm runs in inference mode (moving statistics, gamma and beta fixed), as timm's
  ``freeze_batch_norm_2d``; useful with small batches or when the pretrained statistics should be kept.
* ``freeze_backbone``: only the classifier (``model.classifier``, all its layers) trains. The backbone's pooled
  features are then the same every epoch, so the trainer computes them once (evaluation transform, no augmentation)
  and trains the head on that cache: a head-only run costs one pass of the backbone, as the MindSpore model_zoo's
  CPU fine-tuning does.
* ``layer_decay``: the learning rate of layer ``i`` of ``n`` is ``lr * layer_decay ** (n - i)`` (timm's and mindcv's
  name): the stem learns slowest, the classifier at the full rate.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from mindspore import Parameter, Tensor, nn

from ..models.fuse import folded_pairs, fuse_bn, unfold_bn

_logger = logging.getLogger("mindcv_mobilenet")


def freeze_batchnorm(model: nn.Cell) -> int:
    """Put every BatchNorm of ``model`` in inference mode for good and stop its gamma/beta training; return how many."""
    count = 0
    for _, cell in model.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            cell.use_batch_statistics = False
            cell.gamma.requires_grad = False
            cell.beta.requires_grad = False
            count += 1
    return count


def freeze_backbone(model: nn.Cell) -> int:
    """Stop training everything but ``model.classifier``; BatchNorm runs in inference mode. Return the frozen count."""
    head = {id(p) for p in model.classifier.get_parameters()}
    frozen = [p for p in model.get_parameters() if id(p) not in head and p.requires_grad]
    freeze_batchnorm(model)
    for param in frozen:
        param.requires_grad = False
    return len(frozen)


_FEATURE_INDEX = re.compile(r"^features\.(\d+)\.")


def layer_ids(params: Sequence[Parameter]) -> tuple[list[int], int]:
    """Depth of each parameter for layer-wise decay: ``features.i`` is layer ``i``, anything after the trunk the last.

    Returns the ids and the number of layers ``n`` (the classifier's id).
    """
    indices = [_FEATURE_INDEX.match(p.name) for p in params]
    depth = max((int(m.group(1)) for m in indices if m), default=0) + 1
    return [int(m.group(1)) if m else depth for m in indices], depth


def layer_lr_scales(params: Sequence[Parameter], layer_decay: float) -> list[float]:
    """``layer_decay ** (n - id)`` for each parameter (see :func:`layer_ids`)."""
    ids, depth = layer_ids(params)
    return [layer_decay ** (depth - i) for i in ids]


class FeatureCache:
    """Pooled features and labels of a whole split, computed once with the backbone in inference mode.

    The backbone runs BatchNorm-folded (:func:`~mindcv_mobilenet.models.fuse.fuse_bn`, same values, faster), on a
    copy: ``model`` and its parameter names are left as they are.
    """

    def __init__(self, model: nn.Cell, batches: Iterator) -> None:
        backbone = fuse_bn(model)
        features, labels = [], []
        for images, batch_labels in batches:
            features.append(backbone.pool(backbone.forward_features(images)).asnumpy())
            labels.append(batch_labels.asnumpy())
        self.features = np.concatenate(features).astype(np.float32)
        self.labels = np.concatenate(labels)

    def __len__(self) -> int:
        return len(self.features)

    def steps(self, batch_size: int, drop_remainder: bool) -> int:
        return len(self) // batch_size if drop_remainder else -(-len(self) // batch_size)

    def batches(self, batch_size: int, drop_remainder: bool = False, seed: int | None = None) -> Iterator:
        """(features, labels) tensors; shuffled by ``seed`` when one is given (the trainer passes seed + epoch)."""
        order = np.random.default_rng(seed).permutation(len(self)) if seed is not None else np.arange(len(self))
        for i in range(self.steps(batch_size, drop_remainder)):
            take = order[i * batch_size:(i + 1) * batch_size]
            yield Tensor(self.features[take]), Tensor(self.labels[take])


class HeadOnFeatures(nn.Cell):
    """``model``'s classifier applied to cached pooled features; shares the classifier's parameters with ``model``,
    whose names are unchanged (``auto_prefix=False``, as :class:`~mindcv_mobilenet.models.input_norm.NormalizedInput`),
    so checkpoints save and load as the model's own."""

    def __init__(self, model: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.head = model.classifier

    def construct(self, x: Tensor) -> Tensor:
        return self.head(x)


def cache_features(model: nn.Cell, batches: Iterator, split: str) -> FeatureCache:
    """Run the frozen backbone once over ``batches`` and log what it cost."""
    start = time.time()
    cache = FeatureCache(model, batches)
    seconds = time.time() - start
    _logger.info("frozen backbone: cached the %d-d features of %d %s images in %.0f s (%.0f img/s)",
                 cache.features.shape[1], len(cache), split, seconds, len(cache) / max(seconds, 1e-9))
    return cache


def prepare_finetune(cfg: argparse.Namespace, model: nn.Cell, calibration_images: Callable[[], Iterator]) -> None:
    """Unfold folded BatchNorm of loaded weights on ``calibration_images()`` (training images, evaluation transform),
    then apply ``freeze_bn`` / ``freeze_backbone`` to ``model``."""
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
        unfold_bn(model, calibration_images(), cfg.bn_calibration_images)
    elif folded:
        _logger.warning("warning: %d BatchNorm layers carry folded weights and bn_calibration_images is 0: training-"
                        "mode BatchNorm will rescale every layer", len(folded))
    if cfg.freeze_backbone:
        _logger.info("freeze_backbone: %d backbone parameters frozen, training the classifier only",
                     freeze_backbone(model))
    elif cfg.freeze_bn:
        _logger.info("freeze_bn: %d BatchNorm layers in inference mode", freeze_batchnorm(model))
