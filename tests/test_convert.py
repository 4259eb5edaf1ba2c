"""torchvision -> MindSpore weight conversion: real accuracy, exact numerics, BN mapping, clear errors, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from helpers import NPZ, REPO_ROOT, imagenet_samples, shared_path
from reference import NumpyMobileNetV2, reference_metrics, reference_preprocess

from mindcv_mobilenet.convert import (
    as_parameters,
    convert_file,
    convert_torchvision,
    load_state_file,
    measure_padding_gap,
)
from mindcv_mobilenet.models import create_model
from mindcv_mobilenet.models.layers import make_divisible
from mindcv_mobilenet.models.mobilenet_v2 import BLOCKS as V2_BLOCKS
from mindcv_mobilenet.utils.checkpoint import load_model_weights
from mindcv_mobilenet.utils.errors import CheckpointError, UserError


def predict(model, images: list[Path], batch: int = 8) -> np.ndarray:
    """Logits of ``model`` on the reference preprocessing of ``images``, ``batch`` at a time."""
    batches = [np.stack([reference_preprocess(p) for p in images[i:i + batch]]) for i in range(0, len(images), batch)]
    return np.concatenate([model(ms.Tensor(x)).asnumpy() for x in batches])


# --- generated torchvision-style state dicts ----------------------------------------------------------------------

def _bn(state: dict, prefix: str, n: int, rng: np.random.Generator) -> None:
    state[f"{prefix}.weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    state[f"{prefix}.bias"] = rng.normal(0, 0.1, n).astype(np.float32)
    state[f"{prefix}.running_mean"] = rng.normal(0, 0.1, n).astype(np.float32)
    state[f"{prefix}.running_var"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    state[f"{prefix}.num_batches_tracked"] = np.array(100, np.int64)


def torchvision_v2_state(width: float, num_classes: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """torchvision ``mobilenet_v2(width_mult=width).state_dict()`` names and shapes, random values, BN not folded.

    Built from the paper's table with torchvision's module layout, independently of this package's builder; the keys
    come out shuffled so the converter must walk the structure, not rely on file order.
    """
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}

    def conv(prefix: str, cout: int, cin: int, k: int) -> None:
        state[f"{prefix}.weight"] = rng.normal(0, 0.2, (cout, cin, k, k)).astype(np.float32)

    c = make_divisible(32 * width)
    conv("features.0.0", c, 3, 3)
    _bn(state, "features.0.1", c, rng)
    idx = 1
    for t, out, repeats, _ in V2_BLOCKS:
        out = make_divisible(out * width)
        for _ in range(repeats):
            hidden, p, j = round(c * t), f"features.{idx}.conv", 0
            if t != 1:
                conv(f"{p}.0.0", hidden, c, 1)
                _bn(state, f"{p}.0.1", hidden, rng)
                j = 1
            conv(f"{p}.{j}.0", hidden, 1, 3)
            _bn(state, f"{p}.{j}.1", hidden, rng)
            conv(f"{p}.{j + 1}", out, hidden, 1)
            _bn(state, f"{p}.{j + 2}", out, rng)
            c, idx = out, idx + 1
    last = make_divisible(1280 * max(1.0, width))
    conv(f"features.{idx}.0", last, c, 1)
    _bn(state, f"features.{idx}.1", last, rng)
    state["classifier.1.weight"] = rng.normal(0, 0.01, (num_classes, last)).astype(np.float32)
    state["classifier.1.bias"] = np.zeros(num_classes, np.float32)
    keys = list(state)
    rng.shuffle(keys)
    return {k: state[k] for k in keys}


def torchvision_v3_small_state(seed: int = 0) -> dict[str, np.ndarray]:
    """torchvision ``mobilenet_v3_small().state_dict()`` names (``block.K``, ``fc1/fc2``), BN not folded.

    Shapes are taken in order from this package's cells (same layer order), names follow torchvision's layout.
    """
    from mindcv_mobilenet.models.mobilenet_v3 import SMALL_BLOCKS

    rng = np.random.default_rng(seed)
    shapes = [tuple(p.shape) for p in create_model("mobilenet_v3_small_100").get_parameters()
              if p.name.endswith(".weight")]
    state: dict[str, np.ndarray] = {}

    def conv(prefix: str, bn: str | None = None, bias: bool = False) -> None:
        shape = shapes.pop(0)
        state[f"{prefix}.weight"] = rng.normal(0, 0.2, shape).astype(np.float32)
        if bias:
            state[f"{prefix}.bias"] = rng.normal(0, 0.1, shape[0]).astype(np.float32)
        if bn:
            _bn(state, bn, shape[0], rng)

    conv("features.0.0", "features.0.1")
    cin = 16
    for n, (_, exp, out, se, _, _) in enumerate(SMALL_BLOCKS, start=1):
        p, k = f"features.{n}.block", 0
        if exp != cin:
            conv(f"{p}.0.0", f"{p}.0.1")
            k = 1
        conv(f"{p}.{k}.0", f"{p}.{k}.1")
        if se:
            k += 1
            conv(f"{p}.{k}.fc1", bias=True)
            conv(f"{p}.{k}.fc2", bias=True)
        conv(f"{p}.{k + 1}.0", f"{p}.{k + 1}.1")
        cin = out
    n = len(SMALL_BLOCKS) + 1
    conv(f"features.{n}.0", f"features.{n}.1")
    conv("classifier.0", bias=True)
    conv("classifier.3", bias=True)
    assert not shapes
    return state


# --- (a) the real weights ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_v2():
    """The shared npz converted once, loaded strictly into a mobilenet_v2_100 in eval mode."""
    state = load_state_file(str(shared_path(*NPZ)))
    params = convert_torchvision("mobilenet_v2_100", state)
    model = create_model("mobilenet_v2_100")
    assert load_model_weights(model, as_parameters(params)) == []
    model.set_train(False)
    return state, params, model


def test_real_weights_classify_imagenet_samples(real_v2):
    """40 real images (every 25th class): measured top-1 0.925, top-5 0.975."""
    _, _, model = real_v2
    samples = imagenet_samples(25)
    assert len(samples) == 40
    metrics = reference_metrics(predict(model, [p for p, _ in samples]), np.array([label for _, label in samples]))
    top1_acc, top5_acc = metrics["top1_correct"] / len(samples), metrics["top5_correct"] / len(samples)
    assert top1_acc >= 0.875, f"top-1 {top1_acc:.3f}"
    assert top5_acc >= 0.95, f"top-5 {top5_acc:.3f}"


def test_real_weights_match_numpy_reference(real_v2):
    """Converted logits equal a plain NumPy forward of the npz (64 px, one real image) within 1e-3 relative."""
    _, _, model = real_v2
    path, _ = imagenet_samples(25)[1]
    x = reference_preprocess(path, size=64)[None]  # shorter side 73, centre crop 64
    ours = model(ms.Tensor(x)).asnumpy()[0]
    ref = NumpyMobileNetV2(str(shared_path(*NPZ)))(x)[0]
    assert np.linalg.norm(ours - ref) <= 1e-3 * np.linalg.norm(ref)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3 * np.abs(ref).max())
    assert ours.argmax() == ref.argmax()


def test_folded_bn_becomes_identity_with_bias(real_v2):
    state, params, _ = real_v2
    np.testing.assert_array_equal(params["features.0.weight"], state["features.0.0.weight"])
    np.testing.assert_array_equal(params["features.1.beta"], state["features.0.0.bias"])
    np.testing.assert_array_equal(params["features.1.gamma"], 1.0)
    np.testing.assert_array_equal(params["features.1.moving_mean"], 0.0)
    np.testing.assert_allclose(params["features.1.moving_variance"], 1.0 - 1e-5)
    np.testing.assert_array_equal(params["classifier.1.weight"], state["classifier.1.weight"])


# --- (b) generated, BatchNorm not folded --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def v2_035_state() -> dict[str, np.ndarray]:
    return torchvision_v2_state(0.35)


def test_unfolded_v2_maps_bn_statistics(v2_035_state):
    state = v2_035_state
    params = convert_torchvision("mobilenet_v2_035", state)
    pairs = {  # torchvision name -> this package's name (second block: depthwise BN, projection)
        "features.0.0.weight": "features.0.weight",
        "features.0.1.weight": "features.1.gamma",
        "features.0.1.bias": "features.1.beta",
        "features.0.1.running_mean": "features.1.moving_mean",
        "features.0.1.running_var": "features.1.moving_variance",  # same eps (1e-5) on both sides: unchanged
        "features.1.conv.0.0.weight": "features.3.layers.0.weight",
        "features.1.conv.2.running_var": "features.3.layers.4.moving_variance",
        "features.2.conv.1.1.running_mean": "features.4.layers.4.moving_mean",
        "features.2.conv.2.weight": "features.4.layers.6.weight",
        "features.2.conv.3.bias": "features.4.layers.7.beta",
        "features.18.1.running_var": "features.21.moving_variance",
        "classifier.1.weight": "classifier.1.weight",
    }
    for tv_name, ms_name in pairs.items():
        np.testing.assert_array_equal(params[ms_name], state[tv_name], err_msg=f"{tv_name} -> {ms_name}")
    model = create_model("mobilenet_v2_035")
    assert load_model_weights(model, as_parameters(params)) == []


def test_unfolded_v3_adjusts_bn_eps_and_maps_squeeze_excite():
    """torchvision's V3 BN eps is 1e-3, MindSpore's 1e-5: var + eps is kept. SE convs keep their biases."""
    state = torchvision_v3_small_state()
    params = convert_torchvision("mobilenet_v3_small_100", state)
    np.testing.assert_allclose(params["features.1.moving_variance"] + 1e-5,
                               state["features.0.1.running_var"] + 1e-3, rtol=1e-6)
    np.testing.assert_array_equal(params["features.3.layers.3.conv_reduce.bias"], state["features.1.block.1.fc1.bias"])
    np.testing.assert_array_equal(params["features.3.layers.3.conv_expand.weight"],
                                  state["features.1.block.1.fc2.weight"])
    np.testing.assert_array_equal(params["classifier.0.weight"], state["classifier.0.weight"])
    np.testing.assert_array_equal(params["classifier.3.bias"], state["classifier.3.bias"])


def test_v3_padding_gap_is_measured():
    """The 'same' vs symmetric padding difference is reported, not hidden: nonzero on any non-trivial weights."""
    params = convert_torchvision("mobilenet_v3_small_100", torchvision_v3_small_state())
    gap = measure_padding_gap("mobilenet_v3_small_100", params, image_size=64)
    assert gap["images"] == 4 and gap["relative_l2"] > 1e-4
    assert 0.0 <= gap["top1_agreement"] <= 1.0


def test_num_classes_follows_weights_and_is_checked():
    state = torchvision_v2_state(0.35, num_classes=10, seed=1)
    assert convert_torchvision("mobilenet_v2_035", state)["classifier.1.bias"].shape == (10,)
    with pytest.raises(CheckpointError, match=r"classifier\.1\.weight has shape \(10, 1280\)"):
        convert_torchvision("mobilenet_v2_035", state, num_classes=1000)


# --- (c) inputs that do not fit: one clear line ---------------------------------------------------------------------

def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_v2_weights_for_v3_model(v2_035_state):
    with pytest.raises(CheckpointError) as err:
        convert_torchvision("mobilenet_v3_large_100", v2_035_state)
    text = _one_line(err)
    assert "MobileNetV2 weights" in text and "mobilenet_v3_large_100" in text and "mobilenet_v2_035" in text


def test_v3_weights_for_v2_model():
    with pytest.raises(CheckpointError) as err:
        convert_torchvision("mobilenet_v2_100", torchvision_v3_small_state())
    assert "MobileNetV3 weights" in _one_line(err) and "mobilenet_v3_small_100" in str(err.value)


def test_wrong_width_names_the_tensors(v2_035_state):
    with pytest.raises(CheckpointError) as err:
        convert_torchvision("mobilenet_v2_100", v2_035_state)
    text = _one_line(err)
    assert "features.0.0.weight has shape (16, 3, 3, 3)" in text and "features.0.weight needs (32, 3, 3, 3)" in text
    assert "fit mobilenet_v2_035" in text


def test_other_inputs_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="unexpected top-level names"):
        convert_torchvision("mobilenet_v2_100", {"fc.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(UserError, match="MobileNetV2 and V3 only"):
        convert_torchvision("mobilenet_v1_100", torchvision_v2_state(0.35))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_state_file(str(bad))


# --- .pth input -----------------------------------------------------------------------------------------------------

class _FakeTensor:
    """The few tensor methods load_state_file uses, over a NumPy array."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def detach(self):
        return self

    def cpu(self):
        return self

    def is_floating_point(self) -> bool:
        return self.array.dtype.kind == "f"

    def float(self):
        return _FakeTensor(self.array.astype(np.float32))

    def numpy(self) -> np.ndarray:
        return self.array


