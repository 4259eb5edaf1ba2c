"""Data pipeline: data sets (ImageNet, class folders, CIFAR-10, a packaged CIFAR-10 demo), transforms, loaders."""

from .class_names import load_class_names, save_class_names
from .constants import DATASET_NAMES, DATASETS, DatasetSpec, dataset_spec
from .dataset import create_dataset
from .download import CIFAR10_MD5, CIFAR10_URL, download_cifar10, safe_extract
from .loader import create_loader
from .mixup import Mixup
from .stats import DatasetStats
from .transforms import create_transforms

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DATASET_NAMES",
    "DATASETS",
    "DatasetSpec",
    "dataset_spec",
    "DatasetStats",
    "Mixup",
    "create_dataset",
    "create_loader",
    "create_transforms",
    "download_cifar10",
    "load_class_names",
    "safe_extract",
    "save_class_names",
]
