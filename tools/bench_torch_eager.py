"""PyTorch eager baseline for BENCHMARKS.md: torchvision's MobileNet, random weights, inference images/s.

Run with an interpreter that has torch and torchvision (not a dependency of this project), e.g.
``/path/to/torch-venv/bin/python tools/bench_torch_eager.py mobilenet_v2_100 32``.
"""

import sys
import time

import torch
import torch.library

# torchvision's compiled ops need a CUDA build of torch; the models themselves do not
torch.library.register_fake = lambda *a, **k: (lambda f: f)
import torchvision  # noqa: E402

MODELS = {
    "mobilenet_v2_100": torchvision.models.mobilenet_v2,
    "mobilenet_v3_small_100": torchvision.models.mobilenet_v3_small,
    "mobilenet_v3_large_100": torchvision.models.mobilenet_v3_large,
}


def main() -> None:
    name, batch = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.set_num_threads(threads)
    model = MODELS[name]().eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        model(x)
        model(x)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    times.sort()
    print(f"torch-eager {name} bs{batch} {batch / times[len(times) // 2]:.1f} img/s")


if __name__ == "__main__":
    main()
