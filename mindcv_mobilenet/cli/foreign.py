"""Other suites' command lines read as this project's: the MindSpore model_zoo's MobileNet scripts and mindcv's.

:data:`FOREIGN_KEYS` is the one table of their key names. Each row names the key of this project it sets; the
parser (:mod:`.parser`) accepts the foreign name on the command line and in YAML files and hands
each source's values (one YAML file, the command line) to :func:`translate` before converting them, so a foreign key
gets exactly the checks of the key it stands for. A key whose meaning differs from ours in some way is still accepted,
with one start-up note saying what differs; a value that cannot be expressed here is a ConfigError.

``--arch mobilenetv2 --alpha 0.75 --resize 192`` resolves to the registered ``mobilenet_v2_075_192`` (and 192-px
inputs); a width or resolution that is not registered is an error listing those that are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..engine.scheduler import SCHEDULERS
from ..models import get_model_config, list_models
from ..utils.errors import ConfigError
from ..utils.values import is_bool, str2bool, to_float


@dataclass(frozen=True)
class ForeignKey:
    """A key of another suite: the key of this project it sets (``target``; ``infer_target`` for infer.py, whose
    data are image files), its help text, and ``nargs='+'`` for lists / ``flag`` for a bare ``--key`` meaning True."""

    name: str
    target: str
    help: str
    nargs: str | None = None
    flag: bool = False
    infer_target: str | None = None


# fmt: off
FOREIGN_KEYS: dict[str, ForeignKey] = {k.name: k for k in (
    ForeignKey("arch", "model", "model_zoo: mobilenetv1, mobilenetv2, mobilenetv3 (= _large) or mobilenetv3_small; "
               "with alpha and resize it picks the registered model"),
    ForeignKey("alpha", "model", "model_zoo: width multiplier of arch (default 1.0)"),
    ForeignKey("resize", "image_size", "model_zoo: input resolution (with arch also the model's resolution)"),
    ForeignKey("data_url", "data_dir", "model_zoo: data set folder (infer.py: images)", infer_target="image_path"),
    ForeignKey("dataset_path", "data_dir", "model_zoo: data set folder (infer.py: images)",
               infer_target="image_path"),
    ForeignKey("checkpoint_path", "ckpt_path", "model_zoo: checkpoint to load"),
    ForeignKey("run_distribute", "distribute", "model_zoo: data parallel", flag=True),
    ForeignKey("smooth_factor", "label_smoothing", "model_zoo: label smoothing"),
    ForeignKey("max_lr", "lr", "model_zoo: peak learning rate"),
    ForeignKey("learning_rate", "lr", "model_zoo: learning rate"),
    ForeignKey("decay_epoch", "decay_epochs", "model_zoo: epochs of the cosine decay"),
    ForeignKey("lr_decay_mode", "scheduler", "model_zoo: cosine_decay_lr, cosine, steps/piecewise_constant_lr, "
               "constant (or a scheduler name of this project)"),
    ForeignKey("milestone", "multi_step_decay_milestones", "model_zoo: epochs where the learning rate steps down",
               nargs="+"),
    ForeignKey("learning_rates", "lr", "model_zoo: the learning rate of each milestone segment", nargs="+"),
    ForeignKey("repeat_num", "epoch_size", "model_zoo: passes over the data per epoch (only 1)"),
)}
# fmt: on

# lr_decay_mode -> (scheduler, keys it implies). MindSpore's nn.cosine_decay_lr changes the rate once per epoch.
LR_DECAY_MODES: dict[str, tuple[str, dict[str, Any]]] = {
    "cosine_decay_lr": ("cosine_decay", {"lr_epoch_stair": True}),
    "cosine": ("cosine_decay", {}),
    "steps": ("multi_step_decay", {}),
    "piecewise_constant_lr": ("multi_step_decay", {}),
    "constant": ("constant", {}),
}

# --arch value -> registered name prefix (the model_zoo's MobileNetV3 default is Large)
ARCH_PREFIXES = {
    "mobilenetv1": "mobilenet_v1", "mobilenetv2": "mobilenet_v2", "mobilenetv3": "mobilenet_v3_large",
    "mobilenetv3_large": "mobilenet_v3_large", "mobilenetv3_small": "mobilenet_v3_small",
}


def foreign_keys_for(kind: str, kinds_of: Callable[[str], frozenset]) -> list[ForeignKey]:
    """The foreign keys ``kind``'s command line takes: those whose target key it takes (``kinds_of(target)``)."""
    return [k for k in FOREIGN_KEYS.values()
            if kind in kinds_of(k.target) or (kind == "infer" and k.infer_target)]


def target_of(key: ForeignKey, kind: str) -> str:
    return key.infer_target if kind == "infer" and key.infer_target else key.target


def _number(value: Any, name: str, where: str) -> float:
    try:
        return to_float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: bad value for '{name}': expected a number, got {value!r}") from None


def _numbers(value: Any, name: str, where: str) -> list[float]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [_number(v, name, where) for v in items]


def model_for_arch(arch: str, alpha: float = 1.0, resize: int | None = None) -> str:
    """The registered model of the model_zoo's ``--arch/--alpha/--resize``; what is not registered is a ConfigError
    listing what is."""
    prefix = ARCH_PREFIXES.get(str(arch).lower())
    if prefix is None:
        raise ConfigError(f"unknown arch '{arch}': use one of {', '.join(ARCH_PREFIXES)}")
    variants: dict[tuple[float, int], str] = {}
    for name in list_models(prefix + "_*"):
        parts = name[len(prefix) + 1:].split("_")
        if not parts[0].isdigit():
            continue
        key = (int(parts[0]) / 100, get_model_config(name).image_size)
        if len(parts) > 1 or key not in variants:  # mobilenet_v2_100_224 rather than its same mobilenet_v2_100
            variants[key] = name
    widths = sorted({w for w, _ in variants})
    width = next((w for w in widths if math.isclose(w, alpha)), None)
    if width is None:
        raise ConfigError(f"arch {arch} has no width {alpha:g}: registered widths are "
                          f"{', '.join(f'{w:g}' for w in widths)}")
    sizes = sorted(r for w, r in variants if w == width)
    size = resize if resize is not None else (224 if 224 in sizes else sizes[-1])
    if (width, size) not in variants:
        raise ConfigError(f"arch {arch} at width {width:g} is registered at {', '.join(map(str, sizes))} px, "
                          f"not at resize {size}")
    return variants[(width, size)]


