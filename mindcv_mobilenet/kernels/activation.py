"""Hard-swish, and bias + activation after folded convolutions, on this package's CPU kernels (``activation.cc``);
used by ``models.layers.HardSwish`` and by the convolutions of BatchNorm-folded networks (``models.fuse.fuse_bn``).
"""

from __future__ import annotations

import functools

from . import KernelOp, library_path

_LIBRARY = "activation"
# MobileNet's activation names -> the suffix of the kernels' entry points that apply them (None: no activation);
# activation.cc (after a bias) and batchnorm.cc (after the normalisation) have one entry point each
KERNEL_ACTIVATIONS = {None: "Linear", "relu": "Relu", "relu6": "Relu6", "hswish": "HSwish"}


@functools.cache
def hswish_op() -> KernelOp | None:
    """The forward custom operator with its gradient as bprop; None if the library cannot be had."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    grad = KernelOp(f"{path}:HSwishBackward", out_shape=lambda dy, x: x, out_dtype=lambda dy, x: dy, func_type="aot")

    def bprop(x, out, dout):
        return (grad(dout, x),)

    return KernelOp(f"{path}:HSwishForward", out_shape=lambda x: x, out_dtype=lambda x: x, func_type="aot",
                    bprop=bprop)


@functools.cache
def bias_activation_op(activation: str | None) -> KernelOp | None:
    """``(x (N, C, ...), b (C,)) -> act(x + b)`` for inference (no gradient); None if the library cannot be had."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    return KernelOp(f"{path}:BiasActivation{KERNEL_ACTIVATIONS[activation]}", out_shape=lambda x, b: x,
                    out_dtype=lambda x, b: x, func_type="aot")
