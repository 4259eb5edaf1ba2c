"""Export a model to MINDIR or ONNX, and prove the file computes what the network computes.

Both formats get a dynamic batch axis: MINDIR through ``Tensor(shape=[None, C, H, W])`` (MindSpore 2.10 supports it
on CPU); ONNX by naming the first axis of the graph's input and output after MindSpore's exporter (which needs a
fixed batch) has written it (:func:`make_batch_dynamic`). Every export is checked before it appears under its final
name: the file is loaded back (``ms.load`` + ``nn.GraphCell`` for MINDIR, ONNX Runtime for ONNX, or only the ONNX
checker when ONNX Runtime is not installed) and its logits are compared with the network's at two batch sizes. A
file that does not match is not kept. int8 ONNX files are made from the checked float file (:mod:`.quantize`).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from typing import TYPE_CHECKING

import mindspore as ms
import mindspore.onnx  # noqa: F401  (ms.onnx.export; ms.export's ONNX path is deprecated)
import numpy as np
from mindspore import Tensor, nn

from ..data.preprocessing import resolve_data_config
from ..models import get_model_config
from ..models.layers import exportable_operators
from ..utils.errors import UserError
from ..utils.fileio import atomic_path
from ..utils.logs import setup_logging
from .artifacts import ExportError, ExportResult, require_onnx

if TYPE_CHECKING:
    from .calibration import Calibration

_logger = logging.getLogger("mindcv_mobilenet")

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx"}
# Largest |difference| allowed between the file's and the network's logits, relative to the largest |logit|:
# float32 kernels of two runtimes differ by ~1e-6 relative; a wrong padding or operator differs by far more.
RELATIVE_TOLERANCE = 1e-4



def output_path(output: str, file_format: str, model_name: str) -> str:
    """``output`` with the format's extension (a folder gets ``<model><ext>`` inside it; '' means ./<model><ext>)."""
    ext = FORMATS[file_format]
    if not output:
        return model_name + ext
    if output.endswith(os.sep) or os.path.isdir(output):
        return os.path.join(output, model_name + ext)
    stem, given_ext = os.path.splitext(output)
    return output if given_ext.lower() == ext else (stem if given_ext.lower() in FORMATS.values() else output) + ext


def sample_input(batch_size: int, in_channels: int, image_size: int, seed: int = 0) -> np.ndarray:
    """A deterministic normalised-image-like batch (smooth blobs, unit scale) for comparing logits."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((batch_size, in_channels, max(1, image_size // 8), max(1, image_size // 8)))
    images = np.kron(coarse, np.ones((1, 1, 8, 8)))[:, :, :image_size, :image_size]
    pad = image_size - images.shape[-1]
    if pad > 0:
        images = np.pad(images, ((0, 0), (0, 0), (0, pad), (0, pad)), mode="edge")
    return (images + 0.1 * rng.standard_normal(images.shape)).astype(np.float32)


def compare_logits(reference: np.ndarray, output: np.ndarray, what: str) -> dict:
    """Differences of ``output`` from ``reference``; an :class:`ExportError` when they are beyond float noise."""
    if output.shape != reference.shape:
        raise ExportError(f"{what} gives logits of shape {output.shape}, the network {reference.shape}")
    max_abs = float(np.abs(output - reference).max())
    relative = max_abs / max(float(np.abs(reference).max()), 1e-12)
    agree = float((output.argmax(1) == reference.argmax(1)).mean())
    if not np.isfinite(relative) or relative > RELATIVE_TOLERANCE:
        raise ExportError(f"{what} does not reproduce the network: logits differ by up to {max_abs:.3g} "
                          f"({relative:.2e} of the largest logit, tolerance {RELATIVE_TOLERANCE:g}); not kept")
    return {"max_abs_diff": max_abs, "relative_diff": relative, "top1_agreement": agree}


def network_logits(model: nn.Cell, images: np.ndarray) -> np.ndarray:
    model.set_train(False)
    return model(Tensor(images)).asnumpy()


def compare_at_batches(model: nn.Cell, run, what: str, batch_sizes: list[int], in_channels: int,
                       image_size: int) -> dict:
    """``run(images) -> logits`` against the network at each batch size (the largest difference is kept)."""
    worst: dict = {}
    for seed, batch in enumerate(batch_sizes):
        images = sample_input(batch, in_channels, image_size, seed)
        result = compare_logits(network_logits(model, images), run(images), f"{what} at batch {batch}")
        worst = max(worst, result, key=lambda r: r.get("max_abs_diff", -1.0))
    return {"batch_sizes": batch_sizes, **worst}


def check_mindir(model: nn.Cell, path: str, batch_sizes: list[int], in_channels: int, image_size: int) -> dict:
    """Load the MINDIR back into a GraphCell and compare its logits with the network's at each batch size."""
    graph = nn.GraphCell(ms.load(path))
    return {"runtime": "MindSpore (ms.load + nn.GraphCell)",
            **compare_at_batches(model, lambda x: graph(Tensor(x)).asnumpy(), f"MINDIR {path}", batch_sizes,
                                 in_channels, image_size)}


