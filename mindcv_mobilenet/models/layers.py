"""Building blocks shared by the MobileNet families.

Blocks are returned as plain lists of cells (convolution, BatchNorm with its activation, an ``nn.Identity`` where
mindcv has the activation) and assembled into ``nn.SequentialCell`` by the family builders, so parameter names come
out as ``features.3.layers.0.weight`` exactly as in mindcv and its published checkpoints load unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Callable

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.common import initializer as init

from ..kernels import on_cpu
from ..kernels.activation import KERNEL_ACTIVATIONS, hswish_op
from ..kernels.batchnorm import BatchNorm2d
from ..kernels.depthwise import Conv2d, conv2d
from ..kernels.squeeze_excite import channel_mean_op, channel_scale_op, gate_op


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without going more than 10% below ``value``."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class _FastOrExportable(nn.Cell):
    """A cell with a fast MindSpore kernel to run and a formula of standard operators to export (same values).

    :func:`exportable_operators` sets ``exportable`` on every such cell of a model for the duration of an export.
    """

    def __init__(self) -> None:
        super().__init__()
        self.exportable = False


class _HardActivation(_FastOrExportable):
    """Base of the hard activations: one fused kernel to run, a ReLU6 formula to export.

    MindSpore's ``HSwish``/``HSigmoid`` (and this package's hard-swish on CPU) are one kernel each, several times
    faster than the formula's four operators, but they have no ONNX mapping; the export formula is
    ``relu6(x + 3) / 6``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.relu6 = nn.ReLU6()


class HardSigmoid(_HardActivation):
    """``relu6(x + 3) / 6``: MobileNetV3's gate in squeeze-excite."""

    def construct(self, x: Tensor) -> Tensor:
        if self.exportable:
            return self.relu6(x + 3.0) / 6.0
        return ops.hardsigmoid(x)


