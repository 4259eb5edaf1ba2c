"""``create_loader``: transforms, bad-file handling, batching and Mixup/CutMix on a ``create_dataset`` result."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Callable, Union

import mindspore as ms
import numpy as np
from mindspore.dataset import transforms, vision

from ..utils.errors import ConfigError
from .dataset import dataset_info, default_workers
from .mixup import Mixup
from .stats import BAD_FILE_COLUMN, BadFileGuard
from .transforms import create_transforms, with_decode

_logger = logging.getLogger("mindcv_mobilenet.data")

IMAGE_BRANCHES = ["image", "image_aug1", "image_aug2"]


def _map(dataset, ops, column, workers, multiproc):
    return dataset.map(operations=ops, input_columns=column, num_parallel_workers=workers,
                       python_multiprocessing=multiproc)


def _concat_branches(image, image_aug1, image_aug2, label):
    """Augment splits: stack clean and two augmented copies along the batch axis (3N images, 3N labels)."""
    return np.concatenate((image, image_aug1, image_aug2)), np.concatenate((label, label, label))


def _without_normalize(transform, separate: bool, mixing: float) -> tuple:
    """(the ops without their Normalize and HWC2CHW, (mean, std)); refused where float images are needed after it."""
    ops = list(transform)
    where = [i for i, op in enumerate(ops) if isinstance(op, vision.Normalize)]
    tail_ok = len(where) == 1 and all(isinstance(op, vision.HWC2CHW) for op in ops[where[0] + 1:])
    if separate or mixing > 0 or not tail_ok:
        raise ConfigError(
            "normalize_on_device needs a transform that ends with Normalize (then HWC2CHW) and no mixup, cutmix, "
            "random erasing or augment splits: turn those off or set normalize_on_device False"
        )
    normalize = ops[where[0]]
    return ops[:where[0]], (tuple(normalize.mean), tuple(normalize.std))


def create_loader(
    dataset,
    batch_size: int,
    drop_remainder: bool = False,
    is_training: bool = False,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    cutmix_prob: float = 0.0,
    num_classes: int = 1000,
    transform: Union[list, tuple] | None = None,
    target_transform: Union[list, Callable] | None = None,
    num_parallel_workers: int | None = None,
    python_multiprocessing: bool = False,
    separate: bool = False,
    label_smoothing: float = 0.0,
    normalize_on_device: bool = False,
):
    """Batches of ``image`` (float32 NCHW) and ``label`` (int32, or float32 soft one-hot with mixup/cutmix).

    Args:
        dataset: the result of :func:`create_dataset`.
        batch_size: images per batch.
        drop_remainder: drop the last partial batch; training only (evaluation always sees every image once).
        is_training: training mode (enables mixup/cutmix and bad-image substitution instead of removal).
        mixup, cutmix: Beta alphas; > 0 enables them (training only). cutmix_prob: probability a batch is mixed,
            as in mindcv; 0 with mixup/cutmix enabled means always.
        num_classes: width of the soft labels.
        transform: op list from :func:`create_transforms` (default: the data set's own recipe at 224 px), or the
            (primary, secondary, final) tuple with ``separate=True``.
        target_transform: label ops (default: cast to int32, for datasets not made by :func:`create_dataset`).
        num_parallel_workers: threads for the transform ops (with decoding; default for image folders: one per
            core, up to 8). python_multiprocessing: run them in processes.
        label_smoothing: smoothing folded into the soft labels when mixup/cutmix is on (otherwise leave it to the
            loss: labels stay int32).
        normalize_on_device: leave out the transform's ``Normalize`` and ``HWC2CHW``: images are uint8 NHWC and the
            network transposes and normalises them (wrap it in
            :class:`~mindcv_mobilenet.models.input_norm.NormalizedInput` with ``loader.info.input_normalization``,
            the (mean, std) left out; None when the loader normalises).

    The loader carries the dataset's :class:`~.dataset.DatasetInfo` with its ``batches`` and
    ``input_normalization`` filled in (``loader.info``).

    Images that failed to decode are removed (evaluation) or replaced by another readable file of the data set
    (training, done by the source), counted in ``loader.info.stats`` and reported at the end of each epoch.
    """
    columns = dataset.get_col_names()
    info = dataset_info(dataset)
    stats, name, encoded = info.stats, info.name, info.encoded
    rows = dataset.get_dataset_size()
    if not is_training and drop_remainder:
        _logger.info("create_loader: drop_remainder ignored for evaluation (every image must be scored)")
        drop_remainder = False
    guard = None
    if BAD_FILE_COLUMN in columns:
        guard = BadFileGuard(stats, (rows // batch_size) * batch_size if drop_remainder and is_training else rows)
        if not is_training:
            dataset = dataset.filter(guard.keep, input_columns=[BAD_FILE_COLUMN])
            dataset = dataset.project(["image", "label"])
    if transform is None:
        transform = create_transforms(name, is_training=is_training, separate=separate and is_training)
    input_normalization = None
    if normalize_on_device:
        transform, input_normalization = _without_normalize(transform, separate and is_training, mixup + cutmix)
    if encoded:  # decoding is the first image op (data/decode.py: decode_image)
        transform = (with_decode(transform[0]), *transform[1:]) if separate and is_training else with_decode(transform)
        num_parallel_workers = num_parallel_workers or default_workers()
    if target_transform is None and not name:  # a dataset from elsewhere: labels may come in another integer type
        target_transform = transforms.TypeCast(ms.int32)
    if target_transform is not None:  # this package's data sets give int32 labels already: no extra stage
        dataset = _map(dataset, target_transform, "label", num_parallel_workers, python_multiprocessing)

    branches = ["image"]
    if separate and is_training:
        if not (isinstance(transform, tuple) and len(transform) == 3):
            raise ValueError("separate=True needs the (primary, secondary, final) tuple from create_transforms")
        primary, secondary, final = transform
        dataset = _map(dataset, primary, "image", num_parallel_workers, python_multiprocessing)
        dataset = dataset.map(operations=transforms.Duplicate(), input_columns=["image"],
                              output_columns=["image", "image_aug1"])
        dataset = dataset.map(operations=transforms.Duplicate(), input_columns=["image_aug1"],
                              output_columns=["image_aug1", "image_aug2"])
        branches = IMAGE_BRANCHES
        for column in branches:
            ops = final if column == "image" else list(secondary) + list(final)
            dataset = _map(dataset, ops, column, num_parallel_workers, python_multiprocessing)
    else:
        dataset = _map(dataset, list(transform), "image", num_parallel_workers, python_multiprocessing)

    out_columns = branches + ["label"]
    if guard is not None and is_training:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, per_batch_map=guard.count_batch,
                                input_columns=[BAD_FILE_COLUMN])
    else:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if len(branches) > 1:
        dataset = dataset.map(operations=_concat_branches, input_columns=out_columns, output_columns=["image", "label"])

    if is_training and mixup + cutmix > 0:
        mixer = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=cutmix_prob if cutmix_prob > 0 else 1.0,
                      switch_prob=0.5, label_smoothing=label_smoothing, num_classes=num_classes)
        dataset = dataset.map(operations=mixer, input_columns=["image", "label"])
    dataset = dataset.project(["image", "label"])

    # With a filter MindSpore would count batches by running the whole pipeline; state the count instead (an upper
    # bound by the number of bad files, which are only known once read).
    batches = rows // batch_size if drop_remainder else math.ceil(rows / batch_size)
    dataset.info = replace(info, batches=batches, input_normalization=input_normalization)
    return dataset


def loader_steps(loader) -> int:
    """Batches per pass of a loader from :func:`create_loader` (stated, not counted by running the pipeline)."""
    return int(dataset_info(loader).batches or loader.get_dataset_size())
