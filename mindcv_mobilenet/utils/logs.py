"""Console logging of the command-line scripts."""

from __future__ import annotations

import logging
import sys


def setup_logging() -> None:
    """Library log lines (info and up) on stderr, message only, once."""
    logger = logging.getLogger("mindcv_mobilenet")
    if not any(getattr(h, "_mcv_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._mcv_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
