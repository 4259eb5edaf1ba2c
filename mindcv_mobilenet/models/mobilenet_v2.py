"""MobileNetV2 (Sandler et al., 2018, https://arxiv.org/abs/1801.04381), Table 2.

Inverted residual blocks with linear bottlenecks. Every width is registered at every input resolution under mindcv's
names (``mobilenet_v2_075_160``); the resolution is part of the default config, not of the network.
"""

from __future__ import annotations

from mindspore import nn

from .base import MobileNetBase
from .layers import ResidualBlock, conv_bn_act, make_divisible
from .registry import ModelConfig, Variant, register_variant
from .tf_variants import tf_config

# Table 2 of the paper: expansion t, output channels c, repeats n, first stride s.
BLOCKS: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def inverted_residual(in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                      pad_mode: str = "pad") -> ResidualBlock:
    """1x1 expand + ReLU6 (skipped when t=1), 3x3 depthwise + ReLU6, 1x1 linear projection."""
    hidden = round(in_channels * expand_ratio)
    layers: list[nn.Cell] = []
    if expand_ratio != 1:
        layers += conv_bn_act(in_channels, hidden, 1, act="relu6")
    layers += conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act="relu6", pad_mode=pad_mode)
    layers += conv_bn_act(hidden, out_channels, 1, act=None)
    return ResidualBlock(layers, use_residual=stride == 1 and in_channels == out_channels)


class MobileNetV2(MobileNetBase):
    """MobileNetV2 at width multiplier ``alpha``; parameter names match mindcv's ``MobileNetV2``.

    The last 1x1 convolution keeps 1280 channels for ``alpha < 1`` and widens with ``alpha > 1``, as in the paper.
    ``tf_padding=True`` pads the 3x3 convolutions TensorFlow's "same" way (asymmetric at stride 2), as TF-slim's
    MobileNetV2 (the ``tf_mobilenet_v2_*`` models); the parameters are the same either way.
    """

    classifier_name = "classifier.1"

    def __init__(self, alpha: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.2, round_nearest: int = 8, tf_padding: bool = False) -> None:
        super().__init__()
        pad_mode = "same" if tf_padding else "pad"
        channels = make_divisible(STEM_CHANNELS * alpha, round_nearest)
        last_channels = make_divisible(LAST_CHANNELS * max(1.0, alpha), round_nearest)
        features: list[nn.Cell] = conv_bn_act(in_channels, channels, 3, 2, act="relu6", pad_mode=pad_mode)
        for expand_ratio, out_channels, repeats, first_stride in BLOCKS:
            out_channels = make_divisible(out_channels * alpha, round_nearest)
            for i in range(repeats):
                features.append(inverted_residual(channels, out_channels, first_stride if i == 0 else 1, expand_ratio,
                                                  pad_mode))
                channels = out_channels
        features += conv_bn_act(channels, last_channels, 1, act="relu6")
        self.features = nn.SequentialCell(features)
        self._build_head([nn.Dropout(p=drop_rate)], last_channels, num_classes)


_MINDCV_URL = "https://download.mindspore.cn/toolkits/mindcv/mobilenet/mobilenetv2/"

# width tag -> mindcv's published 224-px weights and accuracy, the paper's params (M) and MACs (M) at 224 px
WIDTHS = {
    "035": Variant(0.35, params_m=1.66, macs_m=59),
    "050": Variant(0.50, params_m=1.95, macs_m=97),
    "075": Variant(0.75, "mobilenet_v2_075-bd7bd4c4.ckpt", 69.98, 89.32, 2.6, 209),
    "100": Variant(1.00, "mobilenet_v2_100-d5532038.ckpt", 72.27, 90.72, 3.4, 300),
    "130": Variant(1.30, params_m=5.3, macs_m=509),
    "140": Variant(1.40, "mobilenet_v2_140-98776171.ckpt", 75.56, 92.56, 6.1, 585),
}


