"""CIFAR-10 in its official binary format (also xz/gzip-compressed, as in the packaged demo subset).

Each record is 1 label byte + 3,072 pixel bytes (1,024 R, 1,024 G, 1,024 B, row-major). Whatever training batches
are present are used, and a log line says which.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import os
from typing import List, Tuple

import numpy as np

from ..utils.errors import DataError

_logger = logging.getLogger("mindcv_mobilenet.data")

RECORD_BYTES = 1 + 32 * 32 * 3
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
SUBDIR = "cifar-10-batches-bin"
COMPRESSED_SUFFIXES = ("", ".xz", ".gz")
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPLIT_FILES = {"train": TRAIN_FILES, "test": TEST_FILES, "val": TEST_FILES, "validation": TEST_FILES}


def find_cifar_dir(root: str) -> str | None:
    """``root`` or ``root/cifar-10-batches-bin``, whichever holds CIFAR-10 batch files (None if neither)."""
    for folder in (os.path.join(root, SUBDIR), root):
        if os.path.isdir(folder) and any(_existing(folder, f) for f in TRAIN_FILES + TEST_FILES):
            return folder
    return None


def _existing(folder: str, name: str) -> str | None:
    for suffix in COMPRESSED_SUFFIXES:
        path = os.path.join(folder, name + suffix)
        if os.path.isfile(path):
            return path
    return None


def read_records(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images N×32×32×3 uint8 HWC, labels N int32) from one batch file, plain or compressed."""
    opener = lzma.open if path.endswith(".xz") else gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise DataError(f"cannot read CIFAR-10 file {path} ({err}); delete it and download it again") from None
    if not raw or len(raw) % RECORD_BYTES:
        raise DataError(
            f"{path} is not a CIFAR-10 binary batch ({len(raw)} bytes is not a multiple of {RECORD_BYTES}); "
            "use the binary version (cifar-10-binary.tar.gz), not the python or matlab one"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    if labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{path} has label {labels.max()}: not a CIFAR-10 batch (CIFAR-100 is not supported)")
    images = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def split_files(folder: str, split: str) -> Tuple[List[str], List[str]]:
    """(paths present, names missing) of the batch files of ``split`` (``val`` means the test batch)."""
    names = SPLIT_FILES.get(split.lower())
    if names is None:
        raise DataError(f"CIFAR-10 has no split '{split}': use one of train, val, test (val and test both mean "
                        "test_batch.bin)")
    present = [(n, _existing(folder, n)) for n in names]
    return [p for _, p in present if p], [n for n, p in present if not p]


def class_names(folder: str) -> List[str]:
    """Class names from ``batches.meta.txt`` when present, else the standard list."""
    meta = os.path.join(folder, "batches.meta.txt")
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) == len(CLASS_NAMES):
            return names
    return list(CLASS_NAMES)


def load_cifar10(root: str, split: str, expect_all: bool = True) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """All images and labels of ``split`` under ``root`` and the class names; logs which batch files were used.

    ``expect_all=False`` (the demo subset) logs missing training batches as info rather than a warning. The arrays
    are read once per process (the trainer rebuilds its loader every epoch for an exactly resumable shuffle).
    """
    folder = find_cifar_dir(root)
    if folder is None:
        raise DataError(
            f"no CIFAR-10 batch files (data_batch_N.bin, test_batch.bin) in {root} or {os.path.join(root, SUBDIR)}: "
            "point root at the extracted cifar-10-batches-bin folder, or pass download=True (--dataset_download)"
        )
    paths, missing = split_files(folder, split)
    if not paths:
        raise DataError(f"CIFAR-10 split '{split}' needs {', '.join(missing)} in {folder}; none is there")
    stamp = tuple((p, os.path.getmtime(p), os.path.getsize(p)) for p in paths)
    first_read = stamp not in _cache
    images, labels = _read_batches(stamp)
    if first_read:
        # A missing training batch changes the experiment, so that case is a warning, not just info.
        _logger.log(
            logging.WARNING if missing and expect_all else logging.INFO,
            "cifar10 %s: using %s from %s (%d images)%s", split, ", ".join(os.path.basename(p) for p in paths),
            folder, len(labels), f"; not present: {', '.join(missing)}" if missing and expect_all else "",
        )
    return images, labels, class_names(folder)


_cache: dict = {}


def _read_batches(stamp: tuple) -> Tuple[np.ndarray, np.ndarray]:
    """Images and labels of the batch files in ``stamp`` ((path, mtime, size), ...), cached for the process."""
    if stamp not in _cache:
        parts = [read_records(p) for p, _, _ in stamp]
        _cache[stamp] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return _cache[stamp]


class ArraySource:
    """Random-access source over in-memory images and labels, yielding (image HWC uint8, label int32)."""

    column_names = ["image", "label"]

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]
