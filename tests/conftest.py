"""Fixtures shared by the test modules (pytest finds them here). Plain helpers are in ``helpers.py``, the independent
NumPy/PIL reference in ``reference.py``."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ log: errors only; set before helpers imports MindSpore

from helpers import FileServer, write_good_class, write_messy_class  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Never touch the user's ~/.cache during tests: session-wide, so module-scoped fixtures (exports, downloads)
    use the test cache too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture(scope="session")
def messy_tree(tmp_path_factory) -> str:
    """root/train/{a_messy,b_clean} and root/validation/{a_messy,b_clean}: 8 good + 2 bad files per split."""
    root = str(tmp_path_factory.mktemp("messy"))
    for split in ("train", "validation"):
        write_messy_class(os.path.join(root, split, "a_messy"))
        write_good_class(os.path.join(root, split, "b_clean"), 2, seed=7)
    return root


@pytest.fixture
def file_server():
    """A file server on 127.0.0.1 (see helpers.FileServer), closed after the test."""
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def pynative_mode():
    """PyNative mode for the test, the previous mode after it (model tests build many nets: no graph compile)."""
    import mindspore as ms

    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=previous)
