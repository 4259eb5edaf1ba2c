"""The independent reference the package is checked against: PIL/NumPy preprocessing, a NumPy MobileNetV2 forward of
the shared torchvision weights, and Top-1/Top-5/cross-entropy.

Deliberately free of MindSpore, of the package and of pytest. PIL decodes, NumPy resizes (bilinear, half-pixel
centres, the ``int(size / crop_pct)`` shorter side and ``(new - size) // 2`` crop of mindcv's eval transforms) and
normalises; the forward runs the torchvision-named, BatchNorm-folded weights of the shared ``.npz`` directly (ReLU6,
inverted residuals read off the tensor shapes). Google's Keras/TFLite formats have their references in
``tf_reference.py``, which uses :func:`reference_preprocess` too.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
from PIL import Image

# torchvision's ImageNet normalisation, on the 0-1 scale (RGB / 255)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def bilinear_resize(image: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Bilinear resize without antialiasing (half-pixel centres, edge clamp), rounded back to uint8."""
    a = image.astype(np.float32)

    def axis(n_in: int, n_out: int):
        src = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), (src - i0).astype(np.float32)

    y0, y1, fy = axis(a.shape[0], out_h)
    x0, x1, fx = axis(a.shape[1], out_w)
    rows = a[y0] * (1 - fy)[:, None, None] + a[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reference_preprocess(path: str | os.PathLike, size: int = 224, crop_pct: float = 0.875, mean: np.ndarray = MEAN,
                         std: np.ndarray = STD) -> np.ndarray:
    """One image file as a normalised CHW float32 array: RGB, shorter side to ``int(size / crop_pct)``, centre crop
    ``size``, ``(x / 255 - mean) / std``."""
    with Image.open(path) as img:
        img = img.convert("RGB")
    width, height = img.size
    short = int(size / crop_pct)
    new_w, new_h = (int(short * width / height), short) if height < width else (short, int(short * height / width))
    arr = bilinear_resize(np.asarray(img), new_w, new_h)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    arr = arr[top:top + size, left:left + size].astype(np.float32) / 255.0
    return ((arr - mean) / std).transpose(2, 0, 1)


def _conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    """NCHW convolution with bias, for groups 1 (any kernel) and depthwise (groups = channels)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1

    def tap(i: int, j: int) -> np.ndarray:
        return x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]

    if groups == 1:
        cols = x.reshape(n, c, h * wd) if kh == kw == 1 and stride == 1 else \
            np.stack([tap(i, j) for i in range(kh) for j in range(kw)], axis=2).reshape(n, c * kh * kw, ho * wo)
        y = np.matmul(w.reshape(o, -1), cols).reshape(n, o, ho, wo)
    else:  # depthwise
        y = np.zeros((n, o, ho, wo), np.float32)
        for i in range(kh):
            for j in range(kw):
                y += tap(i, j) * w[None, :, 0, i, j, None, None]
    return y + b[None, :, None, None]


class NumpyMobileNetV2:
    """torchvision's MobileNetV2 on the shared folded-BN weights: features.N blocks, ReLU6, global pool, linear."""

    def __init__(self, npz_path: str) -> None:
        z = np.load(npz_path)
        prefixes = sorted({k.rsplit(".", 1)[0] for k in z if k.startswith("features.")},
                          key=lambda p: [int(s) if s.isdigit() else s for s in p.split(".")])
        blocks: dict[int, list] = {}
        for prefix in prefixes:
            stride, pad, groups = (int(v) for v in z[prefix + ".cfg_stride_pad_groups"])
            relu6 = prefix.split(".")[-2] != "conv"  # features.N.conv.K is the linear projection
            blocks.setdefault(int(prefix.split(".")[1]), []).append(
                (z[prefix + ".weight"].astype(np.float32), z[prefix + ".bias"].astype(np.float32), stride, pad,
                 groups, relu6))
        self.blocks = [blocks[i] for i in sorted(blocks)]
        self.fc_w, self.fc_b = z["classifier.1.weight"].astype(np.float32), z["classifier.1.bias"].astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, 1000) of NCHW float32 images."""
        for layers in self.blocks:
            block_in = x
            for w, b, stride, pad, groups, relu6 in layers:
                x = _conv2d(x, w, b, stride, pad, groups)
                if relu6:
                    x = np.clip(x, 0.0, 6.0)
            if len(layers) > 1 and all(layer[2] == 1 for layer in layers) and x.shape == block_in.shape:
                x = x + block_in
        return x.mean(axis=(2, 3)) @ self.fc_w.T + self.fc_b


def reference_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1/Top-5 correct counts and mean cross-entropy of ``logits`` (N, classes) against integer ``labels``."""
    order = np.argsort(-logits, axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {
        "top1_correct": int((order[:, 0] == labels).sum()),
        "top5_correct": int((order[:, :5] == labels[:, None]).any(axis=1).sum()),
        "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "count": len(labels),
    }


def seeded_timm_weight(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 value for timm's state-dict entry ``key``, from a seed made of the name alone (order-free).

    So a MobileNetV4 reference needs no stored weights: ``tools/make_timm_v4_fixture.py`` gives timm these values
    and the test gives them to the converted names. Convolutions ~ N(0, 1/fan_in); BatchNorm gamma and layer scales
    in [0.75, 1.25) (layer scales near 1, not timm's 1e-5, so attention counts); BN beta and running means
    ~ N(0, 0.1^2); running variances in [0.5, 1.5); the classifier's bias 0.
    """
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    if key.endswith("running_var"):
        value = rng.random(shape) + 0.5
    elif key == "classifier.bias":
        value = np.zeros(shape)
    elif key.endswith(("running_mean", ".bias")):
        value = rng.standard_normal(shape) * 0.1
    elif len(shape) == 1:  # BatchNorm weight, layer scale gamma
        value = rng.random(shape) * 0.5 + 0.75
    else:
        value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return value.astype(np.float32)
