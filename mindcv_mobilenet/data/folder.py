"""Class-per-folder image trees (ImageNet's ``train/<synset>/...`` layout and any custom one) as a random-access source.

The source reads each file's bytes and checks them (:func:`~.decode.read_encoded`); decoding happens later, in the
loader's decoding op (:func:`~.decode.decode_image`). A file that cannot be decoded becomes a counted, skipped row
instead of a pipeline crash. The source remembers what it found in each file, so once every file has been read
(after the first pass) later pipelines read the files in C++ from a manifest of the good ones
(:meth:`ImageFileSource.manifest`) and skip the Python reader.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import weakref
from typing import Callable, List, Sequence, Tuple

import numpy as np

from ..utils.download import default_cache_dir
from ..utils.errors import DataError
from .constants import IMAGE_EXTENSIONS
from .decode import placeholder_jpeg, read_encoded

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
_logger = logging.getLogger("mindcv_mobilenet.data")

# What reading found in a file (ImageFileSource.kinds): not read yet, a JPEG the C++ decoder takes as it is, an image
# PIL had to convert (CMYK, PNG with alpha...), or one that cannot be decoded.
UNREAD, AS_IS, CONVERTED, BAD = 0, 1, 2, 3
MANIFEST_USAGE = "train"  # ManifestDataset filters lines by usage; every line carries this one


class ManifestFolder:
    """The temporary folder of a source's manifests and converted files, under the package cache.

    Its own object so that everything reading from it can hold it: the source that writes it and every
    ``ManifestDataset`` built on it (an API user may drop the source and keep the pipeline). It is removed when the
    last holder is collected. Never copied: MindSpore deep-copies a pipeline each time it runs it.
    """

    def __init__(self) -> None:
        cache = os.path.join(default_cache_dir(), "manifests")
        os.makedirs(cache, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix="run-", dir=cache)
        weakref.finalize(self, shutil.rmtree, self.path, True)

    def __deepcopy__(self, memo: dict) -> ManifestFolder:
        return self


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

    ``kinds`` records what each read found (``AS_IS``, ``CONVERTED``, ``BAD``); read in this process only (not with
    ``python_multiprocessing``), so a source run in worker processes never learns it and stays on this reader.
    """

    column_names = ["image", "label", "bad_file"]
    encoded = True
    SUBSTITUTE_TRIES = 16

    def __init__(self, samples: Sequence[Tuple[str, int]]) -> None:
        self.paths = [p for p, _ in samples]
        self.labels = np.asarray([label for _, label in samples], dtype=np.int32)
        self.kinds = np.full(len(self.paths), UNREAD, np.int8)
        self._manifests: dict[bool, tuple[str, np.ndarray]] = {}
        self.folder: ManifestFolder | None = None  # made by the first manifest(); datasets reading it hold it too

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> np.ndarray | None:
        try:
            data, as_is = read_encoded(self.paths[index])
        except Exception:  # noqa: BLE001 - any decoder failure means "skip this file"
            self.kinds[index] = BAD
            return None
        self.kinds[index] = AS_IS if as_is else CONVERTED
        return data

    def __getitem__(self, index: int):
        index = int(index)
        image = self._load(index)
        if image is not None:
            return image, self.labels[index], np.int32(-1)
        for other in self._substitutes(index):
            image = self._load(other)
            if image is not None:
                return image, self.labels[other], np.int32(index)
        return PLACEHOLDER, self.labels[index], np.int32(index)

    def _substitutes(self, index: int):
        """The samples tried, in order, for a bad file's row: the next ``SUBSTITUTE_TRIES - 1`` ones, wrapping."""
        return ((index + step) % len(self.paths) for step in range(1, min(self.SUBSTITUTE_TRIES, len(self.paths))))

    @property
    def fully_read(self) -> bool:
        """True once every file has been read (by this process, or by another rank, see :meth:`merge_kinds`)."""
        return bool((self.kinds != UNREAD).all())

    @property
    def bad_indices(self) -> np.ndarray:
        return np.flatnonzero(self.kinds == BAD)

    def merge_kinds(self, sum_over_ranks: Callable[[np.ndarray], np.ndarray]) -> None:
        """Add what the other ranks' readers found: each rank reads its own shard, the manifest needs all files.

        ``sum_over_ranks``: an all-reduce sum (:meth:`~mindcv_mobilenet.engine.distributed.Reducer.sum`). A file
        read by several ranks has the same kind on each, so kind sum / read count is that kind.
        """
        seen = (self.kinds != UNREAD).astype(np.float32)
        kind_sum, read_count = sum_over_ranks(np.stack([self.kinds.astype(np.float32), seen]))
        known = read_count > 0
        self.kinds[known] = np.rint(kind_sum[known] / read_count[known]).astype(np.int8)

    def manifest(self, substitute: bool) -> tuple[str, np.ndarray]:
        """(a MindSpore manifest file for ``ds.ManifestDataset``, C++ reading; the sample index of each line).

        Only once :attr:`fully_read`. Lines in sample order; a bad file's line holds the next readable file with its
        label (``substitute``: training, the same rows and steps as the checking reader's pass) or is left out
        (evaluation). Files the C++ decoder cannot take as they are (``CONVERTED``) are converted once, into a
        temporary folder under the package cache (:attr:`folder`) that goes with the last of the source and the
        datasets holding it.
        """
        if not self.fully_read:
            raise RuntimeError("ImageFileSource.manifest needs every file read once first")
        if substitute not in self._manifests:
            if self.folder is None:
                self.folder = ManifestFolder()
            sources = {}  # readable sample index -> the path the manifest gives for it
            for index in np.flatnonzero(self.kinds != BAD):
                path = self.paths[index]
                if self.kinds[index] == CONVERTED:
                    path = self._converted(index)
                if path is not None:
                    sources[int(index)] = path
            lines, indices = [], []
            for index in range(len(self.paths)):
                shown = index if index in sources else self._next_readable(index, sources) if substitute else None
                if shown is None:
                    continue
                annotation = [{"type": "label", "name": str(int(self.labels[shown]))}]
                lines.append(json.dumps({"source": sources[shown], "usage": MANIFEST_USAGE, "annotation": annotation}))
                indices.append(index)
            manifest = os.path.join(self.folder.path, f"files{'-substituted' if substitute else ''}.manifest")
            with open(manifest, "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in lines)
            self._manifests[substitute] = (manifest, np.asarray(indices, dtype=np.int64))
            _logger.info("every file of %s has been read once (%d as they are, %d converted, %d bad): later passes "
                         "read them in C++ from %s", os.path.commonpath(self.paths),
                         int((self.kinds == AS_IS).sum()), int((self.kinds == CONVERTED).sum()),
                         int((self.kinds == BAD).sum()), manifest)
        return self._manifests[substitute]

    def _next_readable(self, index: int, sources: dict) -> int | None:
        """The readable sample the checking reader put in a bad file's row (its search, :meth:`_substitutes`)."""
        return next((other for other in self._substitutes(index) if other in sources), None)

    def _converted(self, index: int) -> str | None:
        """The file converted to the BMP the reader hands on (None, and marked bad, when it no longer reads)."""
        path = os.path.join(self.folder.path, f"{index}.bmp")
        if os.path.exists(path):
            return path
        try:
            data, _ = read_encoded(self.paths[index])
        except Exception:  # noqa: BLE001 - changed on disk since it was read: skip it from now on
            self.kinds[index] = BAD
            return None
        data.tofile(path)
        return path
