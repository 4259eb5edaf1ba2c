"""Count a network's parameters and multiply-adds from the network itself, not from a table."""

from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn


def count_params(model: nn.Cell) -> int:
    """Trainable parameters (weights, biases, BatchNorm gamma/beta), excluding BatchNorm running statistics."""
    return int(sum(np.prod(p.shape) for p in model.trainable_params()))


def count_macs(model: nn.Cell, image_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of convolutions, dense layers and attention products for one image, measured by running the model
    once.

    Forward hooks record each layer's real output shape (PyNative execution), so strides, padding and "same" padding
    are all accounted for exactly. Element-wise work (BatchNorm, activations, residual adds) is not counted, as in
    the papers' figures.
    """
    import mindspore as ms

    total = [0]

    def conv_hook(cell: nn.Conv2d, _inputs, output) -> None:
        kh, kw = cell.kernel_size
        total[0] += int(np.prod(output.shape[1:])) * (cell.in_channels // cell.group) * kh * kw

    def dense_hook(cell: nn.Dense, _inputs, output) -> None:
        total[0] += cell.in_channels * cell.out_channels

    def matmul_hook(cell: nn.Cell, inputs, _output) -> None:
        total[0] += cell.matmul_macs(inputs[0])

    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    handles = []
    for _, cell in model.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            handles.append(cell.register_forward_hook(conv_hook))
        elif isinstance(cell, nn.Dense):
            handles.append(cell.register_forward_hook(dense_hook))
        elif hasattr(cell, "matmul_macs"):  # attention's products between activations (MobileNetV4's MQA)
            handles.append(cell.register_forward_hook(matmul_hook))
    was_training = model.training
    model.set_train(False)
    try:
        model(Tensor(np.zeros((1, in_channels, image_size, image_size), np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        model.set_train(was_training)
        ms.set_context(mode=previous_mode)
    return total[0]
