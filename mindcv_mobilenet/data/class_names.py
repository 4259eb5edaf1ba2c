"""Save the class list beside checkpoints as JSON, so inference can print names instead of indices."""

from __future__ import annotations

import json
import os
from typing import List, Sequence

from ..utils.errors import DataError
from ..utils.fileio import atomic_path

CLASS_NAMES_FILE = "class_names.json"


def _json_path(path: str) -> str:
    """A folder -> ``folder/class_names.json``; a checkpoint ``x.ckpt`` -> ``class_names.json`` beside it."""
    if os.path.isdir(path):
        return os.path.join(path, CLASS_NAMES_FILE)
    if path.endswith(".json"):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(path)), CLASS_NAMES_FILE)


def save_class_names(class_names: Sequence[str], path: str) -> str:
    """Write ``class_names`` (index order) as JSON into a folder, beside a checkpoint, or to a ``.json`` path."""
    target = _json_path(path)
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump({"num_classes": len(class_names), "class_names": list(class_names)}, f, indent=1)
    return target


def load_class_names(path: str) -> List[str]:
    """Read the class list saved by :func:`save_class_names` (folder, checkpoint path or ``.json`` path)."""
    target = _json_path(path)
    try:
        with open(target, encoding="utf-8") as f:
            data = json.load(f)
        names = data["class_names"] if isinstance(data, dict) else data
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("class_names is not a list of strings")
        return names
    except FileNotFoundError:
        raise DataError(f"no class list at {target}: save one with save_class_names() when training") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot read the class list {target} ({err}); save it again with save_class_names()") from None
