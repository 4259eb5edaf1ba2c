"""torchvision's MobileNetV2/V3 state dicts (``features.N...``, ``classifier.N``) as source layers.

The two zoos name their layers differently but build them in the same order: the reader sorts torchvision's
modules by index (``features.N...`` then ``classifier.N``) into source layers, which :func:`.layers.map_onto` maps
position by position. ``num_batches_tracked`` is ignored; torchvision's V3 uses BatchNorm eps 1e-3 where MindSpore
uses 1e-5 (kept as var + eps by the mapping); a file with BatchNorm folded into the convolutions (like the shared
``mobilenet_v2_1.0_224_torchvision_dequant.npz``) maps onto identity BatchNorms carrying the bias.

MobileNetV2 converts exactly: both zoos pad symmetrically. MobileNetV3 does NOT: torchvision pads its depthwise
convolutions symmetrically, this package uses TF-style "same" padding (asymmetric at stride 2), as mindcv does so
its published V3 weights give their published accuracy. The weights map one to one, but every stride-2 depthwise
layer sees its input shifted by one pixel, so logits differ from torchvision's (and accuracy may drop a little).
Converting a V3 prints a warning saying so, with the gap measured on the converted weights: the same network run as
built and with torchvision's padding (:func:`measure_padding_gap`).
"""

from __future__ import annotations

import re

import numpy as np

from ..utils.errors import CheckpointError, UserError
from .layers import SourceLayer, as_parameters, map_onto, models_that_fit, num_classes_of

# BatchNorm eps of torchvision's builders: V2 keeps PyTorch's default, V3 passes eps=0.001.
TORCHVISION_BN_EPS = {"v2": 1e-5, "v3": 1e-3}
PADDING_WARNING = (
    "torchvision's MobileNetV3 pads its depthwise convolutions symmetrically, this package 'same' (TF style, "
    "asymmetric at stride 2, as mindcv): the converted model does not reproduce torchvision's logits exactly"
)
_IGNORED_SUFFIXES = ("num_batches_tracked", "cfg_stride_pad_groups")
_TOP_LEVEL_ORDER = {"features": 0, "classifier": 1}



