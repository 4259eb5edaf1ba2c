"""Hard-swish that runs this package's CPU kernel (``activation.cc``) where it can; used by ``models.layers.HardSwish``.
"""

from __future__ import annotations

import functools

from . import KernelOp, library_path

_LIBRARY = "activation"


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
