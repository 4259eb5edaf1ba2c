"""BatchNorm (+ activation) whose training mode runs this package's CPU kernel (``batchnorm.cc``) where it can.

:class:`BatchNorm2d` is an ``nn.BatchNorm2d`` (same parameters, names, moving-statistics update and checkpoints) that
also applies the activation following it in MobileNet's layers, if given one. With batch statistics (training),
float32 NCHW input and MindSpore targeting the CPU when it was built, the normalisation, the activation and their
gradients run as one custom operator each way, and the forward also updates the moving statistics in place as
MindSpore's operator does (``moving = (1 - m) * moving + m * batch``, the variance unbiased; declared written, so
MindSpore orders it as it does ``Assign``): nine small operators fewer per layer, whose launches cost more than
their work; inference (moving statistics), exports and other
devices run the stock cell and then the activation cell.
"""

from __future__ import annotations

import functools

import mindspore as ms
from mindspore import Tensor, nn, ops

from . import KernelOp, library_path, on_cpu
from .activation import KERNEL_ACTIVATIONS

_LIBRARY = "batchnorm"


@functools.cache
def batchnorm_op(activation: str | None = None) -> KernelOp | None:
    """The training forward ``(x, gamma, beta, settings, moving_mean, moving_var) -> (activation(y), mean, var)``
    (``settings = [eps, 1 - momentum, momentum]``; the moving statistics updated in place) with its gradient as bprop;
    None if the library cannot be had. ``activation``: a key of ``KERNEL_ACTIVATIONS``."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    suffix = KERNEL_ACTIVATIONS[activation]
    grad = KernelOp(f"{path}:BnTrainBackward{suffix}", out_shape=lambda dy, x, g, b, m, v, e: (x, g, g),
                    out_dtype=lambda dy, x, g, b, m, v, e: (x, x, x), func_type="aot")

    def bprop(x, gamma, beta, settings, moving_mean, moving_var, out, dout):
        dx, dgamma, dbeta = grad(dout[0], x, gamma, beta, out[1], out[2], settings)
        return dx, dgamma, dbeta, ops.zeros_like(settings), ops.zeros_like(moving_mean), ops.zeros_like(moving_var)

    forward = KernelOp(f"{path}:BnTrainForward{suffix}", out_shape=lambda x, g, b, s, m, v: (x, g, g),
                       out_dtype=lambda x, g, b, s, m, v: (x, x, x), func_type="aot", bprop=bprop)
    return forward.writes_inputs(("x", "gamma", "beta", "settings", "moving_mean", "moving_var"),
                                 written=("moving_mean", "moving_var"))


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d``, then ``activation`` (a cell; ``activation_name``: its name in ``KERNEL_ACTIVATIONS``, None
    for another or none), whose batch-statistics mode runs this package's CPU kernel where it applies."""

    def __init__(self, num_features: int, activation: nn.Cell | None = None, activation_name: str | None = None,
                 **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.activation = activation
        self.activation_name = activation_name if activation is not None else None
        known = activation is None or (activation_name is not None and activation_name in KERNEL_ACTIVATIONS)
        self.kernel = batchnorm_op(self.activation_name) if on_cpu() and known else None
        self.use_kernel = self.kernel is not None

    def construct(self, x: Tensor) -> Tensor:
        batch_statistics = self.training if self.use_batch_statistics is None else self.use_batch_statistics
        if not (self.use_kernel and batch_statistics and x.dtype == ms.float32 and x.ndim == 4):
            y = super().construct(x)
            return y if self.activation is None else self.activation(y)
        settings = Tensor([self.eps, 1.0 - self.momentum, self.momentum], ms.float32)
        return self.kernel(x, self.gamma, self.beta, settings, self.moving_mean, self.moving_variance)[0]
