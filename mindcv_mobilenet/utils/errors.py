"""One clear line for a user's mistake instead of a stack dump.

Library code raises :class:`UserError` (or one of its subclasses) with a message that names the thing that is wrong
and what to do about it. Command-line entry points wrap their ``main`` in :func:`run_cli`, which prints that message
as a single ``error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """An error caused by input the user can fix (a path, a flag, a file); its message is shown as is."""


class ConfigError(UserError):
    """A bad config key or value."""


class CheckpointError(UserError):
    """A checkpoint that does not fit the model, or cannot be read."""


class DownloadError(UserError):
    """A download that failed, or a file whose hash does not match."""


class DataError(UserError):
    """A missing, empty or unreadable data set."""


class WriteError(UserError):
    """A file or folder that could not be written: disk full, no permission, a folder under a regular file. The
    message names the path and the cause (:func:`mindcv_mobilenet.utils.fileio.writing` makes it)."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main`` and turn a :class:`UserError` into one line on stderr and exit status 2."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    sys.exit(code or 0)
