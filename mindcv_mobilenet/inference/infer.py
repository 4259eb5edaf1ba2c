"""Inference behind ``infer.py``: top-k classes with names and probabilities for image files and folders.

Images go through the same decode and eval transforms as validation. A file that cannot be read is reported by name
and skipped; the others still get their predictions. Results print to stdout and optionally go to a JSON or CSV file
(``--output``) and to annotated copies of the images (``--save_dir``; the inputs are never overwritten).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..data.constants import IMAGE_EXTENSIONS
from ..data.decode import load_rgb
from ..data.folder import list_image_files
from ..data.preprocessing import resolve_data_config
from ..models import get_model_config
from ..runtime import set_mode
from ..utils.errors import DataError, UserError
from ..utils.fileio import atomic_path, make_folder
from ..utils.logs import setup_logging
from .calibration import calibration_for
from .classes import resolve_class_names, short_name
from .loading import load_model, training_run_config
from .predictor import Predictor, create_predictor, softmax
from .preprocess import FilePreprocessor

_logger = logging.getLogger("mindcv_mobilenet")

@dataclass
class Prediction:
    image: str
    top: list[dict] = field(default_factory=list)
    error: str = ""


def find_images(paths: list[str]) -> tuple[list[str], list[Prediction]]:
    """(image files in order, failures for paths that do not exist or folders without images).

    A folder contributes its image files (by extension, recursively, sorted); a file named explicitly is always
    tried, whatever its extension.
    """
    files: list[str] = []
    failed: list[Prediction] = []
    for path in paths:
        if os.path.isdir(path):
            found = list_image_files(path)
            if not found:
                failed.append(Prediction(path, error=f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder"))
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            failed.append(Prediction(path, error="not found"))
    return files, failed


def _reason(err: Exception) -> str:
    text = (str(err).strip().splitlines() or [""])[0][:200]
    return f"cannot read image: {text or type(err).__name__}"


def predict_files(files: list[str], predictor: Predictor, preprocess: FilePreprocessor, names: list[str], topk: int,
                  batch_size: int, on_batch=None) -> list[Prediction]:
    """Top-k predictions per file, in order; unreadable files get an ``error`` and no prediction.

    ``on_batch(predictions, images)`` is called with each batch's predictions and decoded RGB images (annotation).
    """
    results: list[Prediction] = []
    k = min(topk, len(names))
    for start in range(0, len(files), batch_size):
        batch, arrays, originals = [], [], []
        for path in files[start:start + batch_size]:
            try:
                rgb = load_rgb(path)
                arrays.append(preprocess.transform(rgb))
            except Exception as err:  # noqa: BLE001 - any decoder/transform failure: report the file, go on
                results.append(Prediction(path, error=_reason(err)))
                continue
            prediction = Prediction(path)
            batch.append(prediction)
            originals.append(rgb if on_batch else None)
            results.append(prediction)
        if not batch:
            continue
        probs = softmax(predictor(np.stack(arrays)))
        for prediction, row in zip(batch, probs, strict=True):
            order = np.argsort(-row, kind="stable")[:k]
            prediction.top = [{"rank": r + 1, "class": int(c), "name": names[c], "probability": float(row[c])}
                              for r, c in enumerate(order)]
        if on_batch:
            on_batch(batch, originals)
    return results


def format_prediction(prediction: Prediction) -> str:
    if prediction.error:
        return f"{prediction.image}: {prediction.error} (skipped)"
    lines = [prediction.image]
    lines += [f"  {t['rank']}. {100 * t['probability']:6.2f}%  {t['name']} ({t['class']})" for t in prediction.top]
    return "\n".join(lines)


def write_predictions(path: str, predictions: list[Prediction], meta: dict) -> None:
    """JSON (model, weights, class-list source, predictions, failures) or CSV (one row per image and rank)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".csv"):
        raise UserError(f"--output {path}: use a .json or .csv file name")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        if ext == ".json":
            json.dump({**meta,
                       "predictions": [{"image": p.image, "top": p.top} for p in predictions if not p.error],
                       "failed": [{"image": p.image, "error": p.error} for p in predictions if p.error]},
                      f, indent=1)
            return
        writer = csv.writer(f)
        writer.writerow(["image", "rank", "class", "name", "probability", "error"])
        for p in predictions:
            if p.error:
                writer.writerow([p.image, "", "", "", "", p.error])
            for t in p.top:
                writer.writerow([p.image, t["rank"], t["class"], t["name"], f"{t['probability']:.6f}", ""])


