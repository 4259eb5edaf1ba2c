"""Which real images an int8 model is calibrated on, prepared exactly as the images it will be evaluated on.

Calibration sets the range of every activation, so it needs a few hundred images like the ones the model will see,
but not the very images its accuracy is measured on. The sources, in order: ``--calib_dir`` (a folder of images,
searched recursively); else the data set's training split when ``data_dir`` has one; else the images being evaluated
(the validation split, or infer's image files), which is said in a warning because Top-1 measured on them is slightly
optimistic. ``count`` images are drawn with a fixed seed, so the same source always gives the same set.

:attr:`Calibration.identity` names the set (files, their sizes and times, the drawn indices, the preprocessing) and the
quantization recipe it calibrates (:data:`.quantize.RECIPE`): the cached int8 file is keyed on it
(:func:`.onnx_backend.cache_path`), so other images or other quantization settings make another file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data.constants import IMAGE_EXTENSIONS, dataset_spec
from ..data.dataset import load_source
from ..data.decode import load_rgb
from ..data.folder import list_image_files
from ..data.preprocessing import DataConfig
from ..utils.errors import DataError, UserError
from .preprocess import FilePreprocessor
from .quantize import RECIPE

_logger = logging.getLogger("mindcv_mobilenet")

_SEED = 0


@dataclass(frozen=True)
class Calibration:
    """A calibration set: what it is (``description``, for logs), its ``identity`` (12 hex digits of a SHA-256), the
    preprocessing, and how to read its RGB images (HWC uint8; ``None`` for a file that cannot be decoded)."""

    description: str
    identity: str
    settings: DataConfig
    read: Callable[[], list[np.ndarray | None]]

    def images(self) -> np.ndarray:
        """The calibration batch (N, C, H, W) float32, prepared as evaluation prepares its images."""
        prepare = FilePreprocessor(self.settings)
        arrays = [prepare.transform(rgb) for rgb in self.read() if rgb is not None]
        if not arrays:
            raise DataError(f"none of the calibration images could be read ({self.description})")
        return np.stack(arrays)


def _drawn(total: int, count: int) -> list[int]:
    """``count`` of ``total`` indices, drawn with a fixed seed, in order."""
    if total <= count:
        return list(range(total))
    return sorted(int(i) for i in np.random.default_rng(_SEED).choice(total, count, replace=False))


def _identity(what: object, settings: DataConfig) -> str:
    """12 hex digits naming the images, their preprocessing and the recipe: a cached int8 file made with other
    quantization settings (before 7-bit weights, say) is not reused."""
    text = json.dumps({"images": what, "preprocessing": settings.as_settings(), "quantization": asdict(RECIPE)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _readable(path: str) -> np.ndarray | None:
    try:
        return load_rgb(path)
    except Exception:  # noqa: BLE001 - any decoder failure: leave the file out of calibration
        _logger.warning("calibration: cannot read %s; left out", path)
        return None


def from_files(files: Sequence[str], settings: DataConfig, count: int, what: str) -> Calibration:
    """Up to ``count`` of ``files`` (drawn with a fixed seed); ``what`` says where they come from."""
    if count <= 0:
        raise UserError(f"calib_images must be positive, not {count}")
    chosen = [files[i] for i in _drawn(len(files), count)]
    if not chosen:
        raise DataError(f"no calibration images in {what}")
    stamps = [(os.path.realpath(p), *_size_and_time(p)) for p in chosen]
    return Calibration(f"{len(chosen)} images of {what}", _identity(stamps, settings), settings,
                       lambda: [_readable(p) for p in chosen])


def _size_and_time(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def from_folder(folder: str, settings: DataConfig, count: int) -> Calibration:
    """Up to ``count`` image files found anywhere below ``folder`` (``--calib_dir``)."""
    if not os.path.isdir(folder):
        raise DataError(f"--calib_dir {folder} is not a folder: pass a folder of calibration images")
    files = list_image_files(folder, follow_links=True)
    if not files:
        raise DataError(f"--calib_dir {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return from_files(files, settings, count, f"--calib_dir {os.path.abspath(folder)}")


def from_dataset(dataset: str, data_dir: str, eval_split: str, settings: DataConfig, count: int) -> Calibration:
    """Up to ``count`` images of the data set's training split, or of ``eval_split`` (with a warning) when it has
    none. CIFAR-10's images are arrays, image folders' are files."""
    try:
        source = load_source(dataset, data_dir or None, "train")
    except DataError:
        source = None
    evaluated = load_source(dataset, data_dir or None, eval_split)
    same_folder = source is not None and os.path.realpath(source.root) == os.path.realpath(evaluated.root)
    # an image tree's split is its folder; CIFAR-10's splits share one folder and differ by name
    if source is None or (same_folder and (dataset_spec(dataset).is_folder or source.split == evaluated.split)):
        _logger.warning("int8 calibration: %s has no training split, so the model is calibrated on images of the "
                        "split it is evaluated on ('%s'): Top-1 is then slightly optimistic; pass --calib_dir with "
                        "other images", data_dir or dataset, eval_split)
        source = evaluated
    what = f"the '{source.split}' split of {source.root}"
    paths = getattr(source.source, "paths", None)
    if paths is not None:
        return from_files(paths, settings, count, what)
    indices = _drawn(len(source.source), count)
    images = [source.source[i][0] for i in indices]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(im).tobytes() for im in images)).hexdigest()
    return Calibration(f"{len(images)} images of {what}", _identity(digest, settings), settings, lambda: images)


def calibration_for(cfg: Any, settings: DataConfig, files: Sequence[str] | None = None) -> Calibration | None:
    """The calibration set ``cfg`` asks for (None unless ``cfg.precision`` is int8): ``--calib_dir``; else infer's
    image ``files`` themselves (said in a warning); else the data set's training split (:func:`from_dataset`)."""
    if cfg.precision != "int8":
        return None
    if cfg.calib_dir:
        return from_folder(cfg.calib_dir, settings, cfg.calib_images)
    if files is not None:
        _logger.warning("int8 calibration: no --calib_dir, so the model is calibrated on the images it predicts")
        return from_files(files, settings, cfg.calib_images, "--image_path (the images predicted)")
    return from_dataset(settings.dataset, cfg.data_dir, cfg.val_split, settings, cfg.calib_images)
