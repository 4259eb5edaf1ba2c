"""Class-per-folder image trees (ImageNet's ``train/<synset>/...`` layout and any custom one) as a random-access source.

The source reads each file's bytes and checks them (:func:`~.decode.load_encoded`); decoding happens later in
MindSpore's C++ operators. A file that cannot be decoded becomes a counted, skipped row instead of a pipeline crash.
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np

from ..utils.errors import DataError
from .constants import IMAGE_EXTENSIONS
from .decode import load_encoded, placeholder_jpeg

# What a requested split may be called on disk, in order of preference.
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "validation", "valid", "test", "eval"),
    "test": ("test", "val", "validation", "valid", "eval"),
}
SPLIT_ALIASES["validation"] = SPLIT_ALIASES["val"]
SPLIT_ALIASES["eval"] = SPLIT_ALIASES["val"]
SPLIT_ALIASES["training"] = SPLIT_ALIASES["train"]

PLACEHOLDER = placeholder_jpeg()


def list_image_files(folder: str, follow_links: bool = False) -> list[str]:
    """Image files anywhere below ``folder`` (by extension, hidden files skipped), sorted."""
    return sorted(
        os.path.join(dirpath, name)
        for dirpath, _dirnames, names in os.walk(folder, followlinks=follow_links)
        for name in names
        if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
    )

def _visible_dirs(path: str) -> List[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def check_root(root: str | None, what: str) -> str:
    """The absolute root folder, or one clear DataError when it is unset or missing."""
    if not root:
        raise DataError(f"no data folder given for {what}: pass root (--data_dir) pointing at the data set")
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DataError(f"data folder {root} does not exist: check --data_dir (the {what} data set root)")
    return root


def resolve_split_dir(root: str, split: str | None) -> str:
    """The folder of ``split`` under ``root`` (``val`` also finds ``validation``/``test``); '' or None means root."""
    if not split:
        return root
    for candidate in SPLIT_ALIASES.get(split.lower(), (split,)):
        path = os.path.join(root, candidate)
        if os.path.isdir(path):
            return path
    available = [d for d in _visible_dirs(root) if _visible_dirs(os.path.join(root, d))]
    hint = f"available splits: {', '.join(available)}" if available else "it has no split folders"
    raise DataError(
        f"split '{split}' not found under {root} ({hint}); pass one of those as split, or split='' to use "
        f"{root} itself as the class-per-folder tree"
    )


def scan_image_folder(folder: str) -> Tuple[List[str], List[Tuple[str, int]]]:
    """Class names (sorted folder names) and (path, class index) for every image file below each class folder.

    Hidden files and files without an image extension (``.txt``, ``.DS_Store``...) are ignored.
    """
    classes = _visible_dirs(folder)
    samples: List[Tuple[str, int]] = []
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(os.path.join(folder, name), followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if not fname.startswith(".") and fname.lower().endswith(IMAGE_EXTENSIONS):
                    samples.append((os.path.join(dirpath, fname), label))
    if not samples:
        raise DataError(
            f"no images found in {folder}: expected {folder}/<class>/<image> with extensions "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    return classes, samples


class ImageFileSource:
    """Random-access source yielding (encoded image bytes uint8, label int32, bad_file int32).

    ``bad_file`` is -1 for a readable image. For a file that cannot be decoded it is the sample index, and the row
    holds the next readable file (bytes and label) instead, or a tiny placeholder JPEG when none is found within
    ``SUBSTITUTE_TRIES`` files: evaluation drops such rows, training keeps the substitute so every batch stays full
    (:class:`~.stats.BadFileGuard` counts both). The rows need a decoding op first (``encoded``), which
    :func:`~.loader.create_loader` adds.
    """

    column_names = ["image", "label", "bad_file"]
    encoded = True
    SUBSTITUTE_TRIES = 16

    def __init__(self, samples: Sequence[Tuple[str, int]]) -> None:
        self.paths = [p for p, _ in samples]
        self.labels = np.asarray([label for _, label in samples], dtype=np.int32)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> np.ndarray | None:
        try:
            return load_encoded(self.paths[index])
        except Exception:  # noqa: BLE001 - any decoder failure means "skip this file"
            return None

    def __getitem__(self, index: int):
        index = int(index)
        image = self._load(index)
        if image is not None:
            return image, self.labels[index], np.int32(-1)
        for step in range(1, min(self.SUBSTITUTE_TRIES, len(self.paths))):
            other = (index + step) % len(self.paths)
            image = self._load(other)
            if image is not None:
                return image, self.labels[other], np.int32(index)
        return PLACEHOLDER, self.labels[index], np.int32(index)