def translate(values: dict[str, Any], kind: str, where: str) -> tuple[dict[str, Any], list[str]]:
    """One source's values (raw, as read) with every foreign key replaced by this project's, plus start-up notes.

    A foreign key and the key it stands for set to different values in the same source is a ConfigError.
    ``pretrained`` also takes a checkpoint path (as the model_zoo's MobileNetV3 documents it): it becomes
    ``ckpt_path``.
    """
    out = {k: v for k, v in values.items() if k not in FOREIGN_KEYS}
    given = {k: v for k, v in values.items() if k in FOREIGN_KEYS}
    notes: list[str] = []

    def put(key: str, value: Any, source: str) -> None:
        if key in out and out[key] != value:
            raise ConfigError(f"{where}: '{source}' sets '{key}', which is also given ({out[key]!r}); give one")
        out[key] = value

    if "arch" in given:
        alpha = _number(given.pop("alpha", 1.0), "alpha", where)
        resize = given.get("resize")
        resize = int(_number(resize, "resize", where)) if resize is not None else None
        put("model", model_for_arch(given.pop("arch"), alpha, resize), "arch")
    elif "alpha" in given:
        raise ConfigError(f"{where}: 'alpha' picks a width of --arch; give --arch too, or a model name (--model)")

    if "lr_decay_mode" in given:
        mode = str(given.pop("lr_decay_mode"))
        if mode in LR_DECAY_MODES:
            scheduler, implied = LR_DECAY_MODES[mode]
        elif mode in SCHEDULERS:
            scheduler, implied = mode, {}
        else:
            raise ConfigError(f"{where}: unknown lr_decay_mode '{mode}': use one of "
                              f"{', '.join(dict.fromkeys(list(LR_DECAY_MODES) + list(SCHEDULERS)))}")
        put("scheduler", scheduler, "lr_decay_mode")
        for key, value in implied.items():
            out.setdefault(key, value)

    if "learning_rates" in given:
        rates = _numbers(given.pop("learning_rates"), "learning_rates", where)
        _piecewise(rates, given, out, put, notes, where)
    elif "milestone" in given:
        put("multi_step_decay_milestones", given.pop("milestone"), "milestone")
        notes.append("milestone: read as epochs after warmup (MindSpore's piecewise_constant_lr counts steps)")

    if "repeat_num" in given:
        repeat = _number(given.pop("repeat_num"), "repeat_num", where)
        if repeat != 1:
            raise ConfigError(f"{where}: repeat_num {repeat:g} is not supported (an epoch here is one pass over the "
                              "data); multiply epoch_size by it instead")

    for name, value in given.items():  # plain renames
        put(target_of(FOREIGN_KEYS[name], kind), value, name)

    pretrained = out.get("pretrained")
    if isinstance(pretrained, str) and pretrained.strip() and not is_bool(pretrained):
        put("ckpt_path", pretrained, "pretrained")
        out["pretrained"] = False
    if is_bool(out.get("dataset_sink_mode")) and str2bool(out["dataset_sink_mode"]):
        notes.append("dataset_sink_mode True: batches go through MindSpore's device queue on GPU/Ascend; on CPU "
                     "steps are driven from Python (same results)")
    return out, notes


def _piecewise(rates: list[float], given: dict, out: dict, put: Callable, notes: list[str], where: str) -> None:
    """MindSpore's ``piecewise_constant_lr(milestone, learning_rates)`` as ``multi_step_decay``: ``lr`` is the first
    rate and ``decay_rate`` the one factor between rates, so the rates must fall geometrically."""
    milestones = given.pop("milestone", None)
    if milestones is None:
        raise ConfigError(f"{where}: learning_rates needs milestone (the epoch where each rate ends)")
    milestones = [int(_number(m, "milestone", where)) for m in
                  (milestones if isinstance(milestones, (list, tuple)) else [milestones])]
    if len(milestones) == len(rates):  # MindSpore's list ends with the last step: no change there
        milestones = milestones[:-1]
    if len(milestones) != len(rates) - 1 or not rates or rates[0] <= 0:
        raise ConfigError(f"{where}: learning_rates ({len(rates)} values) needs as many milestones (or one fewer)")
    factors = [b / a for a, b in zip(rates[:-1], rates[1:], strict=True)]
    if any(not math.isclose(f, factors[0], rel_tol=1e-6) for f in factors):
        raise ConfigError(f"{where}: learning_rates {rates} do not fall by one factor; this project's multi_step_decay "
                          "multiplies lr by decay_rate at each milestone: give rates like 0.1, 0.01, 0.001")
    put("lr", rates[0], "learning_rates")
    if factors:
        put("decay_rate", float(f"{factors[0]:.12g}"), "learning_rates")  # 0.01 / 0.1 is 0.09999999999999999
    put("multi_step_decay_milestones", milestones, "milestone")
    out.setdefault("scheduler", "multi_step_decay")
    notes.append("milestone: read as epochs after warmup (MindSpore's piecewise_constant_lr counts steps)")
