"""The training loop's host side: losses read once per window, the tree scanned once per run, sink mode on CPU, the
options left as parsed."""

from __future__ import annotations

import copy

import mindspore as ms
import numpy as np
import pytest
import yaml

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.data.constants import CIFAR10_MEAN, CIFAR10_STD
from mindcv_mobilenet.engine.loss_window import LossWindow, NonFiniteLoss


def test_loss_window_reads_in_order_and_stops_at_the_first_non_finite_step():
    window = LossWindow()
    for step, (loss, finite) in enumerate([(2.0, True), (1.5, False), (1.0, True)]):
        window.add(step, ms.Tensor(np.float32(loss)), ms.Tensor(finite), 8)
    results = window.read()
    assert [(r.step, r.loss, r.applied, r.batch) for r in results] == [(0, 2.0, True, 8), (1, 1.5, False, 8),
                                                                       (2, 1.0, True, 8)]
    assert len(window) == 0
    for step, loss in enumerate([1.0, float("inf"), float("nan")]):
        window.add(step + 3, ms.Tensor(np.float32(loss)), ms.Tensor(True), 8)
    with pytest.raises(NonFiniteLoss) as err:
        window.read()
    assert err.value.step == 4 and err.value.loss == float("inf")


def test_tree_is_scanned_once_per_run_and_sink_mode_is_explained_on_cpu(tmp_path, monkeypatch, capsys):
    import mindcv_mobilenet.engine.training_data as training_data
    from mindcv_mobilenet.engine.trainer import train

    calls = []
    real = training_data.load_source

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(training_data, "load_source", counting)
    cfg = parse_args("train", [
        "--model", "mobilenet_v1_025", "--num_samples", "16", "--batch_size", "8", "--epoch_size", "2",
        "--log_interval", "1", "--ckpt_save_dir", str(tmp_path / "run"), "--num_parallel_workers", "1",
        "--val_while_train", "False", "--dataset_sink_mode", "True", "--warmup_epochs", "0",
    ])
    summary = train(cfg)
    assert len(calls) == 1  # two epochs, one scan
    assert len(summary["step_losses"]) == 4 and summary["global_step"] == 4
    assert "dataset_sink_mode: True is not used on CPU" in capsys.readouterr().out


def test_training_leaves_the_options_as_parsed_and_saves_the_preprocessing_it_used(tmp_path):
    """The preprocessing the run resolved (data set mean/std, the model's interpolation) goes to config.yaml, where
    validate/infer read it, not back into the options."""
    from mindcv_mobilenet.engine.trainer import train

    cfg = parse_args("train", [
        "--model", "mobilenet_v1_025", "--num_samples", "8", "--batch_size", "8", "--epoch_size", "1",
        "--image_resize", "32", "--ckpt_save_dir", str(tmp_path / "run"), "--num_parallel_workers", "1",
        "--val_while_train", "False", "--warmup_epochs", "0",
    ])
    assert cfg.mean is None and cfg.std is None and cfg.interpolation is None  # left to the data set and model
    before = copy.deepcopy(cfg)
    train(cfg)
    assert vars(cfg) == vars(before)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["dataset"] == "cifar10_demo" and saved["image_size"] == 32 and saved["crop_pct"] is None
    np.testing.assert_allclose(saved["mean"], CIFAR10_MEAN)
    np.testing.assert_allclose(saved["std"], CIFAR10_STD)
    assert saved["interpolation"] in ("bilinear", "bicubic")
    assert parse_args("train", ["-c", str(tmp_path / "run" / "config.yaml")]).mean == saved["mean"]
