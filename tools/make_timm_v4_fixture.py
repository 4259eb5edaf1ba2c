"""Write tests/fixtures/timm_mobilenet_v4_blocks.npz: single MobileNetV4 blocks built by timm, weights and outputs.

Run where timm 1.0.31 and torch are installed (never a dependency of the package):
``python tools/make_timm_v4_fixture.py``. Each block gets seeded random weights, random BatchNorm statistics and layer
scales near 1 (timm initialises them to 1e-5, which would hide the branch), and an input of odd size where a stride
or the key/value downsampling meets it. Entries: ``<block>/<timm parameter name>``, ``<block>/input``,
``<block>/output`` (eval mode). ``tests/test_mobilenet_v4.py`` builds the same blocks from its table and compares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from timm.models._efficientnet_blocks import EdgeResidual, MobileAttention, UniversalInvertedResidual
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "timm_mobilenet_v4_blocks.npz"

# name -> (block, input shape); the test holds the same settings in this package's Block form
BLOCKS = {
    "mqa_kv2": (lambda: MobileAttention(32, 32, num_heads=2, key_dim=16, value_dim=16, kv_stride=2,
                                        use_multi_query=True, layer_scale_init_value=1e-5), (2, 32, 7, 7)),
    "mqa_kv1": (lambda: MobileAttention(24, 24, num_heads=4, key_dim=8, value_dim=8, kv_stride=1,
                                        use_multi_query=True, layer_scale_init_value=1e-5), (2, 24, 5, 6)),
    "extradw_gelu": (lambda: UniversalInvertedResidual(16, 16, 3, 5, 0, stride=1, exp_ratio=2, act_layer=nn.GELU,
                                                       layer_scale_init_value=1e-5), (2, 16, 9, 9)),
    "extradw_s2": (lambda: UniversalInvertedResidual(16, 24, 5, 3, 0, stride=2, exp_ratio=4,
                                                     layer_scale_init_value=None), (2, 16, 9, 9)),
    "ib": (lambda: UniversalInvertedResidual(16, 16, 0, 3, 0, stride=1, exp_ratio=3,
                                             layer_scale_init_value=None), (2, 16, 6, 6)),
    "convnext": (lambda: UniversalInvertedResidual(16, 16, 3, 0, 0, stride=1, exp_ratio=4,
                                                   layer_scale_init_value=1e-5), (2, 16, 6, 6)),
    "ffn": (lambda: UniversalInvertedResidual(16, 16, 0, 0, 0, stride=1, exp_ratio=2,
                                              layer_scale_init_value=1e-5), (2, 16, 4, 4)),
    "fused": (lambda: EdgeResidual(8, 16, exp_kernel_size=3, stride=2, exp_ratio=4), (2, 8, 9, 9)),
}


def randomise(block: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, tensor in block.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bn.bias") or name.endswith("norm.bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif name.endswith("gamma") or tensor.ndim == 1:
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5)


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    arrays: dict[str, np.ndarray] = {}
    for name, (make, shape) in BLOCKS.items():
        block = make().eval()
        randomise(block, generator)
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            y = block(x)
        arrays.update({f"{name}/{k}": v.numpy() for k, v in block.state_dict().items()
                       if not k.endswith("num_batches_tracked")})
        arrays[f"{name}/input"], arrays[f"{name}/output"] = x.numpy(), y.numpy()
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(BLOCKS)} blocks)")


if __name__ == "__main__":
    main()
