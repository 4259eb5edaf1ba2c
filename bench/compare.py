"""This package's models vs mindcv's, each run in a fresh process so that runtime settings, compile caches and peak
memory are the row's own.

Rows ("variants"):

* ``mindcv``: mindcv as shipped (oneDNN left at its default instruction set, ``ONEDNN_MAX_CPU_ISA=ALL``);
* ``mindcv+cap``: mindcv with this package's CPU runtime setting (``ONEDNN_MAX_CPU_ISA=AVX2``), to separate what the
  setting gives from what the model code gives;
* ``ours``: this package as imported (the setting applies itself, see :mod:`mindcv_mobilenet.runtime`);
* ``ours fused``: the same, with BatchNorm folded into the convolutions (inference only, :func:`fuse_bn`);
* ``ours jit``: the same, with the forward compiled by ``mindspore.jit`` (``pynative_jit: True``; PyNative only).

Each process builds one model in one execution mode and measures inference at every requested batch size and one
training step (forward + backward + momentum update), reporting the first call (graph compile or PyNative set-up),
the median step time over ``repeats`` and the process's peak resident memory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np

from .isa import row_environment
from .layout import REPO_ROOT
from .timing import first_and_median

VARIANTS = {
    "mindcv": {"ONEDNN_MAX_CPU_ISA": "ALL"},
    "mindcv+cap": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "ours": {},
    "ours fused": {},
    "ours jit": {},
}


def mindcv_model(create, name: str):
    """mindcv's model of the same name via its ``create`` (mindcv spells some with the resolution:
    ``mobilenet_v2_035_224``), or None when it has none."""
    for candidate in (name, f"{name}_224"):
        try:
            return create(candidate, num_classes=1000)
        except RuntimeError:  # "Unknown model"
            continue
    return None


def _build(variant: str, name: str):
    if variant.startswith("mindcv"):
        from mindcv.models import create_model as mindcv_create

        model = mindcv_model(mindcv_create, name)
        if model is None:
            raise RuntimeError(f"mindcv has no model {name}")
        return model
    from mindcv_mobilenet.models import create_model
    from mindcv_mobilenet.runtime import jit_forward

    model = create_model(name)
    return jit_forward(model) if variant == "ours jit" else model


def worker(variant: str, name: str, mode: str, infer_batches: list[int], train_batch: int, repeats: int,
           image_size: int = 224) -> dict:
    """One row, measured in this process (called through ``python -m bench.compare`` from the repository root)."""
    import mindspore as ms
    from mindspore import Tensor, nn

    from mindcv_mobilenet.engine.optim import Momentum
    from mindcv_mobilenet.models.fuse import fuse_bn

    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    result = {"variant": variant, "model": name, "mode": mode, "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
              "infer": {}, "train": None}
    model = _build(variant, name)
    model.set_train(False)
    net = fuse_bn(model) if variant == "ours fused" else model
    for batch in infer_batches:
        x = Tensor(rng.standard_normal((batch, 3, image_size, image_size)).astype(np.float32))
        first, step = first_and_median(lambda x=x: net(x).asnumpy(), repeats)
        result["infer"][str(batch)] = {"first_s": first, "step_s": step, "images_per_s": batch / step}
    if train_batch and variant != "ours fused":
        x = Tensor(rng.standard_normal((train_batch, 3, image_size, image_size)).astype(np.float32))
        y = Tensor(rng.integers(0, 1000, train_batch).astype(np.int32))
        optimizer = (Momentum if variant.startswith("ours") else nn.Momentum)(model.trainable_params(), 0.01, 0.9)
        step_cell = nn.TrainOneStepCell(nn.WithLossCell(model, nn.CrossEntropyLoss()), optimizer)
        step_cell.set_train(True)
        first, step = first_and_median(lambda: step_cell(x, y).asnumpy(), repeats)
        result["train"] = {"batch": train_batch, "first_s": first, "step_s": step, "images_per_s": train_batch / step}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_row(variant: str, name: str, mode: str, infer_batches: list[int], train_batch: int, repeats: int,
            isa: str = "native", timeout: float = 1800) -> dict:
    """One row in a fresh Python process with the variant's environment, capped by ``isa``'s (bench/isa.py)."""
    env = row_environment(isa, uncapped=True, variant=VARIANTS[variant])
    spec = json.dumps({"variant": variant, "name": name, "mode": mode, "infer_batches": infer_batches,
                       "train_batch": train_batch, "repeats": repeats})
    proc = subprocess.run([sys.executable, "-m", "bench.compare", spec], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"variant": variant, "model": name, "mode": mode, "error": (proc.stderr or proc.stdout)[-2000:]}


def compare(models: list[str], variants: list[str], modes: list[str], infer_batches: list[int], train_batch: int,
            repeats: int, isa: str = "native", log=print) -> list[dict]:
    """Every (model, mode, variant) row; variants of one model run back to back so they see the same machine load."""
    rows = []
    for name in models:
        for mode in modes:
            for variant in variants:
                row = run_row(variant, name, mode, infer_batches, train_batch, repeats, isa)
                rows.append(row)
                log(format_row(row))
    return rows


HEADER = (f"{'model':<24} {'mode':<8} {'variant':<11} " + "{infer} " + f"{'train img/s':>11} {'compile s':>10} "
          f"{'peak RSS MB':>11}")


def format_row(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:<24} {row['mode']:<8} {row['variant']:<11} ERROR {row['error'][-300:]}"
    infer = "  ".join(f"bs{b}: {v['images_per_s']:7.1f} img/s" for b, v in row["infer"].items())
    train = row["train"]["images_per_s"] if row["train"] else float("nan")
    compiled = max([v["first_s"] for v in row["infer"].values()] + ([row["train"]["first_s"]] if row["train"] else []))
    return (f"{row['model']:<24} {row['mode']:<8} {row['variant']:<11} {infer}  train {train:7.1f} img/s  "
            f"1st call {compiled:6.1f} s  peak {row['peak_rss_mb']:6.0f} MB")


def ratios(rows: list[dict]) -> list[dict]:
    """ours / mindcv images/s per model, mode and task."""
    by_key = {(r["model"], r["mode"], r["variant"]): r for r in rows if "error" not in r}
    out = []
    for (name, mode, variant), row in by_key.items():
        base = by_key.get((name, mode, "mindcv"))
        if variant == "mindcv" or base is None:
            continue
        entry = {"model": name, "mode": mode, "variant": variant}
        for batch, value in row["infer"].items():
            entry[f"infer_bs{batch}"] = value["images_per_s"] / base["infer"][batch]["images_per_s"]
        if row["train"] and base["train"]:
            entry["train"] = row["train"]["images_per_s"] / base["train"]["images_per_s"]
        out.append(entry)
    return out


if __name__ == "__main__":
    _spec = json.loads(sys.argv[1])
    _result = worker(_spec["variant"], _spec["name"], _spec["mode"], _spec["infer_batches"], _spec["train_batch"],
                     _spec["repeats"])
    print("RESULT " + json.dumps(_result), flush=True)
