"""What a run shows (issue 25): curves.png and summary.csv at each epoch end, TensorBoard events read back with
TensorBoard's own reader, ``python -m mindcv_mobilenet.plot`` on a metrics.jsonl written by hand, and the paths
without matplotlib / tensorboardX. One tiny 2-epoch run (the packaged demo images, 32 px) serves the module."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, assert_one_line_error

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.engine import monitor as monitor_module
from mindcv_mobilenet.engine.monitor import (
    SUMMARY_COLUMNS,
    TENSORBOARD_EPOCH_TAGS,
    TENSORBOARD_STEP_TAGS,
    RunMonitor,
    read_metrics,
)
from mindcv_mobilenet.utils.errors import ConfigError, UserError

MODEL = "mobilenet_v1_025"  # the quickest MobileNet to compile
PNG = b"\x89PNG\r\n\x1a\n"


def _tiny(run_dir, *extra: str):
    """4 steps of 16 images per epoch, a step point every 2 steps, 2 epochs, validation on 64 test images."""
    return parse_args("train", [
        "--model", MODEL, "--num_samples", "64", "--batch_size", "16", "--epoch_size", "2", "--log_interval", "2",
        "--ckpt_save_dir", str(run_dir), "--num_parallel_workers", "1", "--opt", "momentum", "--lr", "0.05",
        "--warmup_epochs", "0", "--image_resize", "32", *extra,
    ])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from mindcv_mobilenet.engine.trainer import train

    run_dir = tmp_path_factory.mktemp("curves") / "run"
    train(_tiny(run_dir, "--tensorboard"))
    return run_dir


class _Lines(logging.Handler):
    """The package logger's lines (it does not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    logger, handler = logging.getLogger("mindcv_mobilenet"), _Lines()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _hand_written_metrics(folder) -> list[dict]:
    """Three epochs as train.py writes them (one without validation), a resumed epoch 3 written twice, a cut line."""
    records = [
        {"epoch": 1, "epochs": 3, "train_loss": 2.1, "lr": 0.01, "images_per_s": 100.0, "global_step": 10,
         "steps": [{"step": 1, "epoch": 0.1, "loss": 2.3, "lr": 0.002}, {"step": 10, "epoch": 1.0, "loss": 2.0,
                                                                        "lr": 0.01}],
         "val_top1": 30.0, "val_top5": 80.0, "val_loss": 1.9, "epoch_time": 12.0},
        {"epoch": 2, "epochs": 3, "train_loss": 1.7, "lr": 0.008, "images_per_s": 110.0, "global_step": 20,
         "epoch_time": 10.0},
        {"epoch": 3, "epochs": 3, "train_loss": "nan", "lr": 0.001, "images_per_s": 90.0, "global_step": 30,
         "val_top1": 40.0, "val_top5": 85.0, "val_loss": 1.6, "epoch_time": 11.0},
        {"epoch": 3, "epochs": 3, "train_loss": 1.5, "lr": 0.001, "images_per_s": 105.0, "global_step": 30,
         "val_top1": 45.0, "val_top5": 88.0, "val_loss": 1.5, "epoch_time": 11.5},
    ]
    text = "".join(json.dumps(r) + "\n" for r in records) + '{"epoch": 4, "train_lo'
    (folder / "metrics.jsonl").write_text(text)
    return records


