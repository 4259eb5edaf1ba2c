"""Depthwise convolution that runs this package's CPU kernel (``depthwise_conv.cc``) where it can, stock elsewhere.

:class:`DepthwiseConv2d` is an ``nn.Conv2d`` (same parameters, names, initialisation and checkpoints); on the CPU
backend, with float32 input and a geometry the kernel covers (square kernel, equal strides of 1 or 2, no dilation,
``pad_mode="pad"`` with ``(k - 1) // 2`` on every side, or ``pad_mode="same"``), its forward and both gradients run the
custom operators; on GPU/Ascend, for other geometries, when exporting, or when the kernel could not be built, it is
plain ``nn.Conv2d``. :func:`conv2d` is the one place that decides which class a convolution gets: every convolution
of the models is a :class:`Conv2d` (or this subclass), which a BatchNorm-folded network ends with its activation
(:meth:`Conv2d.fuse_activation`, one kernel for the bias and the activation).
"""

from __future__ import annotations

import functools

import mindspore as ms
from mindspore import Tensor, nn

from . import KernelOp, library_path, on_cpu
from .activation import bias_activation_op

_LIBRARY = "depthwise_conv"


def _output_size(size: int, kernel: int, stride: int, same: bool) -> int:
    if same:
        return -(-size // stride)
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


@functools.cache
def depthwise_op(stride: int, same: bool) -> KernelOp | None:
    """The forward custom operator for ``stride`` and padding rule, with its gradients as bprop; None if unbuilt."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    tag = f"S{stride}{'Same' if same else 'Pad'}"

    def forward_shape(x, w):
        return [x[0], x[1], _output_size(x[2], w[2], stride, same), _output_size(x[3], w[3], stride, same)]

    grad_input = KernelOp(f"{path}:DwBackwardInput{tag}", out_shape=lambda dy, w, x: x,
                            out_dtype=lambda dy, w, x: dy, func_type="aot")
    grad_weight = KernelOp(f"{path}:DwBackwardWeight{tag}", out_shape=lambda dy, x, w: w,
                             out_dtype=lambda dy, x, w: dy, func_type="aot")

    def bprop(x, w, out, dout):
        return grad_input(dout, w, x), grad_weight(dout, x, w)

    return KernelOp(f"{path}:DwForward{tag}", out_shape=forward_shape, out_dtype=lambda x, w: x,
                      func_type="aot", bprop=bprop)


def _kernel_geometry(kernel_size, stride, pad_mode: str, padding, dilation) -> tuple[int, bool] | None:
    """``(stride, same)`` when the kernel computes this convolution exactly, else None."""
    def pair(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    (kh, kw), (sh, sw), (dh, dw) = pair(kernel_size), pair(stride), pair(dilation)
    if kh != kw or sh != sw or sh not in (1, 2) or (dh, dw) != (1, 1):
        return None
    if pad_mode == "same":
        return sh, True
    pads = set(padding) if isinstance(padding, (tuple, list)) else {padding}
    if pad_mode == "pad" and pads == {(kh - 1) // 2}:
        return sh, False
    return None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and names) that can end with an activation of its own.

    A BatchNorm-folded network (``models.fuse.fuse_bn``) moves each ``conv -> BN -> activation``'s activation into the
    folded convolution; in inference on CPU its bias and activation then run as one kernel (``activation.cc``: one
    pass instead of MindSpore's ``BiasAdd`` and the activation), elsewhere, in training and in exports (``exportable``,
    set by ``models.layers.exportable_operators``) as ``BiasAdd`` and the activation cell.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exportable = False
        self.activation: nn.Cell | None = None
        self.bias_activation: KernelOp | None = None

    def fuse_activation(self, activation: nn.Cell | None, name: str | None = None) -> None:
        """Apply ``activation`` (None: none; MobileNet's ``name`` for it: 'relu', 'relu6' or 'hswish', None if another)
        after the bias; the kernel runs bias and activation where it knows the activation."""
        self.activation = activation
        if (activation is None or name is not None) and self.has_bias and on_cpu():
            self.bias_activation = bias_activation_op(name)

    def _finish(self, output: Tensor) -> Tensor:
        if (self.bias_activation is not None and not self.exportable and not self.training
                and output.dtype == ms.float32):
            return self.bias_activation(output, self.bias)
        if self.has_bias:
            output = self.bias_add(output, self.bias)
        if self.activation is not None:
            output = self.activation(output)
        return output

    def construct(self, x: Tensor) -> Tensor:
        return self._finish(self.conv2d(x, self.weight))


class DepthwiseConv2d(Conv2d):
    """``nn.Conv2d(channels, channels, k, group=channels)`` running this package's CPU kernel where it applies.

    ``use_kernel`` is fixed when the cell is built (the device MindSpore targets then, the kernel library built);
    ``exportable`` (set by ``models.layers.exportable_operators`` during exports, which must hold only standard
    operators) runs the stock operator whatever ``use_kernel`` says.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, pad_mode: str = "pad", padding: int = 0,
                 has_bias: bool = False, **kwargs) -> None:
        super().__init__(channels, channels, kernel_size, stride, pad_mode=pad_mode, padding=padding,
                         group=channels, has_bias=has_bias, **kwargs)
        geometry = _kernel_geometry(self.kernel_size, self.stride, self.pad_mode, self.padding, self.dilation)
        self.kernel = depthwise_op(*geometry) if geometry is not None and on_cpu() else None
        self.use_kernel = self.kernel is not None

    def construct(self, x: Tensor) -> Tensor:
        if self.use_kernel and not self.exportable and x.dtype == ms.float32:
            return self._finish(self.kernel(x, self.weight))
        return self._finish(self.conv2d(x, self.weight))


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, pad_mode: str = "pad",
           padding: int = 0, group: int = 1, has_bias: bool = False, **kwargs) -> Conv2d:
    """A :class:`Conv2d`; a :class:`DepthwiseConv2d` when it is depthwise (``group == in == out channels``)."""
    if group > 1 and group == in_channels == out_channels:
        return DepthwiseConv2d(in_channels, kernel_size, stride, pad_mode=pad_mode, padding=padding,
                               has_bias=has_bias, **kwargs)
    return Conv2d(in_channels, out_channels, kernel_size, stride, pad_mode=pad_mode, padding=padding, group=group,
                  has_bias=has_bias, **kwargs)


def depthwise_cells(model: nn.Cell) -> list[DepthwiseConv2d]:
    return [cell for _, cell in model.cells_and_names() if isinstance(cell, DepthwiseConv2d)]
