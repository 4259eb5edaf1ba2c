"""BatchNorm folding for inference, and its inverse for training: ``conv -> BN`` pairs and their statistics.

In eval mode BatchNorm is a per-channel affine map, ``y = gamma * (x - mean) / sqrt(var + eps) + beta``, so it folds
into the preceding convolution's weights and a bias. On MindSpore's CPU backend BatchNorm inference is about a third of
MobileNetV2's forward time (its oneDNN kernel re-reads every activation), and the folded network skips it entirely.

Many published weights come folded (deployment exports, quantized models, TFLite files). Loaded into a network with
BatchNorm, each BN becomes "identity plus bias" (gamma 1, beta = bias, mean 0, variance 1 - eps): right for inference,
but training-mode BN then renormalises every layer with batch statistics and throws the pretrained scales away.
:func:`unfold_bn` recovers real BatchNorm from data: it measures each convolution's output statistics on real
images and sets ``mean, var`` to them and ``gamma = sqrt(var + eps)``, ``beta = bias + mean``, so the network computes
the same function in inference mode and nearly the same in training mode (batch statistics ~ the measured ones).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable

import numpy as np
from mindspore import Parameter, Tensor, nn

from ..kernels.batchnorm import BatchNorm2d
from ..kernels.depthwise import Conv2d, conv2d
from .layers import ACTIVATIONS

_logger = logging.getLogger("mindcv_mobilenet")


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Conv2d:
    """A convolution with ``conv``'s geometry computing ``bn(conv(x))`` in inference mode (folded in float64)."""
    weight = conv.weight.asnumpy().astype(np.float64)
    bias = conv.bias.asnumpy().astype(np.float64) if conv.bias is not None else np.zeros(weight.shape[0])
    scale = bn.gamma.asnumpy().astype(np.float64) / np.sqrt(bn.moving_variance.asnumpy().astype(np.float64) + bn.eps)
    new_bias = (bias - bn.moving_mean.asnumpy().astype(np.float64)) * scale + bn.beta.asnumpy().astype(np.float64)
    fused = conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, pad_mode=conv.pad_mode,
                   padding=conv.padding, dilation=conv.dilation, group=conv.group, has_bias=True)
    dtype = conv.weight.dtype
    fused.weight = Parameter(Tensor((weight * scale.reshape(-1, 1, 1, 1)).astype(np.float32), dtype),
                             name=conv.weight.name)
    prefix = conv.weight.name.rsplit(".", 1)[0]
    fused.bias = Parameter(Tensor(new_bias.astype(np.float32), dtype), name=prefix + ".bias")
    return fused


def _pairs_in(seq: nn.SequentialCell) -> list[tuple[int, nn.Conv2d, nn.BatchNorm2d]]:
    """``(index, conv, bn)`` for every ``Conv2d`` directly followed by its ``BatchNorm2d`` inside ``seq``."""
    cells = list(seq.cell_list)
    return [(i, conv, bn) for i, (conv, bn) in enumerate(zip(cells[:-1], cells[1:], strict=True))
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels]


def conv_bn_pairs(model: nn.Cell) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every ``conv -> BN`` pair of ``model`` (the layers that :func:`fuse_bn` folds and :func:`unfold_bn` unfolds)."""
    return [(conv, bn) for _, cell in model.cells_and_names() if isinstance(cell, nn.SequentialCell)
            for _, conv, bn in _pairs_in(cell)]


def _activation_name(cell: nn.Cell) -> str | None:
    """MobileNet's name of an activation cell ('relu', 'relu6', 'hswish'), None for any other cell."""
    return next((name for name, kind in ACTIVATIONS.items() if type(cell) is kind), None)


def _fuse_sequential(seq: nn.SequentialCell) -> int:
    """Fold every ``conv -> BN`` pair inside ``seq``; the BN becomes ``nn.Identity``. The folded convolution applies
    the BN's activation (this package's BatchNorm2d), or a MobileNet activation right after the BN (which then
    becomes ``nn.Identity`` too): one kernel with its bias on CPU."""
    pairs = _pairs_in(seq)
    for i, conv, bn in pairs:
        seq[i] = _folded_conv(conv, bn)
        seq[i + 1] = nn.Identity()  # keeps every later index (and so every parameter name) where it was
        if isinstance(bn, BatchNorm2d) and bn.activation is not None:
            seq[i].fuse_activation(bn.activation, bn.activation_name)
        elif i + 2 < len(seq) and _activation_name(seq[i + 2]) is not None:
            seq[i].fuse_activation(seq[i + 2], _activation_name(seq[i + 2]))
            seq[i + 2] = nn.Identity()
        else:
            seq[i].fuse_activation(None)
    return len(pairs)


