"""Google's Keras and TFLite MobileNets imported into the tf_ models: exact against independent references, on real
images, and clear errors for files that do not fit.

Every file of ``shared/weights/keras`` and ``shared/weights/tflite`` is converted once (module fixture) and run on
images of ``shared/data/imagenet-samples`` beside the references of ``tf_reference.py``: the NumPy Keras forward and
the NumPy float run of the TFLite graph must give the same logits; TFLite's own quantized interpreter must give the
same Top-1 within a point or two on 50 images. Full 1,000-image figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import sys

import mindspore as ms
import numpy as np
import pytest
from helpers import REPO_ROOT, assert_one_line_error, imagenet_subset, run_script, shared_path
from tf_reference import TFLiteFloatGraph, keras_v1_forward, tf_preprocess, tflite_runtime_logits

from mindcv_mobilenet.convert import convert_file, convert_tf
from mindcv_mobilenet.models import create_model, get_model_config
from mindcv_mobilenet.utils.checkpoint import load_model_weights
from mindcv_mobilenet.utils.errors import CheckpointError, UserError

pytest.importorskip("h5py", reason="h5py is not installed: pip install '.[convert]'")
pytest.importorskip("tflite", reason="tflite is not installed: pip install '.[convert]'")

# (file under shared/weights, model it converts into)
FILES = [
    ("keras/mobilenet_v1_0.25_224.h5", "tf_mobilenet_v1_025"),
    ("keras/mobilenet_v1_0.25_224_keras.npz", "tf_mobilenet_v1_025"),
    ("keras/mobilenet_v1_0.75_224_keras.npz", "tf_mobilenet_v1_075"),
    ("tflite/mobilenet_v1_0.25_128_quant.tflite", "tf_mobilenet_v1_025_128"),
    ("tflite/mobilenet_v1_0.5_160_quant.tflite", "tf_mobilenet_v1_050_160"),
    ("tflite/mobilenet_v1_0.75_192_quant.tflite", "tf_mobilenet_v1_075_192"),
    ("tflite/mobilenet_v2_1.0_224_quant.tflite", "tf_mobilenet_v2_100"),
    ("tflite/v3-small_224_1.0_uint8.tflite", "tf_mobilenet_v3_small_100"),
]
EVERY = 20  # every 20th class of imagenet-samples: 50 images


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    root, samples = imagenet_subset(tmp_path_factory.getbasetemp(), EVERY)
    return root, samples


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """file -> (checkpoint path, eval-mode model with the converted weights), built once per file."""
    cache: dict[str, tuple] = {}

    def get(relpath: str, model_name: str):
        if relpath not in cache:
            path = tmp_path_factory.mktemp("tf") / "converted.ckpt"
            convert_file(model_name, str(shared_path("weights", *relpath.split("/"))), str(path))
            model = create_model(model_name)
            assert load_model_weights(model, str(path)) == []
            model.set_train(False)
            cache[relpath] = (path, model)
        return cache[relpath]

    return get


def _inputs(samples, model_name: str, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    size = get_model_config(model_name).image_size
    chosen = samples[:count] if count else samples
    return np.stack([tf_preprocess(p, size) for p, _ in chosen]), np.array([label for _, label in chosen])


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("relpath,model_name", FILES, ids=[f.split("/")[-1] for f, _ in FILES])
def test_import_computes_the_file(relpath, model_name, converted, subset):
    """Same logits as the file's float reference (Keras: 50 images; TFLite graph: 4 images, NumPy is slow)."""
    path = shared_path("weights", *relpath.split("/"))
    _, model = converted(relpath, model_name)
    x, _ = _inputs(subset[1], model_name, None if relpath.startswith("keras") else 4)
    ours = model(ms.Tensor(x)).asnumpy()
    if relpath.startswith("keras"):
        ref = keras_v1_forward(dict(np.load(path)) if path.suffix == ".npz" else _npz_twin(path), x)
        tolerance = 1e-4
    else:
        ref = TFLiteFloatGraph(str(path))(x)[:, 1:]  # the background class is dropped by the import
        tolerance = 1e-3  # the gate's constants 3 and 1/6 are quantized in the file
    assert ours.shape == ref.shape
    assert _relative(ours, ref) < tolerance
    np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1))


