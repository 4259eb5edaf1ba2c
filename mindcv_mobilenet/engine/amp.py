"""Mixed precision levels O0-O3 that work on every backend, CPU included.

O2 and O3 are MindSpore's (``auto_mixed_precision``). Its O1 rewrites the network's Python source into files in the
working directory and fails on packages with relative imports, so O1 is done here the way MindSpore 1.x did it:
convolutions and dense layers compute in float16, every other layer casts its input back to float32.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import nn

from ..utils.errors import ConfigError

AMP_LEVELS = ("O0", "O1", "O2", "O3")
FP16_CELLS = (nn.Conv2d, nn.Dense)


def apply_amp(network: nn.Cell, level: str = "O0") -> nn.Cell:
    """The network at mixed-precision ``level``; parameters (and their names) stay float32 and unchanged."""
    if level not in AMP_LEVELS:
        raise ConfigError(f"unknown amp_level '{level}': use one of {', '.join(AMP_LEVELS)}")
    if level == "O0":
        return network
    if level == "O1":
        for _, cell in network.cells_and_names():
            if not cell.name_cells():  # leaves only: to_float applies to a cell and all below it
                cell.to_float(ms.float16 if isinstance(cell, FP16_CELLS) else ms.float32)
        return network
    return ms.amp.auto_mixed_precision(network, level)
