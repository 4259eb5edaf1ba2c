"""MobileNetV1 (Howard et al., 2017, https://arxiv.org/abs/1704.04861), Table 1.

A 3x3 stem convolution followed by 13 depthwise-separable blocks; the width multiplier scales every layer.
"""

from __future__ import annotations

from mindspore import Tensor, nn

from .base import MobileNetBase
from .layers import conv_bn_act
from .registry import ModelConfig, Variant, register_variant
from .tf_variants import tf_config

# Table 1 of the paper: (output channels, stride of the depthwise convolution) for each separable block.
BLOCKS: list[tuple[int, int]] = [
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
]
STEM_CHANNELS = 32


def depthwise_separable(in_channels: int, out_channels: int, stride: int, act: str = "relu",
                        pad_mode: str = "pad") -> nn.SequentialCell:
    """3x3 depthwise + BN + activation, then 1x1 pointwise + BN + activation."""
    return nn.SequentialCell(
        conv_bn_act(in_channels, in_channels, 3, stride, groups=in_channels, act=act, pad_mode=pad_mode)
        + conv_bn_act(in_channels, out_channels, 1, act=act)
    )


class MobileNetV1(MobileNetBase):
    """MobileNetV1 at width multiplier ``alpha``; parameter names match mindcv's ``MobileNetV1``.

    mindcv's network pads symmetrically and uses ReLU. ``tf_padding=True`` pads every 3x3 convolution TensorFlow's
    "same" way (asymmetric at stride 2) and ``act="relu6"`` is Google's activation: the two together compute the
    Keras/TF-slim MobileNet (the ``tf_mobilenet_v1_*`` models); the parameters are the same either way.
    """

    classifier_name = "classifier"

    def __init__(self, alpha: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.0, act: str = "relu", tf_padding: bool = False) -> None:
        super().__init__()
        pad_mode = "same" if tf_padding else "pad"
        channels = int(STEM_CHANNELS * alpha)
        features: list[nn.Cell] = conv_bn_act(in_channels, channels, 3, 2, act=act, pad_mode=pad_mode)
        for out_channels, stride in BLOCKS:
            out_channels = int(out_channels * alpha)
            features.append(depthwise_separable(channels, out_channels, stride, act, pad_mode))
            channels = out_channels
        self.features = nn.SequentialCell(features)
        # mindcv's V1 has no dropout layer inside ``classifier``; keep it outside so the names stay the same
        self.head_drop = nn.Dropout(p=drop_rate) if drop_rate > 0 else nn.Identity()
        self._build_head([], channels, num_classes)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.head_drop(self.pool(x)))


_MINDCV_URL = "https://download.mindspore.cn/toolkits/mindcv/mobilenet/mobilenetv1/"

# width tag -> mindcv's published 224-px weights and accuracy, the paper's params (M) and MACs (M) at 224 px
WIDTHS = {
    "025": Variant(0.25, "mobilenet_v1_025-d3377fba.ckpt", 53.87, 77.66, 0.5, 41),
    "050": Variant(0.50, "mobilenet_v1_050-23e9ddbe.ckpt", 65.94, None, 1.3, 149),
    "075": Variant(0.75, "mobilenet_v1_075-5bed0c73.ckpt", 70.44, None, 2.6, 325),
    "100": Variant(1.00, "mobilenet_v1_100-91c7b206.ckpt", 72.95, None, 4.2, 569),
}


def _mindcv_config(tag: str, res: int) -> ModelConfig:
    """mindcv's weights (1001 classes) were trained at 224 px and its numbers measured there; every size loads
    those weights with --pretrained (the same network) and reads mindcv checkpoints with 1001 classes."""
    row = WIDTHS[tag]
    published = res == 224
    return ModelConfig(url=_MINDCV_URL + row.file, sha256=row.sha256, weights_image_size=None if published else 224,
                       checkpoint_num_classes=1001, image_size=res,
                       top1=row.top1 if published else None, top5=row.top5 if published else None,
                       paper_params_m=row.params_m if published else None,
                       paper_macs_m=row.macs_m if published else None)


