"""Keras MobileNetV1 (``keras.applications``: ``conv1``, ``conv_dw_N``, ``conv_pw_N``, ``*_bn``, ``conv_preds``) as
source layers, from a Keras ``.h5`` (needs ``h5py``) or a ``.npz`` with Keras's ``layer/weight`` names.

Kernels are HWIO (depthwise HWC1) and become OIHW; BatchNorm eps is 1e-3 (kept as var + eps by the mapping);
``conv_preds``, a 1x1 convolution on the pooled features, is the classifier's linear layer.
"""

from __future__ import annotations

import re

import numpy as np

from ..utils.errors import CheckpointError, UserError
from .files import require
from .layers import SourceLayer

KERAS_BN_EPS = 1e-3
_KERAS_V1_LAYER = re.compile(r"^(conv1|conv_(dw|pw)_(\d+)|conv_preds)(_bn)?$")


def load_keras_h5(path: str) -> dict[str, np.ndarray]:
    """A Keras ``.h5`` (whole model or weights only) as ``layer/weight`` -> array, in the file's layer order."""
    h5py = require("h5py", path)
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise UserError(f"{path} is an HDF5 file but not a Keras model (no 'layer_names'); is it a Keras .h5?")
            state = {}
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                for weight in group[layer].attrs.get("weight_names", []):
                    weight = weight.decode() if isinstance(weight, bytes) else str(weight)
                    short = weight.rsplit("/", 1)[-1].split(":")[0]
                    state[f"{layer}/{short}"] = np.asarray(group[layer][weight], np.float32)
    except OSError as err:
        raise UserError(f"cannot read {path} as an HDF5 file ({str(err)[:120]})") from None
    if not state:
        raise UserError(f"{path} holds no weights")
    return state


def _keras_order(layer: str) -> tuple:
    match = _KERAS_V1_LAYER.match(layer)
    name, kind, block = match.group(1), match.group(2), match.group(3)
    if name == "conv1":
        return (0, 0, 0)
    if name == "conv_preds":
        return (2, 0, 0)
    return (1, int(block), 0 if kind == "dw" else 1)


def keras_layers(state: dict[str, np.ndarray], source: str = "weights") -> list[SourceLayer]:
    """Keras MobileNetV1 weights (``conv_dw_3/depthwise_kernel``, ``conv1_bn/moving_mean``...) as ordered layers."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        layer, _, weight = key.rpartition("/")
        groups.setdefault(layer, {})[weight] = np.asarray(value, np.float32)
    foreign = sorted(name for name in groups if not _KERAS_V1_LAYER.match(name))
    if foreign:
        raise CheckpointError(
            f"{source} is not a Keras MobileNetV1: layers {', '.join(foreign[:4])}{' ...' if len(foreign) > 4 else ''}"
            " are not conv1, conv_dw_N, conv_pw_N, their _bn, or conv_preds"
        )
    layers = []
    for name in sorted(groups, key=lambda n: (_keras_order(n.removesuffix("_bn")), n.endswith("_bn"))):
        w = groups[name]
        if "moving_mean" in w:
            tensors = {"running_mean": w["moving_mean"], "running_var": w["moving_variance"]}
            tensors.update({k: w[v] for k, v in (("weight", "gamma"), ("bias", "beta")) if v in w})
            layers.append(SourceLayer(name, "bn", tensors))
        elif "depthwise_kernel" in w:  # H, W, C, 1 -> C, 1, H, W
            layers.append(SourceLayer(name, "conv", {"weight": w["depthwise_kernel"].transpose(2, 3, 0, 1)}))
        elif name == "conv_preds":  # 1x1 convolution on the pooled features: the classifier
            tensors = {"weight": w["kernel"][0, 0].T.copy()}
            if "bias" in w:
                tensors["bias"] = w["bias"]
            layers.append(SourceLayer(name, "linear", tensors))
        else:  # H, W, I, O -> O, I, H, W
            tensors = {"weight": w["kernel"].transpose(3, 2, 0, 1)}
            if "bias" in w:
                tensors["bias"] = w["bias"]
            layers.append(SourceLayer(name, "conv", tensors))
    return layers
