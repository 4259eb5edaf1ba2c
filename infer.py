"""Classify images: ``python infer.py --model mobilenet_v3_large_100 --pretrained --image_path photo.jpg``.

``--image_path`` takes files and folders (several allowed). Prints the top-k classes with names and probabilities;
``--ckpt_path`` uses a checkpoint (its class list is found beside it, or pass ``--class_names``; with neither it nor
``--pretrained``: the one train.py wrote for the model in ``--ckpt_save_dir``, ./ckpt), ``--output`` writes
JSON or CSV, ``--save_dir`` writes annotated copies, ``--backend onnxruntime`` runs the exported model.
"""

from __future__ import annotations

from mindcv_mobilenet.utils.errors import run_cli


def main() -> int:
    from mindcv_mobilenet.cli import parse_args
    from mindcv_mobilenet.inference.infer import run_inference
    from mindcv_mobilenet.inference.loading import use_run_checkpoint

    cfg = parse_args("infer", description=__doc__.splitlines()[0])
    use_run_checkpoint(cfg)  # no weights named: what train.py wrote in ckpt_save_dir
    run_inference(cfg)
    return 0


if __name__ == "__main__":
    run_cli(main)
