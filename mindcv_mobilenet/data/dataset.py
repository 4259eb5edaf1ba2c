"""``create_dataset``: ImageNet / class-per-folder trees and CIFAR-10 as ``mindspore.dataset`` pipelines.

Sharding: training shards are equal in size (MindSpore's DistributedSampler pads with repeats, so every rank runs the
same number of steps); evaluation shards are disjoint strided subsets whose union is exactly the data set, so every
image is scored once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import mindspore.dataset as ds

from ..constants import RESOURCES_DIR
from ..utils.download import default_cache_dir
from ..utils.errors import ConfigError, DataError
from .cifar10 import ArraySource, find_cifar_dir, load_cifar10
from .constants import DEMO_DATASET, dataset_spec
from .download import CIFAR10_MD5, CIFAR10_URL, download_cifar10
from .folder import MANIFEST_USAGE, ImageFileSource, check_root, resolve_split_dir, scan_image_folder
from .stats import DatasetStats

CIFAR10_DEMO_DIR = os.path.join(RESOURCES_DIR, "cifar10_demo")
EXTRA_OPTIONS = ("python_multiprocessing", "exact_shards", "url", "md5", "file_md5s")


def dataset_for_data_dir(data_dir: str) -> str:
    """What an unset ``dataset`` means for ``data_dir``: CIFAR-10 when it holds the batch files, a folder in ImageNet
    layout for any other folder, and the packaged demo without one (``''``)."""
    if not data_dir:
        return DEMO_DATASET
    return "cifar10" if find_cifar_dir(os.path.abspath(data_dir)) else "imagenet"


def default_workers() -> int:
    """Decode-and-transform threads when none are asked for: one per core, 1..8 (all C++, no GIL to share)."""
    return max(1, min(8, os.cpu_count() or 1))


def make_sampler(
    size: int,
    shuffle: bool,
    num_samples: int | None,
    num_shards: int | None,
    shard_id: int | None,
    exact_shards: bool,
) -> ds.Sampler:
    """The sampler for one rank; ``exact_shards`` gives disjoint strided shards whose union is every sample once."""
    if num_samples is not None and num_samples <= 0:
        raise ConfigError(f"num_samples must be positive, not {num_samples}")
    if not num_shards or num_shards == 1:
        if shuffle:
            return ds.RandomSampler(replacement=False, num_samples=num_samples)
        return ds.SequentialSampler(num_samples=num_samples)
    if shard_id is None or not 0 <= shard_id < num_shards:
        raise ConfigError(f"shard_id must be within 0..{num_shards - 1} when num_shards={num_shards}, not {shard_id}")
    if not exact_shards:
        return ds.DistributedSampler(num_shards, shard_id, shuffle=shuffle, num_samples=num_samples)
    indices = list(range(shard_id, size, num_shards))[:num_samples]
    return ds.SubsetRandomSampler(indices) if shuffle else ds.SubsetSampler(indices)


@dataclass(frozen=True)
class DatasetInfo:
    """What a pipeline carries about its data: one typed record, ``dataset.info`` on every dataset from
    :func:`create_dataset` and every loader from :func:`~.loader.create_loader` (read it with :func:`dataset_info`).

    ``reader`` says who reads the files: ``python`` (the checking reader, :class:`~.folder.ImageFileSource`) or
    ``c++`` (a manifest of the files that reader found good, on later passes). ``batches`` and
    ``input_normalization`` are the loader's: its batches per pass (stated, so MindSpore need not run the pipeline
    to count them) and the (mean, std) it left to the network (``normalize_on_device``).
    """

    name: str
    class_names: list
    root: str
    stats: DatasetStats
    encoded: bool = False
    reader: str = "python"
    batches: int | None = None
    input_normalization: tuple | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def dataset_info(dataset) -> DatasetInfo:
    """The record of a pipeline built here; a MindSpore dataset from elsewhere gets an empty one."""
    info = getattr(dataset, "info", None)
    return info if isinstance(info, DatasetInfo) else DatasetInfo("", [], "", DatasetStats())


@dataclass
class DataSource:
    """A data set read from disk once: the random-access source, its class names, bad-file counts and folder.

    Building one scans the whole tree (ImageNet: 1.28 M files) or loads CIFAR-10; :func:`create_dataset` can be
    given it again and again (the trainer builds a fresh, reseeded pipeline every epoch on the same source).
    """

    name: str
    source: Any
    class_names: list
    stats: DatasetStats
    root: str
    split: str

    @property
    def encoded(self) -> bool:
        """True when rows hold encoded image bytes that a decoding op must come first for."""
        return bool(getattr(self.source, "encoded", False))

    @property
    def fully_read(self) -> bool:
        """True when an image-file source has read every file once, so pipelines can read in C++ from now on."""
        return bool(getattr(self.source, "fully_read", False))

    def share_reads(self, sum_over_ranks, ranks: int) -> None:
        """Tell this rank's source what the other ranks' readers found in their shards (no-op for CIFAR-10).

        Every rank must call it (``sum_over_ranks`` is an all-reduce sum); it merges until all ranks have every file.
        """
        if hasattr(self.source, "merge_kinds") and sum_over_ranks([self.fully_read])[0] < ranks:
            self.source.merge_kinds(sum_over_ranks)


def load_source(name: str = "", root: str | None = None, split: str = "train", download: bool = False,
                **options) -> DataSource:
    """Scan (image folders) or load (CIFAR-10) a data set once; options: ``url``/``md5``/``file_md5s`` (download)."""
    name = (name or "folder").lower()
    spec = dataset_spec(name)
    if download and not spec.downloadable:
        raise ConfigError(f"download is only available for cifar10, not {name}: place the data under root by hand")
    if spec.is_folder:
        folder = resolve_split_dir(check_root(root, name), split)
        classes, samples = scan_image_folder(folder)
        return DataSource(name, ImageFileSource(samples), classes, DatasetStats(files=[p for p, _ in samples]),
                          folder, split)
    if spec.packaged:
        root = root or CIFAR10_DEMO_DIR
    elif root is None:
        root = os.path.join(default_cache_dir(), name)
    if download:
        download_cifar10(root, url=options.get("url", CIFAR10_URL), md5=options.get("md5", CIFAR10_MD5),
                         file_md5s=options.get("file_md5s"))
    images, labels, classes = load_cifar10(check_root(root, name), split or "train", expect_all=not spec.packaged)
    return DataSource(name, ArraySource(images, labels), classes, DatasetStats(), root, split)


def create_dataset(
    name: str = "",
    root: str | None = None,
    split: str = "train",
    shuffle: bool = True,
    num_samples: int | None = None,
    num_parallel_workers: int | None = None,
    num_shards: int | None = None,
    shard_id: int | None = None,
    download: bool = False,
    data_source: DataSource | None = None,
    **kwargs,
) -> ds.Dataset:
    """A dataset of ``image`` and int32 ``label`` rows (mindcv's ``create_dataset``).

    Image-file sets (imagenet/folder) yield the encoded file bytes, as mindcv's ``ImageFolderDataset`` does:
    :func:`create_loader` decodes them in C++ (``dataset.info.encoded`` is True). CIFAR-10 yields HWC uint8 RGB arrays.

    Args:
        name: ``imagenet``, ``folder`` (any class-per-folder tree; '' means the same), ``cifar10`` or
            ``cifar10_demo`` (the small subset shipped in the package; ``root`` defaults to it).
        root: data set folder. ImageNet/folder: holds ``train/``, ``val/``... (or is the class tree itself with
            ``split=''``). CIFAR-10: holds the ``.bin`` batches directly or in ``cifar-10-batches-bin/``.
        split: ``train``, ``val`` (also ``validation``/``test``, whichever exists; on CIFAR-10 the test batch).
        shuffle: shuffle each epoch.
        num_samples: take only this many samples (per shard when sharded).
        num_parallel_workers: source processes with ``python_multiprocessing`` (decoding threads are set in
            :func:`create_loader`).
        num_shards, shard_id: data-parallel rank split; see the module docstring for train vs eval shards.
        download: CIFAR-10 only: fetch the official archive into ``root`` when the files are not there.
        data_source: the result of :func:`load_source` to reuse (then name/root/split/download are not read):
            a new pipeline on an already scanned tree.
        kwargs: ``python_multiprocessing`` (run the source in processes; default False), ``exact_shards``
            (disjoint shards; default: True unless split is train), ``url``/``md5``/``file_md5s`` (download
            overrides).

    Image-file sets read by the checking Python reader also carry a ``bad_file`` column (see :mod:`.stats`), which
    :func:`create_loader` consumes; a ``data_source`` that has read every file once is read in C++ from a manifest
    of its good files instead (``dataset.info.reader``; :meth:`~.folder.ImageFileSource.manifest`). The
    returned dataset carries a :class:`DatasetInfo` (``dataset.info``: name, class names, folder, bad-file counts).
    """
    unknown = sorted(set(kwargs) - set(EXTRA_OPTIONS))
    if unknown:
        raise ConfigError(
            f"create_dataset got unknown option(s) {', '.join(unknown)}; known: {', '.join(EXTRA_OPTIONS)}"
        )
    if data_source is None:
        data_source = load_source(name, root, split, download, **kwargs)
    name, split, source = data_source.name, data_source.split, data_source.source
    exact = kwargs.get("exact_shards")
    exact = (split or "").lower() not in ("train", "training") if exact is None else bool(exact)
    if data_source.fully_read:
        dataset, size = _manifest_dataset(data_source, shuffle, num_samples, num_shards, shard_id, exact,
                                          num_parallel_workers)
    else:
        size = len(source)
        sampler = make_sampler(size, shuffle, num_samples, num_shards, shard_id, exact)
        # Reading bytes is light work: one reader keeps up with several C++ decoding threads (create_loader's map).
        workers = max(1, num_parallel_workers or 1) if kwargs.get("python_multiprocessing") else 1
        dataset = ds.GeneratorDataset(source, column_names=list(source.column_names), sampler=sampler,
                                      num_parallel_workers=workers, python_multiprocessing=workers > 1)
    if size == 0 or dataset.get_dataset_size() == 0:
        raise DataError(f"{name} split '{split}' in {data_source.root} gives no samples for shard {shard_id} of "
                        f"{num_shards}")
    dataset.info = DatasetInfo(name, data_source.class_names, data_source.root, data_source.stats,
                               data_source.encoded, "c++" if data_source.fully_read else "python")
    return dataset


def _manifest_dataset(data_source: DataSource, shuffle: bool, num_samples: int | None, num_shards: int | None,
                      shard_id: int | None, exact: bool, workers: int | None) -> tuple[ds.Dataset, int]:
    """(files read in C++ from a manifest of the good ones, how many rows): for passes after the first.

    The Python reader's rows (encoded bytes, int32 label; converted files as BMP) without its checks, which every
    file has passed. Files found bad are counted and named here (as the first pass did at its end); as in the first
    pass, training shards (``exact`` False) hold the next readable file in their rows (same rows, so the same steps
    per epoch on every rank), evaluation shards leave them out (every good image scored once).
    """
    source = data_source.source
    manifest, lines = source.manifest(substitute=not exact)
    if not shard_id:  # counted and named once over the ranks (evaluation sums the counts), when the pass starts
        stats, bad = data_source.stats, [int(index) for index in source.bad_indices]
        for index in bad:
            stats.record(index)
        stats.end_epoch([stats.name(index) for index in bad])
    sampler = make_sampler(len(lines), shuffle, num_samples, num_shards, shard_id, exact)
    dataset = ds.ManifestDataset(manifest, usage=MANIFEST_USAGE, sampler=sampler,
                                 class_indexing={str(i): i for i in range(len(data_source.class_names))},
                                 num_parallel_workers=workers or default_workers())
    dataset.manifest_folder = source.folder  # the manifest lives as long as the pipeline reading it, not the source
    return dataset, len(lines)
