"""Where things lie in a checkout of this repository, for ``bench/`` and the ``tools/`` scripts, which run from one.

The installed package does not know (after ``pip install`` there is no repository around it); the tests have their
own two lines in ``tests/helpers.py``, since they must not import benchmark code.
"""

from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_ENV = "MINDCV_MOBILENET_SHARED"


def shared_dir() -> str:
    """Folder of shared real data and weights: ``$MINDCV_MOBILENET_SHARED`` or ``<repo>/../shared``."""
    return os.environ.get(SHARED_ENV) or os.path.join(os.path.dirname(REPO_ROOT), "shared")
