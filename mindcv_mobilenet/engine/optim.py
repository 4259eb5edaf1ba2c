"""Optimizers by mindcv's names, with weight decay kept off biases and BatchNorm when asked.

RMSProp: MindSpore's ``nn.RMSProp`` updates ``m = momentum * m + lr * g / sqrt(ms + eps)`` with ``ms`` starting at
one: epsilon inside the square root and a unit initial mean square, which is TensorFlow's RMSProp (the one the
MobileNetV3 paper used, with eps 1e-3), not PyTorch's ``g / (sqrt(ms) + eps)``. ``tests/test_train_engine.py``
checks this against a NumPy reference. AdamW is MindSpore's ``AdamWeightDecay`` (decoupled decay, no bias
correction).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mindspore import Parameter, Tensor, nn

from ..utils.errors import ConfigError

OPTIMIZERS = ("momentum", "sgd", "adamw", "adam", "rmsprop")
NO_DECAY_SUFFIXES = (".bias", ".gamma", ".beta")


def param_groups(params: Sequence[Parameter], weight_decay: float, filter_bias_and_bn: bool,
                 lr: Tensor | float | None = None, lr_scales: Sequence[float] | None = None) -> list:
    """Parameters as one group, or groups keeping their order: decayed weights / undecayed biases and BatchNorm
    (``filter_bias_and_bn``), each split further by learning-rate scale (``lr_scales``, one per parameter, applied
    to ``lr``: layer-wise decay).
    """
    params = list(params)
    decays = [0.0 if filter_bias_and_bn and p.name.endswith(NO_DECAY_SUFFIXES) else weight_decay for p in params]
    scales = list(lr_scales) if lr_scales is not None else [1.0] * len(params)
    keys = sorted(set(zip(decays, scales, strict=True)), key=lambda k: (-k[0], -k[1]))
    if len(keys) == 1 and scales[0] == 1.0:
        return params
    groups: list = []
    for decay, scale in keys:
        group = {"params": [p for p, d, s in zip(params, decays, scales, strict=True) if (d, s) == (decay, scale)],
                 "weight_decay": decay}
        if scale != 1.0:
            group["lr"] = lr * scale
        groups.append(group)
    return groups + [{"order_params": params}]


def create_optimizer(
    params: Sequence[Parameter],
    opt: str = "momentum",
    lr: float | np.ndarray | Tensor = 0.1,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    filter_bias_and_bn: bool = True,
    eps: float = 1e-10,
    lr_scales: Sequence[float] | None = None,
) -> nn.Optimizer:
    """Build the optimizer; ``lr`` may be a per-step array (a dynamic learning rate indexed by ``global_step``).

    ``lr_scales`` (one factor per parameter) gives parameters their own multiple of ``lr`` (layer-wise decay).

    Loss scaling is handled by the train step (gradients reach the optimizer unscaled), so no ``loss_scale`` here.
    """
    opt = opt.lower()
    groups = param_groups(params, weight_decay, filter_bias_and_bn, lr, lr_scales)
    for group in groups:  # per-group learning rates (layer decay): MindSpore takes arrays as Tensors
        if isinstance(group, dict) and isinstance(group.get("lr"), np.ndarray):
            group["lr"] = Tensor(group["lr"].astype(np.float32))
    if isinstance(lr, np.ndarray):
        lr = Tensor(lr.astype(np.float32))
    # with groups the decay is per group; MindSpore wants the top-level value to be 0 then
    wd = 0.0 if isinstance(groups[0], dict) else weight_decay
    if opt == "momentum":
        return nn.Momentum(groups, lr, momentum, weight_decay=wd, use_nesterov=nesterov)
    if opt == "sgd":
        return nn.SGD(groups, lr, momentum=momentum, weight_decay=wd, nesterov=nesterov and momentum > 0)
    if opt == "adamw":
        return nn.AdamWeightDecay(groups, lr, eps=max(eps, 1e-12), weight_decay=wd)
    if opt == "adam":
        return nn.Adam(groups, lr, eps=max(eps, 1e-12), weight_decay=wd)
    if opt == "rmsprop":
        return nn.RMSProp(groups, lr, decay=0.9, momentum=momentum, epsilon=eps, weight_decay=wd)
    raise ConfigError(f"unknown optimizer '{opt}': use one of {', '.join(OPTIMIZERS)}")
