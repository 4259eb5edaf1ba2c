"""Mixup / CutMix on batches of NCHW float32 images, producing soft float32 one-hot labels (with label smoothing).

Numpy only, so it runs as a batch-level ``map`` in the data pipeline (mindcv does the same).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def one_hot(labels: np.ndarray, num_classes: int, on_value: float = 1.0, off_value: float = 0.0) -> np.ndarray:
    """(N,) int labels -> (N, num_classes) float32 with ``on_value`` at the label and ``off_value`` elsewhere."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    out = np.full((labels.size, num_classes), off_value, dtype=np.float32)
    out[np.arange(labels.size), labels] = on_value
    return out


def mixup_target(labels: np.ndarray, num_classes: int, lam, smoothing: float = 0.0) -> np.ndarray:
    """Smoothed one-hot labels mixed with those of the reversed batch; ``lam`` is a scalar or (N, 1) array."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = one_hot(labels, num_classes, on, off)
    y2 = one_hot(np.flip(np.asarray(labels).reshape(-1), axis=0), num_classes, on, off)
    return (y1 * lam + y2 * (1.0 - lam)).astype(np.float32)


def rand_bbox(img_shape: Sequence[int], lam: float, ratio_minmax=None) -> Tuple[int, int, int, int]:
    """A CutMix box (y0, y1, x0, x1): area ~(1 - lam), or side ratios uniform in ``ratio_minmax``."""
    img_h, img_w = img_shape[-2:]
    if ratio_minmax is not None:
        cut_h = np.random.randint(int(img_h * ratio_minmax[0]), int(img_h * ratio_minmax[1]) + 1)
        cut_w = np.random.randint(int(img_w * ratio_minmax[0]), int(img_w * ratio_minmax[1]) + 1)
        y0 = np.random.randint(0, img_h - cut_h + 1)
        x0 = np.random.randint(0, img_w - cut_w + 1)
        return y0, y0 + cut_h, x0, x0 + cut_w
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
    cy, cx = np.random.randint(img_h), np.random.randint(img_w)
    y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, img_h)
    x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, img_w)
    return int(y0), int(y1), int(x0), int(x1)


class Mixup:
    """Mix each batch with its reverse: mixup (blend) or cutmix (paste a box), labels mixed by the same ``lam``.

    Args:
        mixup_alpha: Beta(alpha, alpha) for mixup's lam; 0 disables mixup.
        cutmix_alpha: Beta(alpha, alpha) for cutmix's lam; 0 disables cutmix.
        cutmix_minmax: box side ratios (min, max) instead of alpha (forces cutmix on).
        prob: probability of mixing a batch (or element) at all.
        switch_prob: probability of cutmix instead of mixup when both are on.
        mode: ``"batch"`` (one lam per batch) or ``"elem"`` (one lam per image).
        correct_lam: recompute lam from the clipped box area.
        label_smoothing: smoothing applied to the one-hot labels.
        num_classes: width of the one-hot labels.
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        cutmix_minmax: Sequence[float] | None = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        correct_lam: bool = True,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
    ) -> None:
        if mode not in ("batch", "elem"):
            raise ValueError(f"mixup mode must be 'batch' or 'elem', not {mode!r}")
        self.mixup_alpha, self.cutmix_alpha, self.cutmix_minmax = mixup_alpha, cutmix_alpha, cutmix_minmax
        if cutmix_minmax is not None:
            self.cutmix_alpha = 1.0
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0:
            raise ValueError("Mixup needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax")
        self.prob, self.switch_prob, self.mode = prob, switch_prob, mode
        self.correct_lam, self.label_smoothing, self.num_classes = correct_lam, label_smoothing, num_classes

    def _draw(self) -> Tuple[float, bool]:
        """(lam, use_cutmix) for one batch or element."""
        if np.random.rand() >= self.prob:
            return 1.0, False
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or np.random.rand() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return float(np.random.beta(alpha, alpha)), use_cutmix

    def _mix_one(self, dst: np.ndarray, src: np.ndarray, lam: float, use_cutmix: bool) -> float:
        """Mix ``src`` into ``dst`` in place (image or batch); returns the effective lam."""
        if lam >= 1.0:
            return 1.0
        if use_cutmix:
            y0, y1, x0, x1 = rand_bbox(dst.shape, lam, self.cutmix_minmax)
            dst[..., y0:y1, x0:x1] = src[..., y0:y1, x0:x1]
            if self.correct_lam or self.cutmix_minmax is not None:
                lam = 1.0 - (y1 - y0) * (x1 - x0) / float(dst.shape[-2] * dst.shape[-1])
            return lam
        dst *= lam
        dst += src * (1.0 - lam)
        return lam

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(N, C, H, W) images and (N,) int labels -> mixed float32 images and (N, num_classes) float32 labels."""
        images = np.array(images, dtype=np.float32, copy=True)
        source = images[::-1].copy()
        if self.mode == "batch":
            lam = self._mix_one(images, source, *self._draw())
        else:
            lam = np.array([[self._mix_one(images[i], source[i], *self._draw())] for i in range(len(images))],
                           dtype=np.float32)
        return images, mixup_target(labels, self.num_classes, lam, self.label_smoothing)
