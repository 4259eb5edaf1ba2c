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
RESOLUTIONS = (224, 192, 160, 128, 96)

# width tag -> mindcv's published 224-px weights and accuracy, the paper's params (M) and MACs (M) at 224 px
WIDTHS = {
    "035": Variant(0.35, params_m=1.66, macs_m=59),
    "050": Variant(0.50, params_m=1.95, macs_m=97),
    "075": Variant(0.75, "mobilenet_v2_075-bd7bd4c4.ckpt", 69.98, 89.32, 2.6, 209),
    "100": Variant(1.00, "mobilenet_v2_100-d5532038.ckpt", 72.27, 90.72, 3.4, 300),
    "130": Variant(1.30, params_m=5.3, macs_m=509),
    "140": Variant(1.40, "mobilenet_v2_140-98776171.ckpt", 75.56, 92.56, 6.1, 585),
}


for _tag, _row in WIDTHS.items():
    for _res in RESOLUTIONS:
        _published = _res == 224 and bool(_row.file)
        _config = ModelConfig(  # every resolution loads the width's 224-px weights (--pretrained), as one network
            url=_MINDCV_URL + _row.file if _row.file else "",
            sha256=_row.sha256,
            weights_image_size=224 if _row.file and _res != 224 else None,
            input_size=(3, _res, _res),
            top1=_row.top1 if _published else None,
            top5=_row.top5 if _published else None,
            paper_params_m=_row.params_m if _res == 224 else None,
            paper_macs_m=_row.macs_m if _res == 224 else None,
        )
        _names = [f"mobilenet_v2_{_tag}_{_res}"] + ([f"mobilenet_v2_{_tag}"] if _res == 224 else [])
        for _name in _names:  # the plain width name is the 224-px model, as in mindcv
            _doc = f"MobileNetV2 at width {_row.alpha}, default input {_res} px."
            globals()[_name] = register_variant(_name, _config, MobileNetV2, _doc, alpha=_row.alpha)


# TF-slim's MobileNetV2 (its quantized TFLite release): the same builder with "same" padding and TF preprocessing.
for _tag, _row in WIDTHS.items():
    _doc = f"TF-slim's MobileNetV2 at width {_row.alpha} ('same' padding)."
    globals()[f"tf_mobilenet_v2_{_tag}"] = register_variant(
        f"tf_mobilenet_v2_{_tag}", tf_config(224, paper_params_m=_row.params_m, paper_macs_m=_row.macs_m),
        MobileNetV2, _doc, alpha=_row.alpha, tf_padding=True)
