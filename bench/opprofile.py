"""Where a MobileNet's CPU time goes: every layer timed alone at its real shape, summed per operator type.

Each distinct (operator, configuration, input shape) of the network is compiled once as its own graph-mode cell and
timed forward (inference mode) and forward + backward (training mode, gradients w.r.t. input and parameters); its time
is multiplied by how often that layer occurs. Timing layers alone misses what the whole graph shares (launch overhead,
memory reuse), so the report also gives the whole network's measured time next to the sum.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .timing import first_and_median

CATEGORIES = ("depthwise conv", "1x1 conv", "stem conv 3x3", "BatchNorm", "BatchNorm + activation", "activation",
              "squeeze-excite", "residual add", "head (pool + classifier)")


@dataclass
class LayerSpec:
    """One distinct layer: its category, a cell computing it, its input shape at batch 1, and how often it occurs."""

    category: str
    cell: object
    shape: tuple
    label: str
    count: int = 1
    times_ms: dict = field(default_factory=dict)


def _category(cell) -> str | None:
    from mindspore import nn

    from mindcv_mobilenet.models.layers import HardSwish, SqueezeExcite

    if isinstance(cell, nn.Conv2d):
        if cell.group > 1 and cell.group == cell.in_channels:
            return "depthwise conv"
        return "1x1 conv" if tuple(cell.kernel_size) == (1, 1) else "stem conv 3x3"
    if isinstance(cell, nn.BatchNorm2d):  # with the activation it applies (models.layers.conv_bn_act)
        return "BatchNorm" if getattr(cell, "activation", None) is None else "BatchNorm + activation"
    if isinstance(cell, (nn.ReLU, nn.ReLU6, HardSwish)):
        return "activation"
    if isinstance(cell, SqueezeExcite):
        return "squeeze-excite"
    return None


def _label(cell, shape: tuple) -> str:
    from mindspore import nn

    geometry = ""
    if isinstance(cell, nn.Conv2d):
        geometry = f" k{cell.kernel_size[0]} s{cell.stride[0]} {cell.in_channels}->{cell.out_channels} {cell.pad_mode}"
    return f"{type(cell).__name__}{geometry} in {tuple(shape[1:])}"


def collect_layers(model, image_size: int = 224) -> list[LayerSpec]:
    """The distinct layers of ``model`` with their input shapes, found by running it once (PyNative, batch 1)."""
    import mindspore as ms
    from mindspore import Tensor

    from mindcv_mobilenet.models.layers import ResidualBlock, SqueezeExcite

    specs: OrderedDict = OrderedDict()
    # timed as part of their parent: squeeze-excite's cells, and the activation a BatchNorm applies
    se_prefixes = [name + "." for name, cell in model.cells_and_names()
                   if isinstance(cell, SqueezeExcite) or getattr(cell, "activation", None) is not None]

    def add(category: str, cell, shape: tuple) -> None:
        key = (category, _label(cell, shape) if cell is not None else "", shape)
        if key in specs:
            specs[key].count += 1
        else:
            specs[key] = LayerSpec(category, cell, shape, key[1])  # copied once the hooks are gone

    def hook_for(category: str):
        def hook(cell, inputs, _output) -> None:
            add(category, cell, tuple(inputs[0].shape))
        return hook

    def residual_hook(cell, inputs, _output) -> None:
        if cell.use_residual:
            add("residual add", None, tuple(inputs[0].shape))

    def head_hook(_cell, inputs, _output) -> None:
        add("head (pool + classifier)", None, tuple(inputs[0].shape))

    handles = []
    for name, cell in model.cells_and_names():
        if any(name.startswith(p) for p in se_prefixes):
            continue
        category = _category(cell)
        if category is not None:
            handles.append(cell.register_forward_hook(hook_for(category)))
        elif isinstance(cell, ResidualBlock):
            handles.append(cell.register_forward_hook(residual_hook))
    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    model.set_train(False)
    try:
        features = model.forward_features(Tensor(np.zeros((1, 3, image_size, image_size), np.float32)))
        head_hook(None, (features,), None)
    finally:
        for handle in handles:
            handle.remove()
        ms.set_context(mode=previous_mode)
    specs_list = list(specs.values())
    for spec in specs_list:
        if spec.category == "head (pool + classifier)":
            spec.cell = _Head(model)
        elif spec.cell is not None:
            spec.cell = copy.deepcopy(spec.cell)
    return specs_list


def _cells():
    """Graph-mode wrappers, defined lazily so that importing this module does not import MindSpore."""
    from mindspore import nn, ops

    class One(nn.Cell):
        def __init__(self, cell) -> None:
            super().__init__()
            self.cell = cell

        def construct(self, x):
            return self.cell(x)

    class Add(nn.Cell):
        def construct(self, x):
            return x + x

    class Grad(nn.Cell):
        """Forward + backward: gradients w.r.t. the input and (if any) every trainable parameter."""

        def __init__(self, net) -> None:
            super().__init__()
            self.net = net
            self.params = net.trainable_params()
            self.grad = ops.GradOperation(get_all=True, get_by_list=bool(self.params))
            self.weights = ms_parameter_tuple(self.params) if self.params else None

        def construct(self, x):
            if self.weights is None:
                return self.grad(self.net)(x)
            return self.grad(self.net, self.weights)(x)

    return One, Add, Grad


def ms_parameter_tuple(params):
    from mindspore import ParameterTuple

    return ParameterTuple(params)


def _Head(model):
    """Pooling + classifier of ``model`` as its own cell (a copy; dropout is inactive in inference mode)."""
    from mindspore import nn

    class Head(nn.Cell):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def construct(self, x):
            return self.inner.forward_head(x)

    return Head(copy.deepcopy(model))


def _median_ms(fn, x, repeats: int) -> float:
    return first_and_median(lambda: _sync(fn(x)), repeats)[1] * 1e3


def _sync(out) -> None:
    if isinstance(out, (tuple, list)):
        for item in out:
            _sync(item)
    else:
        out.asnumpy()


def time_layers(specs: list[LayerSpec], batch_size: int = 32, repeats: int = 3, backward: bool = True) -> None:
    """Fill ``spec.times_ms`` with ``forward`` (inference mode) and ``forward+backward`` (training mode), graph mode."""
    import mindspore as ms
    from mindspore import Tensor

    ms.set_context(mode=ms.GRAPH_MODE)
    One, Add, Grad = _cells()
    rng = np.random.default_rng(0)
    for spec in specs:
        x = Tensor(rng.standard_normal((batch_size,) + tuple(spec.shape[1:])).astype(np.float32))
        net = Add() if spec.cell is None else One(spec.cell)
        net.set_train(False)
        spec.times_ms["forward"] = _median_ms(net, x, repeats)
        if backward:
            net.set_train(True)
            spec.times_ms["forward+backward"] = _median_ms(Grad(net), x, repeats)
            net.set_train(False)


def whole_model_ms(model, batch_size: int = 32, image_size: int = 224, repeats: int = 3,
                   backward: bool = True) -> dict:
    """The whole network timed the same way, for comparison with the per-layer sum."""
    import mindspore as ms
    from mindspore import Tensor

    ms.set_context(mode=ms.GRAPH_MODE)
    _One, _Add, Grad = _cells()
    x = Tensor(np.random.default_rng(0).standard_normal((batch_size, 3, image_size, image_size)).astype(np.float32))
    model.set_train(False)
    result = {"forward": _median_ms(model, x, repeats)}
    if backward:
        model.set_train(True)
        result["forward+backward"] = _median_ms(Grad(model), x, repeats)
        model.set_train(False)
    return result


def summarize(specs: list[LayerSpec]) -> dict:
    """Per category: layer count, total ms for each timed pass (time x occurrences)."""
    table = {c: {"layers": 0} for c in CATEGORIES}
    for spec in specs:
        row = table[spec.category]
        row["layers"] += spec.count
        for key, value in spec.times_ms.items():
            row[key] = row.get(key, 0.0) + value * spec.count
    return {k: v for k, v in table.items() if v["layers"]}


def profile_model(name: str, batch_size: int = 32, image_size: int = 224, repeats: int = 3,
                  backward: bool = True) -> dict:
    """Per-category totals, the slowest distinct layers and the whole-network time for registered model ``name``."""
    import mindspore as ms

    from mindcv_mobilenet.models import create_model

    ms.set_seed(0)
    model = create_model(name)
    specs = collect_layers(model, image_size)
    time_layers(specs, batch_size, repeats, backward)
    whole = whole_model_ms(model, batch_size, image_size, repeats, backward)
    slowest = sorted(specs, key=lambda s: -s.times_ms["forward"] * s.count)[:8]
    return {
        "model": name, "batch_size": batch_size, "image_size": image_size,
        "categories": summarize(specs), "whole_model_ms": whole,
        "slowest": [{"layer": s.label, "category": s.category, "count": s.count, **s.times_ms} for s in slowest],
    }


def format_profile(result: dict) -> str:
    """A Markdown table: per category, ms and share of the per-layer sum, forward and forward+backward."""
    cats = result["categories"]
    passes = [p for p in ("forward", "forward+backward") if any(p in row for row in cats.values())]
    totals = {p: sum(row.get(p, 0.0) for row in cats.values()) for p in passes}
    head = "| operator type | layers | " + " | ".join(f"{p} ms (share)" for p in passes) + " |"
    lines = [f"**{result['model']}**, batch {result['batch_size']}, {result['image_size']} px", "", head,
             "|---|---|" + "---|" * len(passes)]
    for cat, row in cats.items():
        cells = " | ".join(f"{row.get(p, 0.0):.0f} ({100 * row.get(p, 0.0) / max(totals[p], 1e-9):.0f}%)"
                           for p in passes)
        lines.append(f"| {cat} | {row['layers']} | {cells} |")
    lines.append("| sum of layers timed alone | | " + " | ".join(f"{totals[p]:.0f}" for p in passes) + " |")
    lines.append("| whole network, one graph | | "
                 + " | ".join(f"{result['whole_model_ms'].get(p, 0.0):.0f}" for p in passes) + " |")
    return "\n".join(lines)
