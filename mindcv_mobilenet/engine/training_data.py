"""The data side of a training run: the preprocessing resolved once, the trees scanned once, the batches of each epoch.

Every loader of a run (each epoch's training pipeline, validation, BatchNorm calibration, the frozen-backbone feature
passes) is built by :meth:`TrainingData.loader` from the recipe's data and augmentation keys and the run's
:class:`~mindcv_mobilenet.data.preprocessing.DataConfig`. The trees are scanned once; each epoch gets a new pipeline on
them whose data order depends only on ``seed + epoch`` (the caller seeds), so a resumed run sees the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, replace

from mindspore import nn

from ..data import create_dataset, create_loader
from ..data.dataset import DataSource, load_source
from ..data.loader import loader_steps
from ..data.preprocessing import DataConfig
from ..utils.errors import UserError
from .distributed import DistInfo, Reducer
from .finetune import FeatureCache, cache_features


def iterate(loader) -> Iterator:
    """One pass over a loader as (image, label) tensors."""
    yield from loader.create_tuple_iterator(num_epochs=1, output_numpy=False)


def _augmentation(cfg: argparse.Namespace) -> dict:
    """The recipe's training augmentation keys (preprocessing itself is the data config's)."""
    return {"auto_augment": cfg.auto_augment, "scale": tuple(cfg.scale), "ratio": tuple(cfg.ratio),
            "hflip": cfg.hflip, "vflip": cfg.vflip, "color_jitter": cfg.color_jitter, "re_prob": cfg.re_prob,
            "re_scale": tuple(cfg.re_scale), "re_ratio": tuple(cfg.re_ratio), "re_value": cfg.re_value,
            "re_max_attempts": cfg.re_max_attempts}


@dataclass(frozen=True)
class TrainingData:
    """What a run trains and validates on. ``steps_per_epoch`` and ``input_normalization`` are the training loader's
    (:func:`load_training_data` fills them); with a frozen backbone the caches hold the features instead of images."""

    cfg: argparse.Namespace
    info: DistInfo
    preprocessing: DataConfig
    train_source: DataSource
    val_source: DataSource | None
    num_classes: int
    steps_per_epoch: int = 0
    input_normalization: tuple | None = None  # the (mean, std) the network applies (``normalize_on_device``)
    train_cache: FeatureCache | None = None
    val_cache: FeatureCache | None = None

    def loader(self, source: DataSource, training: bool, sharded: bool = True, host_normalized: bool = False):
        """The batched pipeline of ``source`` for this rank (its shard unless not ``sharded``).

        With ``normalize_on_device`` the images are uint8 for :class:`NormalizedInput` unless ``host_normalized``
        (for images given to the bare model).
        """
        cfg = self.cfg
        shards = self.info.distributed and sharded
        dataset = create_dataset(
            data_source=source, shuffle=cfg.shuffle and training, num_samples=cfg.num_samples,
            num_parallel_workers=cfg.num_parallel_workers, num_shards=self.info.size if shards else None,
            shard_id=self.info.rank if shards else None,
        )
        transform = self.preprocessing.transforms(training, **(_augmentation(cfg) if training else {}))
        return create_loader(
            dataset, batch_size=cfg.batch_size, drop_remainder=training and cfg.drop_remainder, is_training=training,
            mixup=cfg.mixup if training else 0.0, cutmix=cfg.cutmix if training else 0.0,
            cutmix_prob=cfg.cutmix_prob, num_classes=self.num_classes, transform=transform,
            num_parallel_workers=cfg.num_parallel_workers, label_smoothing=cfg.label_smoothing,
            normalize_on_device=cfg.normalize_on_device and not host_normalized,
        )

    def training_loader(self):
        """A new training pipeline (one per epoch: the caller seeds its shuffle and augmentation)."""
        return self.loader(self.train_source, training=True)

    def cached_batches(self, epoch: int) -> Iterator:
        """The cached features of the training split, shuffled by ``seed + epoch``."""
        return self.train_cache.batches(self.cfg.batch_size, self.cfg.drop_remainder, seed=self.cfg.seed + epoch)

    def validation_batches(self) -> Iterator:
        """The validation split: its cached features, or a new pipeline (once every file has been read, it reads
        them in C++: data/folder.py)."""
        if self.val_cache is not None:
            return self.val_cache.batches(self.cfg.batch_size)
        return iterate(self.loader(self.val_source, training=False))

    def calibration_images(self) -> Iterator:
        """Training images with the evaluation transform, normalised on the host: what folded BatchNorm's statistics
        are measured on. Every rank gets the same ones (no sharding), so the ranks start from identical weights."""
        loader = self.loader(self.train_source, training=False, sharded=False, host_normalized=True)
        return (images for images, _ in iterate(loader))

    def with_cached_features(self, model: nn.Cell) -> TrainingData:
        """This data with both splits replaced by ``model``'s backbone features, computed once (freeze_backbone)."""
        train_cache = cache_features(model, iterate(self.loader(self.train_source, training=False)), "training")
        val_cache = (cache_features(model, iterate(self.loader(self.val_source, training=False)), "validation")
                     if self.val_source is not None else None)
        steps = train_cache.steps(self.cfg.batch_size, self.cfg.drop_remainder)  # = the loader's
        return replace(self, train_cache=train_cache, val_cache=val_cache, steps_per_epoch=steps)

    def share_reads(self, source: DataSource, reducer: Reducer) -> None:
        """Merge what the ranks' readers found in their shards, so every rank can switch to reading in C++."""
        if self.info.distributed:
            source.share_reads(reducer.sum, self.info.size)


def load_training_data(cfg: argparse.Namespace, info: DistInfo, preprocessing: DataConfig) -> TrainingData:
    """Scan the training (and, with ``val_while_train``, validation) tree once and size an epoch."""
    def scan(split: str) -> DataSource:
        return load_source(preprocessing.dataset, cfg.data_dir or None, split, cfg.dataset_download)

    train_source = scan(cfg.train_split)
    data = TrainingData(cfg, info, preprocessing, train_source, None, cfg.num_classes or len(train_source.class_names))
    first = data.training_loader()
    steps = loader_steps(first)
    if steps == 0:
        raise UserError(f"no full batch of {cfg.batch_size} in the training data: lower batch_size")
    return replace(data, val_source=scan(cfg.val_split) if cfg.val_while_train else None, steps_per_epoch=steps,
                   input_normalization=first.info.input_normalization)
