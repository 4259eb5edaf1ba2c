"""The one parser of every script: ``train.py``, ``validate.py``, ``infer.py``, ``export.py``,
``python -m mindcv_mobilenet.convert|summary|doctor|plot`` and ``benchmark.py`` (its options handed in as ``extra``).

Values resolve as built-in defaults < YAML file (``-c/--config``) < command line, for the keys of the option table
(:mod:`.options`). A YAML file may hold keys of any script (one recipe serves training and validation); the command
line of a script takes only that script's keys, with ``-`` read as ``_`` in flags (``--data-root``). An unknown key,
in either place, is a :class:`~mindcv_mobilenet.utils.errors.ConfigError` naming the closest known key; so is a
``required`` key left unset.

The MindSpore model_zoo's keys (``--arch/--alpha/--resize``, ``data_url``, ``max_lr``...) and bare ``key=value``
arguments (mindcv's READMEs) are read as this project's keys: :mod:`.foreign` holds their table.

Parsing only parses: it reads the ``-c`` file and nothing else on disk. What an unset key means once the files are
looked at is decided where the thing is owned: the data set and preprocessing (the training run's ``config.yaml``
beside a checkpoint, what ``data_dir`` holds) by :func:`mindcv_mobilenet.data.preprocessing.resolve_data_config`,
data parallel under msrun/mpirun by :mod:`mindcv_mobilenet.engine.distributed`.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..constants import program
from ..engine.distributed import launched_rank
from ..models.registry import canonical_model_name
from ..utils.errors import ConfigError
from ..utils.values import str2bool
from .foreign import FOREIGN_KEYS, ForeignKey, foreign_keys_for, target_of, translate
from .options import OPTIONS, Option, options_for


class Config(argparse.Namespace):
    """The resolved configuration: attribute access (``cfg.lr``) plus :meth:`to_dict` and ``str()`` (YAML).

    The layers below take it as a plain :class:`argparse.Namespace` of values.
    """

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def __str__(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None).rstrip()


# Names other trainers use for a key (timm, torchvision, Keras); spelling alone would not lead to mindcv's names.
# (Keys of the model_zoo that are accepted as they are written live in foreign.FOREIGN_KEYS.)
SYNONYMS = {
    "lerning_rate": "lr", "epochs": "epoch_size", "num_epochs": "epoch_size",
    "optimizer": "opt", "optim": "opt", "model_name": "model", "data": "data_dir",
    "data_path": "data_dir", "resume_from": "resume",
    "checkpoint": "ckpt_path", "output_dir": "ckpt_save_dir",
    "smoothing": "label_smoothing", "warmup": "warmup_epochs", "wd": "weight_decay",
    "workers": "num_parallel_workers", "amp": "amp_level",
}


def _suggest(name: str, spellings: Mapping[str, str]) -> str:
    """'; did you mean KEY?' for an unknown ``name``: the key whose name, alias or foreign name (``spellings``: every
    accepted name -> the key it sets) is closest, so a misspelt ``learnin_rate`` points to ``lr``."""
    synonym = SYNONYMS.get(name.lower().replace("-", "_"))
    if synonym in spellings.values():
        return f"; did you mean '{synonym}'?"
    close = difflib.get_close_matches(name, list(spellings), n=1, cutoff=0.5)
    return f"; did you mean '{spellings[close[0]]}'?" if close else ""


def _alias_map(options: Sequence[Option]) -> dict[str, str]:
    names = {o.name: o.name for o in options}
    names.update({a: o.name for o in options for a in o.aliases})
    return names


def _spellings(options: Sequence[Option], foreign: Sequence[ForeignKey], kind: str) -> dict[str, str]:
    """Every name that sets a key of ``options`` (its own, its aliases, the foreign keys) -> the key it sets."""
    return {k.name: target_of(k, kind) for k in foreign} | _alias_map(options)


def load_yaml(path: str, options: Sequence[Option] | None = None, kind: str = "train") -> dict[str, Any]:
    """Read a recipe, checking every key (unknown: ConfigError with the nearest key) and converting its value.

    Keys of the model_zoo (:data:`.foreign.FOREIGN_KEYS`) are read as this project's keys (``kind`` picks the meaning
    of ``data_url``: infer.py's images, else the data set folder).
    """
    return _read_yaml(path, options, kind)[0]


def _read_yaml(path: str, options: Sequence[Option] | None, kind: str) -> tuple[dict[str, Any], list[str]]:
    """(converted values, start-up notes of foreign.translate) of a YAML file."""
    options = list(OPTIONS) if options is None else list(options)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold 'key: value' lines, not a {type(data).__name__}")
    names = _alias_map(options)
    for key in data:
        if key not in names and key not in FOREIGN_KEYS:
            spellings = _spellings(options, list(FOREIGN_KEYS.values()), kind)
            raise ConfigError(f"config file {path}: unknown key '{key}'{_suggest(str(key), spellings)}")
    data, notes = translate({names.get(k, k): v for k, v in data.items()}, kind, f"config file {path}")
    by_name = {o.name: o for o in options}
    return {k: by_name[k].convert(v, f"config file {path}") for k, v in data.items()}, notes


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, nearest flag) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _add_argument(parser: argparse.ArgumentParser, option: Option, kind: str) -> None:
    """Flags keep the raw strings; :func:`parse_args` converts them with the option (lists included)."""
    default = "required" if kind in option.required else f"default: {option.default_for(kind)}"
    kwargs: dict[str, Any] = {"help": f"{option.help} ({default})"}
    if option.positional:
        parser.add_argument(option.name, nargs=option.nargs or None, **kwargs)
        return
    flags = [f"--{option.name}"] + [f"--{a}" for a in option.aliases]
    if option.nargs:
        kwargs["nargs"] = option.nargs
    elif option.type is str2bool:
        kwargs.update(nargs="?", const=True)
    parser.add_argument(*flags, dest=option.name, default=argparse.SUPPRESS, metavar=option.name.upper(), **kwargs)


def _foreign_keys(kind: str, extra: Sequence[Option]) -> list:
    kinds = {o.name: o.kinds for o in list(OPTIONS) + list(extra)}
    return foreign_keys_for(kind, lambda name: kinds.get(name, frozenset()))


def build_parser(kind: str, extra: Sequence[Option] = (), description: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser of ``kind`` (values not given are absent, so YAML values are not overridden)."""
    parser = _Parser(prog=program(kind), description=description or f"MobileNet {kind} (mindcv-compatible config)",
                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    parser.add_argument("-c", "--config", type=str, default="", help="YAML recipe (e.g. configs/mobilenetv2/...)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in options_for(kind, extra):
        group = groups.setdefault(option.group, parser.add_argument_group(option.group))
        _add_argument(group, option, kind)
    foreign = parser.add_argument_group("MindSpore model_zoo names (read as the key named)")
    for key in _foreign_keys(kind, extra):
        kwargs = {"nargs": "?", "const": True} if key.flag else {"nargs": key.nargs} if key.nargs else {}
        foreign.add_argument(f"--{key.name}", dest=key.name, metavar=key.name.upper(), default=argparse.SUPPRESS,
                             help=f"{key.help} (-> {target_of(key, kind)})", **kwargs)
    return parser


def _known_names(extra: Sequence[Option]) -> set[str]:
    return set(_alias_map(list(OPTIONS) + list(extra))) | set(FOREIGN_KEYS)


def _bare_assignments(argv: Sequence[str], extra: Sequence[Option]) -> list[str]:
    """mindcv's READMEs write overrides as bare ``key=value`` (``dataset=cifar10``): read them as ``--key=value``
    when ``key`` is a known key, so they get the same checks."""
    known = _known_names(extra)
    return [f"--{a}" if not a.startswith("-") and "=" in a and a.split("=", 1)[0] in known else a for a in argv]


def _underscored_flags(argv: Sequence[str]) -> list[str]:
    """``--data-root`` is ``--data_root``: flags are read with ``-`` as ``_`` (timm's and older scripts' spellings);
    values are left as written."""

    def underscored(arg: str) -> str:
        if not arg.startswith("--"):
            return arg
        name, equals, value = arg[2:].partition("=")
        return f"--{name.replace('-', '_')}{equals}{value}"

    return [underscored(a) for a in argv]


def _unknown_flag_error(unknown: list[str], kind: str, extra: Sequence[Option]) -> ConfigError:
    flag = next((u for u in unknown if u.startswith("-")), unknown[0])
    name = flag.lstrip("-").split("=", 1)[0]
    if name in _alias_map(OPTIONS) or name in FOREIGN_KEYS:
        return ConfigError(f"option --{name} is not used by this script")
    spellings = _spellings(options_for(kind, extra), _foreign_keys(kind, extra), kind)
    return ConfigError(f"unknown option {flag}{_suggest(name, spellings)}")


@dataclass
class _Sources:
    """What a script was given: the ``-c`` file's values and the command line's (converted), and start-up notes."""

    config_path: str
    file_values: dict[str, Any]
    cli_values: dict[str, Any]
    notes: list[str]


def _read_sources(kind: str, argv: Sequence[str], extra: Sequence[Option], description: str | None) -> _Sources:
    options = options_for(kind, extra)
    parser = build_parser(kind, extra, description)
    given, unknown = parser.parse_known_args(_bare_assignments(_underscored_flags(argv), extra))
    if unknown:
        raise _unknown_flag_error(unknown, kind, extra)
    given = vars(given)
    config_path = given.pop("config", "") or ""
    given, notes = translate(given, kind, "command line")
    by_name = {o.name: o for o in options}
    cli_values = {k: by_name[k].convert(v, "command line") for k, v in given.items()}
    file_values: dict[str, Any] = {}
    if config_path:
        file_values, file_notes = _read_yaml(config_path, list(OPTIONS) + list(extra), kind)
        notes = file_notes + notes
    return _Sources(config_path, file_values, cli_values, notes)


def parse_args(kind: str = "train", argv: Sequence[str] | None = None, extra: Sequence[Option] = (),
               description: str | None = None) -> Config:
    """Resolve the config of script ``kind`` (one of :data:`KINDS`): defaults < ``-c`` YAML < command line; a key the
    script requires (``Option.required``) left unset is a ConfigError.

    ``extra`` adds the options of a script outside the package (``benchmark.py``). The result holds every key the script
    uses (keys of other scripts found in the YAML file are checked, then dropped), plus ``config`` (the YAML path).
    Keys of the model_zoo and bare ``key=value`` arguments are read as this project's keys (:mod:`.foreign`); what
    they cannot mean exactly is printed as one note per key at start.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    options = options_for(kind, extra)
    if any(a in ("-h", "--help") for a in argv):
        build_parser(kind, extra, description).print_help()
        raise SystemExit(0)
    sources = _read_sources(kind, argv, extra, description)
    values = {o.name: _copy(o.default_for(kind)) for o in options}
    values.update({k: v for k, v in sources.file_values.items() if k in values})
    values.update(sources.cli_values)
    given = set(sources.file_values) | set(sources.cli_values)
    missing = [f"--{o.name}" for o in options if kind in o.required and o.name not in given]
    if missing:
        raise ConfigError(f"{program(kind)} needs {', '.join(missing)} (see --help)")
    cfg = Config(config=sources.config_path, **values)
    _check(cfg, kind)
    notes = sources.notes + _derived_settings(cfg, kind, given)
    if launched_rank() == 0:  # one line per launch, not per rank
        for note in dict.fromkeys(notes):
            print(f"note: {note}", file=sys.stderr, flush=True)
    return cfg


def _derived_settings(cfg: Config, kind: str, given: set[str]) -> list[str]:
    """What the command lines leave to the parser: canonical model names (``mobilenet_v3_small``) and the packaged
    weights of the built-in demo model. Returns start-up notes."""
    notes = []
    if "model" in cfg:
        canonical = canonical_model_name(cfg.model)
        if canonical != cfg.model:
            notes.append(f"model {cfg.model} is {canonical}")
            cfg.model = canonical
    if kind == "train" and not given & {"model", "pretrained", "ckpt_path", "resume"}:
        cfg.pretrained = True  # the built-in demo fine-tunes the packaged weights of the built-in model
    return notes


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _check(cfg: Config, kind: str) -> None:
    """Cross-key checks and mindcv spellings folded into one meaning."""
    for key in ("batch_size", "image_size", "in_channels"):
        if key in cfg and getattr(cfg, key) is not None and getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive, not {getattr(cfg, key)}")
    if getattr(cfg, "num_classes", None) is not None and cfg.num_classes <= 0:
        raise ConfigError(f"num_classes must be positive, not {cfg.num_classes}")
    if getattr(cfg, "precision", "fp32") == "int8" and kind == "export" and not cfg.calib_dir:
        raise ConfigError("--precision int8 needs --calib_dir FOLDER: a few hundred images like the ones the model "
                          "will see (not those it is evaluated on)")
    if getattr(cfg, "precision", "fp32") == "int8" and kind != "export" and cfg.backend != "onnxruntime":
        raise ConfigError("--precision int8 runs in ONNX Runtime: add --backend onnxruntime")
    if kind != "train":
        return
    if cfg.weight_decay_filter is not None:
        cfg.filter_bias_and_bn = cfg.weight_decay_filter != "disable"
    for key in ("epoch_size", "ckpt_save_interval", "keep_checkpoint_max", "val_interval", "loss_scale_window"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive, not {getattr(cfg, key)}")
    if cfg.lr < 0 or cfg.min_lr < 0 or cfg.warmup_epochs < 0:
        raise ConfigError("lr, min_lr and warmup_epochs must not be negative")
    if cfg.loss_scale <= 0:
        raise ConfigError(f"loss_scale must be positive, not {cfg.loss_scale}")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), not {cfg.label_smoothing}")
    if cfg.resume and cfg.ckpt_path:
        raise ConfigError("give either --resume (continue a run) or --ckpt_path (initial weights), not both")
    if cfg.layer_decay is not None and not 0.0 < cfg.layer_decay <= 1.0:
        raise ConfigError(f"layer_decay must be in (0, 1] (1 or none: the same lr everywhere), not {cfg.layer_decay}")
    if cfg.bn_calibration_images < 0:
        raise ConfigError(f"bn_calibration_images must not be negative, not {cfg.bn_calibration_images}")
    if cfg.normalize_on_device and cfg.freeze_backbone:
        raise ConfigError("normalize_on_device does not apply with freeze_backbone (the backbone's features are "
                          "computed once from host-normalised images): set one of them False")
