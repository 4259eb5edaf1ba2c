"""One factory for every model: ``register_model`` adds a constructor, ``create_model`` builds one by name.

Where the names are written: each family file has an explicit table, one row per registered name
(``"mobilenet_v2_075_160": ("075", 160)``), which it hands to :func:`register_variant`, so grep and an editor find
every name. Not timm's one decorated function per name: V1-V3 have 90 names over three builder classes, and 90 functions
whose bodies differ in two numbers would hide the table they are, while a row says all there is to say.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from dataclasses import dataclass
from typing import Callable

from mindspore import nn

from ..constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from ..utils.errors import UserError

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """A model's defaults: where its weights are published and how its inputs are prepared.

    ``sha256`` may be a prefix of the digest (mindcv names files ``<model>-<first 8 hex of sha256>.ckpt``).
    ``checkpoint_num_classes`` is the classifier size of the published checkpoint (mindcv's V1 weights have 1001).
    ``weights_image_size``: the input size the published weights were trained at when the model's default input
    differs (mindcv publishes V1/V2 weights at 224 px only; the network is the same at every size).
    ``paper_note``: one line saying why the measured network differs from the paper's figures, where it does.
    ``image_size``: the square input resolution in pixels the model is built and evaluated at by default.
    ``test_image_size``/``test_crop_pct``: timm's larger evaluation size for the weights, where it has one (a recipe's
    ``image_size``/``crop_pct`` select it; the default stays ``image_size``).
    ``mean``/``std`` are on the 0..255 pixel scale, as everywhere in the suite. The classifier's name is the model
    class's (:func:`classifier_name`).
    """

    url: str = ""
    sha256: str = ""
    num_classes: int = 1000
    checkpoint_num_classes: int = 1000
    image_size: int = 224
    crop_pct: float = 0.875
    test_image_size: int | None = None
    test_crop_pct: float | None = None
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    weights_image_size: int | None = None
    first_conv: str = "features.0"
    top1: float | None = None
    top5: float | None = None
    paper_params_m: float | None = None
    paper_macs_m: float | None = None
    paper_note: str = ""


_model_constructors: dict[str, Callable[..., nn.Cell]] = {}
_model_configs: dict[str, ModelConfig] = {}
_model_classes: dict[str, type] = {}  # the builder class of each variant registered with register_variant
_model_aliases: dict[str, str] = {}  # other suites' names of registered models (not listed by list_models)


def register_model(name: str, config: ModelConfig) -> Callable[[Callable[..., nn.Cell]], Callable[..., nn.Cell]]:
    """Decorator registering ``fn`` as the constructor of model ``name`` with default config ``config``."""

    def decorator(fn: Callable[..., nn.Cell]) -> Callable[..., nn.Cell]:
        if name in _model_constructors:
            raise ValueError(f"model {name} registered twice")
        _model_constructors[name] = fn
        _model_configs[name] = config
        return fn

    return decorator


def register_model_alias(alias: str, name: str) -> None:
    """Accept ``alias`` (another suite's name, e.g. the model_zoo's ``mobilenet_v3_small``) for model ``name``."""
    if alias in _model_constructors or alias in _model_aliases:
        raise ValueError(f"model name {alias} registered twice")
    _check_name(name)
    _model_aliases[alias] = name


def canonical_model_name(name: str) -> str:
    """The registered name of ``name`` (itself, or what the alias stands for); unknown names come back unchanged."""
    return _model_aliases.get(name, name)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"mobilenet_v3*"``), sorted."""
    return sorted(name for name in _model_constructors if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    return canonical_model_name(name) in _model_constructors


def get_model_config(name: str) -> ModelConfig:
    """The default config of a registered model; an unknown name is a :class:`UserError` suggesting close ones."""
    return _model_configs[_check_name(name)]


def _check_name(name: str) -> str:
    """The registered name of ``name`` (an alias is resolved with one info line); unknown: UserError."""
    if name in _model_aliases:
        _logger.info("model %s is %s", name, _model_aliases[name])
        return _model_aliases[name]
    if name not in _model_constructors:
        close = difflib.get_close_matches(name, list(_model_constructors), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `python -m mindcv_mobilenet.summary` lists them"
        raise UserError(f"unknown model '{name}'{hint}")
    return name


def create_model(
    model_name: str,
    num_classes: int | None = None,
    pretrained: bool = False,
    in_channels: int = 3,
    checkpoint_path: str | None = None,
    drop_rate: float | None = None,
    ema: bool = False,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **kwargs,
) -> nn.Cell:
    """Build a registered model, optionally with its published weights or a local checkpoint.

    ``features_only=True`` returns the backbone alone (:class:`~mindcv_mobilenet.models.features.FeatureExtractor`):
    a tuple of feature maps at the reductions ``(2, 4, 8, 16, 32)[i]`` for ``i`` in ``out_indices``, with
    ``feature_info``; weights load as for the full model and the classifier is dropped.

    ``num_classes`` defaults to the model's config (1000). With ``pretrained`` or ``checkpoint_path`` and a different
    ``num_classes``, everything but the classifier is loaded and one log line says so. ``ema=True`` loads the EMA copy
    of the weights when the checkpoint has one.
    """
    model_name = _check_name(model_name)
    config = _model_configs[model_name]
    num_classes = config.num_classes if num_classes is None else num_classes
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    model = _model_constructors[model_name](num_classes=num_classes, in_channels=in_channels, **kwargs)
    model.default_cfg = config
    model.model_name = model_name
    if pretrained or checkpoint_path:
        from ..utils.checkpoint import load_model_weights, pretrained_checkpoint_path

        path = checkpoint_path or pretrained_checkpoint_path(model_name, config)
        load_model_weights(model, path, ema=ema)
    if features_only:
        from .features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    return model


@dataclass(frozen=True)
class Variant:
    """One row of a family's variant table: width (and V3's arch), mindcv's published 224-px checkpoint file
    (``<model>-<sha256 prefix>.ckpt``, "" when none), mindcv's Top-1/Top-5 for it, and the paper's size at 224 px."""

    alpha: float
    file: str = ""
    top1: float | None = None
    top5: float | None = None
    params_m: float | None = None
    macs_m: float | None = None
    arch: str = ""

    @property
    def sha256(self) -> str:
        """The digest prefix in the file name (what the download is checked against)."""
        return self.file.rsplit("-", 1)[-1].split(".")[0] if self.file else ""


def classifier_name(model_name: str) -> str:
    """Dotted name of the model's final ``nn.Dense`` (the class's ``classifier_name``), without building it."""
    model_class = _model_classes.get(_check_name(model_name))
    return getattr(model_class, "classifier_name", "classifier")


def register_variant(name: str, config: ModelConfig, model_class: type, doc: str, **arch_kwargs) -> Callable:
    """Register the thin constructor ``name(num_classes, in_channels, **kwargs)`` = ``model_class(**arch_kwargs, ...)``.

    Every MobileNet variant is one such call, for a row of its family's table, over the family's single builder class.
    """

    def constructor(num_classes: int = 1000, in_channels: int = 3, **kwargs) -> nn.Cell:
        return model_class(num_classes=num_classes, in_channels=in_channels, **arch_kwargs, **kwargs)

    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = doc
    _model_classes[name] = model_class
    return register_model(name, config)(constructor)
