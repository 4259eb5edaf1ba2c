"""One option table and one parser for every script: ``train.py``, ``validate.py``, ``infer.py``, ``export.py``,
``python -m mindcv_mobilenet.convert|summary|doctor|plot`` and ``benchmark.py`` (its options handed in as ``extra``).

Values resolve as built-in defaults < YAML file (``-c/--config``) < command line, under mindcv's key names, so
mindcv's recipes load unchanged. Every key is declared once in :data:`OPTIONS` with its type, default, help and the
scripts that use it (``kinds``). A YAML file may hold keys of any script (one recipe serves training and validation);
the command line of a script takes only that script's keys, with ``-`` read as ``_`` in flags (``--data-root``).
An unknown key, in either place, is a :class:`~mindcv_mobilenet.utils.errors.ConfigError` naming the closest known
key; so is a ``required`` key left unset.

The MindSpore model_zoo's keys (``--arch/--alpha/--resize``, ``data_url``, ``max_lr``...) and bare ``key=value``
arguments (mindcv's READMEs) are read as this project's keys: :mod:`mindcv_mobilenet.compat` holds their table.

Booleans accept ``True/False/true/false/yes/no/1/0`` (``--pretrained False`` is False, unlike argparse's
``type=bool``); a bare ``--pretrained`` means True. ``none``/``null`` sets an optional value to None.

The built-in defaults of ``train`` are the CPU demo (``configs/demo/tf_mobilenet_v1_025_finetune.yaml``):
``python train.py`` with no arguments fine-tunes the ImageNet MobileNetV1 0.25 shipped in the package on the CIFAR-10
images shipped in the package, offline. Left at the built-in model, ``pretrained`` defaults to True for training (the
weights are in the package); any other model starts from scratch unless ``pretrained``/``ckpt_path`` say otherwise.
The from-scratch demo is ``configs/demo/mobilenet_v2_cpu_demo.yaml``.

Data parallel and the learning rate
-----------------------------------
With ``distribute: True`` under ``msrun``/``mpirun`` every rank reads its own shard and runs ``batch_size`` images
per step, so the global batch is ``batch_size x ranks`` and gradients are averaged over ranks. ``lr`` is used as
written: it is the learning rate of the global batch. mindcv's recipes state it for their published setup (8 devices,
e.g. ``mobilenet_v2_1.0_ascend.yaml``: 8 x 256 images, lr 0.4). On another number of devices keep the global batch
(raise ``batch_size``) or scale ``lr`` linearly with it (Goyal et al., 2017): ``lr_new = lr x (batch_size_new x
ranks_new) / (batch_size x ranks)``, keeping ``warmup_epochs``. ``train.py`` logs the global batch at start.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .compat import FOREIGN_KEYS, ForeignKey, foreign_keys_for, target_of, translate
from .data.constants import DATASET_NAMES, DEMO_DATASET
from .engine.optim import OPTIMIZERS
from .engine.scheduler import SCHEDULERS
from .utils.errors import ConfigError
from .utils.fileio import atomic_path
from .utils.values import str2bool, to_float, to_int

KINDS = ("train", "validate", "infer", "export", "convert", "summary", "doctor", "plot", "benchmark")
_T, _V, _I, _E, _C = {"train"}, {"validate"}, {"infer"}, {"export"}, {"convert"}
_TV = _T | _V
_TVI = _TV | _I  # the scripts that run a model on data: an option's default kinds
_MODEL = _TVI | _E  # the scripts that build a model from its published weights or a checkpoint
_MODULE_SCRIPTS = ("convert", "summary", "doctor", "plot")  # started as python -m mindcv_mobilenet.<kind>


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~"))


_int, _float = to_int, to_float


def _str(value: Any) -> str:
    if isinstance(value, (list, dict)):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _upper(value: Any) -> str:
    return _str(value).upper()


def _positive_int(value: Any) -> int:
    number = _int(value)
    if number <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def _float_or_floats(value: Any):
    """One number or a list of numbers (color_jitter)."""
    if isinstance(value, (list, tuple)):
        return [_float(v) for v in value]
    return _float(value)


@dataclass(frozen=True)
class Option:
    """One configuration key.

    ``type`` converts one value (from YAML or a command-line string); ``nargs='+'`` makes it a list; ``optional``
    allows None (``none``/``null``); ``kinds`` are the scripts whose command line takes it; ``choices`` are checked
    after conversion; ``aliases`` are other accepted names (mindcv spellings, older flags); ``required`` are the
    scripts that need the key set (on the command line or in the ``-c`` file).
    """

    name: str
    type: Callable[[Any], Any]
    default: Any
    help: str
    kinds: frozenset = frozenset(_TVI)
    group: str = "system"
    choices: tuple | None = None
    nargs: str | None = None
    optional: bool = False
    aliases: tuple[str, ...] = ()
    positional: bool = False
    kind_defaults: tuple[tuple[str, Any], ...] = ()
    required: frozenset = frozenset()

    def default_for(self, kind: str) -> Any:
        """The default of this key for script ``kind`` (``kind_defaults`` holds the scripts whose default differs)."""
        return dict(self.kind_defaults).get(kind, self.default)

    def convert(self, value: Any, where: str) -> Any:
        """Check and convert a value; a bad one is a ConfigError saying where it came from."""
        if self.optional and _is_none(value):
            return None
        try:
            if self.nargs:
                items = value if isinstance(value, (list, tuple)) else [value]
                converted = [self.type(v) for v in items]
            else:
                if isinstance(value, (list, tuple)) and self.type is not _float_or_floats:
                    raise ValueError(f"expected one value, got a list {list(value)!r}")
                converted = self.type(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: bad value for '{self.name}': {err}") from None
        if self.choices is not None:
            values = converted if self.nargs else [converted]
            bad = [v for v in values if v not in self.choices]
            if bad:
                shown = ", ".join(str(c) for c in self.choices)
                raise ConfigError(f"{where}: '{self.name}' must be one of {shown}, not {bad[0]!r}")
        return converted


def _opt(name, type_, default, help_, kinds=_TVI, group="system", required=(), **kw) -> Option:
    return Option(name, type_, default, help_, frozenset(kinds), group, required=frozenset(required), **kw)


AMP_LEVELS = ("O0", "O1", "O2", "O3")
PRECISIONS = ("fp32", "int8")
DEMO_MODEL = "tf_mobilenet_v1_025"  # its ImageNet weights ship in the package
DEVICES = ("CPU", "GPU", "Ascend")  # MindSpore's device targets

# fmt: off
OPTIONS: tuple[Option, ...] = (
    # system
    _opt("mode", _int, 0, "0: graph mode (compiled), 1: PyNative (eager)", choices=(0, 1)),
    _opt("device_target", _str, "auto", "CPU, GPU, Ascend, or auto (MindSpore's default for this install)",
         choices=("auto", *DEVICES)),
    _opt("distribute", str2bool, False, "data parallel over the ranks started by msrun/mpirun", _TV),
    _opt("seed", _int, 42, "seed of python, numpy, MindSpore and the data shuffle", _TV),
    _opt("log_interval", _int, 15, "print a step line every N steps (0: epoch lines only)", _T),
    _opt("tensorboard", str2bool, False, "also write the run's curves as TensorBoard event files, in log_dir "
         "(tensorboardX: pip install .[tensorboard])", _T),
    _opt("log_dir", _str, "", "folder of the TensorBoard event files; setting it turns tensorboard on ('': "
         "<ckpt_save_dir>/tensorboard)", _T),
    _opt("val_while_train", str2bool, True, "validate on val_split after every val_interval epochs", _T),
    _opt("val_interval", _int, 1, "epochs between validations while training", _T),
    _opt("dataset_sink_mode", str2bool, False,
         "feed batches through MindSpore's device data queue (GPU/Ascend; on CPU steps are driven from Python and "
         "the run says why)", _T),
    _opt("pynative_jit", str2bool, False,
         "with mode 1 (PyNative), compile the model's forward (and so its backward) as one graph with mindspore.jit: "
         "graph-mode speed with PyNative around it (mindcv's 'F' context); off keeps every op eager for debugging", _T),
    # dataset
    _opt("dataset", _str, None, "imagenet, folder, cifar10 or cifar10_demo (packaged, no download); None: the "
         "training run's (validate/infer/export with its checkpoint), else cifar10 or imagenet by what data_dir holds, "
         "else cifar10_demo (infer, export: imagenet)", _TVI | _E, "dataset", choices=DATASET_NAMES, optional=True),
    _opt("data_dir", _str, "", "data set folder ('' for cifar10_demo)", _TV, "dataset"),
    _opt("train_split", _str, "train", "training split name", _T, "dataset"),
    _opt("val_split", _str, "val", "validation split name (CIFAR-10: the test batch)", _TV, "dataset"),
    _opt("dataset_download", str2bool, False, "download the data set when missing (cifar10 only)", _TV, "dataset"),
    _opt("num_parallel_workers", _int, 2, "data workers per process", _TV, "dataset"),
    _opt("shuffle", str2bool, True, "shuffle the training data each epoch (seeded)", _T, "dataset"),
    _opt("num_samples", _int, None, "use only this many samples per split and shard (None: all)", _TV, "dataset",
         optional=True),
    _opt("batch_size", _int, 64, "images per step and device (global batch: batch_size x ranks); infer: per forward "
         "pass; export: the batch the files are traced and checked at (both take any batch); benchmark: the data "
         "pipeline's batch",
         _MODEL | {"benchmark"}, "dataset", kind_defaults=(("infer", 8), ("export", 1))),
    _opt("drop_remainder", str2bool, True, "drop the last partial training batch", _T, "dataset"),
    _opt("normalize_on_device", str2bool, False, "uint8 batches, normalised in the network's first op instead of "
         "per image on the host (not with mixup, cutmix, re_prob)", _T, "dataset"),
    # augmentation
    _opt("image_resize", _int, None, "input resolution (training and evaluation crop; export: the file's input); None: "
         "the run's, else the data set's (CIFAR-10: 96), else the model's (benchmark: 224)", _MODEL | {"benchmark"},
         "augmentation", optional=True, aliases=("image_size",), kind_defaults=(("benchmark", 224),)),
    _opt("scale", _float, [0.08, 1.0], "RandomResizedCrop area range", _T, "augmentation", nargs="+"),
    _opt("ratio", _float, [0.75, 1.333], "RandomResizedCrop aspect range", _T, "augmentation", nargs="+"),
    _opt("hflip", _float, 0.5, "horizontal flip probability", _T, "augmentation"),
    _opt("vflip", _float, 0.0, "vertical flip probability", _T, "augmentation"),
    _opt("color_jitter", _float_or_floats, None, "colour jitter strength (one number or 3/4)", _T, "augmentation",
         optional=True),
    _opt("auto_augment", _str, None, "e.g. randaug-m9-mstd0.5, autoaug, trivialaugwide", _T, "augmentation",
         optional=True),
    _opt("re_prob", _float, 0.0, "random erasing probability", _T, "augmentation"),
    _opt("re_scale", _float, [0.02, 0.33], "random erasing area range", _T, "augmentation", nargs="+"),
    _opt("re_ratio", _float, [0.3, 3.3], "random erasing aspect range", _T, "augmentation", nargs="+"),
    _opt("re_value", _int, 0, "random erasing fill value", _T, "augmentation"),
    _opt("re_max_attempts", _int, 10, "random erasing attempts", _T, "augmentation"),
    _opt("mixup", _float, 0.0, "mixup Beta alpha (0: off)", _T, "augmentation"),
    _opt("cutmix", _float, 0.0, "cutmix Beta alpha (0: off)", _T, "augmentation"),
    _opt("cutmix_prob", _float, 1.0, "probability that a batch is mixed", _T, "augmentation"),
    _opt("crop_pct", _float, None, "evaluation center-crop fraction (None: the model's default)",
         kinds=_MODEL, group="augmentation", optional=True),
    _opt("interpolation", _str, None, "resize interpolation (None: the run's, else the model's)", _MODEL,
         "augmentation", choices=("bilinear", "bicubic", "nearest", "area"), optional=True),
    _opt("mean", _float, None, "normalisation mean on the 0-255 scale (None: the run's, else the data set's, else the "
         "model's)", kinds=_MODEL, group="augmentation", nargs="+", optional=True),
    _opt("std", _float, None, "normalisation std on the 0-255 scale (None: as mean)", _MODEL, "augmentation",
         nargs="+", optional=True),
    # model
    _opt("model", _str, DEMO_MODEL, "model name (python -m mindcv_mobilenet.summary lists them)", _MODEL | _C, "model",
         required=_E | _C),
    _opt("num_classes", _int, None, "classes (None: from the data set; export: the checkpoint's; convert: the "
         "weights')", _MODEL | _C, "model", optional=True),
    _opt("in_channels", _int, 3, "input channels", _MODEL, "model"),
    _opt("drop_rate", _float, None, "classifier dropout (None: the model's default)", _T, "model", optional=True),
    _opt("pretrained", str2bool, False, "start from the published ImageNet weights (train: True for the built-in "
         "model, whose weights ship in the package)", _MODEL, "model"),
    _opt("ckpt_path", _str, "", "initialise the weights from this checkpoint (weights only; export without it: random "
         "weights, with a warning)", _MODEL, "model"),
    _opt("ema", str2bool, False, "train: keep an EMA of the weights; validate/infer/export: use the EMA weights",
         _MODEL, "model"),
    _opt("ema_decay", _float, 0.9999, "EMA decay", _T, "model"),
    # fine-tuning (engine/finetune.py)
    _opt("freeze_backbone", str2bool, False, "train the classifier only, on backbone features computed once per run",
         _T, "model"),
    _opt("freeze_bn", str2bool, False, "BatchNorm in inference mode: statistics, gamma and beta frozen", _T, "model"),
    _opt("layer_decay", _float, None, "layer-wise lr decay in (0, 1]: layer i of n trains at lr x decay^(n-i)", _T,
         "model", optional=True),
    _opt("bn_calibration_images", _int, 512, "weights with BatchNorm folded in get real BatchNorm statistics from "
         "this many training images before training (0: keep them folded)", _T, "model"),
    _opt("amp_level", _str, "O0", "mixed precision: O0 fp32, O1 white-list fp16, O2 all but black-list, O3 all fp16",
         group="model", choices=AMP_LEVELS),
    # validation and inference
    _opt("backend", _str, "mindspore", "mindspore, or onnxruntime (exported to ONNX once, cached; pip install .[onnx])",
         _V | _I, "inference", choices=("mindspore", "onnxruntime")),
    _opt("precision", _str, "fp32", "fp32, or int8 (validate/infer: with --backend onnxruntime; export: ONNX files): "
         "ONNX Runtime static quantization (QDQ, per-channel weights) calibrated on real images, cached",
         _V | _I | _E, "inference", choices=PRECISIONS),
    _opt("calib_dir", _str, "", "int8: folder of calibration images (searched recursively); '': validate/infer: the "
         "data set's training split when data_dir has one, else the images evaluated (with a warning); export: "
         "required", _V | _I | _E, "inference"),
    _opt("calib_images", _positive_int, 300, "int8: calibrate on at most this many images (drawn with a fixed seed)",
         _V | _I | _E, "inference"),
    _opt("output", _str, "", "validate: also write the results to this JSON file; infer: write the predictions to "
         "this .json or .csv file; export: the file or folder to write, extension set per format (unset: "
         "./<model>.mindir/.onnx); convert: the MindSpore checkpoint to write (.ckpt); plot: the picture to write "
         "(unset: RUN_DIR/curves.png)", _V | _I | _E | _C | {"plot"}, "inference", required=_C),
    _opt("confusion", _str, "", "write the confusion matrix as this picture (.png; at most 100 classes) and the "
         "per-class Top-1 beside it (<name>_per_class.csv); unset: beside --output (<name>_confusion.png) when the "
         "data set has at most 100 classes", _V, "inference"),
    _opt("image_path", _str, [], "image files and/or folders (folders are searched recursively)", _I, "inference",
         nargs="+"),
    _opt("topk", _positive_int, 5, "classes to report per image", _I, "inference"),
    _opt("class_names", _str, "", "class list: JSON saved with a checkpoint, or one name per line; unset: "
         "class_names.json beside --ckpt_path, else ImageNet/CIFAR-10 names", _I, "inference"),
    _opt("save_dir", _str, "", "write a copy of each image annotated with its top predictions here", _I, "inference"),
    # export, convert, summary and doctor (the package's other scripts)
    _opt("file_format", _upper, ["MINDIR"], "formats to write (both with a dynamic batch axis)", _E, "export",
         nargs="+", choices=("MINDIR", "ONNX")),
    _opt("no_check", str2bool, False, "skip reloading and comparing the exported files", _E, "export"),
    _opt("force", str2bool, False, "overwrite existing output files", _E | _C, "export"),
    _opt("input", _str, "", "weights to convert: torchvision .npz or .pth/.pt (needs torch); Keras .h5 or .npz with "
         "Keras names, TFLite .tflite (pip install .[convert])", _C, "convert", required=_C),
    _opt("bn_eps", _float, None, "BatchNorm eps of the source (None: torchvision's, 1e-5 V2, 1e-3 V3)", _C,
         "convert", optional=True),
    _opt("skip_padding_check", str2bool, False, "V3: do not measure the padding difference (the warning is still "
         "printed)", _C, "convert"),
    _opt("pattern", _str, "*", "shell-style filter on model names", {"summary"}, "summary"),
    _opt("run_dir", _str, "", "run folder holding metrics.jsonl (train.py's --ckpt_save_dir)", {"plot"}, "plot",
         positional=True, required={"plot"}),
    _opt("markdown", str2bool, False, "print a Markdown table (as in the README)", {"summary"}, "summary"),
    _opt("ld_library_path", str2bool, False, "print the pip-installed CUDA library folders, ':'-separated, and exit",
         {"doctor"}, "doctor"),
    _opt("backends", _str, list(DEVICES), "device backends to probe", {"doctor"}, "doctor", nargs="+",
         choices=DEVICES),
    # checkpoints
    _opt("resume", _str, "", "resume training from this checkpoint (weights, optimizer, epoch, LR, loss scale, EMA)",
         _T, "checkpoint"),
    _opt("ckpt_save_dir", _str, "./ckpt", "run folder: checkpoints, config.yaml, metrics.jsonl, class_names.json; "
         "validate/infer/export without --ckpt_path or --pretrained: the run whose <model>_best.ckpt (else newest "
         "<model>-E_S.ckpt) they use", _MODEL, "checkpoint"),
    _opt("ckpt_save_interval", _int, 1, "save a checkpoint every N epochs", _T, "checkpoint"),
    _opt("keep_checkpoint_max", _int, 10, "keep the last N periodic checkpoints (the best one is kept too)", _T,
         "checkpoint"),
    _opt("ckpt_save_policy", _str, "latest_k", "accepted for mindcv recipes: the last N plus the best are kept", _T,
         "checkpoint", choices=("latest_k", "top_k")),
    # training
    _opt("epoch_size", _int, 5, "epochs to train", _T, "training"),
    _opt("loss", _str, "CE", "CE: cross-entropy (soft targets with mixup/cutmix)", _T, "training", choices=("CE",)),
    _opt("label_smoothing", _float, 0.1, "label smoothing", _T, "training"),
    _opt("opt", _str, "adamw", "optimizer", _T, "training", choices=OPTIMIZERS),
    _opt("momentum", _float, 0.9, "momentum (momentum, sgd, rmsprop)", _T, "training"),
    _opt("use_nesterov", str2bool, False, "Nesterov momentum (momentum, sgd)", _T, "training",
         aliases=("nesterov",)),
    _opt("weight_decay", _float, 0.02, "weight decay", _T, "training"),
    _opt("filter_bias_and_bn", str2bool, True, "no weight decay on biases and BatchNorm", _T, "training"),
    _opt("weight_decay_filter", _str, None, "mindcv: 'auto'/'norm_and_bias' (= filter_bias_and_bn True), 'disable'",
         _T, "training", optional=True, choices=("auto", "norm_and_bias", "disable")),
    _opt("eps", _float, 1e-8, "optimizer epsilon (adamw, rmsprop; rmsprop adds it inside the sqrt, as TF)", _T,
         "training"),
    _opt("loss_scale", _float, 1.0, "loss scale (initial value when dynamic)", _T, "training"),
    _opt("dynamic_loss_scale", str2bool, False, "halve the scale on non-finite gradients, double it after "
         "loss_scale_window good steps", _T, "training"),
    _opt("loss_scale_window", _int, 1000, "good steps before a dynamic loss scale doubles", _T, "training"),
    _opt("clip_grad", str2bool, False, "clip gradients by global norm", _T, "training"),
    _opt("clip_value", _float, 15.0, "global norm for clip_grad", _T, "training"),
    # scheduler
    _opt("scheduler", _str, "cosine_decay", "learning-rate schedule (after linear warmup)", _T, "scheduler",
         choices=SCHEDULERS),
    _opt("lr", _float, 0.002, "peak learning rate (of the global batch)", _T, "scheduler"),
    _opt("min_lr", _float, 0.0, "final learning rate of cosine_decay", _T, "scheduler"),
    _opt("warmup_epochs", _float, 0.5, "linear warmup epochs", _T, "scheduler"),
    _opt("warmup_factor", _float, 0.0, "warmup starts at lr x warmup_factor", _T, "scheduler"),
    _opt("decay_epochs", _int, None, "cosine: epochs to reach min_lr (None: all after warmup); step_decay: period",
         _T, "scheduler", optional=True),
    _opt("decay_rate", _float, 0.9, "step/multi-step/exponential factor; polynomial power", _T, "scheduler"),
    _opt("multi_step_decay_milestones", _int, [30, 60, 90], "epochs where multi_step_decay multiplies by decay_rate",
         _T, "scheduler", nargs="+"),
    _opt("lr_epoch_stair", str2bool, False, "change the LR once per epoch instead of every step", _T, "scheduler"),
    _opt("num_cycles", _int, 1, "cosine cycles", _T, "scheduler"),
    _opt("cycle_decay", _float, 1.0, "peak LR factor of each further cosine cycle", _T, "scheduler"),
)
# fmt: on

OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
# how images are prepared: unset, they mean the training run's (config.yaml beside a checkpoint), else the data set's
# or the model's (mindcv_mobilenet/data/preprocessing.py decides)
PREPROCESSING_KEYS = ("dataset", "image_resize", "crop_pct", "interpolation", "mean", "std")
RUN_CONFIG_FILE = "config.yaml"


class Config(argparse.Namespace):
    """The resolved configuration: attribute access (``cfg.lr``) plus :meth:`to_dict`, :meth:`save`, ``str()``.

    ``guessed`` (outside the keys: not saved, printed or compared) names the keys the parser guessed (``dataset``
    from what ``data_dir`` holds) rather than took from a default, the file or the command line: a training run's
    ``config.yaml`` may replace them (:func:`adopt_run_preprocessing`).
    """

    __slots__ = ("guessed",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guessed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def __str__(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None).rstrip()

    def save(self, path: str) -> str:
        """Write the config as YAML (atomically); it loads back with ``-c``."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write("# resolved configuration of this run; rerun with: -c " + os.path.basename(path) + "\n")
            yaml.safe_dump({k: v for k, v in self.to_dict().items() if k != "config"}, f, sort_keys=False,
                           default_flow_style=None)
        return path