class HardSwish(_HardActivation):
    """``x * relu6(x + 3) / 6``: MobileNetV3's h-swish; on CPU this package's kernel (``kernels/activation.cc``, 3-10x
    faster than MindSpore's ``HSwish`` there), elsewhere MindSpore's."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = hswish_op() if on_cpu() else None
        self.use_kernel = self.kernel is not None

    def construct(self, x: Tensor) -> Tensor:
        if self.exportable:
            return x * self.relu6(x + 3.0) / 6.0
        if self.use_kernel and x.dtype == ms.float32:
            return self.kernel(x)
        return ops.hardswish(x)


@contextlib.contextmanager
def exportable_operators(model: nn.Cell) -> Iterator[nn.Cell]:
    """Within the block, ``model`` runs standard operators only (same values): hard activations as their ReLU6
    formula, exact GELU without Erf, a head's BatchNorm1d as an affine map, global pooling as a mean, convolutions as
    MindSpore's own (an exported file must not call this package's CPU kernels)."""
    cells = [cell for _, cell in model.cells_and_names()
             if isinstance(cell, (_FastOrExportable, Conv2d, BatchNorm1d))]
    for cell in cells:
        cell.exportable = True
    try:
        yield model
    finally:
        for cell in cells:
            cell.exportable = False


# Numerical Recipes' erfcc (Chebyshev fit): erfc(z) = t exp(poly(t) - z^2), t = 1 / (1 + z / 2), z >= 0, fractional
# error < 1.2e-7; the polynomial sits in the exponent, so float32 rounding stays small too
_ERFC_POLY = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
              -0.82215223, 0.17087277)


class GELU(_FastOrExportable):
    """The exact (erf) GELU of PyTorch and timm (MindSpore's ``nn.GELU`` defaults to the tanh approximation).

    MindSpore's ONNX exporter has no Erf, so exports use ``relu(x) - |x| erfc(|x| / sqrt(2)) / 2`` (the same function
    for either sign of ``x``) with Numerical Recipes' erfc: Relu, Abs, Mul, Add, Sub, Div and Exp only; in float32
    within 2.4e-7 of the exact value (MindSpore's own GELU: 4.5e-7).
    """

    def __init__(self) -> None:
        super().__init__()
        self.one = Tensor(1.0, ms.float32)  # a tensor numerator: a scalar one would export as Reciprocal (no ONNX map)

    def construct(self, x: Tensor) -> Tensor:
        if self.exportable:
            magnitude = ops.abs(x)
            z = magnitude * (1.0 / math.sqrt(2.0))
            t = ops.div(self.one, 1.0 + 0.5 * z)
            poly = _ERFC_POLY[-1]
            for coefficient in _ERFC_POLY[-2::-1]:
                poly = coefficient + t * poly
            return ops.relu(x) - 0.5 * magnitude * t * ops.exp(poly - z * z)
        return ops.gelu(x, approximate="none")


class BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that exports as a per-channel affine map of its ``(N, C)`` input: MindSpore's own reshapes
    to ``(N, C, 1, 1)`` with the traced batch written into the file, which then runs no other batch size."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.exportable = False

    def construct(self, x: Tensor) -> Tensor:
        if self.exportable and not self.training:
            scale = self.gamma / ops.sqrt(self.moving_variance + self.eps)
            return x * scale + (self.beta - self.moving_mean * scale)
        return super().construct(x)


ACTIVATIONS: dict[str, Callable[[], nn.Cell]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": HardSwish,
    "gelu": GELU,
}


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: str | None = "relu",
    pad_mode: str = "pad",
) -> list[nn.Cell]:
    """Convolution + BatchNorm (+ activation) as a list of cells; ``act=None`` gives a linear projection.

    The BatchNorm applies the activation itself (one kernel with the normalisation in CPU training); the activation's
    place in the list holds an ``nn.Identity`` so that every later layer keeps mindcv's index and parameter names.
    """
    padding = (kernel_size - 1) // 2 if pad_mode == "pad" else 0
    conv = conv2d(in_channels, out_channels, kernel_size, stride, pad_mode=pad_mode, padding=padding, group=groups,
                  has_bias=False)
    if act is None:
        return [conv, BatchNorm2d(out_channels)]
    kernel_name = act if act in KERNEL_ACTIVATIONS else None  # e.g. GELU: no kernel, the cell after BatchNorm
    return [conv, BatchNorm2d(out_channels, activation=ACTIVATIONS[act](), activation_name=kernel_name),
            nn.Identity()]


class GlobalAvgPool(_FastOrExportable):
    """Mean over the spatial axes (``AdaptiveAvgPool2d(1)``), optionally keeping them as 1x1.

    On CPU this package's kernel (``kernels/squeeze_excite.cc``: one pass forward and backward), elsewhere MindSpore's
    ``AdaptiveAvgPool2D`` (on CPU 3-4x faster than ``ReduceMean`` over the two spatial axes); exports use the mean.
    """

    def __init__(self, keep_dims: bool = False) -> None:
        super().__init__()
        self.keep_dims = keep_dims
        self.pool = ops.AdaptiveAvgPool2D(1)
        self.kernel = channel_mean_op() if on_cpu() else None
        self.use_kernel = self.kernel is not None

    def construct(self, x: Tensor) -> Tensor:
        if self.exportable:
            return ops.mean(x, axis=(2, 3), keep_dims=self.keep_dims)
        if self.use_kernel and x.dtype == ms.float32:
            pooled = self.kernel(x)
        else:
            pooled = self.pool(x)
        if self.keep_dims:
            return pooled
        return pooled.reshape(pooled.shape[0], pooled.shape[1])


class SqueezeExcite(_FastOrExportable):
    """Channel attention: pool, 1x1 reduce + ReLU, 1x1 expand + hard-sigmoid gate, rescale (MobileNetV3).

    On CPU the gate and the rescale run as one kernel (``kernels/squeeze_excite.cc``), elsewhere and in exports as
    ``x * hardsigmoid(s)``.
    """

    def __init__(self, channels: int, reduce_ratio: float = 0.25, divisor: int = 8) -> None:
        super().__init__()
        reduced = make_divisible(channels * reduce_ratio, divisor)
        self.pool = GlobalAvgPool(keep_dims=True)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, has_bias=True)
        self.act = nn.ReLU()
        self.conv_expand = nn.Conv2d(reduced, channels, 1, has_bias=True)
        self.gate = HardSigmoid()
        self.kernel = gate_op() if on_cpu() else None
        self.use_kernel = self.kernel is not None

    def construct(self, x: Tensor) -> Tensor:
        logits = self.conv_expand(self.act(self.conv_reduce(self.pool(x))))
        if self.use_kernel and not self.exportable and x.dtype == ms.float32:
            return self.kernel(x, logits)
        return x * self.gate(logits)


class LayerScale2d(_FastOrExportable):
    """Per-channel learned scale of a residual branch (``gamma``, initialised small so a new block starts near
    identity; MobileNetV4's hybrid models). On CPU one kernel each way (``kernels/squeeze_excite.cc``), elsewhere and
    in exports ``x * gamma``."""

    def __init__(self, channels: int, init_value: float) -> None:
        super().__init__()
        self.gamma = ms.Parameter(Tensor(np.full((channels,), init_value, np.float32)), name="gamma")
        self.kernel = channel_scale_op() if on_cpu() else None
        self.use_kernel = self.kernel is not None

    def construct(self, x: Tensor) -> Tensor:
        if self.use_kernel and not self.exportable and x.dtype == ms.float32:
            return self.kernel(x, self.gamma)
        return x * self.gamma.reshape(1, -1, 1, 1)


class ResidualBlock(nn.Cell):
    """``layers(x)``, plus ``x`` when the block keeps shape (stride 1, same channels): the inverted residual."""

    def __init__(self, layers: list[nn.Cell], use_residual: bool) -> None:
        super().__init__()
        self.use_residual = use_residual
        self.layers = nn.SequentialCell(layers)

    def construct(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.layers(x)
        return self.layers(x)


def init_weights(model: nn.Cell) -> None:
    """He-normal (fan-out) convolutions, unit BatchNorm, N(0, 0.01) classifier: the init of the reference zoos."""
    for _, cell in model.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            fan_out = cell.kernel_size[0] * cell.kernel_size[1] * cell.out_channels  # not / groups, as torch and mindcv
            cell.weight.set_data(init.initializer(init.Normal(sigma=math.sqrt(2.0 / fan_out)),
                                                  cell.weight.shape, cell.weight.dtype))
            if cell.bias is not None:
                cell.bias.set_data(init.initializer("zeros", cell.bias.shape, cell.bias.dtype))
        elif isinstance(cell, nn.BatchNorm2d):
            cell.gamma.set_data(init.initializer("ones", cell.gamma.shape, cell.gamma.dtype))
            cell.beta.set_data(init.initializer("zeros", cell.beta.shape, cell.beta.dtype))
        elif isinstance(cell, nn.Dense):
            cell.weight.set_data(init.initializer(init.Normal(sigma=0.01), cell.weight.shape, cell.weight.dtype))
            if cell.bias is not None:
                cell.bias.set_data(init.initializer("zeros", cell.bias.shape, cell.bias.dtype))
