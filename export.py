"""Export a MobileNet: ``python export.py --model mobilenet_v3_small_100 --ckpt_path x.ckpt --file_format MINDIR ONNX``.

MINDIR gets a dynamic batch axis, ONNX a fixed one (``--batch_size``). Each file is reloaded (MindSpore GraphCell /
ONNX Runtime) and its logits compared with the network's before it is kept. Existing files need ``--force``.
"""

from __future__ import annotations

import argparse

from mindcv_mobilenet.config import str2bool
from mindcv_mobilenet.utils.errors import ConfigError, run_cli


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        raise ConfigError(message)


def main() -> int:
    parser = _Parser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help="model name (python -m mindcv_mobilenet.summary lists them)")
    parser.add_argument("--ckpt_path", default="", help="weights to export (default: random weights, with a warning)")
    parser.add_argument("--pretrained", type=str2bool, nargs="?", const=True, default=False,
                        help="export the published ImageNet weights")
    parser.add_argument("--ema", type=str2bool, nargs="?", const=True, default=False,
                        help="export the EMA copy of the checkpoint's weights")
    parser.add_argument("--num_classes", type=int, default=None, help="classes (default: the checkpoint's)")
    parser.add_argument("--in_channels", type=int, default=3)
    parser.add_argument("--file_format", nargs="+", default=["MINDIR"], type=str.upper, choices=["MINDIR", "ONNX"])
    parser.add_argument("--output", default="", help="output file or folder; the extension is set per format "
                        "(default: ./<model>.mindir / .onnx)")
    parser.add_argument("--image_size", type=int, default=None, help="input resolution (default: the model's)")
    parser.add_argument("--batch_size", type=int, default=1, help="ONNX batch size (MINDIR: any batch)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--no_check", action="store_true", help="skip reloading and comparing the exported files")
    args = parser.parse_args()

    from mindcv_mobilenet.utils.logs import setup_logging
    from mindcv_mobilenet.inference.export import export_files

    setup_logging()
    results = export_files(args.model, args.file_format, args.output, args.ckpt_path, args.pretrained,
                           args.num_classes, args.in_channels, args.ema, args.image_size, args.batch_size,
                           args.force, not args.no_check)
    for result in results:
        print(result.describe(), flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
