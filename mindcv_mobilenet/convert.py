"""Convert torchvision, Keras or TFLite MobileNet weights into a MindSpore checkpoint for this package's models.

Usage: ``python -m mindcv_mobilenet.convert --model mobilenet_v2_100 --input weights.npz|weights.pth --output out.ckpt``
(Google's Keras ``.h5``/``.npz`` and TFLite ``.tflite`` files go into the ``tf_mobilenet_*`` models through
:mod:`mindcv_mobilenet.tf_import`, e.g. ``--model tf_mobilenet_v1_075 --input mobilenet_v1_0.75_224_keras.npz``.)

The two zoos name their layers differently but build them in the same order, so the converter walks torchvision's
structure in order (convolutions, BatchNorms and linear layers, sorted by module index: ``features.N...`` then
``classifier.N``) and maps it position by position onto this package's cells, checking every shape. Input forms:

* BatchNorm not folded (a plain torchvision ``state_dict``): BN ``weight/bias/running_mean/running_var`` become
  ``gamma/beta/moving_mean/moving_variance`` (``num_batches_tracked`` is ignored). torchvision's V3 uses BN eps 1e-3
  where MindSpore uses 1e-5: the difference is added to the variance, so ``var + eps`` and the outputs are unchanged.
* BatchNorm folded into the convolution (a convolution with a bias and no BN after it, like
  ``shared/weights/mobilenet_v2_1.0_224_torchvision_dequant.npz``): the BN is set to the identity plus that bias
  (gamma 1, beta = bias, moving mean 0, moving variance 1 - eps).

MobileNetV2 converts exactly: both zoos pad symmetrically. MobileNetV3 does NOT: torchvision pads its depthwise
convolutions symmetrically, this package uses TF-style "same" padding (asymmetric at stride 2), as mindcv does so
its published V3 weights give their published accuracy. The weights map one to one, but every stride-2 depthwise
layer sees its input shifted by one pixel, so logits differ from torchvision's (and accuracy may drop a little).
Converting a V3 prints a warning saying so, with the gap measured on the converted weights: the same network run as
built and with torchvision's padding (:func:`measure_padding_gap`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from .config import parse_args
from .utils.errors import CheckpointError, UserError, run_cli

_logger = logging.getLogger("mindcv_mobilenet")

# BatchNorm eps of torchvision's builders: V2 keeps PyTorch's default, V3 passes eps=0.001.
TORCHVISION_BN_EPS = {"v2": 1e-5, "v3": 1e-3}
PADDING_WARNING = (
    "torchvision's MobileNetV3 pads its depthwise convolutions symmetrically, this package 'same' (TF style, "
    "asymmetric at stride 2, as mindcv): the converted model does not reproduce torchvision's logits exactly"
)
_IGNORED_SUFFIXES = ("num_batches_tracked", "cfg_stride_pad_groups")
_TOP_LEVEL_ORDER = {"features": 0, "classifier": 1}


@dataclass
class _TorchLayer:
    """One torchvision module with weights: a convolution, a BatchNorm or a linear layer."""

    prefix: str
    kind: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: np.ndarray | None = None  # (stride, padding, groups) when the file records it

    def describe(self) -> str:
        if "weight" in self.tensors:
            return f"{self.prefix}.weight {tuple(self.tensors['weight'].shape)}"
        return f"{self.prefix} ({self.kind})"


def load_state_file(path: str) -> dict[str, np.ndarray]:
    """Read a ``.npz`` or a PyTorch ``.pth``/``.pt`` state dict into name -> float32 array (torch only for .pth)."""
    if not os.path.isfile(path):
        raise UserError(f"input {path} not found; pass a .npz or a PyTorch .pth/.pt state dict with --input")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: np.asarray(data[k]) for k in data.files}
        except Exception as err:  # zipfile.BadZipFile, ValueError, OSError: all mean "not a readable npz"
            raise UserError(f"cannot read {path} as a .npz file ({type(err).__name__}: {str(err)[:120]})") from None
    elif ext in (".pth", ".pt", ".bin"):
        state = _load_torch_file(path)
    else:
        raise UserError(f"input {path}: unknown extension {ext or '(none)'}; expected .npz, .pth or .pt")
    if not state:
        raise UserError(f"input {path} holds no tensors")
    return state


def _load_torch_file(path: str) -> dict[str, np.ndarray]:
    """``torch.load`` a state dict (or a checkpoint dict wrapping one) and turn its tensors into NumPy arrays."""
    try:
        import torch  # lazy: only .pth input needs PyTorch, and it is no dependency of this package
    except ImportError:
        raise UserError(
            f"reading {path} needs PyTorch, which is not installed here; `pip install torch`, or save the state "
            "dict as .npz where torch is: np.savez('w.npz', **{k: v.numpy() for k, v in sd.items()})"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read {path} with torch.load ({reason[:160]})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # common training-checkpoint wrappers
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict; save model.state_dict()")
    state = {}
    for name, value in obj.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu()
            state[name] = (value.float() if value.is_floating_point() else value).numpy()
    return state


def _natural_key(prefix: str) -> tuple:
    """Sort ``features.10`` after ``features.9`` and ``classifier`` after ``features``: module order."""
    parts = prefix.split(".")
    head = (_TOP_LEVEL_ORDER.get(parts[0], 99),)
    return head + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def torchvision_layers(state: dict[str, np.ndarray], source: str = "weights") -> list[_TorchLayer]:
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
        layers.append(_TorchLayer(prefix, kind, {k: v.astype(np.float32) for k, v in tensors.items()}, meta))
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


def _package_units(model) -> list[tuple[str, object, tuple[str, object] | None]]:
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


def _counts(layers: list[_TorchLayer]) -> str:
    n = {kind: sum(layer.kind == kind for layer in layers) for kind in ("conv", "bn", "linear")}
    bn = f"{n['bn']} BatchNorms" if n["bn"] else "BatchNorm folded"
    return f"{n['conv']} convolutions ({bn}), {n['linear']} linear layers"


def _map_onto(model, layers: list[_TorchLayer], bn_eps: float, source: str, model_name: str) -> dict[str, np.ndarray]:
    """Assign torchvision layers to the model's cells in order; raise on the first one that does not fit."""
    from mindspore import nn

    units = _package_units(model)
    out: dict[str, np.ndarray] = {}
    pos = 0

    def fail(reason: str) -> CheckpointError:
        n_conv = sum(isinstance(c, nn.Conv2d) for _, c, _ in units)
        n_dense = sum(isinstance(c, nn.Dense) for _, c, _ in units)
        return CheckpointError(
            f"{source} does not fit {model_name}: {reason} (the weights have {_counts(layers)}; {model_name} has "
            f"{n_conv} convolutions and {n_dense} linear layers)"
        )

    def want(shape_owner: str, expected: tuple, layer: _TorchLayer, key: str) -> np.ndarray:
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


