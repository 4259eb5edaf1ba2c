"""Export a MobileNet: ``python export.py --model mobilenet_v3_small_100 --ckpt_path x.ckpt --file_format MINDIR ONNX``.

Both formats get a dynamic batch axis. Each file is reloaded (MindSpore GraphCell / ONNX Runtime) and its logits
compared with the network's before it is kept. Existing files need ``--force``. ``--precision int8 --calib_dir DIR``
writes an int8 ONNX file (ONNX Runtime static quantization calibrated on DIR's images, prepared as the model's
evaluation prepares them).
"""

from __future__ import annotations

import argparse

from mindcv_mobilenet.config import OPTIONS_BY_NAME, Config, adopt_run_preprocessing, str2bool
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
    parser.add_argument("--batch_size", type=int, default=1, help="batch the export is traced and checked at (the "
                        "files take any batch)")
    parser.add_argument("--precision", default="fp32", choices=OPTIONS_BY_NAME["precision"].choices,
                        help="fp32, or int8 (ONNX only; needs --calib_dir)")
    parser.add_argument("--calib_dir", default="", help="int8: folder of calibration images (searched recursively)")
    parser.add_argument("--calib_images", type=int, default=OPTIONS_BY_NAME["calib_images"].default,
                        help="int8: calibrate on at most this many images")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--no_check", action="store_true", help="skip reloading and comparing the exported files")
    args = parser.parse_args()
    if args.precision == "int8" and not args.calib_dir:
        raise ConfigError("--precision int8 needs --calib_dir FOLDER: a few hundred images like the ones the model "
                          "will see (not those it is evaluated on)")

    from mindcv_mobilenet.inference.export import export_files
    from mindcv_mobilenet.utils.logs import setup_logging

    setup_logging()
    calibration = None
    if args.precision == "int8":
        from mindcv_mobilenet.data.preprocessing import resolve_data_config
        from mindcv_mobilenet.inference.calibration import from_folder

        # evaluation preprocessing: the training run's (config.yaml beside the checkpoint), else the model's
        cfg = Config(model=args.model, ckpt_path=args.ckpt_path, dataset=None, image_resize=args.image_size,
                     crop_pct=None, interpolation=None, mean=None, std=None)
        adopt_run_preprocessing(cfg)
        cfg.dataset = cfg.dataset or "imagenet"
        settings = resolve_data_config(cfg, for_files=True)
        calibration = from_folder(args.calib_dir, settings, args.calib_images)
        args.image_size = settings.image_size
    results = export_files(args.model, args.file_format, args.output, args.ckpt_path, args.pretrained,
                           args.num_classes, args.in_channels, args.ema, args.image_size, args.batch_size,
                           args.force, not args.no_check, calibration)
    for result in results:
        print(result.describe(), flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