# Every V1 model with mindcv's weights, one row each (grep finds its name): name -> (width tag of WIDTHS, default
# input px: 224, 192, 160, 128, the paper's (Table 7) and TF-slim's releases). The resolution is the default input,
# not part of the network; the plain width names are mindcv's, for the 224-px models.
MODELS = {
    "mobilenet_v1_025": ("025", 224),
    "mobilenet_v1_025_224": ("025", 224),
    "mobilenet_v1_025_192": ("025", 192),
    "mobilenet_v1_025_160": ("025", 160),
    "mobilenet_v1_025_128": ("025", 128),
    "mobilenet_v1_050": ("050", 224),
    "mobilenet_v1_050_224": ("050", 224),
    "mobilenet_v1_050_192": ("050", 192),
    "mobilenet_v1_050_160": ("050", 160),
    "mobilenet_v1_050_128": ("050", 128),
    "mobilenet_v1_075": ("075", 224),
    "mobilenet_v1_075_224": ("075", 224),
    "mobilenet_v1_075_192": ("075", 192),
    "mobilenet_v1_075_160": ("075", 160),
    "mobilenet_v1_075_128": ("075", 128),
    "mobilenet_v1_100": ("100", 224),
    "mobilenet_v1_100_224": ("100", 224),
    "mobilenet_v1_100_192": ("100", 192),
    "mobilenet_v1_100_160": ("100", 160),
    "mobilenet_v1_100_128": ("100", 128),
}

for _name, (_tag, _res) in MODELS.items():
    register_variant(_name, _mindcv_config(_tag, _res), MobileNetV1,
                     f"MobileNetV1 at width {WIDTHS[_tag].alpha}, default input {_res} px.", alpha=WIDTHS[_tag].alpha)

# TensorFlow's MobileNetV1 (Keras applications / TF-slim): the same builder with "same" padding and ReLU6, TF
# preprocessing, under timm's names; ``tf_mobilenet_v1_075`` is the 224-px model. No published MindSpore weights:
# convert Google's files with ``python -m mindcv_mobilenet.convert``.
# The 0.25 one ships in the package (resources/weights/NOTICE.md): ``pretrained=True`` works offline.
TF_PACKAGED = {"tf_mobilenet_v1_025": dict(
    url="package:weights/tf_mobilenet_v1_025-f98c44c4.ckpt",
    sha256="f98c44c45b49e16d3fb82ee80c499dcb696bbd5eec853da214bfda1c02bd4699", top1=49.8, top5=74.2)}


def _tf_config(tag: str, res: int) -> ModelConfig:
    row = WIDTHS[tag]
    at_224 = res == 224
    return tf_config(res, paper_params_m=row.params_m if at_224 else None, paper_macs_m=row.macs_m if at_224 else None,
                     **(TF_PACKAGED.get(f"tf_mobilenet_v1_{tag}", {}) if at_224 else {}))


# name -> (width tag, default input px), as MODELS; ``tf_mobilenet_v1_<tag>`` is the 224-px model (timm's names).
TF_MODELS = {
    "tf_mobilenet_v1_025": ("025", 224),
    "tf_mobilenet_v1_025_224": ("025", 224),
    "tf_mobilenet_v1_025_192": ("025", 192),
    "tf_mobilenet_v1_025_160": ("025", 160),
    "tf_mobilenet_v1_025_128": ("025", 128),
    "tf_mobilenet_v1_050": ("050", 224),
    "tf_mobilenet_v1_050_224": ("050", 224),
    "tf_mobilenet_v1_050_192": ("050", 192),
    "tf_mobilenet_v1_050_160": ("050", 160),
    "tf_mobilenet_v1_050_128": ("050", 128),
    "tf_mobilenet_v1_075": ("075", 224),
    "tf_mobilenet_v1_075_224": ("075", 224),
    "tf_mobilenet_v1_075_192": ("075", 192),
    "tf_mobilenet_v1_075_160": ("075", 160),
    "tf_mobilenet_v1_075_128": ("075", 128),
    "tf_mobilenet_v1_100": ("100", 224),
    "tf_mobilenet_v1_100_224": ("100", 224),
    "tf_mobilenet_v1_100_192": ("100", 192),
    "tf_mobilenet_v1_100_160": ("100", 160),
    "tf_mobilenet_v1_100_128": ("100", 128),
}

for _name, (_tag, _res) in TF_MODELS.items():
    register_variant(_name, _tf_config(_tag, _res), MobileNetV1,
                     f"MobileNetV1 at width {WIDTHS[_tag].alpha}, default input {_res} px.", alpha=WIDTHS[_tag].alpha,
                     act="relu6", tf_padding=True)
