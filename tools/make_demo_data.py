"""Build the packaged CIFAR-10 demo subset (``mindcv_mobilenet/resources/cifar10_demo/``) from the official batches.

Class-balanced records (first N of each class, in file order) are kept in the official binary record format and
compressed with xz (delta filter): lossless, read by the same code as the full data set, about 8.7 MB in all.

    python tools/make_demo_data.py [--src DIR] [--out DIR] [--train-per-class 300] [--val-per-class 100]
"""

from __future__ import annotations

import argparse
import lzma
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.layout import shared_dir  # noqa: E402
from mindcv_mobilenet.data.cifar10 import CLASS_NAMES, RECORD_BYTES, find_cifar_dir  # noqa: E402
from mindcv_mobilenet.data.dataset import CIFAR10_DEMO_DIR  # noqa: E402
from mindcv_mobilenet.utils.errors import DataError, run_cli  # noqa: E402
from mindcv_mobilenet.utils.fileio import atomic_path  # noqa: E402

XZ_FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 1}, {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def balanced_records(path: str, per_class: int) -> bytes:
    """The first ``per_class`` records of every class in ``path``, kept in file order."""
    records = np.fromfile(path, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    chosen = []
    for label in range(len(CLASS_NAMES)):
        idx = np.flatnonzero(labels == label)[:per_class]
        if len(idx) < per_class:
            raise DataError(f"{path} has only {len(idx)} images of class {label}, {per_class} wanted")
        chosen.append(idx)
    return records[np.sort(np.concatenate(chosen))].tobytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.path.join(shared_dir(), "data", "cifar-10-batches-bin"))
    parser.add_argument("--out", default=CIFAR10_DEMO_DIR)
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--val-per-class", type=int, default=100)
    args = parser.parse_args()
    src = find_cifar_dir(args.src) if os.path.isdir(args.src) else None
    if src is None:
        raise DataError(f"no CIFAR-10 batches in {args.src}: pass --src pointing at cifar-10-batches-bin")
    os.makedirs(args.out, exist_ok=True)
    jobs = [("data_batch_1.bin", args.train_per_class), ("test_batch.bin", args.val_per_class)]
    for name, per_class in jobs:
        data = balanced_records(os.path.join(src, name), per_class)
        target = os.path.join(args.out, name + ".xz")
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            f.write(lzma.compress(data, format=lzma.FORMAT_XZ, filters=XZ_FILTERS))
        print(f"{target}: {len(data) // RECORD_BYTES} images, {os.path.getsize(target) / 1e6:.2f} MB")
    shutil.copyfile(os.path.join(src, "batches.meta.txt"), os.path.join(args.out, "batches.meta.txt"))
    return 0


if __name__ == "__main__":
    run_cli(main)