def test_pth_read_through_torch_load_mocked(tmp_path, monkeypatch, v2_035_state):
    """Without PyTorch here, a stand-in ``torch`` checks the .pth path: unwrap 'state_dict', strip 'module.'."""
    wrapped = {"state_dict": {f"module.{k}": _FakeTensor(v.astype(np.float16) if v.dtype.kind == "f" else v)
                              for k, v in v2_035_state.items()}, "epoch": 3}
    fake = types.ModuleType("torch")
    fake.load = lambda path, map_location=None, weights_only=None: wrapped
    monkeypatch.setitem(sys.modules, "torch", fake)
    path = tmp_path / "w.pth"
    path.write_bytes(b"stand-in")
    state = load_state_file(str(path))
    assert state["module.features.0.0.weight"].dtype == np.float32
    params = convert_torchvision("mobilenet_v2_035", state)
    np.testing.assert_allclose(params["features.1.gamma"], v2_035_state["features.0.1.weight"], rtol=1e-3)


def test_pth_without_torch_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    with pytest.raises(UserError, match="needs PyTorch"):
        load_state_file(str(path))


def test_pth_written_by_real_torch(tmp_path, v2_035_state):
    """Fixture generator: torch.save of the generated state dict; converts exactly like the same arrays."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed here (the mocked .pth test covers the path)")
    path = tmp_path / "w.pth"
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in v2_035_state.items()}, str(path))
    params = convert_torchvision("mobilenet_v2_035", load_state_file(str(path)))
    expected = convert_torchvision("mobilenet_v2_035", v2_035_state)
    for name, value in expected.items():
        np.testing.assert_array_equal(params[name], value, err_msg=name)


# --- (d) the command line -------------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GLOG_v="3")
    return subprocess.run([sys.executable, "-m", "mindcv_mobilenet.convert", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=300)


def test_cli_writes_loadable_checkpoint_and_refuses_overwrite(tmp_path, v2_035_state):
    src, out = tmp_path / "w.npz", tmp_path / "out.ckpt"
    np.savez(src, **v2_035_state)
    args = ("--model", "mobilenet_v2_035", "--input", str(src), "--output", str(out))
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    assert "reloaded strictly" in done.stdout
    assert load_model_weights(create_model("mobilenet_v2_035"), str(out)) == []
    before = out.stat().st_mtime_ns
    again = _cli(*args)
    assert again.returncode == 2 and "--force" in again.stderr
    assert again.stderr.strip().count("\n") == 0 and "Traceback" not in again.stderr
    assert out.stat().st_mtime_ns == before
    assert _cli(*args, "--force").returncode == 0
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []  # no temporary left behind


def test_cli_missing_input_is_one_line(tmp_path):
    done = _cli("--model", "mobilenet_v2_100", "--input", str(tmp_path / "nope.npz"),
                "--output", str(tmp_path / "o.ckpt"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.strip().count("\n") == 0, done.stderr
    assert "not found" in done.stderr and not (tmp_path / "o.ckpt").exists()


def test_cli_v3_warns_about_padding(tmp_path):
    src, out = tmp_path / "v3.npz", tmp_path / "v3.ckpt"
    np.savez(src, **torchvision_v3_small_state())
    done = _cli("--model", "mobilenet_v3_small_100", "--input", str(src), "--output", str(out))
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "symmetric" in warning[0] and "measured on 4" in warning[0]


def test_convert_file_api(tmp_path, v2_035_state):
    src = tmp_path / "w.npz"
    np.savez(src, **v2_035_state)
    params = convert_file("mobilenet_v2_035", str(src), str(tmp_path / "o.ckpt"))
    with pytest.raises(UserError, match="exists"):
        convert_file("mobilenet_v2_035", str(src), str(tmp_path / "o.ckpt"))
    assert len(params) == len(list(create_model("mobilenet_v2_035").get_parameters()))
    with pytest.raises(UserError, match=r"must end in \.ckpt"):
        convert_file("mobilenet_v2_035", str(src), str(tmp_path / "o.bin"))
