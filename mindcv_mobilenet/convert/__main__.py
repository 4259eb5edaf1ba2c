"""``python -m mindcv_mobilenet.convert``: read weights, write a checkpoint, say what was done."""

from __future__ import annotations

import sys

from ..cli import parse_args
from ..utils.errors import run_cli
from . import PADDING_WARNING, convert_file, measure_padding_gap
from . import __doc__ as _PACKAGE_DOC


def main(argv: list[str] | None = None) -> int:
    args = parse_args("convert", argv, description=_PACKAGE_DOC.splitlines()[0])
    params = convert_file(args.model, args.input, args.output, args.num_classes, args.force, args.bn_eps)
    print(f"wrote {args.output}: {len(params)} tensors for {args.model}; reloaded strictly into a new model: ok",
          flush=True)
    if args.model.startswith("mobilenet_v3"):
        line = f"warning: {PADDING_WARNING}"
        if not args.skip_padding_check:
            gap = measure_padding_gap(args.model, params)
            line += (f"; measured on {gap['images']} synthetic 224-px images: logits differ by "
                     f"{gap['relative_l2']:.1%} (relative L2), top-1 agrees on {gap['top1_agreement']:.0%}")
        print(line, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