def _natural_key(prefix: str) -> tuple:
    """Sort ``features.10`` after ``features.9`` and ``classifier`` after ``features``: module order."""
    parts = prefix.split(".")
    head = (_TOP_LEVEL_ORDER.get(parts[0], 99),)
    return head + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def torchvision_layers(state: dict[str, np.ndarray], source: str = "weights") -> list[SourceLayer]:
    """Group a torchvision state dict into its weighted modules, in module order."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}  # DataParallel
    unknown = sorted({k.split(".")[0] for k in state} - set(_TOP_LEVEL_ORDER))
    if unknown:
        raise CheckpointError(
            f"{source} is not a torchvision MobileNet state dict: unexpected top-level names {unknown} "
            f"(expected only {sorted(_TOP_LEVEL_ORDER)})"
        )
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        prefix, _, suffix = key.rpartition(".")
        groups.setdefault(prefix, {})[suffix] = np.asarray(value)
    layers = []
    for prefix in sorted(groups, key=_natural_key):
        tensors = groups[prefix]
        meta = tensors.get("cfg_stride_pad_groups")
        tensors = {k: v for k, v in tensors.items() if k not in _IGNORED_SUFFIXES}
        if not tensors:
            continue
        if "running_mean" in tensors and "running_var" in tensors:
            kind = "bn"
        elif "weight" in tensors and tensors["weight"].ndim == 4:
            kind = "conv"
        elif "weight" in tensors and tensors["weight"].ndim == 2:
            kind = "linear"
        else:
            shapes = {k: tuple(v.shape) for k, v in tensors.items()}
            raise CheckpointError(f"{source}: cannot tell what {prefix} is ({shapes}); not a torchvision MobileNet")
        layers.append(SourceLayer(prefix, kind, {k: v.astype(np.float32) for k, v in tensors.items()}, meta))
    return layers


def torchvision_family(state: dict[str, np.ndarray]) -> str | None:
    """'v3' for ``features.N.block.*`` names, 'v2' for ``features.N.conv.*``, None for neither."""
    if any(re.match(r"(module\.)?features\.\d+\.block\.", k) for k in state):
        return "v3"
    if any(re.match(r"(module\.)?features\.\d+\.conv\.", k) for k in state):
        return "v2"
    return None


def _model_family(model_name: str) -> str:
    for family in ("v2", "v3"):
        if model_name.startswith(f"mobilenet_{family}_"):
            return family
    raise UserError(
        f"cannot convert torchvision weights to {model_name}: torchvision has MobileNetV2 and V3 only; "
        "pick a mobilenet_v2_* or mobilenet_v3_* model"
    )


def convert_torchvision(
    model_name: str,
    state: dict[str, np.ndarray],
    num_classes: int | None = None,
    bn_eps: float | None = None,
    source: str = "weights",
) -> dict[str, np.ndarray]:
    """Map torchvision-named MobileNet weights onto ``model_name``'s parameters; name -> float32 array.

    ``num_classes`` defaults to the size of the weights' last linear layer. ``bn_eps`` is the eps the source
    BatchNorms were trained with (torchvision's: 1e-5 for V2, 1e-3 for V3); it only matters for unfolded BN.
    Anything that does not fit raises :class:`CheckpointError` naming the tensors, and suggests models that fit.
    """
    from ..models import create_model, get_model_config

    get_model_config(model_name)  # unknown name: one UserError with close matches
    family = _model_family(model_name)
    layers = torchvision_layers(state, source)
    found = torchvision_family(state)
    if found is None:
        raise CheckpointError(
            f"{source} does not look like torchvision MobileNet weights: no features.N.conv.* (V2) or "
            f"features.N.block.* (V3) names (first names: {', '.join(layer.prefix for layer in layers[:3])})"
        )
    linears = [layer for layer in layers if layer.kind == "linear"]
    if num_classes is None:
        if not linears:
            raise CheckpointError(f"{source} has no linear (classifier) layer; is it a torchvision MobileNet?")
        num_classes = int(linears[-1].tensors["weight"].shape[0])
    eps = TORCHVISION_BN_EPS[found] if bn_eps is None else bn_eps
    if found != family:
        fits = models_that_fit(found, layers, eps, num_classes)
        marker = "features.N.block.*" if found == "v3" else "features.N.conv.*"
        raise CheckpointError(
            f"{source} holds torchvision MobileNet{found.upper()} weights ({marker} names) but {model_name} is a "
            f"MobileNet{family.upper()}; " + (f"they fit {', '.join(fits)}" if fits else
                                             f"use a mobilenet_{found}_* model")
        )
    model = create_model(model_name, num_classes=num_classes)
    try:
        return map_onto(model, layers, eps, source, model_name)
    except CheckpointError as err:
        fits = models_that_fit(family, layers, eps, num_classes)
        hint = f"; the weights fit {', '.join(fits)}" if fits else ""
        raise CheckpointError(f"{err}{hint}") from None


def torchvision_padding_twin(model):
    """Switch every 'same'-padded convolution of ``model`` to torchvision's symmetric padding, in place.

    Only stride-2 layers change their output ('same' equals symmetric at stride 1 for odd kernels). Used to measure
    what the V3 padding difference costs; the weights are kept.
    """
    from mindspore import nn

    from ..kernels.depthwise import conv2d

    for _, cell in list(model.cells_and_names()):
        if not isinstance(cell, nn.SequentialCell):
            continue
        for i in range(len(cell)):
            conv = cell[i]
            if isinstance(conv, nn.Conv2d) and conv.pad_mode == "same":
                twin = conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, pad_mode="pad",
                              padding=(conv.kernel_size[0] - 1) // 2, group=conv.group, has_bias=conv.has_bias)
                twin.weight.set_data(conv.weight.value())
                if conv.has_bias:
                    twin.bias.set_data(conv.bias.value())
                cell[i] = twin
    return model


def measure_padding_gap(model_name: str, params: dict[str, np.ndarray], images: np.ndarray | None = None,
                        image_size: int = 224, seed: int = 0) -> dict[str, float]:
    """Logits of the converted weights as built ('same' padding) vs with torchvision's padding, on ``images``.

    ``images`` (N, 3, H, W, normalised) default to 4 smooth synthetic images. Returns the relative L2 difference of
    the logits, the largest absolute difference, and the share of images whose top-1 class agrees.
    """
    import mindspore as ms

    from ..models import create_model
    from ..utils.checkpoint import load_model_weights

    if images is None:
        rng = np.random.default_rng(seed)
        coarse = rng.standard_normal((4, 3, image_size // 8, image_size // 8)).astype(np.float32)
        images = np.kron(coarse, np.ones((1, 1, 8, 8), np.float32))  # blocky, image-like statistics
        images = (images + np.roll(images, 4, axis=2) + np.roll(images, 4, axis=3)) / 3  # soften the edges a bit
    num_classes = num_classes_of(params)
    logits = []
    for twin in (False, True):
        model = create_model(model_name, num_classes=num_classes)
        load_model_weights(model, as_parameters(params))
        if twin:
            torchvision_padding_twin(model)
        model.set_train(False)
        logits.append(model(ms.Tensor(images)).asnumpy())
    built, torch_like = logits
    return {
        "relative_l2": float(np.linalg.norm(built - torch_like) / max(np.linalg.norm(torch_like), 1e-12)),
        "max_abs": float(np.abs(built - torch_like).max()),
        "top1_agreement": float((built.argmax(1) == torch_like.argmax(1)).mean()),
        "images": int(len(images)),
    }
