"""Split an ImageNet-layout folder into disjoint ``train/`` and ``val/`` trees of symbolic links, for int8 calibration.

With only the 1,000 shared samples there is no training split to calibrate on, and calibrating on the images that are
evaluated would flatter the int8 Top-1. This draws ``--train`` images (fixed seed) into ``<dst>/train/<class>/`` and
links the rest into ``<dst>/val/<class>/``; both trees keep every class folder, so labels keep their indices. Then
``validate.py --data_dir <dst> --backend onnxruntime --precision int8`` calibrates on ``train/`` by default and
evaluates on ``val/``.

    python tools/holdout_split.py [--src DIR] [--split val] --dst DIR [--train 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.layout import shared_dir  # noqa: E402
from mindcv_mobilenet.data.folder import scan_image_folder  # noqa: E402
from mindcv_mobilenet.utils.errors import DataError, UserError, run_cli  # noqa: E402


def holdout_split(src: str, dst: str, train: int, seed: int = 0) -> tuple[int, int]:
    """Link ``train`` images of the class tree ``src`` into ``dst/train`` and the others into ``dst/val``; returns
    (train, val) counts. A ``dst`` that already holds files is refused (nothing is overwritten)."""
    if not os.path.isdir(src):
        raise DataError(f"no class folders at {src}: pass --src (an ImageNet-layout split, <class>/<image>)")
    if os.path.isdir(dst) and os.listdir(dst):
        raise UserError(f"{dst} is not empty: pass a new --dst")
    classes, samples = scan_image_folder(src)
    if not 0 < train < len(samples):
        raise UserError(f"--train must be between 1 and {len(samples) - 1} (the folder has {len(samples)} images)")
    chosen = set(np.random.default_rng(seed).choice(len(samples), train, replace=False).tolist())
    for split in ("train", "val"):
        for name in classes:
            os.makedirs(os.path.join(dst, split, name), exist_ok=True)
    for index, (path, label) in enumerate(samples):
        split = "train" if index in chosen else "val"
        os.symlink(os.path.abspath(path), os.path.join(dst, split, classes[label], os.path.basename(path)))
    return train, len(samples) - train


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.path.join(shared_dir(), "data", "imagenet-samples", "val"))
    parser.add_argument("--dst", required=True)
    parser.add_argument("--train", type=int, default=300, help="images linked into train/ (calibration)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, val = holdout_split(args.src, args.dst, args.train, args.seed)
    print(f"{args.dst}: train/ {train} images (calibration), val/ {val} images (evaluation)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
