"""Backends behind one call, ``predictor(images) -> logits`` (NumPy in, NumPy out), for validate and infer."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Protocol

import mindspore as ms
import numpy as np
from mindspore import Tensor

from ..models.fuse import fuse_bn
from .calibration import Calibration
from .export import export_model
from .loading import LoadedModel
from .onnx_backend import OnnxPredictor, cache_path, require_onnxruntime
from .quantize import quantize_file, require_quantization

_logger = logging.getLogger("mindcv_mobilenet")


class Predictor(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class MindSporePredictor:
    """The MindSpore network with BatchNorm folded into its convolutions (same logits, fewer kernels: 5-10% faster in
    graph mode on CPU; folded in place, so the model serves inference only from here on). In graph mode a batch
    smaller than the first one is padded to its size (and the padding dropped from the output), so the network is
    compiled once."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = fuse_bn(loaded.model, inplace=True)
        self.batch_size: int | None = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        n = len(images)
        if self.batch_size is None:
            self.batch_size = n
        if ms.get_context("mode") == ms.GRAPH_MODE and n < self.batch_size:
            images = np.concatenate([images, np.zeros((self.batch_size - n,) + images.shape[1:], np.float32)])
        return self.model(Tensor(images)).asnumpy().astype(np.float32, copy=False)[:n]


def create_predictor(loaded: LoadedModel, backend: str, image_size: int, batch_size: int,
                     calibration: Calibration | None = None) -> Predictor:
    """``mindspore`` (the network itself) or ``onnxruntime`` (exported once to ONNX, cached; int8 when given a
    ``calibration``: the config parser refuses int8 with the mindspore backend)."""
    if backend == "onnxruntime":
        return onnx_predictor(loaded, image_size, batch_size, calibration)
    return MindSporePredictor(loaded)


def onnx_predictor(loaded: LoadedModel, image_size: int, batch_size: int,
                   calibration: Calibration | None = None) -> OnnxPredictor:
    """An ONNX Runtime predictor for ``loaded``, exporting (and checking) the model on first use only; with
    ``calibration`` the int8 file, quantized from the float one on first use."""
    require_onnxruntime()
    if calibration is not None:
        require_quantization()
    if loaded.weights_id is None:
        with tempfile.TemporaryDirectory(prefix="mindcv_mobilenet_onnx_") as folder:
            return OnnxPredictor(onnx_file(loaded, image_size, batch_size, calibration, folder))
    return OnnxPredictor(onnx_file(loaded, image_size, batch_size, calibration))


def onnx_file(loaded: LoadedModel, image_size: int, batch_size: int, calibration: Calibration | None = None,
              folder: str | None = None) -> str:
    """The ONNX file of ``loaded`` in ``folder`` (default: the cache), written when missing: the checked export, or
    for int8 the quantization of that export (``batch_size``: the batch the export is traced and checked at)."""
    cached = cache_path(loaded, image_size, calibration)
    path = os.path.join(folder, os.path.basename(cached)) if folder else cached
    if os.path.isfile(path):
        _logger.info("ONNX Runtime backend: using the cached export %s", path)
        return path
    if calibration is None:
        result = export_model(loaded.model, "ONNX", path, image_size, batch_size, loaded.in_channels, force=True)
    else:
        _logger.info("ONNX Runtime backend: quantizing to int8, calibrated on %s", calibration.description)
        float_path = onnx_file(loaded, image_size, batch_size, None, folder)
        result = quantize_file(float_path, path, calibration, force=True)
    _logger.info("ONNX Runtime backend: %s", result.describe())
    return path


class CellAdapter:
    """A predictor dressed as a MindSpore cell (``set_train``, Tensor in and out), for the engine's ``evaluate``."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def set_train(self, mode: bool = True) -> None:
        del mode  # inference only

    def __call__(self, images: Tensor) -> Tensor:
        array = images.asnumpy() if isinstance(images, Tensor) else np.asarray(images)
        return Tensor(self.predictor(array))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
