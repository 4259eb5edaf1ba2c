"""The one option table of every script: ``train.py``, ``validate.py``, ``infer.py``, ``export.py``,
``python -m mindcv_mobilenet.convert|summary|doctor|plot`` and ``benchmark.py`` (its options handed in as ``extra``).

Every key is declared once in :data:`OPTIONS` with its type, default, help and the scripts that use it (``kinds``),
under mindcv's key names, so mindcv's recipes load unchanged. A default of None means "decided later, by the layer
that owns it": the data set and preprocessing by the data package (:mod:`mindcv_mobilenet.data.preprocessing`), data
parallel by the engine (:func:`mindcv_mobilenet.engine.distributed.wants_data_parallel`).

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.constants import DATASET_NAMES
from ..engine.optim import OPTIMIZERS
from ..engine.scheduler import SCHEDULERS
from ..utils.errors import ConfigError
from ..utils.values import str2bool, to_float, to_int, to_positive_int

KINDS = ("train", "validate", "infer", "export", "convert", "summary", "doctor", "plot", "benchmark")
_T, _V, _I, _E, _C = {"train"}, {"validate"}, {"infer"}, {"export"}, {"convert"}
_TV = _T | _V
_TVI = _TV | _I  # the scripts that run a model on data: an option's default kinds
_MODEL = _TVI | _E  # the scripts that build a model from its published weights or a checkpoint


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~"))


_int, _float = to_int, to_float


def _str(value: Any) -> str:
    if isinstance(value, (list, dict)):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _upper(value: Any) -> str:
    return _str(value).upper()


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
        """Check and convert a value; a bad one is a ConfigError saying where it came from and naming the key by each
        of its spellings (the value may have come under an alias)."""
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
            raise ConfigError(f"{where}: bad value for {self._spelt()}: {err}") from None
        if self.choices is not None:
            values = converted if self.nargs else [converted]
            bad = [v for v in values if v not in self.choices]
            if bad:
                shown = ", ".join(str(c) for c in self.choices)
                raise ConfigError(f"{where}: {self._spelt()} must be one of {shown}, not {bad[0]!r}")
        return converted

    def _spelt(self) -> str:
        """``'image_size'`` (or ``'image_size' (or image_resize, img_size)``) for messages."""
        return f"'{self.name}'" + (f" (or {', '.join(self.aliases)})" if self.aliases else "")


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
    _opt("distribute", str2bool, None, "data parallel over the ranks started by msrun/mpirun (None: when several "
         "were started)", _TV, optional=True),
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
    _opt("image_size", _int, None, "input resolution (training and evaluation crop; export: the file's input); None: "
         "the run's, else the data set's (CIFAR-10: 96), else the model's (benchmark: 224)", _MODEL | {"benchmark"},
         "augmentation", optional=True, aliases=("image_resize", "img_size"), kind_defaults=(("benchmark", 224),)),
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
    _opt("calib_images", to_positive_int, 300, "int8: calibrate on at most this many images (drawn with a fixed seed)",
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
    _opt("topk", to_positive_int, 5, "classes to report per image", _I, "inference"),
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


def options_for(kind: str, extra: Sequence[Option] = ()) -> list[Option]:
    """The options whose command-line flags ``kind`` takes, plus ``extra`` (script-specific ones)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return [o for o in OPTIONS if kind in o.kinds] + list(extra)
