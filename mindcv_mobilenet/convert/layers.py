"""The one source-layer interface and the one mapping routine of every converter.

Each reader (torchvision, Keras, TFLite) turns its file into :class:`SourceLayer` objects in network order:
convolutions in OIHW, BatchNorms with PyTorch's names (``weight``/``bias``/``running_mean``/``running_var``), linear
layers as (out, in). :func:`map_onto` assigns them to this package's weighted cells position by position, checking
every shape, so weights of another model or width fail on the first layer that does not fit, naming it. BatchNorm
forms it takes:

* not folded: ``weight/bias/running_mean/running_var`` become ``gamma/beta/moving_mean/moving_variance``; a source
  eps other than the cell's is added to the variance, so ``var + eps`` and the outputs are unchanged;
* folded into the convolution (a convolution with a bias and no BatchNorm after it): the BatchNorm becomes the
  identity plus that bias (gamma 1, beta = bias, moving mean 0, moving variance 1 - eps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..utils.errors import CheckpointError, UserError


@dataclass
class SourceLayer:
    """One weighted layer of the source network: a convolution (OIHW), a BatchNorm or a linear layer (out, in).

    Every reader produces these, in network order; ``prefix`` is the source's own name for the layer."""

    prefix: str
    kind: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: np.ndarray | None = None  # (stride, padding, groups) when the file records it

    def describe(self) -> str:
        if "weight" in self.tensors:
            return f"{self.prefix}.weight {tuple(self.tensors['weight'].shape)}"
        return f"{self.prefix} ({self.kind})"


def package_units(model) -> list[tuple[str, object, tuple[str, object] | None]]:
    """The model's weighted cells in order: (name, cell, BatchNorm after it or None) for convs and dense layers."""
    from mindspore import nn

    cells = [(n, c) for n, c in model.cells_and_names() if isinstance(c, (nn.Conv2d, nn.BatchNorm2d, nn.Dense))]
    units = []
    for i, (name, cell) in enumerate(cells):
        if isinstance(cell, nn.BatchNorm2d):
            continue  # taken with the convolution before it
        following = cells[i + 1] if i + 1 < len(cells) and isinstance(cells[i + 1][1], nn.BatchNorm2d) else None
        units.append((name, cell, following))
    return units


def counts(layers: list[SourceLayer]) -> str:
    n = {kind: sum(layer.kind == kind for layer in layers) for kind in ("conv", "bn", "linear")}
    bn = f"{n['bn']} BatchNorms" if n["bn"] else "BatchNorm folded"
    return f"{n['conv']} convolutions ({bn}), {n['linear']} linear layers"


