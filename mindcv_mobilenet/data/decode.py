"""Turn any image file into an RGB uint8 array (or bytes MindSpore's C++ decoder reads as one), because real data
sets mix grayscale, CMYK, palette and alpha."""

from __future__ import annotations

import io
from typing import BinaryIO, Union

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


def load_rgb(path: Union[str, BinaryIO]) -> np.ndarray:
    """Decode ``path`` (a file name or an open binary file) fully to an HWC uint8 RGB array.

    Raises (OSError, ValueError, ...) on corrupt files.
    """
    with Image.open(path) as img:
        img.load()  # force the full decode here so truncated files fail now, not later in a transform
        return np.asarray(to_rgb(img), dtype=np.uint8)


# The tail of a complete JPEG holds its end-of-image marker; cameras sometimes append a little metadata after it.
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"
JPEG_TAIL_BYTES = 4096
# Modes MindSpore's C++ JPEG decoder turns into RGB exactly as PIL does; others (CMYK, YCCK...) go through PIL.
CPP_JPEG_MODES = ("RGB", "L")


def _encode_bmp(rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "BMP")
    return np.frombuffer(buf.getvalue(), np.uint8)


def load_encoded(path: str) -> np.ndarray:
    """The file as bytes MindSpore's C++ ``Decode``/``RandomCropDecodeResize`` turn into the right RGB image.

    A complete RGB or grayscale JPEG (nearly all of ImageNet) is passed through untouched, so decoding happens in
    C++ and, for ``RandomCropDecodeResize``, only the crop is decoded. Any other file (PNG with alpha, palette,
    16-bit, CMYK JPEG, a JPEG with no end marker that PIL still reads...) is decoded here by :func:`load_rgb` and
    handed on as an uncompressed BMP. Raises (OSError, ValueError...) for a file that cannot be decoded, so the
    caller can skip it: C++ decoding errors would stop the whole pipeline instead.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(JPEG_SOI) and JPEG_EOI in data[-JPEG_TAIL_BYTES:]:
        with Image.open(io.BytesIO(data)) as img:  # parses the headers only: catches corrupt markers/tables
            if img.format == "JPEG" and img.mode in CPP_JPEG_MODES:
                return np.frombuffer(data, np.uint8)
    return _encode_bmp(load_rgb(io.BytesIO(data)))


def placeholder_jpeg() -> np.ndarray:
    """A tiny valid JPEG standing in for a file that could not be read (the row is then dropped or replaced)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    return np.frombuffer(buf.getvalue(), np.uint8)
