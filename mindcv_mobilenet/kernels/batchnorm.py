"""BatchNorm whose training mode runs this package's CPU kernel (``batchnorm.cc``) where it can, stock elsewhere.

:class:`BatchNorm2d` is an ``nn.BatchNorm2d`` (same parameters, names, moving-statistics update and checkpoints); with
batch statistics (training), float32 NCHW input and MindSpore targeting the CPU when it was built, the normalisation
and its gradient run the custom operators and the moving statistics are updated here as MindSpore's operator does
(``moving = (1 - m) * moving + m * batch``, the variance unbiased); inference (moving statistics), exports and other
devices run the stock cell.
"""

from __future__ import annotations

import functools

import mindspore as ms
from mindspore import Tensor, nn, ops

from . import KernelOp, library_path, on_cpu

_LIBRARY = "batchnorm"


@functools.cache
def batchnorm_op() -> KernelOp | None:
    """The training forward ``(x, gamma, beta, eps) -> (y, mean, var)`` with its gradient as bprop; None if unbuilt."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    grad = KernelOp(f"{path}:BnTrainBackward", out_shape=lambda dy, x, g, m, v, e: (x, g, g),
                    out_dtype=lambda dy, x, g, m, v, e: (x, x, x), func_type="aot")

    def bprop(x, gamma, beta, eps, out, dout):
        dx, dgamma, dbeta = grad(dout[0], x, gamma, out[1], out[2], eps)
        return dx, dgamma, dbeta, ops.zeros_like(eps)

    return KernelOp(f"{path}:BnTrainForward", out_shape=lambda x, g, b, e: (x, g, g),
                    out_dtype=lambda x, g, b, e: (x, x, x), func_type="aot", bprop=bprop)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose batch-statistics mode runs this package's CPU kernel where it applies."""

    def __init__(self, num_features: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.kernel = batchnorm_op() if on_cpu() else None
        self.use_kernel = self.kernel is not None
        self.epsilon = Tensor([self.eps], ms.float32)

    def construct(self, x: Tensor) -> Tensor:
        batch_statistics = self.training if self.use_batch_statistics is None else self.use_batch_statistics
        if not (self.use_kernel and batch_statistics and x.dtype == ms.float32 and x.ndim == 4):
            return super().construct(x)
        y, mean, var = self.kernel(x, self.gamma, self.beta, self.epsilon)
        count = x.shape[0] * x.shape[2] * x.shape[3]
        unbiased = var * (count / max(count - 1, 1))
        new_mean = self.moving_mean * (1.0 - self.momentum) + ops.stop_gradient(mean) * self.momentum
        new_var = self.moving_variance * (1.0 - self.momentum) + ops.stop_gradient(unbiased) * self.momentum
        y = ops.depend(y, ops.assign(self.moving_mean, new_mean))
        return ops.depend(y, ops.assign(self.moving_variance, new_var))