def map_onto(model, layers: list[SourceLayer], bn_eps: float, source: str, model_name: str) -> dict[str, np.ndarray]:
    """Assign source layers to the model's cells in order; raise on the first one that does not fit."""
    from mindspore import nn

    units = package_units(model)
    out: dict[str, np.ndarray] = {}
    pos = 0

    def fail(reason: str) -> CheckpointError:
        n_conv = sum(isinstance(c, nn.Conv2d) for _, c, _ in units)
        n_dense = sum(isinstance(c, nn.Dense) for _, c, _ in units)
        return CheckpointError(
            f"{source} does not fit {model_name}: {reason} (the weights have {counts(layers)}; {model_name} has "
            f"{n_conv} convolutions and {n_dense} linear layers)"
        )

    def want(shape_owner: str, expected: tuple, layer: SourceLayer, key: str) -> np.ndarray:
        got = layer.tensors.get(key)
        if got is None:
            raise fail(f"{layer.prefix} has no '{key}' for {shape_owner}")
        if tuple(got.shape) != tuple(expected):
            raise fail(f"{layer.prefix}.{key} has shape {tuple(got.shape)} but {shape_owner} needs {tuple(expected)}")
        return got

    for name, cell, bn in units:
        if pos >= len(layers):
            raise fail(f"the weights end before {name} (nothing left for it)")
        layer = layers[pos]
        pos += 1
        if isinstance(cell, nn.Dense):
            if layer.kind != "linear":
                raise fail(f"{name} is a linear layer but the next weights are {layer.describe()} ({layer.kind})")
            out[f"{name}.weight"] = want(f"{name}.weight", cell.weight.shape, layer, "weight")
            out[f"{name}.bias"] = want(f"{name}.bias", cell.bias.shape, layer, "bias")
            continue
        if layer.kind != "conv":
            raise fail(f"{name} is a convolution but the next weights are {layer.describe()} ({layer.kind})")
        out[f"{name}.weight"] = want(f"{name}.weight", cell.weight.shape, layer, "weight")
        if layer.meta is not None and layer.meta.size == 3:
            stride, _, groups = (int(v) for v in layer.meta)
            if stride != cell.stride[-1] or groups != cell.group:
                raise fail(f"{layer.prefix} has stride {stride} and groups {groups}, {name} stride {cell.stride[-1]} "
                           f"and groups {cell.group}")
        conv_bias = layer.tensors.get("bias")
        if cell.has_bias:  # squeeze-excite 1x1 convolutions: a bias, no BatchNorm
            out[f"{name}.bias"] = want(f"{name}.bias", cell.bias.shape, layer, "bias")
            continue
        if bn is None:  # a bare convolution: nothing else to fill
            if conv_bias is not None:
                raise fail(f"{layer.prefix} has a bias but {name} has none and no BatchNorm to carry it")
            continue
        bn_name, bn_cell = bn
        channels = bn_cell.gamma.shape
        next_layer = layers[pos] if pos < len(layers) else None
        if next_layer is not None and next_layer.kind == "bn":
            pos += 1
            mean = want(f"{bn_name}.moving_mean", channels, next_layer, "running_mean")
            var = want(f"{bn_name}.moving_variance", channels, next_layer, "running_var")
            gamma = next_layer.tensors.get("weight", np.ones(channels, np.float32))
            beta = next_layer.tensors.get("bias", np.zeros(channels, np.float32))
            for key, arr in (("weight", gamma), ("bias", beta)):
                if tuple(arr.shape) != tuple(channels):
                    raise fail(f"{next_layer.prefix}.{key} has shape {tuple(arr.shape)}, {bn_name} needs {channels}")
            if conv_bias is not None:  # a bias before BatchNorm only shifts the mean
                mean = mean - want(f"{bn_name}", channels, layer, "bias")
            # keep var + eps (what BatchNorm divides by) equal across the two eps values
            var = np.maximum(var + np.float32(bn_eps - bn_cell.eps), 0.0).astype(np.float32)
        elif conv_bias is not None:  # BatchNorm folded into the convolution: identity BN carrying the bias
            beta = want(f"{bn_name}.beta (folded bias)", channels, layer, "bias")
            gamma = np.ones(channels, np.float32)
            mean = np.zeros(channels, np.float32)
            var = np.full(channels, 1.0 - bn_cell.eps, np.float32)
        else:
            raise fail(f"{layer.prefix} has no BatchNorm after it and no folded bias, but {name} feeds {bn_name}")
        out.update({f"{bn_name}.gamma": gamma, f"{bn_name}.beta": beta, f"{bn_name}.moving_mean": mean,
                    f"{bn_name}.moving_variance": var})
    if pos < len(layers):
        extra = [layer.describe() for layer in layers[pos:pos + 3]]
        raise fail(f"{len(layers) - pos} layers of the weights are left over after the model's last layer "
                   f"({', '.join(extra)}{' ...' if len(layers) - pos > 3 else ''})")
    expected = {p.name for p in model.get_parameters()}
    if set(out) != expected:  # a bug here, not a user error: every parameter is assigned exactly once
        raise RuntimeError(f"conversion covered {sorted(set(out) ^ expected)[:5]} wrongly")
    return {p.name: out[p.name].astype(np.float32) for p in model.get_parameters()}


def models_that_fit(family: str, layers: list[SourceLayer], bn_eps: float, num_classes: int,
                     prefix: str = "mobilenet") -> list[str]:
    """Plain-named (224 px) ``<prefix>_<family>`` models these layers convert into, to suggest after a mismatch."""
    from ..models import create_model, list_models

    fits = []
    for name in list_models(f"{prefix}_{family}_*"):
        if re.search(r"_\d+_\d+$", name):  # resolution variants share the weights of the plain name
            continue
        try:
            map_onto(create_model(name, num_classes=num_classes), layers, bn_eps, "weights", name)
            fits.append(name)
        except UserError:
            pass
    return fits


def as_parameters(params: dict[str, np.ndarray]) -> dict:
    """Converted arrays as MindSpore Parameters, the form ``load_model_weights`` takes for an in-memory checkpoint."""
    from mindspore import Parameter, Tensor

    return {name: Parameter(Tensor(value), name=name) for name, value in params.items()}


def num_classes_of(params: dict[str, np.ndarray]) -> int:
    """Outputs of converted parameters: the last entry is the classifier's bias (model parameter order)."""
    return int(params[next(reversed(params))].shape[0])