def _npz_twin(h5_path) -> dict[str, np.ndarray]:
    """The .h5 holds the weights of the shared 0.25 .npz: its reference runs on that npz."""
    return dict(np.load(h5_path.with_name("mobilenet_v1_0.25_224_keras.npz")))


def test_h5_and_npz_give_the_same_checkpoint(converted):
    a = converted(*FILES[0])[1]
    b = converted(*FILES[1])[1]
    for pa, pb in zip(a.get_parameters(), b.get_parameters(), strict=True):
        np.testing.assert_array_equal(pa.asnumpy(), pb.asnumpy(), err_msg=pa.name)


@pytest.mark.parametrize("relpath,model_name", [f for f in FILES if f[0].endswith(".tflite")],
                         ids=[f.split("/")[-1] for f, _ in FILES if f.endswith(".tflite")])
def test_tflite_import_agrees_with_the_quantized_interpreter(relpath, model_name, converted, subset):
    """The float import against TensorFlow Lite's own uint8 run, 50 real images: Top-1 within 2 images."""
    pytest.importorskip("tflite_runtime", reason="tflite-runtime (TensorFlow Lite's interpreter) is not installed")
    _, model = converted(relpath, model_name)
    x, labels = _inputs(subset[1], model_name)
    ours = model(ms.Tensor(x)).asnumpy()
    ref = tflite_runtime_logits(str(shared_path("weights", *relpath.split("/"))), x)[:, 1:]
    ours_top1, ref_top1 = (ours.argmax(1) == labels).sum(), (ref.argmax(1) == labels).sum()
    assert abs(int(ours_top1) - int(ref_top1)) <= 2, (ours_top1, ref_top1)
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_validate_needs_only_model_and_checkpoint(converted, subset):
    """validate.py on a tf_ model takes TF preprocessing from its config; Top-1 equals the reference's within 1."""
    ckpt, model = converted(*FILES[2])
    root, samples = subset
    done = run_script("validate.py", "--model", "tf_mobilenet_v1_075", "--ckpt_path", str(ckpt), "--data_dir",
                      str(root))
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if "Top-1" in line)
    assert "images 50" in line, line
    top1 = float(line.split("Top-1")[1].split("%")[0])
    x, labels = _inputs(samples, "tf_mobilenet_v1_075")
    ref = keras_v1_forward(dict(np.load(shared_path("weights", "keras", "mobilenet_v1_0.75_224_keras.npz"))), x)
    assert abs(top1 - 100 * (ref.argmax(1) == labels).mean()) <= 100 / len(samples) + 1e-6, line


# ----------------------------------------------------------------------------------------------------- the tf_ models
def test_tf_variants_are_registered():
    """V1 at four widths and four resolutions (plus the plain 224-px names), V2 at six widths, V3 at four."""
    from mindcv_mobilenet.models import list_models

    assert len(list_models("tf_mobilenet_v1_*")) == 4 * 5
    assert list_models("tf_mobilenet_v1_075*") == ["tf_mobilenet_v1_075", "tf_mobilenet_v1_075_128",
                                                   "tf_mobilenet_v1_075_160", "tf_mobilenet_v1_075_192",
                                                   "tf_mobilenet_v1_075_224"]
    assert len(list_models("tf_mobilenet_v2_*")) == 6
    assert list_models("tf_mobilenet_v3_*") == ["tf_mobilenet_v3_large_075", "tf_mobilenet_v3_large_100",
                                                "tf_mobilenet_v3_small_075", "tf_mobilenet_v3_small_100"]


def test_tf_models_carry_tf_preprocessing_and_share_parameters():
    config = get_model_config("tf_mobilenet_v1_075_192")
    assert config.mean == config.std == (127.5, 127.5, 127.5) and config.crop_pct == 0.875
    assert config.image_size == 192 and config.interpolation == "bilinear"
    assert get_model_config("tf_mobilenet_v3_small_100").image_size == 224
    for tf_name, name in (("tf_mobilenet_v1_050", "mobilenet_v1_050"), ("tf_mobilenet_v3_large_075",
                                                                         "mobilenet_v3_large_075")):
        tf_shapes = [(p.name, p.shape) for p in create_model(tf_name).get_parameters()]
        assert tf_shapes == [(p.name, p.shape) for p in create_model(name).get_parameters()]


