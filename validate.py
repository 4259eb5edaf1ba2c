"""Validate a MobileNet: ``python validate.py --model mobilenet_v2_100 --pretrained --data_dir /path/to/imagenet``.

Reports Top-1, Top-5, mean loss, the number of images and images/s over every image of ``--val_split`` (also when
sharded with ``--distribute`` under msrun). ``--ckpt_path FILE`` validates a checkpoint (with neither it nor
``--pretrained``: the one train.py wrote for the model in ``--ckpt_save_dir``, ./ckpt), ``-c recipe.yaml`` takes a
mindcv recipe, ``--backend onnxruntime`` runs the exported model in ONNX Runtime, ``--output results.json`` saves.
"""

from __future__ import annotations

from mindcv_mobilenet.utils.errors import run_cli


def main() -> int:
    from mindcv_mobilenet.cli import parse_args
    from mindcv_mobilenet.inference.loading import use_run_checkpoint
    from mindcv_mobilenet.inference.validate import run_validation

    cfg = parse_args("validate", description=__doc__.splitlines()[0])
    use_run_checkpoint(cfg)  # no weights named: what train.py wrote in ckpt_save_dir
    run_validation(cfg)
    return 0


if __name__ == "__main__":
    run_cli(main)
