"""Every picture the package draws: a run's curves (``curves.png``) and a validation's confusion matrix.

matplotlib is an optional extra (``pip install .[plot]``). Figures are built as ``matplotlib.figure.Figure`` on an
Agg canvas, never through ``pyplot``: drawing here changes no global state (backend, current figure, rcParams) that
the user's own code relies on, and needs no display. Callers that must not fail (the training loop) check
:func:`matplotlib_missing` first and catch what drawing raises.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence

import numpy as np

from .fileio import atomic_path

INSTALL_HINT = "pip install 'mindcv_mobilenet[plot]' (or pip install matplotlib)"
PICTURE_MAX_CLASSES = 100  # beyond this a confusion picture is unreadable: the table and the pairs only


def matplotlib_missing() -> str | None:
    """None when matplotlib can be imported, else one line saying how to install it."""
    if importlib.util.find_spec("matplotlib") is None:
        return f"matplotlib is not installed: {INSTALL_HINT}"
    return None


def _figure(width: float, height: float):
    """A pyplot-free figure with an Agg canvas (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str) -> str:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _values(records: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the records that hold a finite ``key``."""
    xs, ys = [], []
    for record in records:
        value = _number(record.get(key))
        if value is not None:
            xs.append(float(record["epoch"]))
            ys.append(value)
    return xs, ys


def _number(value) -> float | None:
    """A finite float, or None (metrics.jsonl stores nan/inf as strings and absent values as null)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def draw_curves(records: Sequence[dict], path: str, title: str = "") -> str:
    """Draw ``curves.png`` from metrics.jsonl's epoch records: losses, validation Top-1/Top-5, learning rate,
    images/s, against epochs (per logged step where the record holds its ``steps``). Returns ``path``."""
    figure = _figure(11, 7.2)
    (loss_ax, acc_ax), (lr_ax, speed_ax) = figure.subplots(2, 2)
    steps = [s for r in records for s in r.get("steps") or []]
    step_x = [s["epoch"] for s in steps if _number(s.get("loss")) is not None]
    step_loss = [float(s["loss"]) for s in steps if _number(s.get("loss")) is not None]
    if step_loss:
        loss_ax.plot(step_x, step_loss, color="tab:blue", alpha=0.35, linewidth=1, label="train (logged steps)")
    loss_ax.plot(*_values(records, "train_loss"), "o-", color="tab:blue", label="train (epoch)")
    val_x, val_loss = _values(records, "val_loss")
    if val_loss:
        loss_ax.plot(val_x, val_loss, "s-", color="tab:orange", label="validation")
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")

    for key, style, label in (("val_top1", "o-", "Top-1"), ("val_top5", "s--", "Top-5")):
        xs, ys = _values(records, key)
        if ys:
            acc_ax.plot(xs, ys, style, label=label)
            acc_ax.annotate(f"{ys[-1]:.1f}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=9)
    acc_ax.set(title="Validation accuracy", xlabel="epoch", ylabel="%")
    acc_ax.margins(y=0.15)  # room for the last values' labels inside the axes
    if not acc_ax.lines:
        acc_ax.text(0.5, 0.5, "no validation\n(val_while_train: False)", ha="center", va="center",
                    transform=acc_ax.transAxes, color="gray")

    step_lr = [(s["epoch"], float(s["lr"])) for s in steps if _number(s.get("lr")) is not None]
    if step_lr:
        lr_ax.plot([x for x, _ in step_lr], [y for _, y in step_lr], color="tab:green", linewidth=1.5,
                   label="logged steps")
    lr_ax.plot(*_values(records, "lr"), "o", color="tab:green", label="epoch end")
    lr_ax.set(title="Learning rate", xlabel="epoch", ylabel="lr")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))

    speed_ax.plot(*_values(records, "images_per_s"), "o-", color="tab:purple")
    speed_ax.set(title="Training throughput", xlabel="epoch", ylabel="images / s")
    speed_ax.set_ylim(bottom=0)

    last_epoch = max((float(r["epoch"]) for r in records), default=1.0)
    for ax in (loss_ax, acc_ax, lr_ax, speed_ax):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, max(last_epoch, 1.0) * 1.04)
        if len(ax.lines) > 1:
            ax.legend(fontsize=9)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def draw_confusion(matrix: np.ndarray, names: Sequence[str], path: str, title: str = "") -> str:
    """Draw a confusion matrix (rows: true class, columns: predicted), each row as shares of its class, with the
    counts written in the cells when the classes are few enough to read. Returns ``path``."""
    matrix = np.asarray(matrix)
    n = len(matrix)
    if n > PICTURE_MAX_CLASSES:
        raise ValueError(f"{n} classes: a picture is drawn for at most {PICTURE_MAX_CLASSES}")
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    side = min(max(5.5, 0.5 * n + 2.5), 16.0)
    figure = _figure(side + 1.2, side)
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 40:
        ticks = np.arange(n)
        labels = [str(name) for name in names]
        font = 10 if n <= 12 else 8 if n <= 25 else 6
        ax.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
        ax.set_yticks(ticks, labels, fontsize=font)
    else:  # names would overlap: class indices every 10
        ticks = np.arange(0, n, 10)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=9 if n <= 12 else 7,
                            color="white" if shares[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted class", ylabel="true class")
    if title:
        ax.set_title(title, fontsize=11)
    return _save(figure, path)
