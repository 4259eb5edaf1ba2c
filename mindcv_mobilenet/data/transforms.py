"""Image transform lists with mindcv's names and defaults (``create_transforms``), built from MindSpore's C++ ops.

Inputs are decoded HWC uint8 RGB arrays; outputs are float32 CHW. For sources of encoded bytes (image folders),
:func:`with_decode` puts the decoding op in front (the loader does this).
"""

from __future__ import annotations

import inspect
import math
from typing import Sequence, Union

from mindspore.dataset import vision
from mindspore.dataset.vision import Inter

from ..constants import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from ..utils.errors import ConfigError
from .auto_augment import auto_augment_ops
from .constants import CIFAR10_MEAN, CIFAR10_STD, dataset_spec
from .decode import decode_image

INTERPOLATIONS = {
    "bilinear": Inter.BILINEAR,
    "bicubic": Inter.BICUBIC,
    "nearest": Inter.NEAREST,
    "area": Inter.AREA,
}

Size = Union[int, Sequence[int]]


def _interpolation(name: str) -> Inter:
    try:
        return INTERPOLATIONS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown interpolation '{name}': use one of {', '.join(INTERPOLATIONS)}") from None


def _secondary(auto_augment: str | None, color_jitter, interpolation: Inter, mean) -> list:
    """Auto-augment or colour jitter (mindcv applies one or the other)."""
    if auto_augment:
        # Geometric augment ops support only nearest/bilinear.
        aug_inter = interpolation if interpolation in (Inter.NEAREST, Inter.BILINEAR) else Inter.BILINEAR
        return auto_augment_ops(auto_augment, aug_inter, tuple(min(255, round(x)) for x in mean))
    if color_jitter is None:
        return []
    if isinstance(color_jitter, (list, tuple)):
        if len(color_jitter) not in (3, 4):
            raise ConfigError("color_jitter must be one number or 3/4 numbers (brightness, contrast, saturation, hue)")
        values = [float(v) for v in color_jitter]
    else:
        values = [float(color_jitter)] * 3
    # A number v means a factor in [max(0, 1 - v), 1 + v]; hue v means a shift in [-v, v].
    return [vision.RandomColorAdjust(*values)]


def _final(mean, std, re_prob: float, re_scale, re_ratio, re_value, re_max_attempts: int) -> list:
    ops = [vision.Normalize(mean=list(mean), std=list(std)), vision.HWC2CHW()]
    if re_prob > 0:
        ops.append(vision.RandomErasing(prob=re_prob, scale=re_scale, ratio=re_ratio, value=re_value,
                                        max_attempts=re_max_attempts))
    return ops


def transforms_imagenet_train(
    image_size: Size = 224,
    scale=(0.08, 1.0),
    ratio=(0.75, 1.333),
    hflip: float = 0.5,
    vflip: float = 0.0,
    color_jitter=None,
    auto_augment: str | None = None,
    interpolation: str = "bilinear",
    mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD,
    re_prob: float = 0.0,
    re_scale=(0.02, 0.33),
    re_ratio=(0.3, 3.3),
    re_value=0,
    re_max_attempts: int = 10,
    separate: bool = False,
    crop_pct: float | None = None,
):
    """RandomResizedCrop + flips, then auto-augment or colour jitter, then Normalize, HWC2CHW, RandomErasing."""
    del crop_pct  # eval-only; accepted so one kwargs dict serves both modes
    inter = _interpolation(interpolation)
    primary = [vision.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio), interpolation=inter)]
    if hflip > 0:
        primary.append(vision.RandomHorizontalFlip(prob=hflip))
    if vflip > 0:
        primary.append(vision.RandomVerticalFlip(prob=vflip))
    secondary = _secondary(auto_augment, color_jitter, inter, mean)
    final = _final(mean, std, re_prob, re_scale, re_ratio, re_value, re_max_attempts)
    return (primary, secondary, final) if separate else primary + secondary + final


def transforms_imagenet_eval(
    image_size: Size = 224,
    crop_pct: float = DEFAULT_CROP_PCT,
    mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD,
    interpolation: str = "bilinear",
    **_train_only,
) -> list:
    """Resize the shorter side to ``image_size / crop_pct``, center-crop ``image_size``, Normalize, HWC2CHW."""
    return _resize_center_crop(image_size, crop_pct, _interpolation(interpolation)) + [
        vision.Normalize(mean=list(mean), std=list(std)),
        vision.HWC2CHW(),
    ]


