"""validate.py's per-class view (issue 25): the confusion matrix counted in the evaluation pass (exact when
sharded), the per-class Top-1, the five most confused pairs printed by name, and the files beside ``--output``."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from helpers import random_checkpoint
from mindspore import Tensor

from mindcv_mobilenet.engine.distributed import DistInfo, Reducer
from mindcv_mobilenet.engine.metrics import evaluate, most_confused, per_class_top1
from mindcv_mobilenet.inference.validate import class_report, class_report_paths, format_class_report

# 7 images of 3 classes; the logits make the top-1 predictions [0, 1, 1, 1, 0, 2, 1] (image 6: a tie between
# classes 1 and 2, which goes to the first, as Top-1 counts it)
LABELS = np.array([0, 0, 1, 1, 2, 2, 2])
LOGITS = np.array([[3, 1, 0], [0, 2, 1], [0, 5, 1], [1, 4, 0], [9, 0, 1], [0, 1, 2], [0, 2, 2]], np.float32)
EXPECTED = np.array([[1, 1, 0], [0, 2, 0], [1, 1, 1]])


class _Fixed:
    """A 'model' whose image i (a 1-pixel image holding i) gets LOGITS[i]."""

    def set_train(self, _mode: bool) -> None:
        pass

    def __call__(self, images: Tensor) -> Tensor:
        return Tensor(LOGITS[images.asnumpy().reshape(len(images), -1)[:, 0].astype(int)])


def _batches(indices, size: int):
    for start in range(0, len(indices), size):
        chunk = np.asarray(indices[start:start + size])
        yield Tensor(chunk.astype(np.float32).reshape(-1, 1)), Tensor(LABELS[chunk].astype(np.int32))


def test_confusion_counts_are_known_and_exact_over_shards():
    reducer = Reducer(DistInfo())
    whole = evaluate(_Fixed(), _batches(range(7), 3), reducer, num_classes=3)  # last batch: 1 image, padded
    np.testing.assert_array_equal(whole["confusion"], EXPECTED)
    assert whole["top1"] == pytest.approx(100 * np.trace(EXPECTED) / 7)
    # two ranks' shards (4 and 3 images), summed as the all-reduce sums them, give the same matrix
    shards = [evaluate(_Fixed(), _batches(part, 2), reducer, 3)["confusion"] for part in ([0, 2, 4, 6], [1, 3, 5])]
    np.testing.assert_array_equal(shards[0] + shards[1], EXPECTED)
    assert "confusion" not in evaluate(_Fixed(), _batches(range(7), 3), reducer)  # training's evaluation: none

    assert per_class_top1(EXPECTED) == [(2, 50.0), (2, 100.0), (3, pytest.approx(100 / 3))]
    assert most_confused(EXPECTED) == [(0, 1, 1), (2, 0, 1), (2, 1, 1)]  # ties in class order, empty cells out
    assert most_confused(np.diag([3, 4])) == []


def test_most_confused_pairs_are_printed_by_name():
    confusion = np.diag([50] * 7)
    for (i, j), count in {(3, 5): 30, (5, 3): 20, (1, 0): 12, (6, 2): 9, (2, 6): 7, (4, 1): 3}.items():
        confusion[i, j] = count
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog"]
    report = class_report(confusion, names)
    text = format_class_report(report)
    pairs = text.split("most confused (true -> predicted):\n")[1].splitlines()
    assert pairs == ["  cat -> dog: 30 images (37.5% of cat)", "  dog -> cat: 20 images (28.6% of dog)",
                     "  car -> plane: 12 images (19.4% of car)", "  frog -> bird: 9 images (15.3% of frog)",
                     "  bird -> frog: 7 images (12.3% of bird)"]
    assert "  cat     62.50%  (80 images)" in text
    assert report["confusion_matrix"] == confusion.tolist()
    # 1,000 classes: the table and the pairs, not the matrix
    big = class_report(np.diag(np.arange(1000)), [f"c{i}" for i in range(1000)])
    assert "confusion_matrix" not in big and len(big["per_class"]) == 1000 and big["per_class"][0]["top1"] is None
    assert format_class_report(big).splitlines()[0] == "per-class Top-1 (999 classes with images), lowest five:"


def test_picture_and_table_paths(tmp_path):
    from mindcv_mobilenet.cli import parse_args

    def paths(*argv, classes=10):
        return class_report_paths(parse_args("validate", list(argv)), classes)

    out = str(tmp_path / "r.json")
    assert paths() == (None, None)
    assert paths("--output", out) == (str(tmp_path / "r_confusion.png"), str(tmp_path / "r_per_class.csv"))
    assert paths("--confusion", "c.png") == ("c.png", "c_per_class.csv")
    assert paths("--output", out, classes=1000) == (None, str(tmp_path / "r_per_class.csv"))
    assert paths("--confusion", "c.png", classes=1000) == (None, "c_per_class.csv")


def test_validate_writes_the_picture_and_table_beside_output(tmp_path, capsys):
    from mindcv_mobilenet.cli import parse_args
    from mindcv_mobilenet.inference.validate import run_validation

    ckpt = random_checkpoint(tmp_path, "mobilenet_v1_025", 10, seed=3)
    out = tmp_path / "out" / "results.json"
    cfg = parse_args("validate", ["--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--num_samples", "40",
                                  "--batch_size", "8", "--image_resize", "32", "--num_parallel_workers", "1",
                                  "--output", str(out)])
    results = run_validation(cfg)
    logging.getLogger("mindcv_mobilenet").handlers.clear()  # the console handler run_validation added
    printed = capsys.readouterr().out
    matrix = np.array(results["confusion_matrix"])
    assert matrix.sum() == 40 and np.trace(matrix) == round(results["top1"] * 40 / 100)
    pairs = printed.split("most confused (true -> predicted):\n")[1].splitlines()[:5]
    cifar = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert len(pairs) == len(results["most_confused"]) > 0
    for line, pair in zip(pairs, results["most_confused"], strict=False):
        assert line.startswith(f"  {pair['true']} -> {pair['predicted']}: {pair['images']} images")
        assert pair["true"] in cifar and pair["predicted"] in cifar
    assert (out.parent / "results_confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out.parent / "results_per_class.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == list(cifar) and sum(int(r["images"]) for r in rows) == 40
    assert json.loads(out.read_text())["per_class"][0]["class"] == "airplane"