def _models_that_fit(family: str, layers: list[_TorchLayer], bn_eps: float, num_classes: int,
                     prefix: str = "mobilenet") -> list[str]:
    """Plain-named (224 px) ``<prefix>_<family>`` models these weights convert into, to suggest after a mismatch."""
    from .models import create_model, list_models

    fits = []
    for name in list_models(f"{prefix}_{family}_*"):
        if re.search(r"_\d+_\d+$", name):  # resolution variants share the weights of the plain name
            continue
        try:
            _map_onto(create_model(name, num_classes=num_classes), layers, bn_eps, "weights", name)
            fits.append(name)
        except UserError:
            pass
    return fits


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
    from .models import create_model, get_model_config

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
        fits = _models_that_fit(found, layers, eps, num_classes)
        marker = "features.N.block.*" if found == "v3" else "features.N.conv.*"
        raise CheckpointError(
            f"{source} holds torchvision MobileNet{found.upper()} weights ({marker} names) but {model_name} is a "
            f"MobileNet{family.upper()}; " + (f"they fit {', '.join(fits)}" if fits else
                                             f"use a mobilenet_{found}_* model")
        )
    model = create_model(model_name, num_classes=num_classes)
    try:
        return _map_onto(model, layers, eps, source, model_name)
    except CheckpointError as err:
        fits = _models_that_fit(family, layers, eps, num_classes)
        hint = f"; the weights fit {', '.join(fits)}" if fits else ""
        raise CheckpointError(f"{err}{hint}") from None


