"""validate.py: right numbers on real data (against an independent NumPy/PIL evaluation), every image counted once
(partial last batch, shards, unreadable files), both backends agree, and user mistakes give one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import (
    NPZ,
    REPO_ROOT,
    assert_one_line_error,
    converted_mnv2,
    imagenet_subset,
    random_checkpoint,
    run_script,
    shared_path,
)
from PIL import Image
from reference import NumpyMobileNetV2, reference_metrics, reference_preprocess

# The reference's NumPy resize and the pipeline's (OpenCV-style fixed point) round to uint8 differently: +-1 grey
# level, which moves this model's logits by up to ~0.35. Over all 1,000 samples that flips one Top-1 and one Top-5
# verdict and nothing else; on this 50-image subset the verdicts agree and the mean loss differs by ~0.002.
LOSS_TOLERANCE = 0.006  # a wrong crop (crop_pct 1.0 instead of 0.875) alone moves the loss by 0.013


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="module")
def subset(base):
    """50 real images (every 20th ImageNet class) in a tree with all 1,000 class folders."""
    return imagenet_subset(base, every=20)


@pytest.fixture(scope="module")
def mnv2_ckpt(base):
    return converted_mnv2(base)


def _reference(samples, **preprocess) -> dict:
    net = NumpyMobileNetV2(str(shared_path(*NPZ)))
    logits = np.concatenate([net(np.stack([reference_preprocess(p, **preprocess) for p, _ in samples[i:i + 25]]))
                             for i in range(0, len(samples), 25)])
    return reference_metrics(logits, np.array([label for _, label in samples]))


@pytest.fixture(scope="module")
def reference(subset):
    """Top-1/Top-5/loss of the shared weights on the subset, computed without MindSpore or the package."""
    return _reference(subset[1])


def _validate_cli(subset, ckpt, tmp, *extra) -> dict:
    root, _ = subset
    out = tmp / f"results_{len(extra)}_{abs(hash(extra))}.json"
    proc = run_script("validate.py", "--model", "mobilenet_v2_100", "--ckpt_path", str(ckpt), "--data_dir",
                      str(root), "--val_split", "val", "--batch_size", "16", "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Top-1" in proc.stdout and "images/s" in proc.stdout
    assert "validate: step" in proc.stderr  # progress while it runs
    with open(out, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def ms_results(subset, mnv2_ckpt, base):
    return _validate_cli(subset, mnv2_ckpt, base)


@pytest.fixture(scope="module")
def onnx_results(subset, mnv2_ckpt, base):
    pytest.importorskip("onnxruntime")
    return _validate_cli(subset, mnv2_ckpt, base, "--backend", "onnxruntime")


def test_matches_independent_numpy_evaluation(ms_results, reference, subset):
    """Converted torchvision weights, validated by validate.py, against a plain NumPy/PIL evaluation of the same
    weights on the same 50 real images."""
    assert ms_results["num_images"] == reference["count"] == 50
    assert reference["top1_correct"] >= 35  # a real ImageNet model, not chance (sanity of the reference itself)
    assert abs(ms_results["top1"] / 2 - reference["top1_correct"]) <= 1, (ms_results, reference)
    assert abs(ms_results["top5"] / 2 - reference["top5_correct"]) <= 1, (ms_results, reference)
    assert ms_results["loss"] == pytest.approx(reference["loss"], abs=LOSS_TOLERANCE)
    # the tolerance is tight enough to see a preprocessing mistake: evaluating without the center crop is caught
    wrong_crop = _reference(subset[1], crop_pct=1.0)
    assert abs(wrong_crop["loss"] - ms_results["loss"]) > LOSS_TOLERANCE


def test_defaults_come_from_the_model_config(ms_results):
    """No --image_resize/--crop_pct/--dataset given: ImageNet layout at the model's 224 px, crop 0.875."""
    assert ms_results["dataset"] == "imagenet"
    assert ms_results["image_size"] == 224 and ms_results["crop_pct"] == pytest.approx(0.875)
    assert ms_results["interpolation"] == "bilinear"
    assert ms_results["skipped_images"] == 0 and ms_results["images_per_s"] > 0


