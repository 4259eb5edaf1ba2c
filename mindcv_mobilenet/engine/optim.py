"""Optimizers by mindcv's names, with weight decay kept off biases and BatchNorm when asked.

RMSProp: MindSpore's ``nn.RMSProp`` updates ``m = momentum * m + lr * g / sqrt(ms + eps)`` with ``ms`` starting at
one: epsilon inside the square root and a unit initial mean square, which is TensorFlow's RMSProp (the one the
MobileNetV3 paper used, with eps 1e-3), not PyTorch's ``g / (sqrt(ms) + eps)``. ``tests/test_train_engine.py``
checks this against a NumPy reference. AdamW is MindSpore's ``AdamWeightDecay`` (decoupled decay, no bias
correction). Momentum is MindSpore's ``nn.Momentum`` whose update runs on CPU as one kernel call for all parameters
(:class:`Momentum`).
"""

from __future__ import annotations

from collections.abc import Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..kernels import on_cpu
from ..kernels.momentum import momentum_update_op
from ..utils.errors import ConfigError

OPTIMIZERS = ("momentum", "sgd", "adamw", "adam", "rmsprop")
NO_DECAY_SUFFIXES = (".bias", ".gamma", ".beta")


class Momentum(nn.Momentum):
    """``nn.Momentum`` (same arguments, results, moments and checkpoints) whose update of every parameter, weight
    decay included, is one call of this package's CPU kernel where it applies: the stock optimizer launches an
    ``ApplyMomentum`` per parameter (and a Mul and an Add per decayed one), 140-340 launches a MobileNet step that
    cost more to schedule than to run. ``use_nesterov`` is applied there (MindSpore 2.10's CPU ``ApplyMomentum``
    ignores it; GPU and Ascend apply it). Loss scaling, gradient centralization, a weight-decay schedule and other
    devices take the stock path."""

    def __init__(self, params, learning_rate, momentum: float, weight_decay=0.0, loss_scale: float = 1.0,
                 use_nesterov: bool = False) -> None:
        super().__init__(params, learning_rate, momentum, weight_decay, loss_scale, use_nesterov)
        stock_only = self.need_scale or self.grad_centralization or self.dynamic_weight_decay or self.use_parallel
        self.update = None if stock_only or not on_cpu() else momentum_update_op(len(self.params), use_nesterov)
        self.decays = Tensor(self._decay_per_parameter(), ms.float32)

    def _decay_per_parameter(self) -> list[float]:
        if not self.exec_weight_decay:
            return [0.0] * len(self.params)
        if self.is_group:
            return [float(d.asnumpy()) if flag else 0.0 for d, flag in zip(self.weight_decay, self.decay_flags,
                                                                             strict=True)]
        value = float(self.weight_decay.asnumpy())
        return [value if flag else 0.0 for flag in self.decay_flags]

    def construct(self, gradients):
        if self.update is None:
            return super().construct(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        if self.is_group_lr:
            lr = ops.stack(lr)
        return self.update(lr, self.momentum, self.decays, *self.params, *self.moments, *gradients)


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
        return Momentum(groups, lr, momentum, weight_decay=wd, use_nesterov=nesterov)
    if opt == "sgd":
        return nn.SGD(groups, lr, momentum=momentum, weight_decay=wd, nesterov=nesterov and momentum > 0)
    if opt == "adamw":
        return nn.AdamWeightDecay(groups, lr, eps=max(eps, 1e-12), weight_decay=wd)
    if opt == "adam":
        return nn.Adam(groups, lr, eps=max(eps, 1e-12), weight_decay=wd)
    if opt == "rmsprop":
        return nn.RMSProp(groups, lr, decay=0.9, momentum=momentum, epsilon=eps, weight_decay=wd)
    raise ConfigError(f"unknown optimizer '{opt}': use one of {', '.join(OPTIMIZERS)}")
