"""timm's MobileNetV4 weights -> this package's ``mobilenet_v4_*`` models, by name.

The V4 models keep timm's sub-cell names inside every block (``models/mobilenet_v4.py``), so the mapping is a short
table of prefixes plus MindSpore's BatchNorm names, not the positional matching of the other readers: a name that
is not in the table, or a shape that does not fit, is the first key named in the error. timm's BatchNorm eps (1e-5)
is the models' own, so statistics copy unchanged. Files: ``.safetensors`` (what timm and the Hugging Face hub save;
read by the ``safetensors`` package's NumPy API, an optional extra), ``.pth``/``.npz`` as for torchvision.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..utils.errors import CheckpointError, UserError
from .files import load_state_file, require

# timm's top-level names -> this package's (stage s of timm's ``blocks`` is ``features.{s + 2}``)
TIMM_PREFIXES: list[tuple[str, str]] = [
    (r"conv_stem\.", "features.0."),
    (r"bn1\.", "features.1."),
    (r"blocks\.(\d+)\.", "blocks"),
    (r"conv_head\.", "classifier.0."),  # a 1x1 conv on the pooled vector: a Dense here (weights reshaped)
    (r"norm_head\.", "classifier.1."),
    (r"classifier\.", "classifier.4."),
]
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def is_timm_model(model_name: str) -> bool:
    """Whether ``model_name`` (or the alias) is one of the MobileNetV4 models timm's weights convert into."""
    from ..models.registry import canonical_model_name

    return canonical_model_name(model_name).startswith("mobilenet_v4_")


def load_timm_file(path: str) -> dict[str, np.ndarray]:
    """A timm state dict from ``.safetensors`` (NumPy, no torch), else ``.pth``/``.npz`` like torchvision's."""
    if not path.endswith(".safetensors"):
        return load_state_file(path)
    if not os.path.isfile(path):
        raise UserError(f"input {path} not found; pass timm's .safetensors, .pth or .npz with --input")
    require("safetensors", path)
    from safetensors.numpy import load_file

    try:
        state = load_file(path)
    except Exception as err:  # SafetensorError, OSError: not a readable file
        raise UserError(f"cannot read {path} as a .safetensors file ({str(err)[:120]})") from None
    return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in state.items()}


def package_name(key: str, bn_prefixes: set[str]) -> str | None:
    """This package's name of timm's ``key``, None when the table has no rule for it."""
    for pattern, target in TIMM_PREFIXES:
        match = re.match(pattern, key)
        if match:
            target = f"features.{int(match[1]) + 2}." if target == "blocks" else target
            prefix, _, leaf = (target + key[match.end():]).rpartition(".")
            if key.rpartition(".")[0] in bn_prefixes:
                leaf = BN_NAMES.get(leaf, leaf)
            return f"{prefix}.{leaf}"
    return None


def timm_state_to_params(model_name: str, state: dict[str, np.ndarray], num_classes: int | None = None,
                         source: str = "weights") -> dict[str, np.ndarray]:
    """timm's ``mobilenetv4_*`` state dict -> ``model_name``'s parameters (name -> float32 array, model order).

    BatchNorm running statistics included, ``num_batches_tracked`` dropped. ``num_classes`` defaults to the
    classifier's rows. The first key that has no place in the model, or another shape, raises one
    :class:`CheckpointError` line naming it; so does the first model parameter left without a value.
    """
    from ..models import create_model, get_model_config

    get_model_config(model_name)  # unknown name: one UserError with close matches
    if not is_timm_model(model_name):
        raise UserError(f"timm's MobileNetV4 weights convert into the mobilenet_v4_* models, not {model_name}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if num_classes is None:
        if "classifier.weight" not in state:
            raise CheckpointError(f"{source} has no classifier.weight: not a timm MobileNetV4 state dict")
        num_classes = int(state["classifier.weight"].shape[0])
    model = create_model(model_name, num_classes=num_classes)
    expected = {p.name: tuple(p.shape) for p in model.get_parameters()}
    bn_prefixes = {k[: -len(".running_mean")] for k in state if k.endswith(".running_mean")}
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if key.endswith(".num_batches_tracked"):
            continue
        name = package_name(key, bn_prefixes)
        if name is None or name not in expected:
            raise CheckpointError(f"{source} does not fit {model_name}: timm's {key} {tuple(value.shape)} has no "
                                  f"place in it" + (f" (no parameter {name})" if name else ""))
        shape = expected[name]
        if tuple(value.shape) != shape:
            if int(np.prod(value.shape)) != int(np.prod(shape)) or [d for d in value.shape if d != 1] != \
                    [d for d in shape if d != 1]:
                raise CheckpointError(f"{source} does not fit {model_name}: timm's {key} has shape "
                                      f"{tuple(value.shape)} but {name} needs {shape}")
            value = value.reshape(shape)  # conv_head's 1x1 kernel as a Dense weight
        out[name] = np.asarray(value, np.float32)
    missing = [name for name in expected if name not in out]
    if missing:
        raise CheckpointError(f"{source} does not fit {model_name}: nothing for its {missing[0]} "
                              f"({len(missing)} parameters without a timm weight)")
    return {name: out[name] for name in expected}


def convert_timm(model_name: str, input_path: str, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Read timm's file at ``input_path`` and map it onto ``model_name`` (:func:`timm_state_to_params`)."""
    return timm_state_to_params(model_name, load_timm_file(input_path), num_classes,
                                source=os.path.basename(input_path))
