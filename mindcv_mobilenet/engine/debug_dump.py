"""What each rank trained on, for the tests that compare ranks and runs (``tests/test_distributed.py``).

With ``MINDCV_MOBILENET_DEBUG_DIR`` set, every rank writes the digest, labels and loss of each batch it trained on to
``samples_rank<r>.jsonl`` there, and its final weights to ``weights_rank<r>.npz``. Unset, nothing is recorded.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from mindspore import nn

from .loss_window import StepResult

DEBUG_ENV = "MINDCV_MOBILENET_DEBUG_DIR"


class DebugDump:
    """Per-rank record of the batches seen and the final weights; does nothing unless ``DEBUG_ENV`` names a folder."""

    def __init__(self, rank: int) -> None:
        self.folder = os.environ.get(DEBUG_ENV)
        self.rank = rank
        if self.folder:
            os.makedirs(self.folder, exist_ok=True)
            self.samples = os.path.join(self.folder, f"samples_rank{rank}.jsonl")
        self._pending: dict[int, dict] = {}

    def batch(self, epoch: int, step: int, images, labels) -> None:
        """Note the batch; it is written with its loss by :meth:`losses`."""
        if not self.folder:
            return
        image_np, label_np = images.asnumpy(), labels.asnumpy()
        self._pending[step] = {"epoch": epoch, "step": step, "labels": label_np.reshape(len(label_np), -1)
                               .argmax(-1).tolist() if label_np.ndim > 1 else label_np.tolist(),
                               "digest": hashlib.sha1(image_np.tobytes()).hexdigest()}

    def losses(self, results: list[StepResult]) -> None:
        if not self.folder:
            return
        with open(self.samples, "a", encoding="utf-8") as f:
            for result in results:
                record = self._pending.pop(result.step, None)
                if record is not None:
                    f.write(json.dumps(record | {"loss": result.loss}) + "\n")

    def weights(self, model: nn.Cell) -> None:
        if self.folder:
            np.savez(os.path.join(self.folder, f"weights_rank{self.rank}.npz"),
                     **{p.name: p.asnumpy() for p in model.get_parameters()})