class Annotator:
    """Copies of the images with their top predictions drawn on (OpenCV), written into ``save_dir``.

    Output names are ``<image name>.jpg``; a name that would replace one of the input images, or an image already
    written in this run, gets ``_pred``/``_pred2``... appended, so inputs are never overwritten.
    """

    MIN_SIDE = 320  # small images (CIFAR's 32 px) are enlarged so the text stays legible

    def __init__(self, save_dir: str, inputs: list[str]) -> None:
        self.save_dir = save_dir
        make_folder(save_dir, "--save_dir")
        self.protected = {os.path.realpath(p) for p in inputs}
        self.written: list[str] = []

    def _target(self, image: str) -> str:
        stem = os.path.splitext(os.path.basename(image))[0]
        for n in range(1000):
            suffix = "" if n == 0 else "_pred" if n == 1 else f"_pred{n}"
            path = os.path.join(self.save_dir, f"{stem}{suffix}.jpg")
            real = os.path.realpath(path)
            if real not in self.protected and real not in self.written:
                return path
        raise UserError(f"cannot find a free output name for {image} in {self.save_dir}")

    def __call__(self, predictions: list[Prediction], images: list[np.ndarray]) -> None:
        for prediction, rgb in zip(predictions, images, strict=True):
            canvas = self.draw(rgb, prediction.top)
            path = self._target(prediction.image)
            with atomic_path(path) as tmp:
                if not cv2.imwrite(tmp, canvas):
                    raise UserError(f"OpenCV could not write {path}")
            self.written.append(os.path.realpath(path))

    def draw(self, rgb: np.ndarray, top: list[dict]) -> np.ndarray:
        canvas = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        height, width = canvas.shape[:2]
        if min(height, width) < self.MIN_SIDE:
            scale = self.MIN_SIDE / min(height, width)
            canvas = cv2.resize(canvas, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_NEAREST)
        scale = max(canvas.shape[1] / 900.0, 0.45)
        thickness = max(1, round(scale * 2))
        line_height = int(30 * scale) + 6
        lines = [f"{t['rank']}. {short_name(t['name'])} {100 * t['probability']:.1f}%" for t in top]
        box_width = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for line in lines)
        overlay = canvas.copy()
        cv2.rectangle(overlay, (0, 0), (box_width + 16, line_height * len(lines) + 10), (0, 0, 0), -1)
        canvas = cv2.addWeighted(overlay, 0.55, canvas, 0.45, 0)
        for i, line in enumerate(lines):
            colour = (80, 255, 80) if i == 0 else (255, 255, 255)
            cv2.putText(canvas, line, (8, line_height * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness,
                        cv2.LINE_AA)
        return canvas


def run_inference(cfg: argparse.Namespace) -> list[Prediction]:
    """Predict every image of ``cfg.image_path``; print, and write ``--output``/``--save_dir`` when asked."""
    setup_logging()
    if not cfg.image_path:
        raise UserError("no images: pass --image_path FILE|FOLDER [...]")
    files, failed = find_images(cfg.image_path)
    if not files:
        raise DataError("no images to predict: " + "; ".join(f"{p.image}: {p.error}" for p in failed))
    set_mode(cfg.mode, cfg.device_target)
    loaded = load_model(cfg.model, cfg.ckpt_path, cfg.pretrained, cfg.num_classes, cfg.in_channels, cfg.ema)
    settings = resolve_data_config(cfg, get_model_config(cfg.model), training_run_config(cfg), for_files=True)
    names, names_source = resolve_class_names(loaded.num_classes, settings.dataset, cfg.class_names, cfg.ckpt_path)
    calibration = calibration_for(cfg, settings, files)
    predictor = create_predictor(loaded, cfg.backend, settings.image_size, min(cfg.batch_size, len(files)),
                                 calibration)
    _logger.info("predicting %d image(s) with %s (%s), %s; class names: %s; backend %s %s", len(files), cfg.model,
                 loaded.weights, settings.describe(), names_source, cfg.backend, cfg.precision)
    annotator = Annotator(cfg.save_dir, files) if cfg.save_dir else None
    results = predict_files(files, predictor, FilePreprocessor(settings), names, cfg.topk,
                            min(cfg.batch_size, len(files)), annotator)
    results = failed + results
    for prediction in results:
        print(format_prediction(prediction), file=sys.stdout, flush=True)
    good = sum(1 for p in results if not p.error)
    if good == 0:
        raise DataError(f"none of the {len(results)} image(s) could be read")
    if len(results) > good:
        bad = [p.image for p in results if p.error]
        _logger.warning("%d of %d image(s) could not be read and were skipped: %s", len(bad), len(results),
                        ", ".join(bad[:10]) + (", ..." if len(bad) > 10 else ""))
    if cfg.output:
        meta = {"model": cfg.model, "weights": loaded.weights, "backend": cfg.backend, "precision": cfg.precision,
                "class_names": names_source, "image_size": settings.image_size}
        write_predictions(cfg.output, results, meta)
        _logger.info("predictions written to %s", cfg.output)
    if annotator:
        _logger.info("%d annotated image(s) written to %s", len(annotator.written), cfg.save_dir)
    return results