def test_onnx_backend_reports_the_same_as_mindspore(ms_results, onnx_results):
    assert onnx_results["backend"] == "onnxruntime"
    for key in ("num_images", "top1", "top5"):
        assert onnx_results[key] == ms_results[key], key
    assert onnx_results["loss"] == pytest.approx(ms_results["loss"], abs=1e-4)


# ---------------------------------------------------------------- every image exactly once
@pytest.fixture(scope="module")
def cifar_model(base):
    """A 10-class model with random (non-degenerate) weights, loaded as validate loads it, at 32 px."""
    from mindcv_mobilenet.inference.loading import load_model
    from mindcv_mobilenet.runtime import set_mode

    set_mode(0)
    ckpt = random_checkpoint(base, "mobilenet_v1_025", 10, seed=3)
    return ckpt, load_model("mobilenet_v1_025", str(ckpt))


def _cfg(**kw) -> SimpleNamespace:
    values = {"dataset": "cifar10_demo", "data_dir": "", "val_split": "val", "num_samples": 90, "batch_size": 16,
              "num_parallel_workers": 1, "dataset_download": False, "model": "mobilenet_v1_025", "backend": "mindspore",
              "mode": 0, "ckpt_path": "", "image_size": 32, "crop_pct": None, "interpolation": "bilinear",
              "mean": None, "std": None, "precision": "fp32", "calib_dir": "", "calib_images": 300}
    values.update(kw)
    return SimpleNamespace(**values)


def _validate_in_process(cfg, loaded, info=None) -> dict:
    from mindcv_mobilenet.data.preprocessing import resolve_data_config
    from mindcv_mobilenet.engine.distributed import DistInfo, Reducer
    from mindcv_mobilenet.inference.validate import eval_dataset, validate_loaded
    from mindcv_mobilenet.models import get_model_config

    info = info or DistInfo()
    settings = resolve_data_config(cfg, get_model_config(cfg.model))
    return validate_loaded(cfg, loaded, settings, eval_dataset(cfg, settings.dataset, info), info,
                           Reducer(DistInfo()))


def test_partial_last_batch_is_counted(cifar_model):
    """90 images in batches of 16 (last batch 10) give exactly what one batch of 90 gives."""
    _, loaded = cifar_model
    by_16 = _validate_in_process(_cfg(batch_size=16), loaded)
    by_90 = _validate_in_process(_cfg(batch_size=90), loaded)
    assert by_16["num_images"] == by_90["num_images"] == 90
    for key in ("top1", "top5"):
        assert by_16[key] == by_90[key]
    assert by_16["loss"] == pytest.approx(by_90["loss"], rel=1e-5)


def test_shards_cover_every_image_once(cifar_model):
    """Three ranks' shards (uneven: 34/33/33 images), summed as the all-reduce does, equal one process's result."""
    from mindcv_mobilenet.engine.distributed import DistInfo

    _, loaded = cifar_model
    cfg = _cfg(num_samples=None, dataset="cifar10_demo", batch_size=16)
    whole = _validate_in_process(_cfg(num_samples=None, batch_size=16), loaded)
    shards = [_validate_in_process(cfg, loaded, DistInfo(rank=r, size=3)) for r in range(3)]
    counts = [s["num_images"] for s in shards]
    assert sum(counts) == whole["num_images"] == 1000 and max(counts) - min(counts) <= 1
    for key in ("top1", "top5", "loss"):
        combined = sum(s[key] * s["num_images"] for s in shards) / sum(counts)
        assert combined == pytest.approx(whole[key], rel=1e-6, abs=1e-9), key


def test_unreadable_images_are_skipped_and_counted(tmp_path, cifar_model):
    """A class-folder set with one corrupt file: the other 20 images are scored, the bad one reported."""
    ckpt, _ = cifar_model
    rng = np.random.default_rng(0)
    for c in range(10):
        folder = tmp_path / "data" / "val" / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "data" / "val" / "class_3" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "r.json"
    proc = run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--dataset", "folder",
                      "--data_dir", str(tmp_path / "data"), "--image_resize", "32", "--batch_size", "8",
                      "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["num_images"] == 20 and results["skipped_images"] == 1
    assert any(name.endswith("broken.jpg") for name in results["bad_files"])
    assert "skipped (unreadable): 1" in proc.stdout


