"""Make ImageNet-sized JPEGs from the 1,000 shared samples, for the data-pipeline benchmark (``benchmark.py --data``).

The shared samples were shrunk to a 320 px shorter side; real ImageNet photos average about 400x350 to 500x375.
This writes each sample upscaled (bicubic) to a 400 px shorter side as JPEG quality 90, in the same
``val/<synset>/<file>`` layout, so decoding costs what it costs on ImageNet itself.

    python tools/make_imagenet_sized.py [--src DIR] [--dst DIR] [--short-side 400] [--quality 90]
"""

from __future__ import annotations

import argparse
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.layout import shared_dir  # noqa: E402
from mindcv_mobilenet.utils.errors import DataError, UserError, run_cli  # noqa: E402

DEFAULT_DST = os.path.join(os.path.expanduser("~"), ".cache", "mindcv_mobilenet", "imagenet-sized")


def make_imagenet_sized(src: str, dst: str, short_side: int = 400, quality: int = 90) -> int:
    """Write the upscaled copies under ``dst`` (files already there are kept, not rewritten); returns how many."""
    if not os.path.isdir(src):
        raise DataError(f"no ImageNet samples at {src}: pass --src (a folder holding val/<synset>/<image>)")
    count = 0
    for dirpath, _, filenames in sorted(os.walk(src)):
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith((".jpeg", ".jpg", ".png")):
                continue
            out = os.path.join(dst, os.path.relpath(os.path.join(dirpath, name), src))
            count += 1
            if os.path.exists(out):
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with Image.open(os.path.join(dirpath, name)) as img:
                img = img.convert("RGB")
                scale = short_side / min(img.size)
                size = (round(img.width * scale), round(img.height * scale))
                img.resize(size, Image.BICUBIC).save(out, "JPEG", quality=quality)
    if not count:
        raise DataError(f"no images under {src}")
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.path.join(shared_dir(), "data", "imagenet-samples"))
    parser.add_argument("--dst", default=DEFAULT_DST)
    parser.add_argument("--short-side", type=int, default=400)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    if os.path.abspath(args.dst) == os.path.abspath(args.src):
        raise UserError("--dst must differ from --src (the samples must not be overwritten)")
    count = make_imagenet_sized(args.src, args.dst, args.short_side, args.quality)
    print(f"{count} images at a {args.short_side} px shorter side (JPEG q{args.quality}) in {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
