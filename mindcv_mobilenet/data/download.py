"""Fetch and unpack data set archives: md5-checked via ``download_url``, extracted without escaping the target.

A tar member must not be able to write outside the folder it is extracted into (absolute names, ``..``, links that
point outside, device files): the whole archive is checked before anything is written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from typing import Dict

from ..utils.download import check_hash, default_cache_dir, download_url
from ..utils.errors import DataError, DownloadError
from .cifar10 import SUBDIR, TEST_FILES, TRAIN_FILES

_logger = logging.getLogger("mindcv_mobilenet.data")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_FILE_MD5S: Dict[str, str] = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}


def _inside(base: str, path: str) -> bool:
    base = os.path.realpath(base)
    return os.path.commonpath([base, os.path.realpath(path)]) == base


def _check_member(member: tarfile.TarInfo, dest: str, archive: str) -> None:
    name = member.name
    problem = None
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        problem = "has an absolute path"
    elif ".." in name.replace("\\", "/").split("/"):
        problem = "contains '..'"
    elif not _inside(dest, os.path.join(dest, name)):
        problem = "would be written outside the target folder"
    elif member.issym() or member.islnk():
        link = member.linkname
        target = os.path.join(dest, os.path.dirname(name), link) if member.issym() else os.path.join(dest, link)
        if os.path.isabs(link) or ".." in link.replace("\\", "/").split("/") or not _inside(dest, target):
            problem = f"is a link to '{link}' outside the target folder"
    elif not (member.isfile() or member.isdir()):
        problem = "is a device, fifo or other special file"
    if problem:
        raise DataError(f"refusing to extract {archive}: member '{name}' {problem}; the archive is unsafe or "
                        "corrupt, nothing was extracted")


def safe_extract(archive: str, dest: str) -> None:
    """Extract a tar archive into ``dest`` after checking every member; on any problem nothing is written."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, dest, archive)
            os.makedirs(dest, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=".extract-", dir=dest)
            try:
                extract_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=members, **extract_kwargs)
                for entry in os.listdir(staging):
                    target = os.path.join(dest, entry)
                    if os.path.isdir(target) and not os.path.islink(target):
                        shutil.rmtree(target)
                    elif os.path.lexists(target):
                        os.remove(target)
                    os.replace(os.path.join(staging, entry), target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"cannot extract {archive} ({err}); delete it and download again") from None


def cifar10_intact(root: str, file_md5s: Dict[str, str]) -> bool:
    """True when every CIFAR-10 batch file is in ``root/cifar-10-batches-bin`` with the expected md5."""
    folder = os.path.join(root, SUBDIR)
    paths = {name: os.path.join(folder, name) for name in TRAIN_FILES + TEST_FILES}
    return all(os.path.isfile(p) and check_hash(p, file_md5s.get(name), "md5") for name, p in paths.items())


def download_cifar10(
    root: str | None = None,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    file_md5s: Dict[str, str] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> str:
    """Make sure the full CIFAR-10 binary set is under ``root`` (default: the cache); returns the batch folder.

    Nothing is fetched when all six files are already there and intact. Otherwise the archive is downloaded (with a
    progress line), md5-checked, extracted safely and the files are checked again.
    """
    root = os.path.abspath(os.path.expanduser(root or os.path.join(default_cache_dir(), "cifar10")))
    file_md5s = CIFAR10_FILE_MD5S if file_md5s is None else file_md5s
    folder = os.path.join(root, SUBDIR)
    if cifar10_intact(root, file_md5s):
        _logger.info("cifar10: all batch files present and intact in %s, not downloading", folder)
        return folder
    archive = os.path.join(root, os.path.basename(url.split("?")[0]) or "cifar-10-binary.tar.gz")
    _logger.warning("cifar10: downloading %s to %s", url, archive)
    download_url(url, archive, md5=md5, progress=progress, timeout=timeout)
    _logger.info("cifar10: extracting %s", archive)
    safe_extract(archive, root)
    if not cifar10_intact(root, file_md5s):
        raise DownloadError(
            f"{archive} did not contain the expected CIFAR-10 files (data_batch_1..5.bin, test_batch.bin with known "
            f"md5s) under {SUBDIR}/; delete it and run again, or extract the official archive into {root} by hand"
        )
    os.remove(archive)  # the extracted, verified files are what is reused; keeping the archive doubles the disk use
    return folder