def fuse_bn(model: nn.Cell, inplace: bool = False) -> nn.Cell:
    """An inference copy of ``model`` with every ``Conv2d -> BatchNorm2d`` pair folded into one biased convolution
    (which also applies the activation that followed the BatchNorm).

    The copy is in eval mode and gives the same logits as ``model.set_train(False)`` up to float rounding. The folded
    layers keep the convolutions' parameter names (plus a ``.bias``), the BN parameters are gone, so the result is for
    inference and export, not for training or for saving as a training checkpoint. ``model`` itself is left untouched
    unless ``inplace=True``.
    """
    target = model if inplace else copy.deepcopy(model)
    target.set_train(False)
    count = sum(_fuse_sequential(cell) for _, cell in target.cells_and_names() if isinstance(cell, nn.SequentialCell))
    target.fused_bn_layers = count
    return target


def is_folded_bn(bn: nn.BatchNorm2d, atol: float = 1e-6) -> bool:
    """True when ``bn`` is the identity-plus-bias left by loading folded weights (gamma 1, mean 0, var 1 - eps)."""
    gamma, mean, var = (p.asnumpy() for p in (bn.gamma, bn.moving_mean, bn.moving_variance))
    return bool(np.allclose(gamma, 1.0, rtol=0, atol=atol) and np.allclose(mean, 0.0, rtol=0, atol=atol)
                and np.allclose(var + bn.eps, 1.0, rtol=0, atol=atol))


def folded_pairs(model: nn.Cell) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The ``conv -> BN`` pairs whose BN carries folded weights (see :func:`is_folded_bn`)."""
    return [(conv, bn) for conv, bn in conv_bn_pairs(model) if is_folded_bn(bn)]


def unfold_bn(model: nn.Cell, batches: Iterable, max_images: int = 512) -> int:
    """Give every folded BatchNorm of ``model`` the statistics of its input on real images; return how many.

    ``batches`` yields image batches (NCHW float arrays or tensors, preprocessed as for evaluation); up to
    ``max_images`` of them are run once through ``model`` in inference mode (PyNative, with forward hooks on the
    convolutions). Inference outputs are unchanged (up to float rounding); training-mode BatchNorm then normalises
    with statistics close to the ones it was given instead of rescaling every layer.
    """
    import mindspore as ms

    pairs = folded_pairs(model)
    if not pairs:
        return 0
    sums = {id(conv): [0.0, 0.0, 0] for conv, _ in pairs}

    def record(cell: nn.Conv2d, _inputs, output) -> None:
        x = output.asnumpy().astype(np.float64)
        acc = sums[id(cell)]
        acc[0] = acc[0] + x.sum(axis=(0, 2, 3))
        acc[1] = acc[1] + np.square(x).sum(axis=(0, 2, 3))
        acc[2] += x.shape[0] * x.shape[2] * x.shape[3]

    previous_mode, was_training = ms.get_context("mode"), model.training
    ms.set_context(mode=ms.PYNATIVE_MODE)
    handles = [conv.register_forward_hook(record) for conv, _ in pairs]
    model.set_train(False)
    seen = 0
    try:
        for images in batches:
            images = images if isinstance(images, Tensor) else Tensor(np.asarray(images, np.float32))
            images = images[: max_images - seen]
            model(images)
            seen += images.shape[0]
            if seen >= max_images:
                break
    finally:
        for handle in handles:
            handle.remove()
        model.set_train(was_training)
        ms.set_context(mode=previous_mode)
    if seen == 0:
        raise ValueError("unfold_bn needs at least one calibration image")
    for conv, bn in pairs:
        total, squares, count = sums[id(conv)]
        mean = total / count
        var = np.maximum(squares / count - np.square(mean), 0.0)
        beta = bn.beta.asnumpy().astype(np.float64)
        for param, value in ((bn.moving_mean, mean), (bn.moving_variance, var),
                             (bn.gamma, np.sqrt(var + bn.eps)), (bn.beta, beta + mean)):
            param.set_data(Tensor(value.astype(np.float32), param.dtype))
    _logger.info("BatchNorm unfolded in %d layers from the statistics of %d images", len(pairs), seen)
    return len(pairs)
