"""MobileNetV4 (Qin et al., 2024, https://arxiv.org/abs/2404.10518), as timm 1.0.31 builds it (``_gen_mobilenet_v4``).

Blocks: the Universal Inverted Bottleneck (optional depthwise before the expansion, optional depthwise after it: its
ExtraDW, IB, ConvNext-like and FFN variants), the fused IB (timm's ``EdgeResidual``) of the stems, plain conv-BN-act
layers, and in the hybrids Mobile MQA (multi-query attention whose single key and value are downsampled by a strided
depthwise convolution) with layer scale. Every convolution pads symmetrically (``(k - 1) // 2``), BatchNorm has
PyTorch's defaults (eps 1e-5, momentum 0.1), and the head pools before a 1x1 convolution + BatchNorm + activation to
1280, as in timm.

The tables below are timm's block strings, one tuple per block. Sub-cells carry timm's names inside a block
(``pw_exp.conv``, ``dw_mid.bn``, ``attn.key.down_conv``, ``layer_scale.gamma``...), so a timm state dict maps by the
short table in ``convert/timm.py``: ``conv_stem``/``bn1`` are ``features.0``/``features.1``, stage ``s`` is
``features.{s + 2}``, the head is ``classifier.{0,1,4}``, and BatchNorm's ``weight/bias/running_*`` are MindSpore's
``gamma/beta/moving_*``. Parameter counts equal timm's, which differ from the paper's table (:data:`PAPER_NOTE`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from mindspore import Tensor, nn, ops

from ..kernels.batchnorm import BatchNorm2d
from ..kernels.depthwise import conv2d
from .base import MobileNetBase
from .layers import ACTIVATIONS, BatchNorm1d, LayerScale2d, conv_bn_act, make_divisible
from .registry import ModelConfig, register_model_alias, register_variant


@dataclass(frozen=True)
class Block:
    """One row of a stage table (timm's block string): the block kind and its settings, ``repeat`` times.

    kind: ``conv`` (conv-BN-act), ``fused`` (fused IB: kxk expansion, 1x1 projection), ``uib`` (``start``/``mid``:
    depthwise kernel before the expansion / after it, 0 for none), ``mqa`` (``heads`` x ``key_dim``, ``kv_stride``).
    Only the first of the repeats has the stride.
    """

    kind: str
    out: int
    stride: int = 1
    kernel: int = 0
    start: int = 0
    mid: int = 0
    expand: float = 1.0
    heads: int = 0
    key_dim: int = 0
    kv_stride: int = 1
    repeat: int = 1


def conv(kernel: int, stride: int, out: int) -> Block:  # timm's cn_r1_k{kernel}_s{stride}_c{out}
    return Block("conv", out, stride, kernel=kernel)


def fused(kernel: int, stride: int, expand: float, out: int) -> Block:  # er_k{kernel}_s{stride}_e{expand}_c{out}
    return Block("fused", out, stride, kernel=kernel, expand=expand)


def uib(start: int, mid: int, stride: int, expand: float, out: int, repeat: int = 1) -> Block:
    """uir_r{repeat}_a{start}_k{mid}_s{stride}_e{expand}_c{out}: start and mid -> ExtraDW, mid only -> IB,
    start only -> ConvNext-like, neither -> FFN."""
    return Block("uib", out, stride, start=start, mid=mid, expand=expand, repeat=repeat)


def mqa(heads: int, key_dim: int, kv_stride: int, out: int) -> Block:  # mqa_k3_h{heads}_v{kv_stride}_d{key_dim}
    return Block("mqa", out, kernel=3, heads=heads, key_dim=key_dim, kv_stride=kv_stride)


HEAD_CHANNELS = (960, 1280)  # the last stage's 1x1 conv, and the head's 1x1 conv after pooling

CONV_SMALL = [
    [conv(3, 2, 32), conv(1, 1, 32)],
    [conv(3, 2, 96), conv(1, 1, 64)],
    [uib(5, 5, 2, 3, 96), uib(0, 3, 1, 2, 96, repeat=4), uib(3, 0, 1, 4, 96)],
    [uib(3, 3, 2, 6, 128), uib(5, 5, 1, 4, 128), uib(0, 5, 1, 4, 128), uib(0, 5, 1, 3, 128),
     uib(0, 3, 1, 4, 128, repeat=2)],
]
CONV_MEDIUM = [
    [fused(3, 2, 4, 48)],
    [uib(3, 5, 2, 4, 80), uib(3, 3, 1, 2, 80)],
    [uib(3, 5, 2, 6, 160), uib(3, 3, 1, 4, 160, repeat=2), uib(3, 5, 1, 4, 160), uib(3, 3, 1, 4, 160),
     uib(3, 0, 1, 4, 160), uib(0, 0, 1, 2, 160), uib(3, 0, 1, 4, 160)],
    [uib(5, 5, 2, 6, 256), uib(5, 5, 1, 4, 256), uib(3, 5, 1, 4, 256, repeat=2), uib(0, 0, 1, 4, 256),
     uib(3, 0, 1, 4, 256), uib(3, 5, 1, 2, 256), uib(5, 5, 1, 4, 256), uib(0, 0, 1, 4, 256, repeat=2),
     uib(5, 0, 1, 2, 256)],
]
CONV_LARGE = [
    [fused(3, 2, 4, 48)],
    [uib(3, 5, 2, 4, 96), uib(3, 3, 1, 4, 96)],
    [uib(3, 5, 2, 4, 192), uib(3, 3, 1, 4, 192, repeat=3), uib(3, 5, 1, 4, 192), uib(5, 3, 1, 4, 192, repeat=5),
     uib(3, 0, 1, 4, 192)],
    [uib(5, 5, 2, 4, 512, repeat=4), uib(5, 0, 1, 4, 512), uib(5, 3, 1, 4, 512), uib(5, 0, 1, 4, 512, repeat=2),
     uib(5, 3, 1, 4, 512), uib(5, 5, 1, 4, 512), uib(5, 0, 1, 4, 512, repeat=3)],
]
HYBRID_MEDIUM = [
    [fused(3, 2, 4, 48)],
    [uib(3, 5, 2, 4, 80), uib(3, 3, 1, 2, 80)],
    [uib(3, 5, 2, 6, 160), uib(0, 0, 1, 2, 160), uib(3, 3, 1, 4, 160), uib(3, 5, 1, 4, 160), mqa(4, 64, 2, 160),
     uib(3, 3, 1, 4, 160), mqa(4, 64, 2, 160), uib(3, 0, 1, 4, 160), mqa(4, 64, 2, 160), uib(3, 3, 1, 4, 160),
     mqa(4, 64, 2, 160), uib(3, 0, 1, 4, 160)],
    [uib(5, 5, 2, 6, 256), uib(5, 5, 1, 4, 256), uib(3, 5, 1, 4, 256, repeat=2), uib(0, 0, 1, 2, 256),
     uib(3, 5, 1, 2, 256), uib(0, 0, 1, 2, 256), uib(0, 0, 1, 4, 256), mqa(4, 64, 1, 256), uib(3, 0, 1, 4, 256),
     mqa(4, 64, 1, 256), uib(5, 5, 1, 4, 256), mqa(4, 64, 1, 256), uib(5, 0, 1, 4, 256), mqa(4, 64, 1, 256),
     uib(5, 0, 1, 4, 256)],
]
HYBRID_LARGE = [
    [fused(3, 2, 4, 48)],
    [uib(3, 5, 2, 4, 96), uib(3, 3, 1, 4, 96)],
    [uib(3, 5, 2, 4, 192), uib(3, 3, 1, 4, 192, repeat=3), uib(3, 5, 1, 4, 192), uib(5, 3, 1, 4, 192, repeat=2),
     mqa(8, 48, 2, 192), uib(5, 3, 1, 4, 192), mqa(8, 48, 2, 192), uib(5, 3, 1, 4, 192), mqa(8, 48, 2, 192),
     uib(5, 3, 1, 4, 192), mqa(8, 48, 2, 192), uib(3, 0, 1, 4, 192)],
    [uib(5, 5, 2, 4, 512, repeat=4), uib(5, 0, 1, 4, 512), uib(5, 3, 1, 4, 512), uib(5, 0, 1, 4, 512, repeat=2),
     uib(5, 3, 1, 4, 512), uib(5, 5, 1, 4, 512), mqa(8, 64, 1, 512), uib(5, 0, 1, 4, 512), mqa(8, 64, 1, 512),
     uib(5, 0, 1, 4, 512), mqa(8, 64, 1, 512), uib(5, 0, 1, 4, 512), mqa(8, 64, 1, 512), uib(5, 0, 1, 4, 512)],
]

# arch -> stage tables (the last stage, a 1x1 conv to 960, is added by the builder), stem width, activation,
# layer scale init (hybrids only)
ARCHS: dict[str, tuple[list[list[Block]], int, str, float | None]] = {
    "conv_small": (CONV_SMALL, 32, "relu", None),
    "conv_medium": (CONV_MEDIUM, 32, "relu", None),
    "conv_large": (CONV_LARGE, 24, "relu", None),
    "hybrid_medium": (HYBRID_MEDIUM, 32, "relu", 1e-5),
    "hybrid_large": (HYBRID_LARGE, 24, "gelu", 1e-5),
}


class Sequence(nn.SequentialCell):
    """Named layers in sequence (timm's names become the parameter names), plus the input when ``residual``.

    A ``SequentialCell`` so that ``fuse_bn`` finds the ``conv -> bn`` pairs inside it.
    """

    def __init__(self, layers: dict[str, nn.Cell], residual: bool = False) -> None:
        super().__init__(OrderedDict(layers))
        self.residual = residual

    def construct(self, x: Tensor) -> Tensor:
        y = x
        for cell in self.cell_list:
            y = cell(y)
        return x + y if self.residual else y


def conv_norm(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
              act: str | None = None) -> Sequence:
    """timm's ``ConvNormAct``: ``conv`` then ``bn`` (which applies ``act``), from the package's ``conv_bn_act``."""
    conv_layer, bn = conv_bn_act(in_channels, out_channels, kernel_size, stride, groups, act)[:2]
    return Sequence({"conv": conv_layer, "bn": bn})


class KeyValuePath(nn.SequentialCell):
    """Mobile MQA's key or value: optional strided depthwise conv + BN (``down_conv``, ``norm``), then a 1x1 ``proj``
    to one head's width. Its stride shrinks what is attended to, not the block's output (``side_branch`` tells
    ``features.py``)."""

    side_branch = True

    def __init__(self, channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        layers: dict[str, nn.Cell] = {}
        if stride > 1:
            layers["down_conv"] = conv2d(channels, channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                                         group=channels)
            layers["norm"] = BatchNorm2d(channels)
        layers["proj"] = conv2d(channels, out_channels, 1)
        super().__init__(OrderedDict(layers))


class MultiQueryAttention2d(nn.Cell):
    """timm's ``MultiQueryAttention2d`` without query strides: ``heads`` queries per position share one key and one
    value (downsampled by ``kv_stride``); batched matrix products and softmax only, so exports keep it as is."""

    def __init__(self, channels: int, out_channels: int, heads: int, key_dim: int, kv_stride: int,
                 kernel_size: int) -> None:
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim ** -0.5
        self.query = nn.SequentialCell(OrderedDict(proj=conv2d(channels, heads * key_dim, 1)))
        self.key = KeyValuePath(channels, key_dim, kernel_size, kv_stride)
        self.value = KeyValuePath(channels, key_dim, kernel_size, kv_stride)
        self.output = nn.SequentialCell(OrderedDict(proj=conv2d(heads * key_dim, out_channels, 1)))
        self.matmul = ops.BatchMatMul()

    def construct(self, x: Tensor) -> Tensor:
        # every reshape leaves the batch as -1: an exported graph then runs any batch size
        _, _, height, width = x.shape
        q = self.query(x).reshape(-1, self.heads, self.key_dim, height * width)
        q = q.transpose(0, 1, 3, 2).reshape(-1, self.heads * height * width, self.key_dim) * self.scale
        k = self.key(x)
        attended = k.shape[2] * k.shape[3]
        k = k.reshape(-1, self.key_dim, attended)  # (B, k, P)
        v = self.value(x).reshape(-1, self.key_dim, attended).transpose(0, 2, 1)  # (B, P, v)
        attn = ops.softmax(self.matmul(q, k), axis=-1)  # (B, heads * N, P)
        o = self.matmul(attn, v).reshape(-1, self.heads, height * width, self.key_dim)
        o = o.transpose(0, 1, 3, 2).reshape(-1, self.heads * self.key_dim, height, width)
        return self.output(o)

    def matmul_macs(self, x: Tensor) -> int:
        """Multiply-adds of the two attention products for input ``x`` (counted by ``profile.count_macs``)."""
        _, _, height, width = x.shape
        stride = 1 if len(self.key) == 1 else self.key[0].stride[0]
        attended = -(-height // stride) * -(-width // stride)
        return 2 * self.heads * height * width * attended * self.key_dim


def make_block(spec: Block, in_channels: int, stride: int, act: str, layer_scale: float | None) -> nn.Cell:
    """One block of ``spec``'s kind with timm's sub-cell names (see the module docstring)."""
    out, keeps_shape = spec.out, stride == 1 and in_channels == spec.out
    if spec.kind == "conv":  # timm's ConvBnAct (no skip in V4)
        conv_layer, bn = conv_bn_act(in_channels, out, spec.kernel, stride, act=act)[:2]
        return Sequence({"conv": conv_layer, "bn1": bn})
    if spec.kind == "fused":  # timm's EdgeResidual
        mid = make_divisible(in_channels * spec.expand)
        exp_conv, bn1 = conv_bn_act(in_channels, mid, spec.kernel, stride, act=act)[:2]
        pwl, bn2 = conv_bn_act(mid, out, 1, act=None)
        return Sequence({"conv_exp": exp_conv, "bn1": bn1, "conv_pwl": pwl, "bn2": bn2}, residual=keeps_shape)
    layers: dict[str, nn.Cell] = {}
    if spec.kind == "uib":
        mid = make_divisible(in_channels * spec.expand)
        if spec.start:
            layers["dw_start"] = conv_norm(in_channels, in_channels, spec.start, 1 if spec.mid else stride,
                                           in_channels)
        layers["pw_exp"] = conv_norm(in_channels, mid, act=act)
        if spec.mid:
            layers["dw_mid"] = conv_norm(mid, mid, spec.mid, stride, mid, act=act)
        layers["pw_proj"] = conv_norm(mid, out)
    elif spec.kind == "mqa":
        layers["norm"] = BatchNorm2d(in_channels)
        layers["attn"] = MultiQueryAttention2d(in_channels, out, spec.heads, spec.key_dim, spec.kv_stride,
                                               spec.kernel)
    else:
        raise ValueError(f"unknown MobileNetV4 block kind {spec.kind!r}")
    if layer_scale is not None:
        layers["layer_scale"] = LayerScale2d(out, layer_scale)
    return Sequence(layers, residual=keeps_shape)


class MobileNetV4(MobileNetBase):
    """MobileNetV4 ``arch`` (a key of :data:`ARCHS`); parameter names map one-to-one onto timm's.

    ``features``: stem conv, stem BN (+ activation), then one ``Sequence`` per stage (strides 4, 8, 16, 32 and the
    1x1 conv to 960 at 32). Head: pool, 1x1 conv to 1280 (a ``Dense`` without bias on the pooled vector), BatchNorm +
    activation, dropout, classifier.
    """

    classifier_name = "classifier.4"

    def __init__(self, arch: str = "conv_small", num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"MobileNetV4 arch must be one of {sorted(ARCHS)}, got {arch!r}")
        stages, channels, act, layer_scale = ARCHS[arch]
        features: list[nn.Cell] = conv_bn_act(in_channels, channels, 3, 2, act=act)[:2]
        for stage in stages + [[conv(1, 1, HEAD_CHANNELS[0])]]:
            blocks: list[nn.Cell] = []
            for spec in stage:
                for repeat in range(spec.repeat):
                    blocks.append(make_block(spec, channels, spec.stride if repeat == 0 else 1, act, layer_scale))
                    channels = spec.out
            features.append(nn.SequentialCell(blocks))
        self.features = nn.SequentialCell(features)
        hidden = HEAD_CHANNELS[1]
        self._build_head([nn.Dense(channels, hidden, has_bias=False), BatchNorm1d(hidden), ACTIVATIONS[act](),
                          nn.Dropout(p=drop_rate)], hidden, num_classes)


PAPER_NOTE = ("MobileNetV4: params equal timm 1.0.31's (3.77/9.72/32.59/11.07/37.76M), the networks its published "
              "weights load into; the paper's Table 11 gives 3.8/9.2/31/10.5/35.9M (medium/large 3-6% fewer), a gap "
              "neither source explains")

# name -> arch, timm's default pretrained config (input size, crop, larger test size), the paper's params (M) and
# MACs (M) at that size (Table 11)
VARIANTS = {
    "mobilenet_v4_conv_small": ("conv_small", 224, 0.875, 256, 0.95, 3.8, 200),
    "mobilenet_v4_conv_medium": ("conv_medium", 256, 0.95, 320, 1.0, 9.2, 1000),
    "mobilenet_v4_conv_large": ("conv_large", 384, 0.95, 448, 1.0, 31.0, 5900),
    "mobilenet_v4_hybrid_medium": ("hybrid_medium", 256, 0.95, 320, 1.0, 10.5, 1200),
    "mobilenet_v4_hybrid_large": ("hybrid_large", 384, 0.95, 448, 1.0, 35.9, 7200),
}

for _name, (_arch, _size, _crop, _test_size, _test_crop, _params, _macs) in VARIANTS.items():
    _config = ModelConfig(image_size=_size, crop_pct=_crop, interpolation="bicubic",
                          test_image_size=_test_size, test_crop_pct=_test_crop,
                          paper_params_m=_params, paper_macs_m=_macs, paper_note=PAPER_NOTE)
    _doc = f"MobileNetV4-{_arch.replace('_', '-').title()} (timm's mobilenetv4_{_arch})."
    register_variant(_name, _config, MobileNetV4, _doc, arch=_arch)
    register_model_alias(f"mobilenetv4_{_arch}", _name)  # timm's names