def as_parameters(params: dict[str, np.ndarray]) -> dict:
    """Converted arrays as MindSpore Parameters, the form ``load_model_weights`` takes for an in-memory checkpoint."""
    from mindspore import Parameter, Tensor

    return {name: Parameter(Tensor(value), name=name) for name, value in params.items()}


def _num_classes(params: dict[str, np.ndarray]) -> int:
    """Outputs of converted parameters: the last entry is the classifier's bias (model parameter order)."""
    return int(params[next(reversed(params))].shape[0])


def torchvision_padding_twin(model):
    """Switch every 'same'-padded convolution of ``model`` to torchvision's symmetric padding, in place.

    Only stride-2 layers change their output ('same' equals symmetric at stride 1 for odd kernels). Used to measure
    what the V3 padding difference costs; the weights are kept.
    """
    from mindspore import nn

    from .kernels.depthwise import conv2d

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

    from .models import create_model
    from .utils.checkpoint import load_model_weights

    if images is None:
        rng = np.random.default_rng(seed)
        coarse = rng.standard_normal((4, 3, image_size // 8, image_size // 8)).astype(np.float32)
        images = np.kron(coarse, np.ones((1, 1, 8, 8), np.float32))  # blocky, image-like statistics
        images = (images + np.roll(images, 4, axis=2) + np.roll(images, 4, axis=3)) / 3  # soften the edges a bit
    num_classes = _num_classes(params)
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


def _convert_input(model_name: str, input_path: str, num_classes: int | None, bn_eps: float | None):
    """Read ``input_path`` and convert it: Keras/TFLite files by :mod:`.tf_import`, torchvision weights here."""
    from .tf_import import convert_tf, is_tf_input

    if is_tf_input(input_path):
        return convert_tf(model_name, input_path, num_classes)
    state = load_state_file(input_path)
    if is_tf_input(input_path, state):  # a .npz with Keras's layer/weight names
        return convert_tf(model_name, input_path, num_classes, state=state)
    return convert_torchvision(model_name, state, num_classes, bn_eps, source=os.path.basename(input_path))


def convert_file(model_name: str, input_path: str, output_path: str, num_classes: int | None = None,
                 force: bool = False, bn_eps: float | None = None) -> dict[str, np.ndarray]:
    """Convert ``input_path`` and write ``output_path`` atomically, after proving it loads strictly into a new model."""
    from .models import create_model
    from .utils.checkpoint import load_model_weights, save_checkpoint
    from .utils.fileio import atomic_path

    if not output_path.endswith(".ckpt"):
        raise UserError(f"output {output_path} must end in .ckpt (MindSpore would append it to any other name)")
    if os.path.isdir(output_path):
        raise UserError(f"output {output_path} is a folder; give a file name ending in .ckpt")
    if os.path.exists(output_path) and not force:
        raise UserError(f"output {output_path} exists; pass --force to overwrite it")
    params = _convert_input(model_name, input_path, num_classes, bn_eps)
    classes = _num_classes(params)
    with atomic_path(output_path) as tmp_path:
        save_checkpoint(params, tmp_path)
        fresh = create_model(model_name, num_classes=classes)
        skipped = load_model_weights(fresh, tmp_path)  # strict: raises on any missing or misshapen parameter
        loaded = {p.name: p.asnumpy() for p in fresh.get_parameters()}
        differ = [n for n, a in params.items() if n in skipped or not np.array_equal(loaded[n], a)]
        if differ:
            raise CheckpointError(f"written checkpoint does not reload as converted: {', '.join(differ[:5])}")
    return params


def main(argv: list[str] | None = None) -> int:
    args = parse_args("convert", argv, description=__doc__.splitlines()[0])
    params = convert_file(args.model, args.input, args.output, args.num_classes, args.force, args.bn_eps)
    print(f"wrote {args.output}: {len(params)} tensors for {args.model}; reloaded strictly into a new model: ok",
          flush=True)
    if args.model.startswith("mobilenet_v3"):
        line = f"warning: {PADDING_WARNING}"
        if not args.skip_padding_check:
            gap = measure_padding_gap(args.model, params)
            line += (f"; measured on {gap['images']} synthetic 224-px images: logits differ by "
                     f"{gap['relative_l2']:.1%} (relative L2), top-1 agrees on {gap['top1_agreement']:.0%}")
        print(line, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
