"""Evaluation preprocessing: the data package's eval transforms, with the model's own resolution and crop by default.

A published model is only as accurate as its preprocessing matches training (224 px, crop 0.875, bilinear, ImageNet
statistics for these models), so unset options come from the model's config, not from the training demo's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mindspore.dataset import transforms as ds_transforms

from ..data import create_transforms
from ..data.decode import load_rgb
from ..models import get_model_config
from .classes import CIFAR_DATASETS

IMAGE_FOLDER_DATASETS = ("imagenet", "folder")


@dataclass(frozen=True)
class EvalSettings:
    """How images are prepared for a model: data set recipe, resolution, crop, interpolation, statistics (0-255)."""

    dataset: str
    image_size: int
    crop_pct: float | None
    interpolation: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def transforms(self) -> list:
        """The eval transform list of the data package (HWC uint8 RGB -> CHW float32)."""
        options: dict = {"interpolation": self.interpolation}
        if self.crop_pct is not None:
            options["crop_pct"] = self.crop_pct
        if self.mean is not None:
            options["mean"] = list(self.mean)
        if self.std is not None:
            options["std"] = list(self.std)
        return create_transforms(self.dataset, image_resize=self.image_size, is_training=False, **options)

    def describe(self) -> str:
        crop = "none" if self.crop_pct is None else f"{self.crop_pct:g}"
        return f"{self.dataset} eval transforms at {self.image_size} px, crop_pct {crop}, {self.interpolation}"


def resolve_settings(cfg, model_name: str, explicit: set[str], for_files: bool = False) -> EvalSettings:
    """Settings from ``cfg`` where given (``explicit``: keys set on the command line or in the YAML file), else the
    model's config for ImageNet-style data, else the data set's defaults.

    ``for_files``: images of any size (inference): CIFAR models get a shorter-side resize + center crop to their
    resolution instead of the no-op resize CIFAR's own 32 px images need.
    """
    config = get_model_config(model_name)
    imagenet_like = cfg.dataset in IMAGE_FOLDER_DATASETS
    image_size = cfg.image_resize if "image_resize" in explicit or not imagenet_like else config.image_size
    crop_pct = cfg.crop_pct
    if crop_pct is None and imagenet_like:
        crop_pct = config.crop_pct
    if crop_pct is None and for_files and cfg.dataset in CIFAR_DATASETS:
        crop_pct = 1.0
    interpolation = cfg.interpolation if "interpolation" in explicit else config.interpolation
    mean, std = cfg.mean, cfg.std
    if imagenet_like:
        mean = mean if mean is not None else [255.0 * m for m in config.mean]
        std = std if std is not None else [255.0 * s for s in config.std]
    return EvalSettings(cfg.dataset, int(image_size), crop_pct, interpolation,
                        tuple(mean) if mean is not None else None, tuple(std) if std is not None else None)


class FilePreprocessor:
    """Decode one image file (any mode: grayscale, CMYK, alpha...) and apply the eval transforms, eagerly."""

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings
        self._compose = ds_transforms.Compose(settings.transforms())

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        """HWC uint8 RGB -> CHW float32."""
        return np.ascontiguousarray(self._compose(rgb), dtype=np.float32)

    def __call__(self, path: str) -> np.ndarray:
        """CHW float32; raises on a file that cannot be decoded (the caller reports and skips it)."""
        return self.transform(load_rgb(path))
