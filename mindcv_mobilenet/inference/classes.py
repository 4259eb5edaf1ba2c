"""Human-readable class names for predictions: ImageNet's 1,000, CIFAR-10's, or the list saved with a checkpoint."""

from __future__ import annotations

import os
import re

from ..constants import RESOURCES_DIR
from ..data.cifar10 import CLASS_NAMES as CIFAR10_CLASS_NAMES
from ..data.class_names import CLASS_NAMES_FILE, load_class_names
from ..data.constants import dataset_spec
from ..utils.errors import DataError

IMAGENET_LABELS_FILE = os.path.join(RESOURCES_DIR, "imagenet_labels_1000.txt")
_SYNSET = re.compile(r"n\d{8}")


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k names in class-index order (one line each, synonyms separated by commas)."""
    with open(IMAGENET_LABELS_FILE, encoding="utf-8") as f:
        names = f.read().splitlines()
    if len(names) != 1000:
        raise DataError(f"{IMAGENET_LABELS_FILE} holds {len(names)} names, not 1000: the package is damaged")
    return names


def short_name(name: str) -> str:
    """The first synonym ('great white shark, white shark, ...' -> 'great white shark'), for compact display."""
    return name.split(",")[0].strip()


def saved_class_list(ckpt_path: str) -> str | None:
    """The class-list JSON saved beside ``ckpt_path`` (by training on a folder data set), if there is one."""
    if not ckpt_path:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), CLASS_NAMES_FILE)
    return path if os.path.isfile(path) else None


def resolve_class_names(num_classes: int, dataset: str = "", class_names_file: str = "",
                        ckpt_path: str = "") -> tuple[list[str], str]:
    """(names, where they came from) for a model with ``num_classes`` outputs.

    Order of preference: an explicit ``--class_names`` file (JSON from ``save_class_names`` or one name per line),
    the ``class_names.json`` train.py writes beside its checkpoints (the training data's folder names; ImageNet's
    1,000 synsets are shown with ImageNet's names), CIFAR-10's names for a CIFAR data set, ImageNet's names for a
    1,000-class model. Otherwise the names are the class indices. A list of the wrong length is an error: the names
    would be silently wrong.
    """
    if class_names_file:
        names, source = _read_names_file(class_names_file), class_names_file
    elif saved_class_list(ckpt_path):
        names, source = _readable(load_class_names(saved_class_list(ckpt_path)), saved_class_list(ckpt_path))
    elif not dataset_spec(dataset).is_folder and num_classes == len(CIFAR10_CLASS_NAMES):
        names, source = list(CIFAR10_CLASS_NAMES), "CIFAR-10"
    elif num_classes == 1000:
        names, source = imagenet_class_names(), "ImageNet-1k"
    else:
        return [str(i) for i in range(num_classes)], "class indices (no class list found: pass --class_names)"
    if len(names) != num_classes:
        raise DataError(f"class list {source} has {len(names)} names but the model has {num_classes} classes; "
                        "pass the list saved with this checkpoint (--class_names)")
    return names, source


def _readable(names: list[str], source: str) -> tuple[list[str], str]:
    """A saved list of ImageNet-1k's 1,000 synset folders (a run trained on an ImageNet tree) is shown with their
    names: an ImageNet tree's class index is the synset's rank in sorted order, the order of the names file."""
    if len(names) == 1000 and names == sorted(names) and all(_SYNSET.fullmatch(n) for n in names):
        return imagenet_class_names(), f"ImageNet-1k (the synsets of {source})"
    return names, source


def _read_names_file(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise DataError(f"class list {path} not found (--class_names)")
    if path.endswith(".json"):
        return load_class_names(path)
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f.read().splitlines() if line.strip()]
