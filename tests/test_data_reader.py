"""Image folders after the first pass: the checking Python reader remembers what it found in every file, and later
pipelines read the good files in C++ from a manifest (same rows, bad files left out, ranks merge what they read)."""

from __future__ import annotations

import gc
import logging
import os

import numpy as np
from helpers import iterate

from mindcv_mobilenet.data import create_dataset, create_loader, create_transforms
from mindcv_mobilenet.data.dataset import load_source
from mindcv_mobilenet.data.folder import AS_IS, BAD, CONVERTED, UNREAD, ImageFileSource, scan_image_folder


def _eval_pass(source, **kwargs):
    dataset = create_dataset(data_source=source, shuffle=False, **kwargs)
    loader = create_loader(dataset, 4, transform=create_transforms("folder", 32), num_parallel_workers=2)
    batches = iterate(loader)
    return dataset.info.reader, np.concatenate([b["image"] for b in batches]), np.concatenate(
        [b["label"] for b in batches])


def test_second_pass_reads_in_cpp_and_gives_the_same_rows(messy_tree, caplog):
    source = load_source("folder", messy_tree, "validation")
    assert not source.fully_read
    first = _eval_pass(source)
    assert source.fully_read
    kinds = source.source.kinds
    names = [os.path.basename(p) for p in source.source.paths]
    assert {names[i] for i in np.flatnonzero(kinds == BAD)} == {"truncated.jpg", "empty.jpg"}
    assert {names[i] for i in np.flatnonzero(kinds == CONVERTED)} == {"cmyk.jpg", "rgba.png", "palette.png",
                                                                     "deep16.png", "gray.png"}
    assert (kinds == AS_IS).sum() == 3  # rgb.jpg and the two clean JPEGs
    caplog.set_level(logging.WARNING, logger="mindcv_mobilenet.data")
    second = _eval_pass(source)
    assert first[0] == "python" and second[0] == "c++"
    np.testing.assert_array_equal(second[1], first[1])  # converted files come from their BMPs, same pixels
    np.testing.assert_array_equal(second[2], first[2])
    report = [r.getMessage() for r in caplog.records if "epoch 2: skipped 2 image(s)" in r.getMessage()]
    assert len(report) == 1 and "truncated.jpg" in report[0] and "empty.jpg" in report[0]
    stats = source.stats
    assert stats.epochs == 2 and stats.skipped == 4 and stats.bad_files == 2 and stats.last_epoch_skipped == 2


def test_cpp_pass_shards_cover_every_good_file_once(messy_tree):
    source = load_source("folder", messy_tree, "validation")
    _, images, labels = _eval_pass(source)
    shards = [_eval_pass(source, num_shards=2, shard_id=rank) for rank in (0, 1)]
    assert all(reader == "c++" for reader, _, _ in shards)
    assert sum(len(lab) for _, _, lab in shards) == len(labels) == 8
    merged = np.concatenate([img for _, img, _ in shards])
    assert sorted(float(i.sum()) for i in merged) == sorted(float(i.sum()) for i in images)


def test_cpp_training_pass_keeps_the_rows_of_the_first(messy_tree):
    source = load_source("folder", messy_tree, "train")
    transform = create_transforms("folder", 32, is_training=True)
    labels = {}
    for reader, batches in (("python", [4, 4, 2]), ("c++", [4, 4, 2])):  # 10 rows, 2 of them substitutes, both ways
        dataset = create_dataset(data_source=source, shuffle=True)
        loader = create_loader(dataset, 4, is_training=True, transform=transform, normalize_on_device=True)
        got = iterate(loader)
        assert dataset.info.reader == reader
        assert [len(b["label"]) for b in got] == batches and got[0]["image"].shape == (4, 32, 32, 3)
        assert got[0]["image"].dtype == np.uint8
        labels[reader] = sorted(int(label) for b in got for label in b["label"])
    assert labels["c++"] == labels["python"]  # the same rows: substitutes included


def test_manifest_folder_goes_with_the_source(messy_tree):
    _, samples = scan_image_folder(os.path.join(messy_tree, "validation"))
    source = ImageFileSource(samples)
    for i in range(len(source)):
        source[i]
    manifest, lines = source.manifest(substitute=False)
    folder = os.path.dirname(manifest)
    assert len(lines) == 8 and len(os.listdir(folder)) == 1 + 5  # the manifest and the 5 converted images
    substituted, rows = source.manifest(substitute=True)
    assert rows.tolist() == list(range(10)) and len(os.listdir(folder)) == 2 + 5
    del source
    gc.collect()
    assert not os.path.exists(folder)


def test_a_cpp_pipeline_keeps_its_manifest_when_the_source_goes(messy_tree):
    """An API user may drop the source after building a pipeline: the dataset holds the manifest's folder itself."""
    source = load_source("folder", messy_tree, "validation")
    _, _, labels = _eval_pass(source)  # the first pass reads every file: later pipelines read the manifest
    dataset = create_dataset(data_source=source, shuffle=False)
    loader = create_loader(dataset, 4, transform=create_transforms("folder", 32), num_parallel_workers=2)
    folder = os.path.dirname(source.source.manifest(substitute=False)[0])
    assert dataset.info.reader == "c++"
    del source, dataset
    gc.collect()
    assert os.path.isdir(folder)
    got = np.concatenate([b["label"] for b in iterate(loader)])
    np.testing.assert_array_equal(got, labels)
    del loader
    gc.collect()
    assert not os.path.exists(folder)  # and it still goes with the last pipeline that reads it


def test_ranks_merge_what_their_readers_found(messy_tree):
    """Each rank reads its shard only; an all-reduce sum of (kind, read) tells every rank every file's kind."""
    _, samples = scan_image_folder(os.path.join(messy_tree, "train"))
    ranks = [ImageFileSource(samples), ImageFileSource(samples)]
    for i in range(len(samples)):
        ranks[i % 2][i]  # disjoint shards...
    ranks[1][0]  # ...and a padded repeat, read by both
    assert not any(r.fully_read for r in ranks)
    # what Reducer.sum returns on every rank: the sum of the (kind, read) arrays all ranks pass in
    total = sum(np.stack([r.kinds.astype(np.float32), (r.kinds != UNREAD).astype(np.float32)]) for r in ranks)
    for rank in ranks:
        rank.merge_kinds(lambda values, rank=rank: total)
    alone = ImageFileSource(samples)
    for i in range(len(samples)):
        alone[i]
    for rank in ranks:
        assert rank.fully_read
        np.testing.assert_array_equal(rank.kinds, alone.kinds)
