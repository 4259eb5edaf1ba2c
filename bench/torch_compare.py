"""This package (MindSpore graph mode) against PyTorch eager running the same architectures (torchvision's for
V2/V3, timm's for V4), on the CPU.

Issue 14's protocol: fp32, batch 32, 2 threads, a fresh process per row; training at 112 px (forward, backward,
momentum SGD step), inference at 224 px (BatchNorm folded on our side; ``torch.inference_mode`` on theirs), PyTorch at
the better of NCHW and channels_last. Each row also says which fraction of the machine's fp32 matrix-multiply peak
it reaches (2 FLOPs per multiply-add of convolutions and dense layers; a training step counted as 3 forwards).
PyTorch is optional and runs in its own interpreter (``--torch_python``, a virtualenv with ``torch``/``torchvision``
CPU wheels, and ``timm`` for the MobileNetV4 rows), so this package's environment never needs them. Each row's
process gets the instruction-set environment of :mod:`.isa` (``--isa``) and reports what it ran with: PyTorch's ATen
capability, our kernels' cap.

Rounds (``--torch_rounds``): the machines this runs on (shared cloud VMs) slow down by up to a third for tens of
seconds at a time, which a row of a few seconds catches or misses, so two rows measured one after the other can
differ by more than the frameworks do. With R rounds, a model and task's three processes (ours, PyTorch NCHW,
PyTorch channels_last) are all started (one after another, so that each first call is timed alone) and then take
turns, ``repeats`` steps each, R times (the order rotating every round): each row's step time is the median of all
its steps, and a slow period falls on all three. One round is the plain back-to-back protocol.

    python -m bench.torch_compare torch '{"name": "mobilenet_v2_100", "task": "train", ...}'   # one row's process
    (internal: it reads "RUN n" / "END" lines on stdin and answers "READY", "DONE [seconds...]", "RESULT {row}")
"""

from __future__ import annotations

import json
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from .layout import REPO_ROOT
from .timing import call_times, first_and_median

# our name -> (library, its constructor of the same architecture); MobileNetV1 has none in either library
TORCH_ARCHITECTURES = {
    "mobilenet_v2_100": ("torchvision", "mobilenet_v2"),
    "mobilenet_v3_small_100": ("torchvision", "mobilenet_v3_small"),
    "mobilenet_v3_large_100": ("torchvision", "mobilenet_v3_large"),
    "mobilenet_v4_conv_small": ("timm", "mobilenetv4_conv_small"),
    "mobilenet_v4_hybrid_medium": ("timm", "mobilenetv4_hybrid_medium"),
}
TASKS = {"train": 112, "infer": 224}  # task -> image size of the protocol
THREADS = 2
TRAIN_FORWARDS = 3  # a training step ~ forward + gradient w.r.t. inputs + gradient w.r.t. weights


def _torchvision_models():
    """``torchvision.models``. A torchvision wheel whose compiled ops do not match the installed torch (PyPI's
    torchvision next to a ``+cpu`` torch) fails at ``import torchvision``; the model definitions are plain Python, so
    they are then imported without the package's ``__init__`` (which only registers those ops)."""
    try:
        import torchvision

        return torchvision.models
    except (RuntimeError, OSError):
        import importlib.util
        import types

        spec = importlib.util.find_spec("torchvision")
        package = types.ModuleType("torchvision")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchvision"] = package
        import torchvision.models

        return torchvision.models


def _torch_model(name: str):
    """PyTorch's model of the architecture named ``name`` here (random weights, 1,000 classes)."""
    library, constructor = TORCH_ARCHITECTURES[name]
    if library == "timm":
        import timm

        return timm.create_model(constructor, pretrained=False)
    return getattr(_torchvision_models(), constructor)()


def torch_setup(name: str, task: str, image_size: int, batch: int, channels_last: bool) -> tuple[Callable, dict]:
    """One PyTorch row's step (a function) and what the row says of it (this process must have torch and
    torchvision, and timm for V4)."""
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = _torch_model(name)
    images = torch.randn(batch, 3, image_size, image_size)
    labels = torch.randint(0, 1000, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if task == "infer":
        model.eval()

        def step() -> None:
            with torch.inference_mode():
                model(images)
    else:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(images), labels).backward()
            optimizer.step()

    return step, {"framework": f"torch {torch.__version__}" + (" channels_last" if channels_last else " NCHW"),
                  "isa": f"ATen {torch.backends.cpu.get_cpu_capability()}", "model": name,
                  "source": TORCH_ARCHITECTURES[name][0], "task": task, "image_size": image_size, "batch": batch}


