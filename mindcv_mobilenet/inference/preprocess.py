"""Eager preprocessing of single image files for inference, with the transforms the data config resolves."""

from __future__ import annotations

import numpy as np
from mindspore.dataset import transforms as ds_transforms

from ..data.decode import load_rgb
from ..data.preprocessing import DataConfig


class FilePreprocessor:
    """Decode one image file (any mode: grayscale, CMYK, alpha...) and apply the eval transforms, eagerly."""

    def __init__(self, settings: DataConfig) -> None:
        self.settings = settings
        self._compose = ds_transforms.Compose(settings.transforms())

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        """HWC uint8 RGB -> CHW float32."""
        return np.ascontiguousarray(self._compose(rgb), dtype=np.float32)

    def __call__(self, path: str) -> np.ndarray:
        """CHW float32; raises on a file that cannot be decoded (the caller reports and skips it)."""
        return self.transform(load_rgb(path))