def program(kind: str) -> str:
    """How script ``kind`` is started (its name in --help and errors)."""
    return f"python -m mindcv_mobilenet.{kind}" if kind in _MODULE_SCRIPTS else f"{kind}.py"


def options_for(kind: str, extra: Sequence[Option] = ()) -> list[Option]:
    """The options whose command-line flags ``kind`` takes, plus ``extra`` (script-specific ones)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return [o for o in OPTIONS if kind in o.kinds] + list(extra)


# Names other trainers use for a key (timm, torchvision, Keras); spelling alone would not lead to mindcv's names.
# (Keys of the model_zoo that are accepted as they are written live in compat.FOREIGN_KEYS.)
SYNONYMS = {
    "lerning_rate": "lr", "epochs": "epoch_size", "num_epochs": "epoch_size",
    "optimizer": "opt", "optim": "opt", "model_name": "model", "data": "data_dir",
    "data_path": "data_dir", "img_size": "image_resize", "resume_from": "resume",
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

    Keys of the model_zoo (:data:`compat.FOREIGN_KEYS`) are read as this project's keys (``kind`` picks the meaning
    of ``data_url``: infer.py's images, else the data set folder).
    """
    return _read_yaml(path, options, kind)[0]


def _read_yaml(path: str, options: Sequence[Option] | None, kind: str) -> tuple[dict[str, Any], list[str]]:
    """(converted values, start-up notes of compat.translate) of a YAML file."""
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
    Keys of the model_zoo and bare ``key=value`` arguments are read as this project's keys (:mod:`.compat`); what
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
    if kind != "train":
        adopt_run_preprocessing(cfg)
    notes = sources.notes + _derived_settings(cfg, kind, given)
    if launched_rank() == 0:  # one line per launch, not per rank
        for note in dict.fromkeys(notes):
            print(f"note: {note}", file=sys.stderr, flush=True)
    return cfg


