"""Normalising uint8 images in the network's first op (``normalize_on_device``).

The input pipeline then ships uint8 HWC batches (4x smaller) and skips the float ``Normalize`` and the ``HWC2CHW``
per image on the host, about a third of its CPU time per image at 224 px besides decoding; on an accelerator the
transpose and normalisation cost nothing.
"""

from __future__ import annotations

from typing import Sequence

import mindspore as ms
import numpy as np
from mindspore import nn, ops


class NormalizedInput(nn.Cell):
    """``model((float32(NCHW(images)) - mean) / std)`` on NHWC uint8 batches; the model's parameter names are
    unchanged (``auto_prefix=False``), so checkpoints save and load as the model's own."""

    def __init__(self, model: nn.Cell, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(auto_prefix=False)
        self.model = model
        self.mean = ms.Tensor(np.asarray(mean, np.float32).reshape(1, -1, 1, 1))
        self.std = ms.Tensor(np.asarray(std, np.float32).reshape(1, -1, 1, 1))

    def construct(self, images):
        images = ops.transpose(images, (0, 3, 1, 2))  # in uint8: a quarter of the bytes a float transpose moves
        return self.model((ops.cast(images, ms.float32) - self.mean) / self.std)
