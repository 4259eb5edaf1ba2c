"""Inference speed: batch-1 latency, batch-N throughput and first-call (compile) time, per runtime.

Used by ``benchmark.py --infer``. Weights do not change the speed of these dense float32 networks, so models are timed
with their initial weights; input is a fixed random batch, data loading excluded. Times are medians of ``repeats``
calls after one untimed warm-up call (graph mode compiles on a new input shape; that first call is reported apart).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np

from .timing import first_and_median


@dataclass
class SpeedResult:
    """One model on one runtime: ``first_call_s`` is graph compilation (MindSpore graph mode), kernel set-up
    (PyNative) or export + session creation (ONNX Runtime), all at batch 1."""

    model: str
    runtime: str
    first_call_s: float
    latency_ms: float
    throughput: float
    batch_size: int
    image_size: int

    def as_dict(self) -> dict:
        return asdict(self)


def _inputs(batch: int, image_size: int, in_channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, in_channels, image_size, image_size), dtype=np.float32)


def mindspore_speed(model, name: str, runtime: str, mode: int, image_size: int, batch_size: int = 32,
                    repeats: int = 5) -> SpeedResult:
    """Time a MindSpore cell in graph (``mode=0``) or PyNative (``mode=1``) mode."""
    import mindspore as ms
    from mindspore import Tensor

    ms.set_context(mode=ms.GRAPH_MODE if mode == 0 else ms.PYNATIVE_MODE)
    model.set_train(False)
    one, many = Tensor(_inputs(1, image_size)), Tensor(_inputs(batch_size, image_size))
    first, latency = first_and_median(lambda: model(one).asnumpy(), repeats)
    _, per_batch = first_and_median(lambda: model(many).asnumpy(), repeats // 2)  # its first call compiles
    return SpeedResult(name, runtime, first, 1000 * latency, batch_size / per_batch, batch_size, image_size)


def onnxruntime_speed(model, name: str, image_size: int, batch_size: int = 32, repeats: int = 5,
                      threads: int | None = None) -> SpeedResult:
    """Export ``model`` to ONNX at batch 1 and ``batch_size`` and time both in ONNX Runtime (CPU)."""
    from mindcv_mobilenet.inference.export import export_model
    from mindcv_mobilenet.inference.onnx_backend import OnnxPredictor

    with tempfile.TemporaryDirectory(prefix="mindcv_mobilenet_speed_") as folder:
        start = time.perf_counter()
        path_one = os.path.join(folder, "b1.onnx")
        export_model(model, "ONNX", path_one, image_size, 1, check=False)
        run_one = OnnxPredictor(path_one, threads)
        one = _inputs(1, image_size)
        run_one(one)
        first = time.perf_counter() - start
        latency = first_and_median(lambda: run_one(one), repeats)[1]
        path_many = os.path.join(folder, "bn.onnx")
        export_model(model, "ONNX", path_many, image_size, batch_size, check=False)
        run_many = OnnxPredictor(path_many, threads)
        many = _inputs(batch_size, image_size)
        per_batch = first_and_median(lambda: run_many(many), repeats // 2)[1]
    return SpeedResult(name, "onnxruntime", first, 1000 * latency, batch_size / per_batch, batch_size, image_size)


def format_row(result: SpeedResult) -> str:
    return (f"{result.model:<26} {result.runtime:<20} {result.first_call_s:>9.2f} {result.latency_ms:>11.1f} "
            f"{result.throughput:>11.1f}")


HEADER = f"{'model':<26} {'runtime':<20} {'1st call s':>9} {'b1 ms':>11} {'bN img/s':>11}"


def int8_speedup(model, name: str, calibration, image_size: int, batch_size: int = 32, repeats: int = 5,
                 threads: int | None = None) -> dict:
    """fp32 vs int8 ONNX Runtime images/s of ``model`` at ``batch_size``, timed back to back in this process (the
    int8 file quantized from the fp32 one on ``calibration``'s images, unchecked: initial weights need not quantize
    well to run at int8 speed); the speed-up is their ratio."""
    from mindcv_mobilenet.inference.export import export_model
    from mindcv_mobilenet.inference.onnx_backend import OnnxPredictor
    from mindcv_mobilenet.inference.quantize import quantize_onnx

    batch = _inputs(batch_size, image_size)
    with tempfile.TemporaryDirectory(prefix="mindcv_mobilenet_int8_speed_") as folder:
        float_path, int8_path = os.path.join(folder, "fp32.onnx"), os.path.join(folder, "int8.onnx")
        export_model(model, "ONNX", float_path, image_size, batch_size, check=False)
        quantize_onnx(float_path, int8_path, calibration.images())
        rates = {}
        for precision, path in (("fp32", float_path), ("int8", int8_path)):
            run = OnnxPredictor(path, threads)
            rates[precision] = batch_size / first_and_median(lambda run=run: run(batch), repeats)[1]
    return {"model": name, "batch_size": batch_size, "image_size": image_size, "calibration": calibration.description,
            "fp32_images_per_s": rates["fp32"], "int8_images_per_s": rates["int8"],
            "speedup": rates["int8"] / rates["fp32"]}
