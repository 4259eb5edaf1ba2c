"""Shared test fixtures: where the real data lives, and compiled nets reused across the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ log: errors only, keep test output readable

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("MINDCV_MOBILENET_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a reason when it is not there."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path} (set MINDCV_MOBILENET_SHARED to the shared folder)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_path()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache during tests."""
    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
