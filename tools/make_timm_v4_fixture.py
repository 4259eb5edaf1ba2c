"""Write tests/fixtures/timm_mobilenet_v4_blocks.npz: single MobileNetV4 blocks built by timm, weights and outputs.

Run where timm 1.0.31 and torch are installed (never a dependency of the package):
``python tools/make_timm_v4_fixture.py``. Each block gets seeded random weights, random BatchNorm statistics and layer
scales near 1 (timm initialises them to 1e-5, which would hide the branch), and an input of odd size where a stride
or the key/value downsampling meets it. Entries: ``<block>/<timm parameter name>``, ``<block>/input``,
``<block>/output`` (eval mode). ``tests/test_mobilenet_v4.py`` builds the same blocks from its table and compares.

Training mode (BatchNorm with batch statistics), the backward pass included:

* ``mqa_train/``: a Mobile MQA block like ``mqa_kv2`` with its own weights; ``input``, ``cotangent`` (the gradient of
  the output that is pulled back), ``output``, ``input_grad`` and ``grad/<timm parameter name>`` for every parameter
  (query/key/value/output projections, the key/value downsampling, the pre-norm and the layer scale).
* ``train_hybrid_large/``: timm's whole ``mobilenetv4_hybrid_large`` (GELU everywhere: no ReLU kinks, whose flips
  under float32 rounding move a random ReLU network's stem gradient by up to 4e-2 at this size) with the weights of
  ``tests/reference.py: seeded_timm_weight`` (nothing stored) on 4 random 64-px images and labels: ``input``,
  ``labels``, the mean cross-entropy ``loss``, and the gradients of the stem (``grad/conv_stem.weight``,
  ``grad/bn1.*``), of the attention block ``blocks.2.7`` (query/key/value/output projections, key/value
  downsampling, layer scale) and of the classifier (``grad/classifier.bias``; its 1.3M-value weight gradient as the
  rows ``classifier_rows`` (the labels' and others) and the norm of the whole matrix, to stay small).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import timm
import torch
from timm.models._efficientnet_blocks import EdgeResidual, MobileAttention, UniversalInvertedResidual
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "timm_mobilenet_v4_blocks.npz"
sys.path.insert(0, str(ROOT / "tests"))
from reference import seeded_timm_weight  # noqa: E402  (NumPy only, shared with the test)

TRAIN_SHAPE = (4, 3, 64, 64)  # batch 4: with 2, the head's BatchNorm1d (batch statistics of 2 values) saturates
ATTENTION = "blocks.2.7."  # the whole-network reference's attention block (stage 3's first Mobile MQA)
CLASSIFIER_ROWS = 30  # rows of the classifier's weight gradient kept besides the labels'

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
    arrays.update(mqa_training(generator))
    arrays.update(hybrid_large_training(generator))
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(BLOCKS)} blocks)")


def mqa_training(generator: torch.Generator) -> dict[str, np.ndarray]:
    """A Mobile MQA block's output, input gradient and parameter gradients in training mode."""
    block = BLOCKS["mqa_kv2"][0]().train()
    randomise(block, generator)
    weights = {f"mqa_train/{k}": v.numpy().copy() for k, v in block.state_dict().items()
               if not k.endswith("num_batches_tracked")}  # before the pass updates the running statistics
    x = torch.randn(BLOCKS["mqa_kv2"][1], generator=generator, requires_grad=True)
    y = block(x)
    cotangent = torch.randn(y.shape, generator=generator)
    y.backward(cotangent)
    arrays = {**weights, "mqa_train/input": x.detach().numpy(), "mqa_train/cotangent": cotangent.numpy(),
              "mqa_train/output": y.detach().numpy(), "mqa_train/input_grad": x.grad.numpy()}
    arrays.update({f"mqa_train/grad/{k}": p.grad.numpy() for k, p in block.named_parameters()})
    return arrays


def hybrid_large_training(generator: torch.Generator) -> dict[str, np.ndarray]:
    """One training-mode batch through timm's hybrid_large with seeded weights: loss and selected gradients."""
    model = timm.create_model("mobilenetv4_hybrid_large")
    model.load_state_dict({k: torch.from_numpy(seeded_timm_weight(k, tuple(v.shape))) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()})
    model.train()
    x = torch.randn(TRAIN_SHAPE, generator=generator)
    labels = torch.randint(0, 1000, (TRAIN_SHAPE[0],), generator=generator)
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    others = torch.randperm(1000, generator=generator)[:CLASSIFIER_ROWS]
    rows = np.unique(np.concatenate([labels.numpy(), others.numpy()]))
    grads = {k: p.grad for k, p in model.named_parameters()}
    weight_grad = grads["classifier.weight"]
    arrays = {"input": x.numpy(), "labels": labels.numpy().astype(np.int32), "loss": loss.detach().numpy(),
              "classifier_rows": rows, "grad/classifier.weight[rows]": weight_grad[rows].numpy(),
              "grad/classifier.weight:norm": weight_grad.norm().numpy()}
    arrays.update({f"grad/{k}": g.numpy() for k, g in grads.items()
                   if k in ("conv_stem.weight", "bn1.weight", "bn1.bias", "classifier.bias")
                   or k.startswith(ATTENTION + "attn.") or k == ATTENTION + "layer_scale.gamma"})
    return {f"train_hybrid_large/{k}": v for k, v in arrays.items()}

if __name__ == "__main__":
    main()
