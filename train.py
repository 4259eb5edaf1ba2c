"""Train a MobileNet: ``python train.py -c configs/mobilenetv3/mobilenet_v3_small_ascend.yaml [--key value ...]``.

With no arguments it runs the CPU demo (the packaged ImageNet MobileNetV1 0.25, ``tf_mobilenet_v1_025``, fine-tuned
on the CIFAR-10 images shipped in the package; under a minute on two cores). Data parallel, any backend:
``msrun --worker_num=8 --local_worker_num=8 --join=True train.py -c ...`` or ``mpirun -n 8 python train.py -c ...``
(on CPU rank 0 starts MindSpore's scheduler itself: ``mindcv_mobilenet/engine/mpi_cluster.py``).
"""

from __future__ import annotations

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.utils.errors import run_cli


def main() -> int:
    cfg = parse_args("train", description=__doc__.splitlines()[0])
    from mindcv_mobilenet.engine.trainer import train  # after parsing: --help and bad flags answer without MindSpore

    train(cfg)
    return 0


if __name__ == "__main__":
    run_cli(main)
