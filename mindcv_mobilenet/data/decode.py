"""Turn any image file into an RGB uint8 array (or bytes MindSpore's C++ decoder reads as one), because real data
sets mix grayscale, CMYK, palette and alpha."""

from __future__ import annotations

import io
import struct
from typing import BinaryIO, Union

import cv2
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


# OpenCV 4.11+ decodes straight to RGB; EXIF orientation is ignored, as MindSpore's Decode and PIL's open do.
_CV2_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
_CV2_FLAGS = (cv2.IMREAD_COLOR if _CV2_RGB is None else _CV2_RGB) | cv2.IMREAD_IGNORE_ORIENTATION


def decode_image(data: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB from the bytes the reader hands on (a checked JPEG, or the BMP of a converted image).

    The loader's decoding op (a Python op in the map's threads: OpenCV releases the GIL while it decodes). OpenCV's
    libjpeg-turbo gives the same pixels as MindSpore's C++ ``Decode`` (tested) in less than half the time on
    ImageNet-sized JPEGs (BENCHMARKS.md, "Data pipeline").
    """
    image = cv2.imdecode(data, _CV2_FLAGS)
    if image is None:  # not expected after the reader's checks; PIL raises a readable error if it fails too
        return load_rgb(io.BytesIO(np.asarray(data).tobytes()))
    return image if _CV2_RGB is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# The tail of a complete JPEG holds its end-of-image marker; cameras sometimes append a little metadata after it.
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"
JPEG_TAIL_BYTES = 4096
# Frames MindSpore's C++ JPEG decoder turns into RGB exactly as PIL does: baseline, extended and progressive Huffman
# (SOF0/1/2), 8-bit, grayscale or 3 components. Anything else (CMYK/YCCK, 12-bit, lossless, arithmetic...) goes
# through PIL.
CPP_JPEG_FRAMES = (0xC0, 0xC1, 0xC2)
CPP_JPEG_COMPONENTS = (1, 3)
_DHT, _DQT, _SOS = 0xC4, 0xDB, 0xDA
# Markers that may come between SOI and the scan: APPn, COM, DRI, DNL, EXP, DAC, JPGn. Any other one is corruption.
_HEADER_MARKERS = frozenset((*range(0xE0, 0xF0), 0xFE, 0xDD, 0xDC, 0xDF, 0xCC, *range(0xF0, 0xFE)))


def _tables_fit(segment: bytes, kind: int) -> bool:
    """Whether a DQT or DHT segment's payload is exactly a whole number of well-formed tables."""
    pos = 0
    while pos < len(segment):
        spec = segment[pos]
        if kind == _DQT:
            if spec & 0x0F > 3 or spec >> 4 > 1:
                return False
            pos += 1 + 64 * (1 + (spec >> 4))
        else:
            if spec & 0x0F > 3 or spec >> 4 > 1 or pos + 17 > len(segment):
                return False
            codes = sum(segment[pos + 1:pos + 17])
            if codes > 256:
                return False
            pos += 17 + codes
    return pos == len(segment)


def _frame_ok(marker: int, segment: bytes) -> bool:
    """A frame header the C++ decoder reads: a supported frame type, 8 bit, sizes > 0, 1 or 3 sane components."""
    if marker not in CPP_JPEG_FRAMES or len(segment) < 6:
        return False
    precision, height, width, components = struct.unpack_from(">BHHB", segment)
    if precision != 8 or height == 0 or width == 0 or components not in CPP_JPEG_COMPONENTS:
        return False
    if len(segment) != 6 + 3 * components:
        return False
    for c in range(components):
        sampling, table = segment[7 + 3 * c], segment[8 + 3 * c]
        if not (1 <= sampling >> 4 <= 4 and 1 <= sampling & 0x0F <= 4 and table <= 3):
            return False
    return True


def cpp_decodable_jpeg(data: bytes) -> bool:
    """True when ``data`` is a complete JPEG with well-formed headers and a frame the C++ decoder reads.

    MindSpore's C++ decoder stops the pipeline on a bad file, and crashes the process on some malformed headers, so
    only files that pass this reach it. It walks the segments from SOI to the start of scan (what PIL's
    ``Image.open`` parses, at a third of the cost: this runs once per image per epoch in the single Python reader):
    every segment starts with 0xFF, has a known header marker and fits in the file, quantisation and Huffman tables
    are whole, exactly one frame header (:func:`_frame_ok`) comes before the scan, and the end-of-image marker is in
    the file's tail.
    """
    if not data.startswith(JPEG_SOI) or JPEG_EOI not in data[-JPEG_TAIL_BYTES:]:
        return False
    pos, size, frame_ok = 2, len(data), None
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > size:
            return False
        segment = data[pos + 4:pos + 2 + length]
        if marker == _SOS:
            components = segment[0] if segment else 0
            return bool(frame_ok) and 1 <= components <= 4 and length == 6 + 2 * components
        if 0xC0 <= marker <= 0xCF and marker not in (_DHT, 0xC8, 0xCC):  # a frame header (SOFn)
            if frame_ok is not None:
                return False
            frame_ok = _frame_ok(marker, segment)
        elif marker in (_DQT, _DHT):
            if not _tables_fit(segment, marker):
                return False
        elif marker not in _HEADER_MARKERS:
            return False
        pos += 2 + length
    return False


def _encode_bmp(rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "BMP")
    return np.frombuffer(buf.getvalue(), np.uint8)


def read_encoded(path: str) -> tuple[np.ndarray, bool]:
    """(:func:`load_encoded`'s bytes, True when they are the file itself: a JPEG the C++ decoder reads as it is)."""
    with open(path, "rb") as f:
        data = f.read()
    if cpp_decodable_jpeg(data):
        return np.frombuffer(data, np.uint8), True
    return _encode_bmp(load_rgb(io.BytesIO(data))), False


def load_encoded(path: str) -> np.ndarray:
    """The file as bytes :func:`decode_image` (and MindSpore's C++ ``Decode``) turn into the right RGB image.

    A complete RGB or grayscale JPEG with well-formed headers (:func:`cpp_decodable_jpeg`; nearly all of ImageNet)
    is passed through untouched, so decoding happens later in libjpeg-turbo, outside Python's lock. Any other file
    (PNG with alpha, palette, 16-bit, CMYK JPEG, a JPEG with no end marker that PIL still reads...) is decoded here
    by :func:`load_rgb` and handed on as an uncompressed BMP. Raises (OSError, ValueError...) for a file that cannot
    be decoded, so the caller can skip it: a decoding error in the pipeline would stop it instead.
    """
    return read_encoded(path)[0]


def placeholder_jpeg() -> np.ndarray:
    """A tiny valid JPEG standing in for a file that could not be read (the row is then dropped or replaced)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    return np.frombuffer(buf.getvalue(), np.uint8)