def dataset_for_data_dir(data_dir: str) -> str:
    """The data set an unset ``dataset`` means for ``data_dir``: CIFAR-10 when it holds the batch files, else a
    folder in ImageNet layout."""
    from .data.cifar10 import find_cifar_dir

    return "cifar10" if find_cifar_dir(os.path.abspath(data_dir)) else "imagenet"


def adopt_run_preprocessing(cfg: Config) -> str | None:
    """Fill unset (None) or guessed (``cfg.guessed``) preprocessing keys from the ``config.yaml`` beside
    ``cfg.ckpt_path`` (a train.py run folder), so that a fine-tuned model is evaluated the way it was trained. Returns
    that file's path when it gave any. Called by the parser for ``--ckpt_path`` and, for the checkpoint a run folder
    offers when neither ``--ckpt_path`` nor ``--pretrained`` is given, by ``inference.loading.use_run_checkpoint``."""
    if not getattr(cfg, "ckpt_path", ""):
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(cfg.ckpt_path)), RUN_CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        values = load_yaml(path)
    except ConfigError as err:
        print(f"warning: ignoring {path}: {err}", file=sys.stderr, flush=True)
        return None
    guessed = getattr(cfg, "guessed", ())
    adopted = [k for k in PREPROCESSING_KEYS
               if k in cfg and (getattr(cfg, k) is None or k in guessed) and values.get(k) is not None]
    for key in adopted:
        setattr(cfg, key, values[key])
    if guessed:
        cfg.guessed = tuple(k for k in guessed if k not in adopted)
    if adopted and launched_rank() == 0:
        shown = ", ".join(f"{k}={getattr(cfg, k)}" for k in adopted)
        print(f"note: preprocessing from the training run's {path}: {shown}", file=sys.stderr, flush=True)
    return path if adopted else None


