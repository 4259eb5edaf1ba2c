"""Backbone use: the feature maps of a MobileNet at strides 2, 4, 8, 16 and 32 (timm's ``features_only``).

``create_model(name, features_only=True, out_indices=(1, 2, 3, 4))`` returns a :class:`FeatureExtractor`: the model's
own ``features`` trunk (same parameter names, so pretrained and converted checkpoints load into it; only the
classifier is dropped) that returns one map per requested reduction. Each reduction's map is the output of the last
layer of ``features`` at that stride (after its activation), so at stride 32 it is the trunk's final 1x1 convolution
(V1 1024, V2 1280, V3-Large 960, V3-Small 576 channels at width 1.0), as torchvision's detection backbones use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mindspore import Tensor, nn

from ..utils.errors import UserError
from .layers import SqueezeExcite

REDUCTIONS = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class FeatureInfo:
    """One returned map: channels, reduction (input size / map size) and the ``features`` index it comes from."""

    num_chs: int
    reduction: int
    index: int


def _main_path_convs(cell: nn.Cell) -> list[nn.Conv2d]:
    """The convolutions that shape ``cell``'s output, in order: not squeeze-excite's, nor those of side branches
    (``side_branch``: MobileNetV4's attention key/value paths, whose stride shrinks what is attended to)."""
    inner = [name + "." for name, sub in cell.cells_and_names()
             if name and (isinstance(sub, SqueezeExcite) or getattr(sub, "side_branch", False))]
    return [sub for name, sub in cell.cells_and_names()
            if isinstance(sub, nn.Conv2d) and not any(name.startswith(prefix) for prefix in inner)]


def _stride(cell: nn.Cell) -> int:
    """Spatial stride of a cell: the product of its convolutions' strides (1 for BatchNorm, activations...)."""
    stride = 1
    for conv in _main_path_convs(cell):
        stride *= conv.stride[0]
    return stride


def _out_channels(cell: nn.Cell, channels: int) -> int:
    """Channels after ``cell``: its last convolution's output, else ``channels``."""
    convs = _main_path_convs(cell)
    return convs[-1].out_channels if convs else channels


def feature_info(model: nn.Cell) -> list[FeatureInfo]:
    """Where each of :data:`REDUCTIONS` ends in ``model.features`` and how many channels it has there."""
    info: dict[int, FeatureInfo] = {}
    reduction, channels = 1, 0
    for index, cell in enumerate(model.features.cell_list):
        reduction *= _stride(cell)
        channels = _out_channels(cell, channels)
        info[reduction] = FeatureInfo(channels, reduction, index)
    return [info[r] for r in REDUCTIONS if r in info]


def check_out_indices(out_indices: tuple[int, ...], available: int, model_name: str) -> tuple[int, ...]:
    out_indices = tuple(int(i) for i in out_indices)
    bad = [i for i in out_indices if not 0 <= i < available]
    if bad or not out_indices or len(set(out_indices)) != len(out_indices):
        valid = ", ".join(f"{i} (stride {r})" for i, r in enumerate(REDUCTIONS[:available]))
        raise UserError(f"{model_name}: out_indices {out_indices} not valid; choose distinct indices among {valid}")
    return tuple(sorted(out_indices))


class FeatureExtractor(nn.Cell):
    """A MobileNet's ``features`` trunk returning a tuple of maps at the chosen reductions (see the module docstring).

    ``feature_info`` lists the returned maps in order (``num_chs``, ``reduction``, ``index``).
    """

    def __init__(self, model: nn.Cell, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)) -> None:
        super().__init__()
        every = feature_info(model)
        name = getattr(model, "model_name", type(model).__name__)
        out_indices = check_out_indices(out_indices, len(every), name)
        self.feature_info = [every[i] for i in out_indices]
        last = self.feature_info[-1].index
        self.features = nn.SequentialCell(list(model.features.cell_list)[: last + 1])
        wanted = {info.index for info in self.feature_info}
        self._returned = tuple(i in wanted for i in range(last + 1))
        self.model_name = name
        self.default_cfg = getattr(model, "default_cfg", None)

    def construct(self, x: Tensor) -> tuple[Tensor, ...]:
        outputs = ()
        for i, cell in enumerate(self.features.cell_list):
            x = cell(x)
            if self._returned[i]:
                outputs = outputs + (x,)
        return outputs
