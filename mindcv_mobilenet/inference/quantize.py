"""int8 ONNX files: ONNX Runtime static quantization of a checked float ONNX file, calibrated on real images.

The recipe (:data:`RECIPE`) is ONNX Runtime's for CNNs on x86: QDQ format, int8 weights per output channel reduced to
7 bits ([-64, 64]), uint8 activations whose ranges are the 99.999th percentile of their magnitude over the calibration
images (:mod:`.calibration`). 7-bit weights because the file is made once and runs on whatever CPU it is deployed to:
without VNNI (AVX2-only x86) ONNX Runtime's uint8 x int8 kernels add two products in int16 with saturation, which
8-bit weights overflow and 2 x 255 x 64 = 32640 cannot (8-bit weights: a tiny V2's held-out logit cosine 0.99 with
VNNI, 0.94 without); unsigned weights (U8U8) cannot saturate either but ran MobileNetV2 at 0.3x fp32 speed, 7-bit
int8 at 2x, with the same Top-1. Percentile rather than MinMax ranges: on TF-slim's V3-Small (trained with fake
quantization) MinMax lost 1.1 points of Top-1 and the percentile gains 2.7, on MobileNetV2 both stay within 0.5
(BENCHMARKS.md, "int8 ONNX Runtime"). The float graph is first raised to opset 13 (per-channel QDQ needs it) and
prepared with ``quant_pre_process`` (shape inference, and BatchNorm folded into the convolutions so that the folded
weights are what gets quantized). ONNX Runtime then runs the QDQ pairs as integer kernels.

An int8 file is not expected to reproduce the float logits exactly, so its check is looser than an export's: on the
calibration images its logits must point the way the float file's do (mean cosine similarity at least
:data:`MIN_COSINE`; unrelated logits give about 0). It also reports how often both give the same top-1 class.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..utils.errors import UserError
from ..utils.fileio import atomic_path
from .artifacts import INSTALL_HINT, ExportError, ExportResult, require_onnx
from .onnx_backend import OnnxPredictor

if TYPE_CHECKING:
    from .calibration import Calibration

# mean cosine similarity of int8 and float logits on the calibration images: converted MobileNetV2 0.990,
# TF-slim's V3-Small 0.92 (hard-swish and squeeze-excite quantize less well); unrelated logits about 0
MIN_COSINE = 0.7
QDQ_OPSET = 13  # per-channel DequantizeLinear (its axis attribute) needs opset 13; MindSpore writes 11


@dataclass(frozen=True)
class Recipe:
    """ONNX Runtime's quantization settings (``QuantType`` member names); part of the int8 cache key
    (:attr:`.calibration.Calibration.identity`), so a file made with other settings is not reused."""

    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    reduce_range: bool = True  # weights in [-64, 64]: no int16 saturation on x86 CPUs without VNNI
    weight_symmetric: bool = True  # zero point 0, as the int8 kernels' per-channel weights need
    percentile: float = 99.999  # activation ranges


RECIPE = Recipe()


def require_quantization():
    """``onnxruntime.quantization``, or one clear error saying how to install it."""
    try:
        from onnxruntime import quantization
    except ImportError:
        raise UserError(f"--precision int8 needs ONNX Runtime's quantization tools (onnxruntime.quantization), "
                        f"which are not installed: {INSTALL_HINT}") from None
    return quantization


def quantize_onnx(float_path: str, int8_path: str, images: np.ndarray, recipe: Recipe | None = None) -> None:
    """Write the int8 version of the ONNX file ``float_path`` to ``int8_path``, calibrated on ``images`` (NCHW),
    with ``recipe`` (default :data:`RECIPE`)."""
    recipe = recipe or RECIPE
    quantization = require_quantization()
    onnx = require_onnx()

    class Batches(quantization.CalibrationDataReader):
        """One image per batch: ONNX Runtime 1.32's histograms cannot merge batches of different sizes."""

        def __init__(self, input_name: str) -> None:
            self.input_name = input_name
            self.next_index = iter(range(len(images)))

        def get_next(self) -> dict | None:
            index = next(self.next_index, None)
            return None if index is None else {self.input_name: images[index:index + 1]}

    input_name = OnnxPredictor(float_path).input_name
    with tempfile.TemporaryDirectory(prefix="mindcv_mobilenet_int8_") as folder:
        upgraded, prepared = os.path.join(folder, "opset13.onnx"), os.path.join(folder, "prepared.onnx")
        onnx.save(onnx.version_converter.convert_version(onnx.load(float_path), QDQ_OPSET), upgraded)
        quantization.quant_pre_process(upgraded, prepared, skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress; stdout is for results
            quantization.quantize_static(
                prepared, int8_path, Batches(input_name), quant_format=quantization.QuantFormat.QDQ,
                per_channel=True, reduce_range=recipe.reduce_range,
                activation_type=quantization.QuantType[recipe.activation_type],
                weight_type=quantization.QuantType[recipe.weight_type],
                calibrate_method=quantization.CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": recipe.percentile, "WeightSymmetric": recipe.weight_symmetric},
            )


def compare_with_float(float_path: str, int8_path: str, images: np.ndarray) -> dict:
    """How close the int8 file's logits are to the float file's on ``images``; an :class:`ExportError` when they
    are too far apart to be a working quantization."""
    reference, output = OnnxPredictor(float_path)(images), OnnxPredictor(int8_path)(images)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(output, axis=1)
    cosine = float(np.mean((reference * output).sum(axis=1) / np.maximum(norms, 1e-12)))
    agree = float((reference.argmax(1) == output.argmax(1)).mean())
    if not np.isfinite(cosine) or cosine < MIN_COSINE:
        raise ExportError(f"the int8 file {int8_path} does not follow the float model: mean cosine similarity of "
                          f"the logits {cosine:.3f} (at least {MIN_COSINE} expected); not kept")
    return {"cosine": cosine, "top1_agreement": agree, "images": len(images)}


def quantize_file(float_path: str, path: str, calibration: Calibration, force: bool = False) -> ExportResult:
    """Quantize the float ONNX file into ``path`` (atomically; an existing file needs ``force``) and check it."""
    require_quantization()
    if os.path.exists(path) and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    images = calibration.images()
    result = ExportResult(os.path.abspath(path), "ONNX", [None, *images.shape[1:]], precision="int8")
    with atomic_path(path) as tmp_path:
        quantize_onnx(float_path, tmp_path, images)
        result.check = {"calibration": calibration.description, **compare_with_float(float_path, tmp_path, images)}
    return result
