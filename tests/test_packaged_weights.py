"""The ImageNet MobileNetV1 0.25 shipped in the package: offline, verified by sha256, the Keras file's function."""

from __future__ import annotations

import shutil

import mindspore as ms
import numpy as np
import pytest
from helpers import assert_one_line_error, run_script, shared_path

import mindcv_mobilenet as mm
from mindcv_mobilenet.utils import checkpoint as checkpoint_module
from mindcv_mobilenet.utils.errors import CheckpointError

MODEL = "tf_mobilenet_v1_025"


def test_packaged_weights_are_the_keras_model(monkeypatch):
    """pretrained=True reads the package (no download: urlopen is disabled) and computes the Keras file's logits on
    real images (4 of imagenet-samples, NumPy reference)."""
    from tf_reference import keras_v1_forward, tf_preprocess

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("network used"))
    model = mm.create_model(MODEL, pretrained=True)
    model.set_train(False)
    val = shared_path("data", "imagenet-samples", "val")
    images = [sorted(d.iterdir())[0] for d in sorted(val.iterdir())[::250]]
    x = np.stack([tf_preprocess(str(p), 224) for p in images])
    ref = keras_v1_forward(dict(np.load(shared_path("weights", "keras", "mobilenet_v1_0.25_224_keras.npz"))), x)
    ours = model(ms.Tensor(x)).asnumpy()
    assert np.linalg.norm(ours - ref) < 1e-4 * np.linalg.norm(ref)


def test_damaged_packaged_file_is_refused(tmp_path, monkeypatch):
    config = mm.get_model_config(MODEL)
    relative = config.url.split(":", 1)[1]
    copy = tmp_path / relative
    copy.parent.mkdir(parents=True)
    shutil.copy(checkpoint_module.RESOURCES_DIR + "/" + relative, copy)
    with open(copy, "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 8)
    monkeypatch.setattr(checkpoint_module, "RESOURCES_DIR", str(tmp_path))
    with pytest.raises(CheckpointError, match="do not match their sha256"):
        mm.create_model(MODEL, pretrained=True)
    copy.unlink()
    with pytest.raises(CheckpointError, match="are missing; reinstall"):
        mm.create_model(MODEL, pretrained=True)


def test_infer_pretrained_offline_names_the_class():
    """``infer.py --model tf_mobilenet_v1_025 --pretrained --image_path photo`` in one line, no network."""
    photo = next(shared_path("data", "imagenet-samples", "val", "n01440764").iterdir())  # tench
    done = run_script("infer.py", "--model", MODEL, "--pretrained", "--image_path", str(photo))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tench" in done.stdout.splitlines()[1 + done.stdout.splitlines().index(str(photo))], done.stdout


def test_other_tf_models_have_no_packaged_weights():
    photo = next(shared_path("data", "imagenet-samples", "val", "n01440764").iterdir())
    proc = run_script("infer.py", "--model", "tf_mobilenet_v1_075", "--pretrained", "--image_path", str(photo))
    assert_one_line_error(proc, "no published weights for tf_mobilenet_v1_075")
