"""Helpers for the validate/infer/export tests: an independent NumPy MobileNetV2, real-data subsets, CLI runners.

Imported by ``tests/test_validate.py``, ``tests/test_infer.py`` and ``tests/test_export.py`` (kept out of conftest.py,
which other modules own). Expensive files (the converted checkpoint, small random checkpoints) are built once per
session under pytest's base temp folder and reused by every module.

The NumPy reference is deliberately free of MindSpore and of the package: PIL decodes, NumPy resizes (bilinear,
half-pixel centres, the ``int(256 * long / short)`` size and ``(size - 224) // 2`` crop of mindcv's eval transforms),
normalises, and runs the torchvision-named weights of the shared ``.npz`` directly (folded BatchNorm, ReLU6,
inverted residuals read off the tensor shapes), then computes Top-1/Top-5/cross-entropy itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
NPZ = ("weights", "mobilenet_v2_1.0_224_torchvision_dequant.npz")
SAMPLES = ("data", "imagenet-samples")


# ---------------------------------------------------------------- NumPy/PIL reference (no MindSpore, no package code)
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


def reference_preprocess(path: str, size: int = 224, crop_pct: float = 0.875, mean: np.ndarray = MEAN,
                         std: np.ndarray = STD) -> np.ndarray:
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
    order = np.argsort(-logits, axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {
        "top1_correct": int((order[:, 0] == labels).sum()),
        "top5_correct": int((order[:, :5] == labels[:, None]).any(axis=1).sum()),
        "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "count": len(labels),
    }


# ---------------------------------------------------------------- real data and checkpoints, built once per session
def imagenet_subset(base: Path, every: int = 20) -> tuple[Path, list[tuple[str, int]]]:
    """An ImageNet-layout tree with all 1,000 class folders (so labels keep their indices) and the images of every
    ``every``-th class as symlinks; returns (root holding ``val/``, [(image path, label)])."""
    source = shared_path(*SAMPLES, "val")
    root = base / f"imagenet_subset_{every}"
    synsets = sorted(p.name for p in source.iterdir() if p.is_dir())
    samples = []
    for label, synset in enumerate(synsets):
        folder = root / "val" / synset
        folder.mkdir(parents=True, exist_ok=True)
        if label % every:
            continue
        for image in sorted((source / synset).iterdir()):
            link = folder / image.name
            if not link.exists():
                link.symlink_to(image)
            samples.append((str(link), label))
    return root, samples


def converted_mnv2(base: Path) -> Path:
    """The shared torchvision MobileNetV2 weights converted to a checkpoint (by the package's converter)."""
    from mindcv_mobilenet.convert import convert_file

    path = base / "mnv2_torchvision.ckpt"
    if not path.exists():
        convert_file("mobilenet_v2_100", str(shared_path(*NPZ)), str(path))
    return path


def random_checkpoint(base: Path, model_name: str, num_classes: int, seed: int = 0, class_names=None) -> Path:
    """A checkpoint of ``model_name`` with random, non-degenerate weights (BatchNorm statistics included), in its
    own folder, optionally with the class list a training run saves beside it."""
    from mindcv_mobilenet import create_model
    from mindcv_mobilenet.data import save_class_names
    from mindcv_mobilenet.utils.checkpoint import save_checkpoint

    folder = base / f"{model_name}_{num_classes}_{seed}"
    path = folder / "model.ckpt"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    model = create_model(model_name, num_classes=num_classes)
    randomize(model, seed)
    save_checkpoint(model, str(path))
    if class_names:
        save_class_names(class_names, str(path))
    return path


def randomize(model, seed: int = 0) -> None:
    """Random weights with realistic scales, so outputs depend on every layer (fresh init leaves BN at identity and
    the classifier near zero, which hides export mistakes)."""
    from mindspore import Tensor

    rng = np.random.default_rng(seed)
    for p in model.get_parameters():
        shape = p.shape
        if p.name.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        elif p.name.endswith(("moving_mean", "beta")):
            value = rng.normal(0.0, 0.1, shape)
        elif p.name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, np.sqrt(2.0 / (shape[1] * shape[2] * shape[3])), shape)
        else:
            value = rng.normal(0.0, np.sqrt(1.0 / shape[-1]), shape)
        p.set_data(Tensor(value.astype(np.float32)))


# ---------------------------------------------------------------- command lines
@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """The test cache for module-scoped fixtures too (conftest's isolation is per test, set up after them), so no
    export or download of these tests lands in the user's ~/.cache. Import it into a test module to enable it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield



def run_script(script: str, *args: str, timeout: int = 300, prelude: str = "") -> subprocess.CompletedProcess:
    """Run a top-level script of the repository as a user would; ``prelude`` is Python run first (to hide a module)."""
    env = dict(os.environ, GLOG_v="3", PYTHONWARNINGS="ignore")
    path = str(REPO_ROOT / script)
    if prelude:
        code = f"{prelude}\nimport runpy, sys\nsys.argv = [{path!r}] + sys.argv[1:]\nrunpy.run_path({path!r}, " \
               "run_name='__main__')"
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, path, *args]
    with tempfile.TemporaryDirectory(prefix="mcv_cli_") as cwd:  # MindSpore drops compile caches in the cwd
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, no traceback, and an ``error: ...`` line that names what is wrong."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
