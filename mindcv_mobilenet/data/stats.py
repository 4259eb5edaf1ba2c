"""Count and report images that fail to decode, so one corrupt file costs one image instead of the whole epoch.

Image-file sources emit a ``bad_file`` column: ``-1`` for a good image, otherwise the index of the file that failed
(the row then holds another readable file, see :class:`~.folder.ImageFileSource`). :class:`BadFileGuard` removes
those rows (evaluation) or only counts them (training), records them in a :class:`DatasetStats` and logs the count
and the first few names when an epoch ends.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

_logger = logging.getLogger("mindcv_mobilenet.data")

BAD_FILE_COLUMN = "bad_file"
NAMES_IN_REPORT = 5


@dataclass
class DatasetStats:
    """What the pipeline skipped: ``bad_files`` distinct files, ``skipped`` rows over all epochs."""

    files: Sequence[str] = field(default=(), repr=False)
    bad_files: int = 0
    skipped: int = 0
    epochs: int = 0
    last_epoch_skipped: int = 0
    bad_file_names: list = field(default_factory=list)

    def name(self, index: int) -> str:
        return self.files[index] if 0 <= index < len(self.files) else f"file #{index}"

    def record(self, index: int) -> None:
        name = self.name(index)
        self.skipped += 1
        if name not in self.bad_file_names:
            self.bad_file_names.append(name)
            self.bad_files = len(self.bad_file_names)

    def end_epoch(self, names: Sequence[str]) -> None:
        """Close an epoch in which the files ``names`` were skipped (already recorded), and say which."""
        self.epochs += 1
        self.last_epoch_skipped = len(names)
        if names:
            shown = ", ".join(names[:NAMES_IN_REPORT]) + (", ..." if len(names) > NAMES_IN_REPORT else "")
            _logger.warning(
                "epoch %d: skipped %d image(s) that could not be decoded (%d distinct bad file(s) so far): %s",
                self.epochs, len(names), self.bad_files, shown,
            )


class BadFileGuard:
    """Removes (evaluation) or counts (training) rows whose file could not be decoded, and reports per epoch.

    Evaluation uses :meth:`keep` as a ``filter`` predicate: every good image is seen exactly once. Training uses
    :meth:`count_batch` as a ``per_batch_map`` on the ``bad_file`` column alone (the images never pass through
    Python): the source already put another readable file in a bad row, so every rank keeps the same number of
    equally shaped batches (a data-parallel step cannot wait on a rank that has fewer).
    """

    def __init__(self, stats: DatasetStats, rows_per_epoch: int) -> None:
        self.stats = stats
        self.rows_per_epoch = max(int(rows_per_epoch), 1)
        self._rows = 0
        self._epoch_names: list = []
        self._lock = threading.Lock()

    def _count(self, rows: int, bad: Sequence[int]) -> None:
        with self._lock:
            for index in bad:
                self.stats.record(int(index))
                self._epoch_names.append(self.stats.name(int(index)))
            self._rows += rows
            if self._rows >= self.rows_per_epoch:
                self._rows -= self.rows_per_epoch
                self._end_epoch()

    def _end_epoch(self) -> None:
        self.stats.end_epoch(self._epoch_names)
        self._epoch_names = []

    def keep(self, bad_file: np.ndarray) -> bool:
        """Filter predicate: True for a good row."""
        index = int(bad_file)
        self._count(1, [index] if index >= 0 else [])
        return index < 0

    def count_batch(self, bad_file: np.ndarray, _info) -> tuple:
        """``per_batch_map`` over the batched ``bad_file`` column: count, and pass the column on unchanged."""
        bad = [int(b) for b in np.asarray(bad_file).reshape(-1)]
        self._count(len(bad), [b for b in bad if b >= 0])
        return (bad_file,)