def test_v3_differs_from_mindcv_only_in_the_stem_padding():
    """mindcv's V3 already pads its depthwise layers 'same'; only the stride-2 stem differs, so the tf_ model is a
    network of its own. Same weights, 64-px input: different logits; with the tf_ stem, identical."""
    from mindcv_mobilenet.models.mobilenet_v3 import MobileNetV3

    tf_model = create_model("tf_mobilenet_v3_small_100")
    tf_model.set_train(False)
    params = {p.name: ms.Parameter(p.value(), name=p.name) for p in tf_model.get_parameters()}
    mindcv = create_model("mobilenet_v3_small_100")
    load_model_weights(mindcv, params)
    mindcv.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    assert _relative(mindcv(x).asnumpy(), tf_model(x).asnumpy()) > 1e-3
    mindcv.features[0] = tf_model.features[0]  # the 'same'-padded stem convolution, same weights
    assert isinstance(tf_model, MobileNetV3)
    np.testing.assert_allclose(mindcv(x).asnumpy(), tf_model(x).asnumpy(), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ files that do not fit
def test_wrong_width_names_the_layer_and_the_model_that_fits():
    path = str(shared_path("weights", "keras", "mobilenet_v1_0.75_224_keras.npz"))
    with pytest.raises(CheckpointError) as err:
        convert_tf("tf_mobilenet_v1_025", path, state=dict(np.load(path)))
    text = str(err.value)
    assert "\n" not in text and "conv1.weight has shape (24, 3, 3, 3)" in text and "needs (8, 3, 3, 3)" in text
    assert "fits tf_mobilenet_v1_075" in text


def test_wrong_family_and_non_tf_target():
    tfl = str(shared_path("weights", "tflite", "mobilenet_v1_0.25_128_quant.tflite"))
    with pytest.raises(CheckpointError, match=r"holds a MobileNetV1 but tf_mobilenet_v3_small_100 is a MobileNetV3"):
        convert_tf("tf_mobilenet_v3_small_100", tfl)
    with pytest.raises(UserError, match=r"into a tf_mobilenet_v1_\* model, not mobilenet_v1_025"):
        convert_tf("mobilenet_v1_025", tfl)


def test_files_that_are_not_mobilenets(tmp_path):
    keras_like = tmp_path / "resnet.npz"
    np.savez(keras_like, **{"conv1/kernel": np.zeros((7, 7, 3, 64), np.float32),
                            "res2a_branch2a/kernel": np.zeros((1, 1, 64, 64), np.float32)})
    with pytest.raises(CheckpointError, match=r"not a Keras MobileNetV1: layers res2a_branch2a"):
        convert_file("tf_mobilenet_v1_025", str(keras_like), str(tmp_path / "o.ckpt"))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(UserError, match="cannot read .* as a TFLite flatbuffer"):
        convert_file("tf_mobilenet_v1_025", str(junk), str(tmp_path / "o.ckpt"))
    assert not (tmp_path / "o.ckpt").exists()


def test_missing_reader_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` raises ImportError
    with pytest.raises(UserError, match=r"needs the 'h5py' package.*mindcv_mobilenet\[convert\]"):
        convert_file("tf_mobilenet_v1_025", str(shared_path("weights", "keras", "mobilenet_v1_0.25_224.h5")),
                     str(tmp_path / "o.ckpt"))


def test_cli_imports_tflite_and_reports_a_misfit_in_one_line(tmp_path):
    import os
    import subprocess

    tfl = str(shared_path("weights", "tflite", "mobilenet_v1_0.5_160_quant.tflite"))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mindcv_mobilenet.convert", *args], capture_output=True,
                              text=True, cwd=REPO_ROOT, env=dict(os.environ, GLOG_v="3"), timeout=300)

    out = tmp_path / "v1_050_160.ckpt"
    done = cli("--model", "tf_mobilenet_v1_050_160", "--input", tfl, "--output", str(out))
    assert done.returncode == 0 and "reloaded strictly" in done.stdout, done.stderr[-2000:]
    assert load_model_weights(create_model("tf_mobilenet_v1_050"), str(out)) == []
    bad = cli("--model", "tf_mobilenet_v1_100", "--input", tfl, "--output", str(tmp_path / "x.ckpt"))
    assert_one_line_error(bad, "does not fit tf_mobilenet_v1_100", "fits tf_mobilenet_v1_050")
