"""Writes that either complete or leave nothing behind, and fail as one line naming the path and the cause.

A full disk, a missing permission or a folder that cannot exist is an ``OSError`` deep inside a writer (MindSpore's
checkpoint writer, ``json.dump``, a log handler); :func:`writing` turns it into a
:class:`~mindcv_mobilenet.utils.errors.WriteError` that says which file and why, so the command ends with one
``error:`` line instead of a stack dump.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator

from .errors import WriteError


def os_reason(err: OSError) -> str:
    """'No space left on device' rather than '[Errno 28] No space left on device: /a/very/long/path'."""
    return err.strerror or str(err) or type(err).__name__


@contextlib.contextmanager
def writing(path: str, action: str = "write") -> Iterator[None]:
    """Run the block; an ``OSError`` in it becomes ``WriteError('cannot <action> <path>: <cause>')``."""
    try:
        yield
    except OSError as err:
        raise WriteError(f"cannot {action} {path}: {os_reason(err)}") from None


def make_folder(path: str, option: str = "") -> str:
    """``os.makedirs(path, exist_ok=True)``, failing as one WriteError (``option``: the flag that named the folder)."""
    with writing(f"{path} ({option})" if option else path, "create the folder"):
        os.makedirs(path, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(final_path: str) -> Iterator[str]:
    """Yield a temporary path in the same folder; on success rename it onto ``final_path``.

    On any exception the temporary file is removed, with whatever the writer made beside it under a name that starts
    with the temporary one (MindSpore's checkpoint writer writes ``<name>.tmp`` first), and ``final_path`` is left
    untouched, so an interrupted write never replaces a user's good file with half of a new one, nor leaves a
    partial file taking the space. An ``OSError`` is a :class:`WriteError` naming ``final_path``.
    """
    folder = make_folder(os.path.dirname(os.path.abspath(final_path)))
    stem, ext = os.path.splitext(os.path.basename(final_path))
    with writing(final_path):
        # keep the extension last: some writers (MindSpore's save_checkpoint) append one when it is missing
        fd, tmp_path = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".part{ext}", dir=folder)
        os.close(fd)
    try:
        with writing(final_path):
            yield tmp_path
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp (and MindSpore's writer) make files private/read-only
            os.replace(tmp_path, final_path)
    finally:
        for leftover in glob.glob(glob.escape(os.path.splitext(tmp_path)[0]) + "*"):
            with contextlib.suppress(OSError):  # never hide the error that got us here
                os.remove(leftover)


@contextlib.contextmanager
def appending(path: str) -> Iterator[None]:
    """For appends to a log file (``metrics.jsonl``): an ``OSError`` in the block cuts the file back to what it held
    before (no half line; a file the block created is removed) and is a :class:`WriteError` naming ``path``."""
    size = os.path.getsize(path) if os.path.isfile(path) else None
    try:
        with writing(path):
            yield
    except WriteError:
        with contextlib.suppress(OSError):
            if size is None:
                if os.path.isfile(path):
                    os.remove(path)
            else:
                os.truncate(path, size)
        raise
