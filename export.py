"""Export a MobileNet: ``python export.py --model mobilenet_v3_small_100 --ckpt_path x.ckpt --file_format MINDIR ONNX``.

With neither ``--ckpt_path`` nor ``--pretrained`` the weights are the checkpoint train.py wrote for the model in
``--ckpt_save_dir`` (./ckpt), else random (with a warning). Both formats get a dynamic batch axis. The input size is
the training run's for a checkpoint with its ``config.yaml`` beside it (as validate/infer), else the model's;
``--image_size`` (mindcv's ``--image_resize``) sets it. Each file is reloaded (MindSpore GraphCell / ONNX Runtime)
and its logits compared with the network's before it is kept. Existing files need ``--force``. ``--precision int8
--calib_dir DIR`` writes an int8 ONNX file (ONNX Runtime static quantization calibrated on DIR's images, prepared as
the model's evaluation prepares them).
"""

from __future__ import annotations

from mindcv_mobilenet.utils.errors import run_cli


def main() -> int:
    from mindcv_mobilenet.cli import parse_args
    from mindcv_mobilenet.inference.export import run_export
    from mindcv_mobilenet.inference.loading import use_run_checkpoint

    cfg = parse_args("export", description=__doc__.splitlines()[0])
    use_run_checkpoint(cfg)  # no weights named: what train.py wrote in ckpt_save_dir
    run_export(cfg)
    return 0


if __name__ == "__main__":
    run_cli(main)
