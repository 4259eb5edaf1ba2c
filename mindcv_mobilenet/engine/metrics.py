"""Top-1/Top-5 evaluation (exact under data parallel) and the run's progress lines and metrics file."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Iterable

import numpy as np
from mindspore import Tensor, nn

from ..utils.fileio import atomic_path
from .distributed import Reducer

_logger = logging.getLogger("mindcv_mobilenet")


def topk_correct(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of rows whose label is among the k highest logits, for each k (k capped at the class count)."""
    labels = labels.reshape(-1)
    order = np.argsort(-logits, axis=1, kind="stable")
    counts = []
    for k in ks:
        top = order[:, : min(k, logits.shape[1])]
        counts.append(int((top == labels[:, None]).any(axis=1).sum()))
    return counts


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row cross-entropy (no smoothing), computed stably on the host."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels.reshape(-1)]


def evaluate(model: nn.Cell, batches: Iterable, reducer: Reducer, num_classes: int = 0) -> dict:
    """Top-1/Top-5 (%) and mean loss of ``model`` over this rank's batches, summed over ranks before dividing.

    Every rank sends (top-1 hits, top-5 hits, loss sum, images), so the result is exact whatever the shard sizes.
    With ``num_classes`` the result also holds ``confusion``, the (true class, predicted class) counts summed over
    ranks the same way (see :func:`per_class_top1`, :func:`most_confused`).
    A last, smaller batch is padded to the first batch's size (and the padding ignored), so graph mode compiles
    the evaluation network once.
    """
    model.set_train(False)
    totals = np.zeros(4)
    confusion = np.zeros((num_classes, num_classes), np.int64) if num_classes else None
    full = None
    for images, labels in batches:
        labels_np = labels.asnumpy().reshape(-1).astype(np.int64)
        n = len(labels_np)
        full = full or n
        if n < full:
            pad = np.zeros((full - n,) + tuple(images.shape[1:]), images.asnumpy().dtype)
            images = Tensor(np.concatenate([images.asnumpy(), pad]))
        logits = model(images).asnumpy().astype(np.float32)[:n]
        hits = topk_correct(logits, labels_np)
        totals += np.array([hits[0], hits[1], float(cross_entropy(logits, labels_np).sum()), n])
        if confusion is not None:  # the top-1 prediction: argmax keeps the first of equal logits, as topk_correct
            np.add.at(confusion, (labels_np, logits.argmax(axis=1)), 1)
    model.set_train(True)
    top1, top5, loss_sum, count = reducer.sum(totals)
    extra = {} if confusion is None else {"confusion": np.rint(reducer.sum(confusion)).astype(np.int64)}
    if count == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan"), "count": 0} | extra
    return {"top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count, "loss": loss_sum / count,
            "count": int(count)} | extra


def per_class_top1(confusion: np.ndarray) -> list[tuple[int, float]]:
    """(images, Top-1 %) of each true class from a confusion matrix (rows: true class); nan for a class with no
    image."""
    images = confusion.sum(axis=1)
    hits = np.diag(confusion)
    return [(int(n), 100.0 * int(h) / int(n) if n else float("nan")) for n, h in zip(images, hits, strict=True)]


def most_confused(confusion: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` (true class, predicted class, images) pairs off the diagonal with the most images, most first
    (ties in class order); pairs with no image are left out."""
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(flat, off.shape), strict=True)]
    return [p for p in pairs if p[2] > 0]


class AverageMeter:
    """Running mean."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        self.total += value * n
        self.count += n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunLog:
    """Progress on stdout and ``metrics.jsonl`` (one JSON object per epoch) in the run folder; rank 0 only."""

    def __init__(self, metrics_path: str | None, enabled: bool, stream=None) -> None:
        self.metrics_path = metrics_path if enabled else None
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.start = time.time()

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def step(self, epoch: int, epochs: int, step: int, steps: int, loss: float, lr: float, images_per_s: float,
             scale: float | None = None) -> None:
        extra = f"  loss_scale {scale:g}" if scale is not None else ""
        self.line(f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {loss:.4f}  lr {lr:.6f}  "
                  f"{images_per_s:.1f} img/s{extra}")

    def epoch(self, record: dict) -> None:
        """Print one epoch line and append ``record`` to the metrics file."""
        val = ""
        if record.get("val_top1") is not None:
            val = (f"  val_top1 {record['val_top1']:.2f}%  val_top5 {record['val_top5']:.2f}%  "
                   f"val_loss {record['val_loss']:.4f}")
        skipped = f"  skipped_steps {record['skipped_steps']}" if record.get("skipped_steps") else ""
        self.line(
            f"epoch {record['epoch']}/{record['epochs']}  loss {record['train_loss']:.4f}{val}  "
            f"lr {record['lr']:.6f}  {record['images_per_s']:.1f} img/s  time {format_seconds(record['epoch_time'])}"
            f"  eta {format_seconds(record['eta'])}{skipped}"
        )
        if self.metrics_path:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: str, data: dict) -> None:
    """Write a small JSON file atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump({k: _plain(v) for k, v in data.items()}, f, indent=1)
