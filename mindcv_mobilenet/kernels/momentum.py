"""SGD with momentum over all of a network's parameters in one call of this package's CPU kernel (``momentum.cc``);
used by ``engine.optim.Momentum`` on CPU."""

from __future__ import annotations

import functools

import mindspore as ms

from . import KernelOp, library_path

_LIBRARY = "momentum"


@functools.cache
def momentum_update_op(count: int, nesterov: bool = False) -> KernelOp | None:
    """``(lr, momentum, decay, *params, *moments, *grads) -> done`` for ``count`` parameters, updating the parameters
    and moments in place (declared written, so MindSpore orders it as it does ``ApplyMomentum``); None if the library
    cannot be had. ``lr``: one value or one per parameter; ``decay``: one weight decay per parameter (0: none)."""
    path = library_path(_LIBRARY)
    if path is None:
        return None
    op = KernelOp(f"{path}:MomentumUpdate{'Nesterov' if nesterov else ''}", out_shape=lambda *shapes: [1],
                  out_dtype=lambda *dtypes: ms.float32, func_type="aot")
    written = [f"{kind}{i}" for kind in ("param", "moment") for i in range(count)]
    return op.writes_inputs(("lr", "momentum", "decay", *written, *(f"grad{i}" for i in range(count))), written)
