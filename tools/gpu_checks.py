"""The Python checks behind ``tools/gpu_check.sh`` (each prints ``RESULT ...`` lines that the script collects).

    python tools/gpu_checks.py logits                       # GPU vs CPU logits, same weights, fp32
    python tools/gpu_checks.py train --steps 200 --batch-size 128 --image-size 224 --models mobilenet_v2_100 ...
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LOGITS_MODELS = ("mobilenet_v1_100", "mobilenet_v2_100", "mobilenet_v3_large_100", "mobilenet_v3_small_100")


def _logits(device: str, name: str, weights: str, batch: str) -> None:
    """In a fresh process (one device per process): logits of ``name`` with ``weights`` on ``batch``."""
    import mindspore as ms

    from mindcv_mobilenet.models import create_model

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device(device)
    model = create_model(name)
    ms.load_param_into_net(model, ms.load_checkpoint(weights))
    model.set_train(False)
    np.save(batch + f".{device}.npy", model(ms.Tensor(np.load(batch))).asnumpy())


def check_logits(tmp: str) -> int:
    import mindspore as ms

    from mindcv_mobilenet.models import create_model

    failed = 0
    for name in LOGITS_MODELS:
        ms.set_seed(0)
        weights, batch = os.path.join(tmp, f"{name}.ckpt"), os.path.join(tmp, f"{name}_batch.npy")
        ms.save_checkpoint(create_model(name), weights)
        np.save(batch, np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32))
        for device in ("CPU", "GPU"):
            subprocess.run([sys.executable, __file__, "_logits", device, name, weights, batch], check=True)
        cpu, gpu = (np.load(f"{batch}.{d}.npy") for d in ("CPU", "GPU"))
        diff = float(np.abs(cpu - gpu).max())
        scale = float(np.abs(cpu).max())
        ok = np.allclose(gpu, cpu, rtol=1e-3, atol=1e-3 * max(scale, 1.0))
        failed += not ok
        print(f"RESULT logits {name}: max |GPU - CPU| = {diff:.2e} (max |logit| {scale:.2f}) "
              f"{'within' if ok else 'OUTSIDE'} fp32 tolerance", flush=True)
    return int(failed > 0)


def check_train(models: list, steps: int, batch_size: int, image_size: int) -> int:
    """``steps`` AMP (O2, dynamic loss scale) training steps per model on the GPU: images/s and peak memory."""
    import mindspore as ms
    from mindspore import nn

    from mindcv_mobilenet.engine.amp import apply_amp
    from mindcv_mobilenet.engine.loss import CrossEntropySmooth
    from mindcv_mobilenet.engine.optim import create_optimizer
    from mindcv_mobilenet.engine.train_step import TrainStep
    from mindcv_mobilenet.models import create_model

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("GPU")
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch_size, 3, image_size, image_size), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, 1000, batch_size).astype(np.int32))
    for name in models:
        model = create_model(name)
        optimizer = create_optimizer(model.trainable_params(), "momentum", 0.1, 1e-5)
        step = TrainStep(nn.WithLossCell(apply_amp(model, "O2"), CrossEntropySmooth(0.1)), optimizer,
                         loss_scale=1024.0, dynamic_loss_scale=True)
        step.set_train()
        start = time.perf_counter()
        step(images, labels)[0].asnumpy()  # compile
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps - 1):
            loss = step(images, labels)[0]
        loss = float(loss.asnumpy())
        rate = batch_size * (steps - 1) / (time.perf_counter() - start)
        peak = ms.runtime.max_memory_allocated() / 2**30
        print(f"RESULT train {name}: {rate:.0f} images/s over {steps - 1} steps (batch {batch_size}, "
              f"{image_size} px, AMP O2), peak memory {peak:.2f} GiB, first step {compile_s:.1f} s, last loss "
              f"{loss:.3f}", flush=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_logits":
        _logits(*sys.argv[2:6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=("logits", "train"))
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2_100", "mobilenet_v3_large_100"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--tmp", default="gpu_check")
    args = parser.parse_args()
    os.makedirs(args.tmp, exist_ok=True)
    if args.check == "logits":
        return check_logits(args.tmp)
    return check_train(args.models, args.steps, args.batch_size, args.image_size)


if __name__ == "__main__":
    sys.exit(main())
