"""Facts about the package that every layer may need, in the lowest layer so that none has to import upwards for them:
its version, where its packaged resources are, ImageNet's statistics (the models' default normalisation and the data
pipeline's), and how each script is started (:func:`program`, for messages that name a command).

Every mean/std in the suite (recipes, model configs, transforms) is on the 0..255 pixel scale, mindcv's convention,
so Normalize needs no separate Rescale.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

RESOURCES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources")

DEFAULT_CROP_PCT = 0.875
IMAGENET_DEFAULT_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_DEFAULT_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

MODULE_COMMANDS = ("convert", "summary", "doctor", "plot")  # started as python -m mindcv_mobilenet.<kind>


def program(kind: str) -> str:
    """How script ``kind`` is started (its name in --help, errors and the commands a message suggests)."""
    return f"python -m mindcv_mobilenet.{kind}" if kind in MODULE_COMMANDS else f"{kind}.py"
