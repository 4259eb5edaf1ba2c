"""train.py end to end on a few real CIFAR-10 images (the packaged demo set): outputs, resume, NaN stop, fine-tune."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from helpers import REPO_ROOT

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.engine.loss import CrossEntropySmooth
from mindcv_mobilenet.engine.trainer import TrainingError, train
from mindcv_mobilenet.models import create_model
from mindcv_mobilenet.utils.checkpoint import load_model_weights, read_checkpoint, save_checkpoint

MODEL = "mobilenet_v1_025"  # the quickest MobileNet to compile


def tiny(run_dir, *extra: str):
    """4 steps of 16 images per epoch, 32 px, 2 epochs, validation on 64 test images."""
    return parse_args("train", [
        "--model", MODEL, "--num_samples", "64", "--batch_size", "16", "--epoch_size", "2", "--log_interval", "2",
        "--ckpt_save_dir", str(run_dir), "--num_parallel_workers", "1", "--opt", "momentum", "--lr", "0.05",
        "--warmup_epochs", "0", "--weight_decay", "1e-4", *extra,
    ])


def test_run_writes_progress_metrics_config_and_loadable_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    summary = train(tiny(run, "--keep_checkpoint_max", "1", "--ema", "True", "--ema_decay", "0.9"))
    out = capsys.readouterr().out
    assert "epoch 1/2  step 2/4" in out and "val_top1" in out and "eta" in out and "img/s" in out
    assert "global batch 16 (16 x 1 ranks)" in out

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert {"train_loss", "val_top1", "val_top5", "lr", "images_per_s", "epoch_time", "eta"} <= set(record)
        assert 0 <= record["val_top1"] <= record["val_top5"] <= 100 and record["val_images"] == 64

    again = parse_args("train", ["-c", str(run / "config.yaml")])
    assert again.model == MODEL and again.ema is True and again.keep_checkpoint_max == 1

    files = sorted(p.name for p in run.glob("*.ckpt"))
    assert files == [f"{MODEL}-2_8.ckpt", f"{MODEL}_best.ckpt"]  # only the last periodic one is kept, and the best
    assert summary["checkpoint"] == str(run / f"{MODEL}-2_8.ckpt")
    entries = read_checkpoint(summary["checkpoint"])
    assert int(entries["train_state.epoch"].asnumpy()) == 2 and int(entries["train_state.global_step"].asnumpy()) == 8
    assert any(k.startswith("train_state.opt.moments.") for k in entries)

    model = create_model(MODEL, num_classes=10)
    assert load_model_weights(model, summary["checkpoint"]) == []  # what validate.py does
    load_model_weights(model, summary["best_checkpoint"], ema=True)  # validate.py --ema
    best = read_checkpoint(summary["best_checkpoint"])
    ema_fc = best["ema.classifier.weight"].asnumpy()
    np.testing.assert_array_equal(model.classifier.weight.asnumpy(), ema_fc)
    assert not np.array_equal(ema_fc, best["classifier.weight"].asnumpy())


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    """2 epochs straight vs resuming the epoch-1 checkpoint: the same per-step losses and final weights."""
    state = ["--val_while_train", "False", "--drop_rate", "0", "--ema", "True", "--dynamic_loss_scale", "True",
             "--loss_scale", "256", "--loss_scale_window", "3", "--scheduler", "cosine_decay",
             "--warmup_epochs", "1"]
    straight = train(tiny(tmp_path / "straight", *state))
    first_epoch = str(tmp_path / "straight" / f"{MODEL}-1_4.ckpt")
    resumed = train(tiny(tmp_path / "resumed", *state, "--resume", first_epoch))
    assert len(straight["step_losses"]) == 8 and len(resumed["step_losses"]) == 4
    np.testing.assert_allclose(resumed["step_losses"], straight["step_losses"][4:], rtol=1e-4)
    a = read_checkpoint(straight["checkpoint"])
    b = read_checkpoint(resumed["checkpoint"])
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(b[name].asnumpy(), a[name].asnumpy(), rtol=1e-3, atol=1e-5, err_msg=name)
    assert float(a["train_state.scale_sense"].asnumpy()) > 256  # the dynamic scale grew and was carried over


class NaNAfter(CrossEntropySmooth):
    """The loss turns NaN from the ``after``-th call on (PyNative runs this Python on every step)."""

    def __init__(self, after: int) -> None:
        super().__init__(0.1)
        self.calls = 0
        self.after = after

    def construct(self, logits, labels):
        self.calls += 1
        loss = super().construct(logits, labels)
        return loss * float("nan") if self.calls > self.after else loss


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import mindcv_mobilenet.engine.run as run_module

    monkeypatch.setattr(run_module, "create_loss", lambda name, smoothing: NaNAfter(5))  # epoch 2, step 2
    cfg = tiny(tmp_path / "run", "--val_while_train", "False", "--mode", "1")
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 2, step 2.*-1_4\.ckpt.*--resume"):
        train(cfg)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.ckpt")) == [f"{MODEL}-1_4.ckpt"]
    model = create_model(MODEL, num_classes=10)
    load_model_weights(model, str(tmp_path / "run" / f"{MODEL}-1_4.ckpt"))
    assert all(np.isfinite(p.asnumpy()).all() for p in model.get_parameters())


def test_ckpt_path_fine_tunes_everything_but_the_classifier(tmp_path):
    source = create_model(MODEL)  # 1000 ImageNet classes
    path = save_checkpoint(source, str(tmp_path / "imagenet.ckpt"))
    summary = train(tiny(tmp_path / "run", "--ckpt_path", path, "--epoch_size", "1", "--val_while_train", "False",
                         "--scheduler", "constant", "--lr", "0"))  # lr 0: trained weights stay as loaded
    trained = read_checkpoint(summary["checkpoint"])
    assert trained["classifier.weight"].shape == (10, 256)
    for p in source.get_parameters():
        if not p.name.startswith("classifier") and "moving_" not in p.name:
            np.testing.assert_array_equal(trained[p.name].asnumpy(), p.asnumpy(), err_msg=p.name)


def _run_train_py(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "train.py"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, cwd=REPO_ROOT)


def test_cli_errors_are_one_line():
    result = _run_train_py("--warmup_epoch", "3")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown option --warmup_epoch; did you mean 'warmup_epochs'?"


@pytest.fixture(autouse=True)
def _graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