def _mindcv_config(tag: str, res: int) -> ModelConfig:
    """Every resolution loads the width's 224-px weights (--pretrained), as one network; mindcv's figures are at 224."""
    row = WIDTHS[tag]
    published = res == 224 and bool(row.file)
    return ModelConfig(url=_MINDCV_URL + row.file if row.file else "", sha256=row.sha256,
                       weights_image_size=224 if row.file and res != 224 else None, image_size=res,
                       top1=row.top1 if published else None, top5=row.top5 if published else None,
                       paper_params_m=row.params_m if res == 224 else None,
                       paper_macs_m=row.macs_m if res == 224 else None)


# Every V2 model, one row each (grep finds its name): name -> (width tag of WIDTHS, default input px: 224, 192, 160,
# 128 or 96). The resolution is the default input, not part of the network; the plain width names are mindcv's, for
# the 224-px models.
MODELS = {
    "mobilenet_v2_035": ("035", 224),
    "mobilenet_v2_035_224": ("035", 224),
    "mobilenet_v2_035_192": ("035", 192),
    "mobilenet_v2_035_160": ("035", 160),
    "mobilenet_v2_035_128": ("035", 128),
    "mobilenet_v2_035_96": ("035", 96),
    "mobilenet_v2_050": ("050", 224),
    "mobilenet_v2_050_224": ("050", 224),
    "mobilenet_v2_050_192": ("050", 192),
    "mobilenet_v2_050_160": ("050", 160),
    "mobilenet_v2_050_128": ("050", 128),
    "mobilenet_v2_050_96": ("050", 96),
    "mobilenet_v2_075": ("075", 224),
    "mobilenet_v2_075_224": ("075", 224),
    "mobilenet_v2_075_192": ("075", 192),
    "mobilenet_v2_075_160": ("075", 160),
    "mobilenet_v2_075_128": ("075", 128),
    "mobilenet_v2_075_96": ("075", 96),
    "mobilenet_v2_100": ("100", 224),
    "mobilenet_v2_100_224": ("100", 224),
    "mobilenet_v2_100_192": ("100", 192),
    "mobilenet_v2_100_160": ("100", 160),
    "mobilenet_v2_100_128": ("100", 128),
    "mobilenet_v2_100_96": ("100", 96),
    "mobilenet_v2_130": ("130", 224),
    "mobilenet_v2_130_224": ("130", 224),
    "mobilenet_v2_130_192": ("130", 192),
    "mobilenet_v2_130_160": ("130", 160),
    "mobilenet_v2_130_128": ("130", 128),
    "mobilenet_v2_130_96": ("130", 96),
    "mobilenet_v2_140": ("140", 224),
    "mobilenet_v2_140_224": ("140", 224),
    "mobilenet_v2_140_192": ("140", 192),
    "mobilenet_v2_140_160": ("140", 160),
    "mobilenet_v2_140_128": ("140", 128),
    "mobilenet_v2_140_96": ("140", 96),
}

for _name, (_tag, _res) in MODELS.items():
    register_variant(_name, _mindcv_config(_tag, _res), MobileNetV2,
                     f"MobileNetV2 at width {WIDTHS[_tag].alpha}, default input {_res} px.", alpha=WIDTHS[_tag].alpha)

# TF-slim's MobileNetV2 (its quantized TFLite release): the same builder with "same" padding and TF preprocessing.
# name -> width tag.
TF_MODELS = {
    "tf_mobilenet_v2_035": "035",
    "tf_mobilenet_v2_050": "050",
    "tf_mobilenet_v2_075": "075",
    "tf_mobilenet_v2_100": "100",
    "tf_mobilenet_v2_130": "130",
    "tf_mobilenet_v2_140": "140",
}

for _name, _tag in TF_MODELS.items():
    _row = WIDTHS[_tag]
    register_variant(_name, tf_config(224, paper_params_m=_row.params_m, paper_macs_m=_row.macs_m), MobileNetV2,
                     f"TF-slim's MobileNetV2 at width {_row.alpha} ('same' padding).", alpha=_row.alpha,
                     tf_padding=True)
