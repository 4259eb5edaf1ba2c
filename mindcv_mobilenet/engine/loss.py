"""Cross-entropy with label smoothing that also takes soft (mixup/cutmix) targets; computed in float32 under AMP."""

from __future__ import annotations

import mindspore as ms
from mindspore import Tensor, nn, ops

from ..utils.errors import ConfigError


class CrossEntropySmooth(nn.LossBase):
    """Mean cross-entropy of ``logits`` against int labels (smoothed) or float soft targets (used as given).

    With int labels the target is ``(1 - s) * one_hot + s / C``; soft targets from mixup already carry their
    smoothing (the loader folds it in), so they are not smoothed twice.
    """

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), not {smoothing}")
        self.smoothing = smoothing

    def construct(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = ops.cast(logits, ms.float32)
        log_probs = ops.log_softmax(logits, -1)
        if labels.ndim == 1:
            num_classes = logits.shape[-1]
            on_value = 1.0 - self.smoothing + self.smoothing / num_classes
            off_value = self.smoothing / num_classes
            target = ops.one_hot(ops.cast(labels, ms.int32), num_classes, Tensor(on_value, ms.float32),
                                 Tensor(off_value, ms.float32))
        else:
            target = ops.cast(labels, ms.float32)
        return -(target * log_probs).sum(-1).mean()


def create_loss(name: str = "CE", label_smoothing: float = 0.0) -> nn.Cell:
    """The loss of a recipe (``loss: CE``)."""
    if name.upper() != "CE":
        raise ConfigError(f"unknown loss '{name}': only CE (cross-entropy) is available")
    return CrossEntropySmooth(label_smoothing)
