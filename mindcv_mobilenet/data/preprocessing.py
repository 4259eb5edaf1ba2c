"""The one place that decides how images are prepared for a model: resolution, evaluation crop, interpolation and
normalisation (timm's ``resolve_data_config``). train, validate, infer and export all ask :func:`resolve_data_config`.

The recipe's keys (``image_size``, ``crop_pct``, ``interpolation``, ``mean``, ``std``) win where set; unset (None)
they mean "the model's" for photos of any size (ImageNet-style folders, image files): a published model is only as
accurate as its inputs match its training (224 px, crop 0.875, bilinear, ImageNet statistics for most of these, TF's
[-1, 1] for the ``tf_`` ones). CIFAR-10 has its own defaults (:data:`~.constants.DATASETS`: 96 px, CIFAR statistics,
no crop). validate/infer/export hand in the training run's ``config.yaml`` of a checkpoint (``run_config``, read by
:func:`mindcv_mobilenet.inference.loading.training_run_config`): it fills the keys the recipe leaves unset, so a
fine-tuned model is evaluated the way it was trained.

As timm's, the resolver is a function of its arguments: it reads no file and writes nothing back into ``args``; the
model's defaults come in as ``model`` (:func:`mindcv_mobilenet.models.get_model_config`), and what an unset data set
means for a folder on disk is the caller's to ask (:func:`~.dataset.dataset_for_data_dir`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .constants import dataset_spec
from .transforms import create_transforms

if TYPE_CHECKING:
    from ..models.registry import ModelConfig

# how images are prepared: unset (None), they mean the training run's, else the data set's, else the model's
PREPROCESSING_KEYS = ("dataset", "image_size", "crop_pct", "interpolation", "mean", "std")


@dataclass(frozen=True)
class DataConfig:
    """How images are prepared for one model: data set recipe, resolution, eval crop, interpolation, mean/std (0-255).

    ``crop_pct`` None: no center crop at evaluation (CIFAR's whole 32 px image is resized).
    """

    dataset: str
    image_size: int
    crop_pct: float | None
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def transforms(self, training: bool = False, auto_augment: str | None = None, separate: bool = False,
                   **augmentation: Any) -> list:
        """The data package's transform list (HWC uint8 RGB -> CHW float32); ``augmentation``: training keys
        (``scale``, ``ratio``, ``hflip``, ``re_prob``...)."""
        options: dict[str, Any] = {"interpolation": self.interpolation, "mean": list(self.mean), "std": list(self.std)}
        if self.crop_pct is not None and not training:
            options["crop_pct"] = self.crop_pct
        return create_transforms(self.dataset, image_size=self.image_size, is_training=training,
                                 auto_augment=auto_augment, separate=separate, **options, **augmentation)

    def as_settings(self) -> dict[str, Any]:
        """The recipe keys this config stands for (written to a run's ``config.yaml``)."""
        values = asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        return values

    def describe(self) -> str:
        crop = "none" if self.crop_pct is None else f"{self.crop_pct:g}"
        return f"{self.dataset} transforms at {self.image_size} px, crop_pct {crop}, {self.interpolation}"


def from_training_run(args: Any, run_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The preprocessing keys a training run's ``config.yaml`` (``run_config``) supplies: those it sets and ``args``
    leaves unset (None; a key ``args`` does not have counts as unset)."""
    if not run_config:
        return {}
    return {k: run_config[k] for k in PREPROCESSING_KEYS
            if getattr(args, k, None) is None and run_config.get(k) is not None}


def resolve_data_config(args: Any, model: ModelConfig, run_config: Mapping[str, Any] | None = None,
                        for_files: bool = False, default_dataset: str = "imagenet") -> DataConfig:
    """The data config of ``model`` (its default config) for ``args``: ``args``' keys where set, else the training
    run's (``run_config``: its ``config.yaml`` values), else the data set's defaults, else the model's.

    ``default_dataset``: what a data set unset in both means: for data on disk, what ``data_dir`` holds
    (:func:`~.dataset.dataset_for_data_dir`: train, validate); ImageNet-style photos otherwise (infer, export).
    ``for_files``: images of any size (inference on files): CIFAR models get a shorter-side resize + center crop to
    their resolution instead of the plain resize CIFAR's own 32 px images need.
    """
    values = {k: getattr(args, k, None) for k in PREPROCESSING_KEYS} | from_training_run(args, run_config)
    spec = dataset_spec(values["dataset"] or default_dataset)
    crop_pct, interpolation, mean, std = (values[k] for k in ("crop_pct", "interpolation", "mean", "std"))
    if crop_pct is None and spec.is_folder:
        crop_pct = model.crop_pct
    if crop_pct is None and for_files:
        crop_pct = 1.0
    return DataConfig(
        dataset=spec.name,
        image_size=int(values["image_size"] or spec.image_size or model.image_size),
        crop_pct=crop_pct,
        interpolation=interpolation or model.interpolation,
        mean=tuple(mean or spec.mean or model.mean),
        std=tuple(std or spec.std or model.std),
    )