def _resize_center_crop(image_size: Size, crop_pct: float, inter) -> list:
    """Resize to ``image_size / crop_pct`` (the shorter side for a square size), then center-crop ``image_size``."""
    if isinstance(image_size, (tuple, list)) and image_size[0] != image_size[1]:
        scale_size: Size = tuple(int(math.floor(x / crop_pct)) for x in image_size)
    else:
        side = image_size[0] if isinstance(image_size, (tuple, list)) else image_size
        scale_size = int(math.floor(side / crop_pct))
    return [vision.Resize(scale_size, interpolation=inter), vision.CenterCrop(image_size)]


def transforms_cifar(
    image_size: Size = 32,
    is_training: bool = False,
    hflip: float = 0.5,
    auto_augment: str | None = None,
    color_jitter=None,
    interpolation: str = "bilinear",
    crop_pct: float | None = None,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    re_prob: float = 0.0,
    re_scale=(0.02, 0.33),
    re_ratio=(0.3, 3.3),
    re_value=0,
    re_max_attempts: int = 10,
    separate: bool = False,
    **_imagenet_only,
):
    """32 px images: pad-4 random crop + flip for training; resize to ``image_size`` when it is not 32.

    Evaluation resizes the whole image (no crop) unless ``crop_pct`` is given.
    """
    inter = _interpolation(interpolation)
    native = image_size in (32, (32, 32), [32, 32])
    primary = []
    if is_training:
        primary += [vision.RandomCrop((32, 32), padding=(4, 4, 4, 4))]
        if hflip > 0:
            primary.append(vision.RandomHorizontalFlip(prob=hflip))
    if crop_pct and not is_training:
        primary += _resize_center_crop(image_size, crop_pct, inter)
    elif not native:
        size = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size, image_size)
        primary.append(vision.Resize(size, interpolation=inter))
    secondary = _secondary(auto_augment, color_jitter, inter, mean) if is_training else []
    final = _final(mean, std, re_prob if is_training else 0.0, re_scale, re_ratio, re_value, re_max_attempts)
    if separate and is_training:
        return primary, secondary, final
    return primary + secondary + final


def with_decode(ops: Sequence) -> list:
    """``ops`` for encoded image bytes: :func:`~.decode.decode_image` in front (OpenCV's libjpeg-turbo, twice as
    fast as MindSpore's ``Decode`` and ``RandomCropDecodeResize`` here even though the latter decodes only the crop).

    A list that already starts by decoding (``Decode``, ``RandomCropDecodeResize``, ``decode_image``) is returned as
    it is.
    """
    ops = list(ops)
    if ops and (ops[0] is decode_image or isinstance(ops[0], (vision.Decode, vision.RandomCropDecodeResize))):
        return ops
    return [decode_image] + ops


def _check_options(kwargs: dict) -> None:
    known = set()
    for fn in (transforms_imagenet_train, transforms_imagenet_eval, transforms_cifar):
        known |= {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD}
    unknown = sorted(set(kwargs) - known - {"is_training", "auto_augment", "separate"})
    if unknown:
        raise ConfigError(f"unknown transform option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def create_transforms(
    dataset_name: str = "",
    image_size: Size | None = None,
    is_training: bool = False,
    auto_augment: str | None = None,
    separate: bool = False,
    **kwargs,
):
    """Transform list for ``dataset_name`` ('' / imagenet / folder: ImageNet recipe; cifar10 / cifar10_demo) at
    ``image_size`` px (None: 224); mindcv's keyword for it, ``image_resize=``, is accepted too.

    ``kwargs`` are the recipe options (scale, ratio, hflip, vflip, color_jitter, interpolation, crop_pct, mean, std,
    re_prob, ...). With ``separate=True`` training returns (primary, secondary, final) lists for augment splits.
    """
    if "image_resize" in kwargs:  # mindcv's create_transforms(dataset_name, image_resize=224, ...)
        if image_size is not None:
            raise ConfigError("give the transforms' image_size or mindcv's image_resize, not both")
        image_size = kwargs.pop("image_resize")
    image_size = 224 if image_size is None else image_size
    _check_options(kwargs)
    if not dataset_spec((dataset_name or "folder").lower()).is_folder:
        return transforms_cifar(image_size, is_training=is_training, auto_augment=auto_augment, separate=separate,
                                **kwargs)
    if is_training:
        return transforms_imagenet_train(image_size, auto_augment=auto_augment, separate=separate, **kwargs)
    return transforms_imagenet_eval(image_size, **kwargs)
