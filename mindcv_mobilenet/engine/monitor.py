"""What a person looks at while a run goes on, refreshed at each epoch end from ``metrics.jsonl`` (rank 0 only).

* ``summary.csv``: one row per epoch (:data:`SUMMARY_COLUMNS`), for spreadsheets;
* ``curves.png``: losses, validation accuracy, learning rate, throughput (drawn by :mod:`..utils.plot`; needs
  matplotlib, ``pip install .[plot]``); ``python -m mindcv_mobilenet.plot RUN_DIR`` draws it later from the file;
* TensorBoard event files (``tensorboard`` / ``log_dir``), the same series, through ``tensorboardX``.

``metrics.jsonl`` stays the one record: these are drawn from it, so a resumed run's curves hold the epochs before
the resume too (the last record of an epoch wins). They are views, not the record: a failure to write one is one
warning line and the run goes on (that view is then left off for the rest of the run).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os

from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_path
from ..utils.plot import draw_curves, matplotlib_missing

_logger = logging.getLogger("mindcv_mobilenet")

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.csv"
TENSORBOARD_DIR = "tensorboard"  # under the run folder, when ``tensorboard`` is on and ``log_dir`` unset
SUMMARY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "images_per_s", "epoch_time_s")
_SUMMARY_KEYS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "images_per_s", "epoch_time")
# TensorBoard tag of each epoch series (step series: train/loss_step, train/lr_step)
TENSORBOARD_EPOCH_TAGS = {"train_loss": "train/loss", "val_loss": "val/loss", "val_top1": "val/top1",
                          "val_top5": "val/top5", "lr": "train/lr", "images_per_s": "train/images_per_s"}
TENSORBOARD_STEP_TAGS = {"loss": "train/loss_step", "lr": "train/lr_step"}


def read_metrics(path: str) -> list[dict]:
    """The epoch records of a ``metrics.jsonl``, in epoch order, the last record of each epoch kept (a resumed run
    writes an epoch again). A line cut short by a crash is skipped; a missing or empty file is a DataError."""
    if not os.path.isfile(path):
        raise DataError(f"{path} not found: train.py writes it in the run folder (--ckpt_save_dir) at each epoch end")
    by_epoch: dict[int, dict] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                by_epoch[record["epoch"]] = record
    if not by_epoch:
        raise DataError(f"{path} holds no epoch record yet")
    return [by_epoch[e] for e in sorted(by_epoch)]


def write_summary_csv(records: list[dict], path: str) -> str:
    """``summary.csv``: one row per epoch; validation columns empty in epochs without validation."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SUMMARY_COLUMNS)
        for record in records:
            writer.writerow(["" if record.get(k) is None else record[k] for k in _SUMMARY_KEYS])
    return path


def tensorboard_dir(cfg) -> str | None:
    """Where TensorBoard events go: ``log_dir`` when set (it turns ``tensorboard`` on), else
    ``<ckpt_save_dir>/tensorboard`` with ``tensorboard: True``, else None."""
    if getattr(cfg, "log_dir", ""):
        return cfg.log_dir
    if getattr(cfg, "tensorboard", False):
        return os.path.join(cfg.ckpt_save_dir, TENSORBOARD_DIR)
    return None


def require_tensorboardx() -> None:
    """Fail at start, as one line, when TensorBoard output is asked for and its writer is not installed."""
    if importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError("--tensorboard / log_dir need the tensorboardX package: pip install tensorboardX "
                          "(or pip install 'mindcv_mobilenet[tensorboard]')")


class TensorBoardLog:
    """The epoch records as TensorBoard scalars (x axis: the global step, so step and epoch series line up)."""

    def __init__(self, log_dir: str) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(log_dir)

    def add(self, record: dict) -> None:
        for point in record.get("steps") or []:
            for key, tag in TENSORBOARD_STEP_TAGS.items():
                self.writer.add_scalar(tag, float(point[key]), int(point["step"]))
        step = int(record.get("global_step", record["epoch"]))
        for key, tag in TENSORBOARD_EPOCH_TAGS.items():
            if isinstance(record.get(key), (int, float)):
                self.writer.add_scalar(tag, float(record[key]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class RunMonitor:
    """Refreshes summary.csv, curves.png and the TensorBoard events after each epoch record (see the module
    docstring); does nothing on ranks other than 0."""

    def __init__(self, run_dir: str, log_dir: str | None, enabled: bool, title: str = "") -> None:
        self.run_dir, self.title = run_dir, title
        self.metrics_path = os.path.join(run_dir, METRICS_FILE)
        self.enabled = enabled
        self.views = {"summary.csv": True, "curves.png": enabled, "TensorBoard": False}
        self.tensorboard: TensorBoardLog | None = None
        if not enabled:
            return
        missing = matplotlib_missing()
        if missing:
            self.views["curves.png"] = False
            _logger.info("no curves.png: %s; or draw it later with python -m mindcv_mobilenet.plot %s", missing,
                         run_dir)
        if log_dir:
            self._guard("TensorBoard", lambda: setattr(self, "tensorboard", TensorBoardLog(log_dir)), start=True)
            if self.tensorboard is not None:
                _logger.info("TensorBoard events in %s (tensorboard --logdir %s)", log_dir, log_dir)

    def epoch(self, record: dict) -> None:
        """After ``record`` was appended to metrics.jsonl: rewrite the views from the whole file."""
        if not self.enabled:
            return
        if self.tensorboard is not None:
            self._guard("TensorBoard", lambda: self.tensorboard.add(record))
        records = None
        if self.views["summary.csv"] or self.views["curves.png"]:
            try:
                records = read_metrics(self.metrics_path)
            except (OSError, DataError):
                records = [record]
        if self.views["summary.csv"]:
            self._guard("summary.csv", lambda: write_summary_csv(records, os.path.join(self.run_dir, SUMMARY_FILE)))
        if self.views["curves.png"]:
            self._guard("curves.png",
                        lambda: draw_curves(records, os.path.join(self.run_dir, CURVES_FILE), self.title))

    def close(self) -> None:
        if self.tensorboard is not None:
            self._guard("TensorBoard", self.tensorboard.close)
            self.tensorboard = None

    def _guard(self, view: str, action, start: bool = False) -> None:
        """Run ``action``; a failure is one warning line and switches the view off (training goes on)."""
        try:
            action()
            if start:
                self.views[view] = True
        except Exception as err:  # a view must never stop training
            self.views[view] = False
            if view == "TensorBoard":
                self.tensorboard = None
            _logger.warning("warning: %s not written (%s: %s); training goes on, python -m mindcv_mobilenet.plot %s "
                            "draws the curves from %s later", view, type(err).__name__, err, self.run_dir,
                            METRICS_FILE)
