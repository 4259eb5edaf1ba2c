"""What the ``tf_`` variants (timm's prefix) share: TensorFlow's preprocessing in their default config.

The ``tf_`` models are the family builders with ``tf_padding=True``: every strided convolution pads TensorFlow's
"same" way (nothing at top/left, one row/column at bottom/right for a 3x3 at stride 2 on an even input), which is what
Google's Keras, TF-slim and TFLite MobileNets compute. Their weights come from
``python -m mindcv_mobilenet.convert --input <file>.h5|.npz|.tflite`` (see ``mindcv_mobilenet/convert/tf.py``).
"""

from __future__ import annotations

from .registry import ModelConfig

# TensorFlow's (Inception) normalisation: x / 127.5 - 1, i.e. mean and std 127.5 on the 0..255 scale.
TF_MEAN = (127.5, 127.5, 127.5)
TF_STD = (127.5, 127.5, 127.5)


def tf_config(image_size: int = 224, **fields) -> ModelConfig:
    """A default config with TF-slim's evaluation preprocessing: [-1, 1] inputs, 87.5% center crop, bilinear."""
    return ModelConfig(image_size=image_size, crop_pct=0.875, interpolation="bilinear", mean=TF_MEAN, std=TF_STD,
                       **fields)
