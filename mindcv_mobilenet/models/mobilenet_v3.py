"""MobileNetV3 (Howard et al., 2019, https://arxiv.org/abs/1905.02244), Tables 1 and 2.

Bottlenecks with optional squeeze-excite, ReLU or hard-swish, and a head that pools before its last 1x1 layer.
At width 1.0 the network (and its parameter names) is mindcv's. At width 0.75 it follows the paper, whose figures
(4.0M / 155M MACs large, 2.0M / 44M small) mindcv misses: the head's hidden layer (1280 / 1024 units) stays at full
width, and each block's expansion is a ratio of its real input width, as in the paper's TensorFlow code.
"""

from __future__ import annotations

from mindspore import nn

from .base import MobileNetBase
from .layers import HardSwish, ResidualBlock, SqueezeExcite, conv_bn_act, make_divisible
from .registry import ModelConfig, Variant, register_model_alias, register_variant
from .tf_variants import tf_config

# kernel, expansion channels, output channels, squeeze-excite, activation, stride
LARGE_BLOCKS = [  # Table 1
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2),
    (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1),
    (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2),
    (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
]
SMALL_BLOCKS = [  # Table 2
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
]
ARCHS = {"large": (LARGE_BLOCKS, 1280), "small": (SMALL_BLOCKS, 1024)}
STEM_CHANNELS = 16


def bottleneck(in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride: int,
               act: str, use_se: bool) -> ResidualBlock:
    """1x1 expand (skipped when it would not widen), kxk depthwise, optional SE, 1x1 linear projection."""
    layers: list[nn.Cell] = []
    if in_channels != mid_channels:
        layers += conv_bn_act(in_channels, mid_channels, 1, act=act)
    # "same" padding (TF style, asymmetric at stride 2) as in mindcv, so its weights give the same logits
    layers += conv_bn_act(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act,
                          pad_mode="same")
    if use_se:
        layers.append(SqueezeExcite(mid_channels))
    layers += conv_bn_act(mid_channels, out_channels, 1, act=None)
    return ResidualBlock(layers, use_residual=stride == 1 and in_channels == out_channels)


class MobileNetV3(MobileNetBase):
    """MobileNetV3 ``arch`` ('small' or 'large') at width ``alpha``; parameter names match mindcv's ``MobileNetV3``.

    The depthwise convolutions (all the strided layers but the stem) already pad TensorFlow's "same" way, as in
    mindcv; ``tf_padding=True`` pads the stride-2 stem that way too, and the network then computes TF-slim's
    MobileNetV3 (the ``tf_mobilenet_v3_*`` models). The parameters are the same either way.
    """

    classifier_name = "classifier.3"

    def __init__(self, arch: str = "large", alpha: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.2, round_nearest: int = 8, tf_padding: bool = False) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"MobileNetV3 arch must be one of {sorted(ARCHS)}, got {arch!r}")
        blocks, head_hidden = ARCHS[arch]
        channels = make_divisible(STEM_CHANNELS * alpha, round_nearest)
        features: list[nn.Cell] = conv_bn_act(in_channels, channels, 3, 2, act="hswish",
                                              pad_mode="same" if tf_padding else "pad")
        nominal_in = STEM_CHANNELS
        for kernel, expansion, out_channels, use_se, act, stride in blocks:
            # expansion as a ratio of the real input width: rounding keeps early layers at 16 channels at width 0.75
            mid = make_divisible(channels * expansion / nominal_in, round_nearest)
            nominal_in = out_channels
            out_channels = make_divisible(out_channels * alpha, round_nearest)
            features.append(bottleneck(channels, mid, out_channels, kernel, stride, act, use_se))
            channels = out_channels
        features += conv_bn_act(channels, channels * 6, 1, act="hswish")
        self.features = nn.SequentialCell(features)
        head_hidden = make_divisible(head_hidden * max(1.0, alpha), round_nearest)
        self._build_head(
            [nn.Dense(channels * 6, head_hidden), HardSwish(), nn.Dropout(p=drop_rate)], head_hidden, num_classes
        )


_MINDCV_URL = "https://download.mindspore.cn/toolkits/mindcv/mobilenet/mobilenetv3/"

# name -> arch and width, mindcv's published weights and accuracy, the paper's params (M) and MACs (M)
VARIANTS = {
    "mobilenet_v3_small_075": Variant(0.75, params_m=2.0, macs_m=44, arch="small"),
    "mobilenet_v3_small_100": Variant(1.00, "mobilenet_v3_small_100-509c6047.ckpt", 68.10, 87.86, 2.5, 56, "small"),
    "mobilenet_v3_large_075": Variant(0.75, params_m=4.0, macs_m=155, arch="large"),
    "mobilenet_v3_large_100": Variant(1.00, "mobilenet_v3_large_100-1279ad5f.ckpt", 75.23, 92.31, 5.4, 219, "large"),
}


for _name, _row in VARIANTS.items():
    _config = ModelConfig(url=_MINDCV_URL + _row.file if _row.file else "", sha256=_row.sha256, top1=_row.top1,
                          top5=_row.top5, paper_params_m=_row.params_m, paper_macs_m=_row.macs_m)
    register_variant(_name, _config, MobileNetV3, f"MobileNetV3-{_row.arch.capitalize()} at width {_row.alpha}.",
                     arch=_row.arch, alpha=_row.alpha)

for _arch in ("small", "large"):  # the MindSpore model_zoo's names of the 1.0 models
    register_model_alias(f"mobilenet_v3_{_arch}", f"mobilenet_v3_{_arch}_100")

# TF-slim's MobileNetV3: the same builder with a "same"-padded stem, TF preprocessing, under timm's names.
# name -> the VARIANTS row it pads the TensorFlow way.
TF_MODELS = {
    "tf_mobilenet_v3_small_075": "mobilenet_v3_small_075",
    "tf_mobilenet_v3_small_100": "mobilenet_v3_small_100",
    "tf_mobilenet_v3_large_075": "mobilenet_v3_large_075",
    "tf_mobilenet_v3_large_100": "mobilenet_v3_large_100",
}

for _name, _base in TF_MODELS.items():
    _row = VARIANTS[_base]
    _doc = f"TF-slim's MobileNetV3-{_row.arch.capitalize()} at width {_row.alpha} ('same' padding everywhere)."
    register_variant(_name, tf_config(224, paper_params_m=_row.params_m, paper_macs_m=_row.macs_m), MobileNetV3, _doc,
                     arch=_row.arch, alpha=_row.alpha, tf_padding=True)
