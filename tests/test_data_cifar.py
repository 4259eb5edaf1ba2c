"""CIFAR-10: the real shared copy, the packaged demo subset, and download/extraction against a local server."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from helpers import CIFAR_DIR, iterate, make_tar, small_cifar_archive

from mindcv_mobilenet.data import create_dataset, create_loader, create_transforms, safe_extract
from mindcv_mobilenet.data.dataset import CIFAR10_DEMO_DIR
from mindcv_mobilenet.utils.errors import DataError, DownloadError

needs_cifar = pytest.mark.skipif(not os.path.isdir(CIFAR_DIR),
                                 reason=f"CIFAR-10 not found at {CIFAR_DIR} (set MINDCV_MOBILENET_SHARED)")


def _labels(ds) -> np.ndarray:
    return np.array([int(r["label"]) for r in ds.create_dict_iterator(num_epochs=1, output_numpy=True)])


@needs_cifar
def test_real_test_split_is_balanced():
    for split in ("val", "test"):
        ds = create_dataset("cifar10", CIFAR_DIR, split=split, shuffle=False)
        assert ds.get_dataset_size() == 10000
    loader = create_loader(ds, 500, transform=create_transforms("cifar10", 32), num_classes=10)
    batches = iterate(loader)
    assert batches[0]["image"].shape == (500, 3, 32, 32) and batches[0]["image"].dtype == np.float32
    labels = np.concatenate([b["label"] for b in batches])
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10


@needs_cifar
def test_real_train_uses_present_batches_and_says_so(caplog):
    caplog.set_level(logging.INFO, logger="mindcv_mobilenet.data")
    present = sorted(f for f in os.listdir(CIFAR_DIR) if f.startswith("data_batch_"))
    ds = create_dataset("cifar10", os.path.dirname(CIFAR_DIR), split="train")  # root/cifar-10-batches-bin works too
    assert ds.get_dataset_size() == 10000 * len(present)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("cifar10 train: using"))
    assert all(name in line for name in present)
    if len(present) < 5:
        assert "not present" in line


def test_demo_subset_is_packaged_and_balanced():
    sizes = {f: os.path.getsize(os.path.join(CIFAR10_DEMO_DIR, f)) for f in os.listdir(CIFAR10_DEMO_DIR)}
    assert sum(sizes.values()) < 10e6
    train = create_dataset("cifar10_demo", split="train", shuffle=False)
    val = create_dataset("cifar10_demo", split="val", shuffle=False)
    assert train.info.class_names[0] == "airplane" and train.info.num_classes == 10
    assert np.bincount(_labels(train), minlength=10).tolist() == [300] * 10
    assert np.bincount(_labels(val), minlength=10).tolist() == [100] * 10


def test_bad_split_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no split 'holdout'.*train, val, test"):
        create_dataset("cifar10_demo", split="holdout")
    with pytest.raises(DataError, match="no CIFAR-10 batch files"):
        create_dataset("cifar10", str(tmp_path))
    (tmp_path / "test_batch.bin").write_bytes(b"x" * 100)
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
        create_dataset("cifar10", str(tmp_path), split="val")


def _serve_archive(server, archive: bytes, short: bool = False) -> str:
    server.routes["/cifar-10-binary.tar.gz"] = archive
    if short:
        server.short.add("/cifar-10-binary.tar.gz")
    return server.url("/cifar-10-binary.tar.gz")


def _download(root, url, md5, file_md5s, split="train"):
    return create_dataset("cifar10", str(root), split=split, download=True, url=url, md5=md5, file_md5s=file_md5s)


def test_download_extract_and_reuse(tmp_path, file_server):
    import hashlib

    archive, file_md5s = small_cifar_archive()
    url = _serve_archive(file_server, archive)
    md5 = hashlib.md5(archive).hexdigest()
    ds = _download(tmp_path, url, md5, file_md5s)
    assert ds.get_dataset_size() == 100 and file_server.requests == {"/cifar-10-binary.tar.gz": 1}
    assert sorted(os.listdir(tmp_path)) == ["cifar-10-batches-bin"]  # no archive or partial file left over
    assert _download(tmp_path, url, md5, file_md5s, split="val").get_dataset_size() == 20
    assert file_server.requests == {"/cifar-10-binary.tar.gz": 1}  # files intact: no second request


def test_download_md5_mismatch_keeps_nothing(tmp_path, file_server):
    archive, file_md5s = small_cifar_archive()
    url = _serve_archive(file_server, archive)
    with pytest.raises(DownloadError, match="md5 .* expected 0000"):
        _download(tmp_path, url, "0" * 32, file_md5s)
    assert os.listdir(tmp_path) == []


def test_download_cut_short_leaves_no_file(tmp_path, file_server):
    archive, file_md5s = small_cifar_archive()
    url = _serve_archive(file_server, archive, short=True)
    with pytest.raises(DownloadError, match="cut short"):
        _download(tmp_path, url, None, file_md5s)
    assert os.listdir(tmp_path) == []


def test_download_unreachable(tmp_path, file_server):
    url = file_server.url("/cifar-10-binary.tar.gz")
    file_server.close()
    with pytest.raises(DownloadError, match="cannot download"):
        _download(tmp_path, url, None, {}, split="train")


@pytest.mark.parametrize("bad_member", ["../evil", "/tmp/abs_evil_mindcv_test", "cifar-10-batches-bin/../../evil"])
def test_malicious_archive_rejected(tmp_path, file_server, bad_member):
    import hashlib

    target = tmp_path / "root"
    archive = make_tar({"cifar-10-batches-bin/test_batch.bin": b"\0" * 3073, bad_member: b"owned"})
    url = _serve_archive(file_server, archive)
    with pytest.raises(DataError, match="refusing to extract"):
        _download(target, url, hashlib.md5(archive).hexdigest(), {})
    assert not (tmp_path / "evil").exists() and not os.path.exists("/tmp/abs_evil_mindcv_test")
    assert not (target / "cifar-10-batches-bin").exists()  # checked before anything is written


def test_link_outside_rejected(tmp_path):
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(make_tar({"ok.txt": b"fine"}, symlinks={"escape": "../../etc/passwd"}))
    with pytest.raises(DataError, match="link to '../../etc/passwd'"):
        safe_extract(str(archive), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "ok.txt").exists()
    archive.write_bytes(make_tar({"a/ok.txt": b"fine"}, symlinks={"a/inside": "ok.txt"}))
    safe_extract(str(archive), str(tmp_path / "out"))
    assert (tmp_path / "out" / "a" / "inside").read_bytes() == b"fine"
