"""Turn any image file into an RGB uint8 array, because real data sets mix grayscale, CMYK, palette and alpha."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Transparent pixels are composited onto white: most web images with alpha are logos or products on white.
ALPHA_BACKGROUND = (255, 255, 255)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to RGB (grayscale, CMYK, palette, alpha, 16-bit and float included)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "F" and top <= 1.0:
            top = 1.0
        gray = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, ALPHA_BACKGROUND)
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def load_rgb(path: str) -> np.ndarray:
    """Decode ``path`` fully to an HWC uint8 RGB array; raises (OSError, ValueError, ...) on corrupt files."""
    with Image.open(path) as img:
        img.load()  # force the full decode here so truncated files fail now, not later in a transform
        return np.asarray(to_rgb(img), dtype=np.uint8)