def default_dataset(cfg: Config, kind: str) -> str:
    """What an unset ``dataset`` means: infer, export: ImageNet-style image files (the model's preprocessing); else
    CIFAR-10 when ``data_dir`` holds its batch files, ImageNet layout for any other folder, and the packaged demo
    without ``data_dir``."""
    if kind in ("infer", "export"):
        return "imagenet"
    return dataset_for_data_dir(cfg.data_dir) if cfg.data_dir else DEMO_DATASET


def _derived_settings(cfg: Config, kind: str, given: set[str]) -> list[str]:
    """What the command lines leave to the scripts: the data set when ``dataset`` is unset (:func:`default_dataset`,
    e.g. the model_zoo's ``--data_url``), canonical model names (``mobilenet_v3_small``), and data parallel when
    several ranks were started (``mpirun -n 8 python train.py ...``) and ``distribute`` is unset. Returns start-up
    notes."""
    notes = []
    if "dataset" in cfg and cfg.dataset is None:
        cfg.dataset = default_dataset(cfg, kind)
        cfg.guessed = ("dataset",)
    if "model" in cfg:
        from .models.registry import canonical_model_name  # MindSpore: the scripts import it next anyway

        canonical = canonical_model_name(cfg.model)
        if canonical != cfg.model:
            notes.append(f"model {cfg.model} is {canonical}")
            cfg.model = canonical
    if kind == "train" and not given & {"model", "pretrained", "ckpt_path", "resume"}:
        cfg.pretrained = True  # the built-in demo fine-tunes the packaged weights of the built-in model
    ranks = launched_ranks()
    if "distribute" in cfg and "distribute" not in given and ranks > 1:
        cfg.distribute = True
        notes.append(f"started as {ranks} ranks and distribute unset: distribute True (data parallel)")
    return notes


def _launch_env(keys: Sequence[str], default: int, env: Mapping[str, str] | None) -> int:
    env = os.environ if env is None else env
    return next((int(env[k]) for k in keys if env.get(k, "").isdigit()), default)


def launched_ranks(env: Mapping[str, str] | None = None) -> int:
    """How many ranks msrun/mpirun started (1 when started alone), read before MindSpore starts its collectives."""
    return _launch_env(("MS_WORKER_NUM", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"), 1, env)


def launched_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank as msrun/mpirun set it (0 when started alone)."""
    return _launch_env(("RANK_ID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"), 0, env)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _check(cfg: Config, kind: str) -> None:
    """Cross-key checks and mindcv spellings folded into one meaning."""
    for key in ("batch_size", "image_resize", "in_channels"):
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