def ours_setup(name: str, task: str, image_size: int, batch: int) -> tuple[Callable, dict]:
    """One row of this package in graph mode: its step (a function) and what the row says of it."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor, nn

    from mindcv_mobilenet.engine.optim import Momentum
    from mindcv_mobilenet.kernels import kernel_isa
    from mindcv_mobilenet.models import create_model
    from mindcv_mobilenet.models.fuse import fuse_bn
    from mindcv_mobilenet.profile import count_macs

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    model = create_model(name)
    macs = count_macs(model, image_size)
    images = Tensor(rng.standard_normal((batch, 3, image_size, image_size), dtype=np.float32))
    if task == "infer":
        model = fuse_bn(model)
        model.set_train(False)

        def step() -> None:
            model(images).asnumpy()
    else:
        labels = Tensor(rng.integers(0, 1000, batch).astype(np.int32))
        optimizer = Momentum(model.trainable_params(), 0.01, 0.9)  # what train.py builds (create_optimizer)
        step_cell = nn.TrainOneStepCell(nn.WithLossCell(model, nn.CrossEntropyLoss()), optimizer)
        step_cell.set_train(True)

        def step() -> None:
            step_cell(images, labels).asnumpy()

    flops = 2 * macs * batch * (TRAIN_FORWARDS if task == "train" else 1)
    return step, {"framework": f"mindspore {ms.__version__} graph", "isa": f"kernels {kernel_isa()}", "model": name,
                  "task": task, "image_size": image_size, "batch": batch, "flops_per_step": flops}


def serve(step: Callable[[], None], row: dict, commands=sys.stdin, out=sys.stdout) -> dict:
    """A row's process: the first call, then ``RUN n`` (n timed steps, answered ``DONE [seconds]``) until ``END``;
    returns ``row`` completed with the timings (step: the median of every timed step; each window's median)."""
    (row["first_s"],) = call_times(step, 1)
    print("READY", file=out, flush=True)
    windows = []
    for line in commands:
        if line.startswith("RUN "):
            times = call_times(step, max(1, int(line.split()[1])))
            windows.append(times)
            print("DONE " + json.dumps(times), file=out, flush=True)
        elif line.strip() == "END":
            break
    steps = [t for window in windows for t in window]
    row["step_s"] = statistics.median(steps)
    row["window_steps_s"] = [statistics.median(window) for window in windows]
    row["images_per_s"] = row["batch"] / row["step_s"]
    if "flops_per_step" in row:
        row["gflops_per_s"] = row.pop("flops_per_step") / row["step_s"] / 1e9
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def matmul_peak(size: int = 2048, repeats: int = 5) -> dict:
    """The machine's fp32 matrix-multiply rate in MindSpore (graph mode, one ``size``-square MatMul), in GFLOP/s."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor, nn, ops

    ms.set_context(mode=ms.GRAPH_MODE)

    class _MatMul(nn.Cell):
        def construct(self, a, b):
            return ops.matmul(a, b)

    rng = np.random.default_rng(0)
    a, b = (Tensor(rng.standard_normal((size, size), dtype=np.float32)) for _ in range(2))
    net = _MatMul()
    first, step = first_and_median(lambda: net(a, b).asnumpy(), repeats)
    return {"framework": f"mindspore {ms.__version__} graph", "task": "matmul", "size": size, "step_s": step,
            "gflops_per_s": 2 * size**3 / step / 1e9}


class RowProcess:
    """One row's process (``side``: 'ours' or 'torch', in ``python``), driven through :func:`serve`'s lines."""

    def __init__(self, command: list[str], spec: dict, env: dict | None = None, timeout: float = 1800) -> None:
        self.spec, self.timeout, self.error = spec, timeout, None
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self.answer("READY")

    def answer(self, prefix: str) -> str | None:
        """The first line starting with ``prefix`` (other output is skipped); None, with ``error`` set, if the
        process ends or stays silent for ``timeout`` seconds first."""
        while self.error is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
            line = self.proc.stdout.readline() if ready else None
            if not line:
                self.fail("no answer within the timeout" if line is None else "the process ended")
                break
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        return None

    def fail(self, why: str) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stderr.seek(0)
        self.error = f"{why}: {self.stderr.read()[-1500:]}"

    def run(self, steps: int) -> list[float] | None:
        if self.error is not None:
            return None
        self.proc.stdin.write(f"RUN {steps}\n")
        self.proc.stdin.flush()
        answer = self.answer("DONE ")
        return None if answer is None else json.loads(answer)

    def finish(self) -> dict:
        """The row (the process ends); a row with ``error`` if it failed."""
        if self.error is None:
            self.proc.stdin.write("END\n")
            self.proc.stdin.flush()
            answer = self.answer("RESULT ")
            if answer is not None:
                self.proc.wait()
                return json.loads(answer)
        return {"framework": self.spec.get("side", "?"), "model": self.spec.get("name", "?"), **self.spec,
                "error": self.error}


def start_row(python: str, side: str, spec: dict, isa: str = "native") -> RowProcess:
    """A row's fresh process (``side``: 'ours' or 'torch') with ``isa``'s environment, set up and warmed up."""
    from .isa import row_environment  # here: the PyTorch interpreter that imports this module has no MindSpore

    env = dict(row_environment(isa, uncapped=side == "torch"), OMP_NUM_THREADS=str(THREADS))
    return RowProcess([python, "-m", "bench.torch_compare", side, json.dumps(spec)], dict(spec, side=side), env)


def take_turns(rows: list[RowProcess], repeats: int, rounds: int, pause: float = 0.5) -> list[dict]:
    """``rounds`` rounds of ``repeats`` steps for each row in turn (the order rotating by one every round, a
    ``pause`` between turns so that the last one's spinning threads are asleep); the finished rows."""
    for round_ in range(rounds):
        shift = round_ % len(rows)
        for row in rows[shift:] + rows[:shift]:
            row.run(repeats)
            time.sleep(pause)
    return [row.finish() for row in rows]


def run_peak(python: str, isa: str = "native", timeout: float = 1800) -> dict:
    """The matmul peak in a fresh process with ``isa``'s environment."""
    from .isa import row_environment

    env = dict(row_environment(isa), OMP_NUM_THREADS=str(THREADS))
    proc = subprocess.run([python, "-m", "bench.torch_compare", "peak", "{}"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"framework": "peak", "error": (proc.stderr or proc.stdout)[-1500:]}


def compare(models: list[str], torch_python: str, batch: int = 32, repeats: int = 5, isa: str = "native",
            rounds: int = 1, log=print) -> list[dict]:
    """For each model and task: our row and PyTorch's NCHW and channels_last rows, in ``rounds`` rounds of
    ``repeats`` steps taken in turn; plus the ratio."""
    peak = run_peak(sys.executable, isa)
    if "error" in peak:
        log(f"matmul peak: ERROR {peak['error'][-300:]}")
        peak_gflops = None
    else:
        peak_gflops = peak["gflops_per_s"]
        log(f"fp32 matmul peak ({peak['size']}x{peak['size']}, {THREADS} threads): {peak_gflops:.1f} GFLOP/s")
    rows = [peak]
    for name in models:
        if name not in TORCH_ARCHITECTURES:
            log(f"{name}: neither torchvision nor timm has this architecture, skipped")
            continue
        for task, image_size in TASKS.items():
            spec = {"name": name, "task": task, "image_size": image_size, "batch": batch}
            processes = [start_row(sys.executable, "ours", spec, isa)]
            processes += [start_row(torch_python, "torch", dict(spec, channels_last=c), isa) for c in (False, True)]
            ours, *theirs = take_turns(processes, repeats, rounds)
            if peak_gflops and "error" not in ours:
                ours["fraction_of_matmul_peak"] = ours["gflops_per_s"] / peak_gflops
                for row in theirs:  # the same architecture: the same FLOPs per image
                    if "error" not in row:
                        row["gflops_per_s"] = ours["gflops_per_s"] / ours["images_per_s"] * row["images_per_s"]
                        row["fraction_of_matmul_peak"] = row["gflops_per_s"] / peak_gflops
            for row in [ours, *theirs]:
                log(format_row(row))
            rows += [ours, *theirs]
            good = [r for r in theirs if "error" not in r]
            if "error" not in ours and good:
                best = max(good, key=lambda r: r["images_per_s"])
                log(f"{name:<24} {task:<5} ours / PyTorch eager (best layout: {best['framework']}): "
                    f"{ours['images_per_s'] / best['images_per_s']:.2f}x")
    return rows


def format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:<24} {row['task']:<5} {row['framework']:<28} ERROR {row['error'][-300:]}"
    peak = (f"  {row['gflops_per_s']:5.1f} GFLOP/s = {100 * row['fraction_of_matmul_peak']:4.1f}% of matmul peak"
            if "fraction_of_matmul_peak" in row else "")
    return (f"{row['model']:<24} {row['task']:<5} {row['framework']:<28} {row.get('isa', ''):<14} "
            f"{row['image_size']:>4} px  "
            f"{row['images_per_s']:8.1f} img/s  1st call {row['first_s']:6.1f} s  peak {row['peak_rss_mb']:6.0f} MB"
            + peak)


if __name__ == "__main__":
    _side, _spec = sys.argv[1], json.loads(sys.argv[2])
    if _side == "peak":
        _row = matmul_peak()
    elif _side == "torch":
        _row = serve(*torch_setup(_spec["name"], _spec["task"], _spec["image_size"], _spec["batch"],
                                  _spec["channels_last"]))
    else:
        _row = serve(*ours_setup(_spec["name"], _spec["task"], _spec["image_size"], _spec["batch"]))
    print("RESULT " + json.dumps(_row), flush=True)
