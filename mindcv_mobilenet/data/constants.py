"""Constants shared by the data modules: the data sets this suite reads (:data:`DATASETS`), CIFAR-10's statistics
and image extensions. ImageNet's statistics, the default crop and where the packaged resources are belong to the whole
package (:mod:`mindcv_mobilenet.constants`: the models use them too); the repository around the package is not its
business (tests and tools know where ``../shared`` is).

Every mean/std in the suite is on the 0..255 pixel scale, mindcv's convention, so Normalize needs no separate Rescale.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..utils.errors import ConfigError

CIFAR10_MEAN = (0.4914 * 255, 0.4822 * 255, 0.4465 * 255)
CIFAR10_STD = (0.2023 * 255, 0.1994 * 255, 0.2010 * 255)


@dataclass(frozen=True)
class DatasetSpec:
    """What a ``dataset`` name means: how its files are laid out and how its images are prepared by default.

    ``layout`` is ``"folder"`` (one sub-folder of image files per class: photos of any size, resized and
    center-cropped to the model's resolution) or ``"cifar"`` (CIFAR-10's binary batches of 32 px images).
    ``image_size``, ``mean`` and ``std`` of None mean "the model's" (:mod:`.preprocessing` decides).
    ``packaged``: the files ship in the package; ``downloadable``: ``dataset_download`` can fetch it.
    """

    name: str
    layout: str
    image_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    packaged: bool = False
    downloadable: bool = False

    @property
    def is_folder(self) -> bool:
        return self.layout == "folder"


# CIFAR-10's 32 px images are upsampled 3x by default: the packaged demo's resolution, where ImageNet weights transfer.
DATASETS: dict[str, DatasetSpec] = {
    "imagenet": DatasetSpec("imagenet", "folder"),
    "folder": DatasetSpec("folder", "folder"),
    "cifar10": DatasetSpec("cifar10", "cifar", 96, CIFAR10_MEAN, CIFAR10_STD, downloadable=True),
    "cifar10_demo": DatasetSpec("cifar10_demo", "cifar", 96, CIFAR10_MEAN, CIFAR10_STD, packaged=True),
}
DATASET_NAMES = tuple(DATASETS)
DEMO_DATASET = "cifar10_demo"


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of data set ``name``; an unknown name is a ConfigError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown data set '{name}': use one of {', '.join(DATASET_NAMES)}") from None


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