def check_onnx(model: nn.Cell, path: str, batch_sizes: list[int], in_channels: int, image_size: int) -> dict:
    """Run the ONNX file in ONNX Runtime when installed (else only the ONNX checker) and compare the logits at each
    batch size."""
    try:
        import onnxruntime as ort
    except ImportError:
        require_onnx().checker.check_model(path)
        return {"note": "valid ONNX (onnx.checker); logits not compared: onnxruntime is not installed"}
    from .onnx_backend import OnnxPredictor

    return {"runtime": f"ONNX Runtime {ort.__version__}",
            **compare_at_batches(model, OnnxPredictor(path), f"ONNX {path}", batch_sizes, in_channels, image_size)}


def make_batch_dynamic(path: str) -> None:
    """Name the first axis ('N') of the ONNX file's input and output instead of MindSpore's fixed batch.

    Sound for these models: their graphs hold no operator that bakes the batch size in (no Reshape to a stated
    shape: the head is ReduceMean + Gemm); the export check runs two batch sizes to prove it for every file.
    """
    onnx = require_onnx()
    graph = onnx.load(path)
    weights = {t.name for t in graph.graph.initializer}
    for value in [v for v in graph.graph.input if v.name not in weights] + list(graph.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"  # replaces dim_value (one field of a oneof)
    del graph.graph.value_info[:]  # intermediate shapes recorded at the traced batch
    onnx.save(graph, path)


def export_model(
    model: nn.Cell,
    file_format: str,
    path: str,
    image_size: int,
    batch_size: int = 1,
    in_channels: int = 3,
    force: bool = False,
    check: bool = True,
) -> ExportResult:
    """Write ``model`` to ``path`` as MINDIR or ONNX, both with a dynamic batch axis, atomically.

    ``batch_size`` is the batch of the example input the exporter traces (ONNX) and one of the two batch sizes the
    check runs. An existing ``path`` is refused unless ``force``. With ``check`` the written file is reloaded and
    compared with the network before it is moved into place (see the module docstring).
    """
    file_format = file_format.upper()
    if file_format not in FORMATS:
        raise UserError(f"unknown export format '{file_format}': use one of {', '.join(FORMATS)}")
    if batch_size <= 0 or image_size <= 0:
        raise UserError(f"batch_size and image_size must be positive, not {batch_size} and {image_size}")
    if os.path.exists(path) and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    if file_format == "ONNX":
        require_onnx()
    model.set_train(False)
    shape = [None, in_channels, image_size, image_size]
    if file_format == "MINDIR":
        example = Tensor(shape=shape, dtype=ms.float32)
    else:
        example = Tensor(np.zeros([batch_size] + shape[1:], np.float32))
    result = ExportResult(os.path.abspath(path), file_format, shape)
    with atomic_path(path) as tmp_path:
        try:
            with exportable_operators(model):  # standard operators only: ONNX maps them, other machines run them
                if file_format == "ONNX":
                    ms.onnx.export(model, example, file_name=tmp_path)
                else:
                    ms.export(model, example, file_name=tmp_path, file_format=file_format)
        except (RuntimeError, ValueError, TypeError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise ExportError(f"MindSpore could not export {getattr(model, 'model_name', 'the model')} to "
                              f"{file_format}: {reason}") from None
        if not os.path.isfile(tmp_path) or os.path.getsize(tmp_path) == 0:
            raise ExportError(f"MindSpore wrote no {file_format} file for {path}")
        if file_format == "ONNX":
            make_batch_dynamic(tmp_path)
        sizes = sorted({batch_size, 2 if batch_size != 2 else 3})  # two batch sizes prove the dynamic axis
        if check and file_format == "MINDIR":
            result.check = check_mindir(model, tmp_path, sizes, in_channels, image_size)
        elif check:
            result.check = check_onnx(model, tmp_path, sizes, in_channels, image_size)
    return result


def run_export(cfg: argparse.Namespace) -> list[ExportResult]:
    """export.py: ``cfg.model`` in each of ``cfg.file_format``, its input size from the one preprocessing resolver
    (the training run's for a checkpoint with its ``config.yaml`` beside it, else the data set's or the model's);
    prints one line per file written."""
    from .loading import training_run_config

    setup_logging()
    settings = resolve_data_config(cfg, get_model_config(cfg.model), training_run_config(cfg), for_files=True)
    calibration = None
    if cfg.precision == "int8":  # calibration images prepared as evaluation prepares them
        from .calibration import from_folder

        calibration = from_folder(cfg.calib_dir, settings, cfg.calib_images)
    results = export_files(cfg.model, cfg.file_format, cfg.output, cfg.ckpt_path, cfg.pretrained, cfg.num_classes,
                           cfg.in_channels, cfg.ema, image_size=settings.image_size, batch_size=cfg.batch_size,
                           force=cfg.force, check=not cfg.no_check, calibration=calibration)
    for result in results:
        print(result.describe(), flush=True)
    return results


def export_files(
    model_name: str,
    file_formats: list[str],
    output: str = "",
    ckpt_path: str = "",
    pretrained: bool = False,
    num_classes: int | None = None,
    in_channels: int = 3,
    ema: bool = False,
    *,
    image_size: int,
    batch_size: int = 1,
    force: bool = False,
    check: bool = True,
    calibration: Calibration | None = None,
) -> list[ExportResult]:
    """Load a model (random weights allowed, with a warning) and export it in each format at ``image_size`` px; see
    :func:`export_model`.

    With ``calibration`` the ONNX file is int8 (:mod:`.quantize`), made from a checked float export. All target
    paths are checked before anything is written, so a refused overwrite leaves no partial set.
    """
    from .loading import load_model

    formats = [f.upper() for f in file_formats]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserError(f"unknown export format '{unknown[0]}': use one of {', '.join(FORMATS)}")
    if calibration is not None and "MINDIR" in formats:
        raise UserError("--precision int8 is for ONNX files (ONNX Runtime quantization): use --file_format ONNX")
    paths = {f: output_path(output, f, model_name) for f in dict.fromkeys(formats)}
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not force:
        raise UserError(f"{existing[0]} exists; pass --force to overwrite it")
    if calibration is not None:
        from .quantize import require_quantization

        require_quantization()  # before loading anything
    loaded = load_model(model_name, ckpt_path, pretrained, num_classes, in_channels, ema, require_weights=False)
    if calibration is None:
        return [export_model(loaded.model, f, p, image_size, batch_size, in_channels, force=force, check=check)
                for f, p in paths.items()]
    from .quantize import quantize_file

    with tempfile.TemporaryDirectory(prefix="mindcv_mobilenet_export_") as folder:
        float_path = os.path.join(folder, "float.onnx")
        export_model(loaded.model, "ONNX", float_path, image_size, batch_size, in_channels, check=check)
        return [quantize_file(float_path, paths["ONNX"], calibration, force=force)]
