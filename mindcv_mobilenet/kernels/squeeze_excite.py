"""Global average pooling, the squeeze-excite gate and a per-channel scale on this package's CPU kernels
(``squeeze_excite.cc``); used by ``models.layers.GlobalAvgPool``, ``models.layers.SqueezeExcite`` and
``models.layers.LayerScale2d`` on CPU."""

from __future__ import annotations

import functools

from . import KernelOp, library_path

_LIBRARY = "squeeze_excite"


@functools.cache
def channel_mean_op() -> KernelOp | None:
    """``x (N, C, H, W) -> mean over H, W (N, C, 1, 1)`` with its gradient as bprop; None if the library cannot be
    had."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    grad = KernelOp(f"{path}:ChannelMeanBackward", out_shape=lambda dp, x: x, out_dtype=lambda dp, x: dp,
                    func_type="aot")

    def bprop(x, out, dout):
        return (grad(dout, x),)

    return KernelOp(f"{path}:ChannelMeanForward", out_shape=lambda x: [x[0], x[1], 1, 1], out_dtype=lambda x: x,
                    func_type="aot", bprop=bprop)


@functools.cache
def gate_op() -> KernelOp | None:
    """``(x (N, C, H, W), s (N, C, 1, 1)) -> x * hardsigmoid(s)`` with its gradient as bprop; None if unbuilt."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    grad = KernelOp(f"{path}:GateBackward", out_shape=lambda dy, x, s: (x, s), out_dtype=lambda dy, x, s: (dy, dy),
                    func_type="aot")

    def bprop(x, s, out, dout):
        dx, ds = grad(dout, x, s)
        return dx, ds

    return KernelOp(f"{path}:GateForward", out_shape=lambda x, s: x, out_dtype=lambda x, s: x, func_type="aot",
                    bprop=bprop)




@functools.cache
def channel_scale_op() -> KernelOp | None:
    """``(x (N, C, H, W), s (C,)) -> x * s[c]`` with its gradient as bprop (one pass each way: MindSpore's broadcast
    Mul, its gradient's Mul and ReduceSum were 3 % of a MobileNetV4 hybrid training step); None if unbuilt."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    grad = KernelOp(f"{path}:ChannelScaleBackward", out_shape=lambda dy, x, s: (x, s),
                    out_dtype=lambda dy, x, s: (dy, dy), func_type="aot")

    def bprop(x, s, out, dout):
        dx, ds = grad(dout, x, s)
        return dx, ds

    return KernelOp(f"{path}:ChannelScaleForward", out_shape=lambda x, s: x, out_dtype=lambda x, s: x,
                    func_type="aot", bprop=bprop)