# ---------------------------------------------------------------- one-line errors
def test_wrong_data_dir_is_one_line(tmp_path, cifar_model):
    ckpt, _ = cifar_model
    proc = run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--data_dir",
                      str(tmp_path / "nowhere"))
    assert_one_line_error(proc, "nowhere", "does not exist")


def test_checkpoint_of_another_model_is_one_line(cifar_model):
    ckpt, _ = cifar_model  # a mobilenet_v1_025 checkpoint
    proc = run_script("validate.py", "--model", "mobilenet_v3_small_100", "--ckpt_path", str(ckpt))
    assert_one_line_error(proc, "does not fit mobilenet_v3_small_100")


def test_corrupt_checkpoint_and_missing_weights_are_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(os.urandom(2048))
    assert_one_line_error(run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(bad)),
                          "cannot read checkpoint")
    assert_one_line_error(run_script("validate.py", "--model", "mobilenet_v1_025"), "--pretrained", "--ckpt_path")
    assert_one_line_error(run_script("validate.py", "--model", "mobilenet_v2_100", "--image_resize", "x"),
                          "image_resize")


def test_class_count_mismatch_is_one_line(tmp_path, mnv2_ckpt):
    """A 1,000-class model on a 2-class folder tree: the labels could not mean the model's outputs."""
    for c in range(2):
        folder = tmp_path / "val" / f"c{c}"
        folder.mkdir(parents=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "a.png")
    proc = run_script("validate.py", "--model", "mobilenet_v2_100", "--ckpt_path", str(mnv2_ckpt), "--data_dir",
                      str(tmp_path))
    assert_one_line_error(proc, "2 classes", "1000")


def test_onnxruntime_missing_is_one_line(cifar_model):
    ckpt, _ = cifar_model
    proc = run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--num_samples", "4",
                      "--backend", "onnxruntime", prelude="import sys; sys.modules['onnxruntime'] = None")
    assert_one_line_error(proc, "onnxruntime", "pip install")


MSRUN = shutil.which("msrun") or os.path.join(os.path.dirname(sys.executable), "msrun")


@pytest.mark.skipif(not os.path.exists(MSRUN), reason="msrun (MindSpore's launcher) is not installed")
def test_distributed_validation_under_msrun(cifar_model, tmp_path):
    """Two real ranks (msrun, CPU collectives) on the 1,000 demo images (shards of 500: 31 batches of 16 and a
    partial one each): the all-reduced report equals one process's."""
    ckpt, loaded = cifar_model
    single = _validate_in_process(_cfg(num_samples=None, batch_size=16), loaded)
    out = tmp_path / "dist.json"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={port}", "--join=True",
           f"--log_dir={tmp_path / 'logs'}", "--cluster_time_out=90", str(REPO_ROOT / "validate.py"),
           "--distribute", "True",
           "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--batch_size", "16", "--image_resize", "32",
           "--num_parallel_workers", "1", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, GLOG_v="3",  # msrun starts workers with the `python` on PATH
                                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")))
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    results = json.loads(out.read_text())
    assert results["ranks"] == 2 and results["num_images"] == single["num_images"] == 1000
    for key in ("top1", "top5"):
        assert results[key] == pytest.approx(single[key], abs=1e-9), key
    assert results["loss"] == pytest.approx(single["loss"], rel=1e-5)


def test_class_folders_must_match_the_saved_class_list(tmp_path, base):
    """A fine-tuned checkpoint's class_names.json against a split whose folders are ordered differently."""
    ckpt = random_checkpoint(base, "mobilenet_v1_025", 3, seed=4, class_names=["cat", "dog", "emu"])
    for name in ("cat", "dog", "eel"):
        folder = tmp_path / "val" / name
        folder.mkdir(parents=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "a.png")
    proc = run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--dataset", "folder",
                      "--data_dir", str(tmp_path), "--image_resize", "32")
    assert_one_line_error(proc, "differ from the classes the checkpoint was trained on")
