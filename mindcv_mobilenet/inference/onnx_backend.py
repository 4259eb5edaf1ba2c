"""CPU deployment backend: an exported ONNX file run in ONNX Runtime (:class:`OnnxPredictor`), and where exports are
cached (:func:`cache_path`; :func:`..predictor.onnx_predictor` exports on first use).

ONNX Runtime is optional (``pip install .[onnx]``). The exported file (any batch size) is cached in
``<cache dir>/onnx/<model>-<weights sha256[:16]>-<channels>x<size>px[-int8-cal<calibration id>]-v<package
version>.onnx``, so a second run with the same weights and resolution (and, for int8, the same calibration images
and preprocessing) reuses it; randomly initialised weights are exported to a temporary file that is deleted once
loaded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ..constants import __version__
from ..utils.download import default_cache_dir
from ..utils.errors import UserError
from .artifacts import INSTALL_HINT
from .loading import LoadedModel

if TYPE_CHECKING:
    from .calibration import Calibration



def require_onnxruntime():
    """The ``onnxruntime`` module, or one clear error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"--backend onnxruntime needs ONNX Runtime, which is not installed: {INSTALL_HINT}") from None
    return onnxruntime


class OnnxPredictor:
    """Logits from an ONNX file on the CPU; any number of images (a file with a fixed batch gets them split into and
    padded to its batch)."""

    def __init__(self, path: str, threads: int | None = None) -> None:
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise UserError(f"ONNX Runtime cannot load {path} ({reason}); delete it to export it again") from None
        spec = self.session.get_inputs()[0]
        self.input_name = spec.name
        self.batch_size = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.path = path

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        step = self.batch_size or len(images)
        outputs = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            n = len(chunk)
            if n < step:
                chunk = np.concatenate([chunk, np.zeros((step - n,) + chunk.shape[1:], np.float32)])
            outputs.append(self.session.run(None, {self.input_name: chunk})[0][:n])
        return np.concatenate(outputs).astype(np.float32, copy=False)


def cache_path(loaded: LoadedModel, image_size: int, calibration: Calibration | None = None) -> str:
    """Where the ONNX export of these weights at this resolution is cached: float, or int8 calibrated on
    ``calibration``."""
    precision = f"-int8-cal{calibration.identity}" if calibration is not None else ""
    name = (f"{loaded.model_name}-{(loaded.weights_id or 'random')[:16]}-{loaded.in_channels}x{image_size}px"
            f"{precision}-v{__version__}.onnx")
    return os.path.join(default_cache_dir(), "onnx", name)
