"""Exponential moving average of every model parameter (BatchNorm statistics included).

The copies are parameters named ``ema.<name>``: they sit in the same checkpoint as the raw weights, and
``load_model_weights(model, path, ema=True)`` (``validate.py --ema``) loads them in place of the raw ones. Validation
while training evaluates the EMA weights, so "best" checkpoints are chosen by them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

EMA_PREFIX = "ema."


class EMA(nn.Cell):
    """``ema = d * ema + (1 - d) * w`` after every applied update, ``d = decay * (1 - exp(-updates / 2000))``.

    The warmup of ``d`` (as mindcv and timm do) lets the average follow the fast early changes; it reaches
    ``decay`` after a few thousand steps.
    """

    def __init__(self, model: nn.Cell, decay: float = 0.9999) -> None:
        super().__init__()
        self.decay = decay
        self.weights = ParameterTuple(list(model.get_parameters()))
        self.ema_weights = self.weights.clone(prefix="ema", init="same")
        for p in self.ema_weights:
            p.requires_grad = False
        self.updates = Parameter(Tensor(0.0, ms.float32), name="ema_updates", requires_grad=False)
        self.hyper_map = ops.HyperMap()

    def construct(self) -> Tensor:
        updates = self.updates + 1.0
        ops.assign(self.updates, updates)
        d = self.decay * (1.0 - ops.exp(-updates / 2000.0))
        return self.hyper_map(ops.partial(_ema_update, d), self.ema_weights, self.weights)

    def state(self) -> dict[str, Parameter]:
        """``ema.<name>`` -> EMA parameter, for the checkpoint."""
        return {p.name: p for p in self.ema_weights}

    def load_state(self, params: dict) -> None:
        """Restore the averages from checkpoint entries (``ema.<name>``)."""
        for p in self.ema_weights:
            p.set_data(Tensor(_as_array(params[p.name]), p.dtype))

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the model holds the EMA weights (for validation); the raw weights come back after."""
        raw = [w.asnumpy().copy() for w in self.weights]
        for w, e in zip(self.weights, self.ema_weights, strict=True):
            w.set_data(Tensor(e.asnumpy(), w.dtype))
        try:
            yield
        finally:
            for w, value in zip(self.weights, raw, strict=True):
                w.set_data(Tensor(value, w.dtype))


def _ema_update(decay: Tensor, ema: Parameter, weight: Parameter) -> Tensor:
    return ops.assign(ema, ema * decay + ops.cast(weight, ema.dtype) * (1.0 - decay))


def _as_array(value) -> np.ndarray:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