def test_every_run_writes_curves_and_summary_at_each_epoch(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:  # the keys the file held before, and the logged steps added
        assert {"train_loss", "val_top1", "val_top5", "val_loss", "lr", "images_per_s", "epoch_time", "eta",
                "global_step"} <= set(record)
        assert len(record["steps"]) == 3  # step 1, step 2 (log_interval 2), step 4 (the epoch's end)
        assert [p["step"] for p in record["steps"]] == [4 * (record["epoch"] - 1) + s for s in (1, 2, 4)]
        assert {"step", "epoch", "loss", "lr"} == set(record["steps"][0])
    assert (run / "curves.png").read_bytes()[:8] == PNG
    with open(run / "summary.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [int(r[0]) for r in rows[1:]] == [1, 2]
    for row, record in zip(rows[1:], records, strict=True):
        values = dict(zip(SUMMARY_COLUMNS, row, strict=True))
        assert float(values["train_loss"]) == pytest.approx(record["train_loss"])
        assert float(values["val_top1"]) == pytest.approx(record["val_top1"])
        assert float(values["lr"]) == pytest.approx(record["lr"])
        assert float(values["epoch_time_s"]) == pytest.approx(record["epoch_time"])


def test_tensorboard_events_hold_every_series(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    records = read_metrics(str(run / "metrics.jsonl"))
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert set(TENSORBOARD_EPOCH_TAGS.values()) | set(TENSORBOARD_STEP_TAGS.values()) <= tags
    top1 = events.Scalars("val/top1")
    assert [e.step for e in top1] == [r["global_step"] for r in records]
    assert [e.value for e in top1] == pytest.approx([r["val_top1"] for r in records])
    steps = [p for r in records for p in r["steps"]]
    assert [e.step for e in events.Scalars("train/loss_step")] == [p["step"] for p in steps]
    assert [e.value for e in events.Scalars("train/lr_step")] == pytest.approx([p["lr"] for p in steps])


def test_plot_cli_draws_a_hand_written_metrics_file(tmp_path):
    from mindcv_mobilenet.plot import main

    _hand_written_metrics(tmp_path)
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    with open(tmp_path / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]  # the resumed epoch once (its last record), the cut line out
    assert rows[1]["val_top1"] == "" and rows[2]["train_loss"] == "1.5" and rows[2]["val_top1"] == "45.0"
    other = tmp_path / "elsewhere" / "picture.png"
    main([str(tmp_path), "--output", str(other)])
    assert other.read_bytes()[:8] == PNG


def test_plot_cli_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mindcv_mobilenet.plot", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env=dict(os.environ, GLOG_v="3", PYTHONWARNINGS="ignore"))
    assert_one_line_error(proc, "run folder", "nowhere", "not found")
    with pytest.raises(UserError, match="metrics.jsonl not found"):
        from mindcv_mobilenet.plot import main

        main([str(tmp_path)])


def test_without_matplotlib_one_info_line_and_the_rest_goes_on(tmp_path, monkeypatch, log_lines):
    records = _hand_written_metrics(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails as when not installed
    monitor = RunMonitor(str(tmp_path), None, enabled=True)
    monitor.epoch(records[-1])
    assert [line for line in log_lines if "curves.png" in line] == [
        f"no curves.png: matplotlib is not installed: pip install 'mindcv_mobilenet[plot]' (or pip install "
        f"matplotlib); or draw it later with python -m mindcv_mobilenet.plot {tmp_path}"]
    assert not (tmp_path / "curves.png").exists() and (tmp_path / "summary.csv").exists()
    from mindcv_mobilenet.plot import main

    with pytest.raises(UserError, match=r"matplotlib is not installed: pip install"):
        main([str(tmp_path)])


def test_a_failure_to_draw_is_one_warning_and_training_goes_on(tmp_path, monkeypatch, log_lines):
    records = _hand_written_metrics(tmp_path)

    def broken(*_args, **_kwargs):
        raise RuntimeError("font cache is broken")

    monkeypatch.setattr(monitor_module, "draw_curves", broken)
    monitor = RunMonitor(str(tmp_path), None, enabled=True)
    monitor.epoch(records[0])
    monitor.epoch(records[1])  # the view is off after its first failure: no second warning
    warnings = [line for line in log_lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "curves.png not written (RuntimeError: font cache is broken)" in warnings[0]
    assert (tmp_path / "summary.csv").exists()


def test_other_ranks_write_nothing(tmp_path):
    records = _hand_written_metrics(tmp_path)
    RunMonitor(str(tmp_path), str(tmp_path / "tb"), enabled=False).epoch(records[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_tensorboard_without_tensorboardx_is_one_line(tmp_path, monkeypatch):
    from mindcv_mobilenet.engine.trainer import train

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    for flags in (["--tensorboard"], ["--log_dir", str(tmp_path / "tb")]):
        with pytest.raises(ConfigError, match=r"need the tensorboardX package: pip install tensorboardX"):
            train(_tiny(tmp_path / "run", *flags))
    assert not (tmp_path / "run").exists()  # refused before anything was written
