"""Where the library's log lines go: the console of a command-line script, and a training run's ``train.log``.

One home for both, so every script formats, levels and removes its handlers the same way.
"""

from __future__ import annotations

import logging
import sys

from .errors import WriteError
from .fileio import os_reason, writing

LOGGER_NAME = "mindcv_mobilenet"


class RunLogFile(logging.FileHandler):
    """``train.log``: a write that fails (disk full) ends the run as one :class:`WriteError`, instead of logging's
    stack dump on stderr and a log that silently stops."""

    def __init__(self, path: str) -> None:
        with writing(path):
            super().__init__(path, encoding="utf-8")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        err = sys.exc_info()[1]
        if isinstance(err, OSError):
            raise WriteError(f"cannot write {self.baseFilename}: {os_reason(err)}") from None
        super().handleError(record)


def setup_logging(console: str = "stderr", level: int = logging.INFO, log_file: str | None = None
                  ) -> list[logging.Handler]:
    """Library log lines, message only, on ``sys.<console>`` (added once per console) and, with ``log_file``, into
    that file (:class:`RunLogFile`); returns the handlers added, which a run removes when it ends.

    Evaluation and inference log on stderr (their results are on stdout); training logs its progress on stdout.
    """
    logger = logging.getLogger(LOGGER_NAME)
    handlers: list[logging.Handler] = []
    if not any(getattr(h, "_mcv_console", None) == console for h in logger.handlers):
        stream = logging.StreamHandler(getattr(sys, console))
        stream._mcv_console = console  # type: ignore[attr-defined]
        handlers.append(stream)
    if log_file:
        handlers.append(RunLogFile(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handlers
