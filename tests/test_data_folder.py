"""Class-per-folder data sets: messy real-world files, splits, errors, bad-file accounting, sharding, class lists."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
import pytest
from helpers import IMAGENET_SAMPLES, iterate
from PIL import Image

from mindcv_mobilenet.data import (
    create_dataset,
    create_loader,
    create_transforms,
    load_class_names,
    save_class_names,
)
from mindcv_mobilenet.data.decode import load_rgb
from mindcv_mobilenet.utils.errors import DataError


def _eval_loader(root, split="val", batch_size=4, **kwargs):
    ds = create_dataset("folder", root, split=split, shuffle=False, num_parallel_workers=2, **kwargs)
    return ds, create_loader(ds, batch_size, transform=create_transforms("folder", 32), num_classes=2)


def test_every_mode_decodes_to_rgb(messy_tree):
    folder = os.path.join(messy_tree, "train", "a_messy")
    for name in ("rgb.jpg", "gray.png", "cmyk.jpg", "rgba.png", "palette.png", "deep16.png"):
        img = load_rgb(os.path.join(folder, name))
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
    assert tuple(load_rgb(os.path.join(folder, "rgba.png"))[0, 0]) == (255, 255, 255)
    gray = load_rgb(os.path.join(folder, "gray.png"))
    assert np.array_equal(gray[..., 0], gray[..., 2])
    for name in ("truncated.jpg", "empty.jpg"):
        with pytest.raises(Exception):  # noqa: B017 - any decoder error; the pipeline turns it into a skip
            load_rgb(os.path.join(folder, name))


def test_stray_files_ignored_and_classes_sorted(messy_tree):
    ds = create_dataset("folder", messy_tree, split="train", shuffle=False)
    assert ds.info.class_names == ["a_messy", "b_clean"] and ds.info.num_classes == 2
    assert ds.get_dataset_size() == 10  # 8 images + truncated + empty; .txt and .DS_Store ignored


def test_eval_skips_bad_files_counts_and_reports(messy_tree, caplog):
    caplog.set_level(logging.WARNING, logger="mindcv_mobilenet.data")
    ds, loader = _eval_loader(messy_tree)
    batches = iterate(loader)
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int32 and sorted(labels.tolist()) == [0] * 6 + [1] * 2
    stats = loader.info.stats
    assert stats is ds.info.stats
    assert stats.bad_files == 2 and stats.skipped == 2 and stats.epochs == 1
    assert sorted(os.path.basename(n) for n in stats.bad_file_names) == ["empty.jpg", "truncated.jpg"]
    report = [r.getMessage() for r in caplog.records if "skipped 2 image" in r.getMessage()]
    assert len(report) == 1 and "truncated.jpg" in report[0] and "empty.jpg" in report[0]


def test_training_replaces_bad_rows_keeping_batch_shape(messy_tree):
    ds = create_dataset("folder", messy_tree, split="train", shuffle=False, num_parallel_workers=2)
    loader = create_loader(ds, 4, is_training=True, transform=create_transforms("folder", 32, is_training=True),
                           num_classes=2)
    batches = iterate(loader)
    assert [len(b["label"]) for b in batches] == [4, 4, 2]
    assert loader.get_dataset_size() == 3
    for b in batches:
        # a placeholder would be a constant image; substitutes are real images from the batch
        assert all(img.std() > 0.05 for img in b["image"])
    assert loader.info.stats.bad_files == 2
    drop = create_loader(create_dataset("folder", messy_tree, split="train", shuffle=False), 4, is_training=True,
                         drop_remainder=True, transform=create_transforms("folder", 32, is_training=True))
    assert [len(b["label"]) for b in iterate(drop)] == [4, 4] and drop.get_dataset_size() == 2


def test_eval_ignores_drop_remainder(messy_tree):
    ds = create_dataset("folder", messy_tree, split="val", shuffle=False)
    loader = create_loader(ds, 3, drop_remainder=True, transform=create_transforms("folder", 32))
    assert sum(len(b["label"]) for b in iterate(loader)) == 8


@pytest.mark.parametrize("split", ["val", "validation", "test"])
def test_split_aliases(messy_tree, split):
    ds = create_dataset("imagenet", messy_tree, split=split)
    assert ds.info.root == os.path.join(messy_tree, "validation")


def test_missing_split_lists_available(messy_tree, tmp_path):
    with pytest.raises(DataError) as err:
        create_dataset("imagenet", str(tmp_path / "nope"))
    assert "does not exist" in str(err.value) and "nope" in str(err.value)
    os.makedirs(os.path.join(tmp_path, "only_val", "val", "x"))
    Image.new("RGB", (8, 8)).save(os.path.join(tmp_path, "only_val", "val", "x", "a.png"))
    with pytest.raises(DataError) as err:
        create_dataset("folder", str(tmp_path / "only_val"), split="train")
    assert "'train' not found" in str(err.value) and "available splits: val" in str(err.value)


def test_empty_and_unset_roots(tmp_path):
    os.makedirs(tmp_path / "empty" / "train" / "cls")
    (tmp_path / "empty" / "train" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no images found"):
        create_dataset("folder", str(tmp_path / "empty"), split="train")
    with pytest.raises(DataError, match="no data folder"):
        create_dataset("imagenet", None)


def test_eval_shards_cover_every_image_exactly_once(messy_tree):
    files = create_dataset("folder", messy_tree, split="val").info.stats.files
    by_pixels = {}
    for path in files:
        try:
            by_pixels[load_rgb(path).tobytes()] = path
        except Exception:  # noqa: BLE001 - the two bad files are identified by their bad_file index instead
            pass
    seen, sizes = [], []
    for shard in range(3):
        ds = create_dataset("folder", messy_tree, split="val", shuffle=False, num_shards=3, shard_id=shard)
        rows = list(ds.create_dict_iterator(num_epochs=1, output_numpy=True))
        sizes.append(len(rows))
        # rows hold encoded bytes (decoded later in C++): decode them here the same way as the files
        seen += [files[int(r["bad_file"])] if r["bad_file"] >= 0
                 else by_pixels[load_rgb(io.BytesIO(r["image"].tobytes())).tobytes()] for r in rows]
    assert sorted(seen) == sorted(files)  # no padding duplicates, nothing missing
    assert sizes == [4, 3, 3]
    train_sizes = [create_dataset("folder", messy_tree, split="train", num_shards=3, shard_id=s).get_dataset_size()
                   for s in range(3)]
    assert train_sizes == [4, 4, 4]  # training shards are padded to equal length so every rank runs as many steps


def test_class_names_json_roundtrip(tmp_path):
    names = ["tench", "goldfish", "great white shark"]
    path = save_class_names(names, str(tmp_path / "ckpt" / "mobilenet-10_100.ckpt"))
    assert os.path.basename(path) == "class_names.json"
    assert load_class_names(str(tmp_path / "ckpt" / "mobilenet-10_100.ckpt")) == names
    assert load_class_names(str(tmp_path / "ckpt")) == names
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        load_class_names(str(tmp_path / "bad.json"))
    with pytest.raises(DataError, match="no class list"):
        load_class_names(str(tmp_path / "missing.json"))


@pytest.mark.skipif(not os.path.isdir(os.path.join(IMAGENET_SAMPLES, "val")),
                    reason=f"ImageNet samples not found at {IMAGENET_SAMPLES} (set MINDCV_MOBILENET_SHARED)")
def test_real_imagenet_samples_all_decode():
    ds = create_dataset("imagenet", IMAGENET_SAMPLES, split="val", shuffle=False, num_parallel_workers=2)
    assert ds.info.num_classes == 1000 and ds.get_dataset_size() == 1000
    assert ds.info.class_names == sorted(ds.info.class_names) and ds.info.class_names[0] == "n01440764"
    gray = 0
    for path in ds.info.stats.files:
        with Image.open(path) as img:
            gray += img.mode == "L"
    assert gray == 23
    loader = create_loader(ds, 100, transform=create_transforms("imagenet", 64), num_classes=1000)
    batches = iterate(loader)
    labels = np.concatenate([b["label"] for b in batches])
    assert sorted(labels.tolist()) == list(range(1000))
    assert all(b["image"].shape[1:] == (3, 64, 64) for b in batches)
    assert loader.info.stats.bad_files == 0 and loader.info.stats.epochs == 1
