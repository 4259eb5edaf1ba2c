"""Constants shared by the data modules: normalisation statistics, image extensions and where shared data lives."""

from __future__ import annotations

import os

DEFAULT_CROP_PCT = 0.875
# mindcv's convention: statistics on the 0..255 pixel scale, so Normalize needs no separate Rescale.
IMAGENET_DEFAULT_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255]
IMAGENET_DEFAULT_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]
CIFAR10_MEAN = [0.4914 * 255, 0.4822 * 255, 0.4465 * 255]
CIFAR10_STD = [0.2023 * 255, 0.1994 * 255, 0.2010 * 255]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

SHARED_ENV = "MINDCV_MOBILENET_SHARED"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESOURCES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")


def shared_dir() -> str:
    """Folder of shared real data and weights: ``$MINDCV_MOBILENET_SHARED`` or ``<repo>/../shared``."""
    return os.environ.get(SHARED_ENV) or os.path.join(os.path.dirname(REPO_ROOT), "shared")
