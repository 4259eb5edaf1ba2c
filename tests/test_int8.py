"""int8 ONNX (ONNX Runtime static quantization) and the dynamic batch axis of ONNX exports: a quantized tiny model
follows its float logits on real images it was not calibrated on, its weights cannot saturate any x86 kernel, both
files take any batch size, the int8 cache file is keyed on the calibration and the quantization settings, calibration
never silently uses evaluated images, and mistakes give one line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import assert_one_line_error, random_checkpoint, randomize, run_script, shared_path

from mindcv_mobilenet import create_model
from mindcv_mobilenet.data.preprocessing import DataConfig
from mindcv_mobilenet.inference import calibration as calibration_module
from mindcv_mobilenet.inference.calibration import from_dataset, from_files, from_folder
from mindcv_mobilenet.inference.export import export_model
from mindcv_mobilenet.inference.onnx_backend import OnnxPredictor, cache_path
from mindcv_mobilenet.inference.quantize import Recipe, quantize_file
from mindcv_mobilenet.utils.errors import DataError

pytest.importorskip("onnxruntime.quantization")
onnx = pytest.importorskip("onnx")

SIZE = 48
MODEL = "mobilenet_v2_035"
SETTINGS = DataConfig("imagenet", SIZE, 0.875, "bilinear", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
# int8 logits of this random-weight model on 16 real images it was not calibrated on: cosine similarity with the float
# logits 0.946-0.993 (mean 0.980) with 7-bit weights, the same on AVX2 and VNNI CPUs (8-bit weights: 0.964-0.996,
# mean 0.986, with VNNI; mean 0.93-0.94 on AVX2); a dropped bias, a wrong activation range or another model's weights
# break that. Their difference is 12-36% of the float logits' norm per image (a wrong scale alone would keep the
# cosine).
MIN_COSINE, MIN_MEAN_COSINE, MAX_RELATIVE_ERROR = 0.93, 0.97, 0.4
INT16_MAX = 32767


def _sample_files(count: int, offset: int) -> list[str]:
    """``count`` real ImageNet samples, one per class, starting at class ``offset`` (disjoint sets for disjoint
    offsets)."""
    classes = sorted(shared_path("data", "imagenet-samples", "val").iterdir())[offset:offset + count]
    return [str(sorted(c.iterdir())[0]) for c in classes]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(float ONNX file, int8 file calibrated on 48 real images, the float network) of one randomized V2."""
    folder = tmp_path_factory.mktemp("int8")
    net = create_model(MODEL)
    randomize(net, 3)
    net.set_train(False)
    float_path = str(folder / "float.onnx")
    export_model(net, "ONNX", float_path, SIZE, batch_size=4)
    calibration = from_files(_sample_files(48, 0), SETTINGS, 300, "test images")
    result = quantize_file(float_path, str(folder / "int8.onnx"), calibration)
    return float_path, result, net


def _held_out_images(count: int = 16) -> np.ndarray:
    return from_files(_sample_files(count, 500), SETTINGS, count, "held-out images").images()


def test_int8_logits_follow_float_on_held_out_images(files):
    float_path, result, _ = files
    assert result.precision == "int8" and result.input_shape == [None, 3, SIZE, SIZE]
    assert result.check["images"] == 48 and result.check["cosine"] > MIN_MEAN_COSINE
    graph = onnx.load(result.path).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "BatchNormalization" not in ops  # QDQ, BN folded
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) == sum(n.op_type == "Conv" for n in graph.node)  # every convolution's weights
    scales = {n.input[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    assert all(any(a.name == "axis" for a in scales[t.name].attribute) for t in int8_weights)  # per channel
    images = _held_out_images()
    reference, output = OnnxPredictor(float_path)(images), OnnxPredictor(result.path)(images)
    assert np.abs(reference[0] - reference[1]).max() > 0.05 * np.abs(reference).max()  # logits depend on the image
    cosine = (reference * output).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(output, axis=1)
    assert cosine.min() > MIN_COSINE and cosine.mean() > MIN_MEAN_COSINE
    error = np.linalg.norm(output - reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert error.max() < MAX_RELATIVE_ERROR


def test_int8_weights_cannot_saturate_any_x86_kernel(files):
    """Without VNNI (AVX2, AVX-512 without VNNI) ONNX Runtime's uint8 x int8 kernels add two products in int16 with
    saturation (VPMADDUBSW): with 8-bit weights the logits then depend on the CPU (mean held-out cosine 0.93-0.94
    instead of 0.99 on an AVX2-only CPU). Checked on the file, so it holds whichever CPU runs the test: activations
    uint8, weights int8 with zero point 0 and |w| <= 64, so that no pair sum (at most 2 * 255 * 64) exceeds int16."""
    _, result, _ = files
    graph = onnx.load(result.path).graph
    initializers = {t.name: t for t in graph.initializer}
    weights = {}  # name -> (values, zero point) of every integer weight a product with an activation reads
    for node in graph.node:
        if node.op_type not in ("DequantizeLinear", "QLinearConv"):
            continue
        value, zero = node.input[3:6:2] if node.op_type == "QLinearConv" else node.input[0:3:2]
        if value in initializers and initializers[value].data_type != onnx.TensorProto.INT32:  # int32: biases
            weights[value] = (onnx.numpy_helper.to_array(initializers[value]),
                              onnx.numpy_helper.to_array(initializers[zero]))
    multiplies = sum(n.op_type in ("Conv", "Gemm", "MatMul", "QLinearConv") for n in graph.node)
    assert multiplies > 0 and len(weights) == multiplies  # every convolution's and the classifier's weights
    for name, (value, zero) in weights.items():
        assert value.dtype == np.int8 and not zero.any(), name
        assert 2 * 255 * int(np.abs(value.astype(np.int32)).max()) <= INT16_MAX, f"{name}: weights beyond 7 bits"
    activations = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert activations and all(initializers[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in activations)


def test_float_and_int8_files_take_any_batch(files):
    from mindspore import Tensor

    float_path, result, net = files
    images = _held_out_images(5)
    expected = net(Tensor(images)).asnumpy()
    for path in (float_path, result.path):
        model = OnnxPredictor(path)
        assert model.batch_size is None  # a named batch axis: nothing split or padded
        whole = model(images)
        np.testing.assert_allclose(np.concatenate([model(images[:1]), model(images[1:])]), whole, rtol=0,
                                   atol=1e-4 * np.abs(whole).max())
    np.testing.assert_allclose(OnnxPredictor(float_path)(images), expected, rtol=0,
                               atol=1e-4 * np.abs(expected).max())


def test_calibration_sources_and_identity(tmp_path, caplog, monkeypatch):
    """Training split by default, evaluated split (said) without one; other images, counts, preprocessing or
    quantization settings give another identity, so another cached int8 file."""
    for split, offset in (("train", 0), ("val", 10)):
        for i, path in enumerate(_sample_files(4, offset)):
            folder = tmp_path / "data" / split / f"class{i}"
            folder.mkdir(parents=True)
            (folder / os.path.basename(path)).symlink_to(path)
    default = from_dataset("imagenet", str(tmp_path / "data"), "val", SETTINGS, 3)
    assert "'train' split" in default.description and default.description.startswith("3 images")
    assert len(default.images()) == 3
    assert default.identity == from_dataset("imagenet", str(tmp_path / "data"), "val", SETTINGS, 3).identity
    assert default.identity != from_dataset("imagenet", str(tmp_path / "data"), "val", SETTINGS, 4).identity
    smaller = DataConfig(**{**SETTINGS.__dict__, "image_size": 32})
    assert default.identity != from_dataset("imagenet", str(tmp_path / "data"), "val", smaller, 3).identity
    with monkeypatch.context() as patch:  # a file quantized with 8-bit weights (before 7-bit) is not reused
        patch.setattr(calibration_module, "RECIPE", Recipe(reduce_range=False))
        assert default.identity != from_dataset("imagenet", str(tmp_path / "data"), "val", SETTINGS, 3).identity
    cifar = from_dataset("cifar10_demo", "", "val", DataConfig("cifar10_demo", 32, None, "bilinear", (125.0,) * 3,
                                                                (60.0,) * 3), 5)
    assert "'train' split" in cifar.description and cifar.images().shape == (5, 3, 32, 32)  # arrays, not files
    assert "no training split" not in caplog.text
    only_val = from_dataset("imagenet", str(tmp_path / "data" / "val"), "", SETTINGS, 8)
    assert only_val.description.startswith("4 images") and only_val.description.endswith("data/val")
    assert "no training split" in caplog.text and "calibrated on images of the split it is evaluated on" in caplog.text
    folder = from_folder(str(tmp_path / "data" / "val"), SETTINGS, 300)
    assert folder.description.startswith("4 images of --calib_dir") and folder.identity != default.identity
    with pytest.raises(DataError, match="--calib_dir .* not a folder"):
        from_folder(str(tmp_path / "missing"), SETTINGS, 300)


def test_int8_cache_file_differs_from_float_and_is_reused(tmp_path, monkeypatch):
    from mindcv_mobilenet.inference import predictor as predictor_module
    from mindcv_mobilenet.inference.loading import load_model

    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path / "cache"))
    ckpt = random_checkpoint(tmp_path, "mobilenet_v1_025", 5, seed=4)
    loaded = load_model("mobilenet_v1_025", str(ckpt))
    settings = DataConfig(**{**SETTINGS.__dict__, "image_size": 32})
    calibration = from_files(_sample_files(16, 0), settings, 16, "test images")
    calls = []
    real = predictor_module.quantize_file
    monkeypatch.setattr(predictor_module, "quantize_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = predictor_module.onnx_predictor(loaded, 32, 2, calibration)
    second = predictor_module.onnx_predictor(loaded, 32, 2, calibration)
    assert len(calls) == 1 and first.path == second.path == cache_path(loaded, 32, calibration)
    assert f"-int8-cal{calibration.identity}-" in os.path.basename(first.path)
    assert os.path.isfile(cache_path(loaded, 32)) and cache_path(loaded, 32) != first.path  # the float file


def _calib_dir(folder, count: int):
    folder.mkdir()
    for path in _sample_files(count, 0):
        (folder / os.path.basename(path)).symlink_to(path)
    return folder


def test_cli_mistakes_are_one_line(tmp_path):
    ckpt = random_checkpoint(tmp_path, "mobilenet_v1_025", 5, seed=4)
    calib, empty = _calib_dir(tmp_path / "calib", 2), tmp_path / "empty"
    empty.mkdir()
    hide_quantization = "import sys; sys.modules['onnxruntime.quantization'] = None"
    common = ("--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--file_format", "ONNX", "--image_size", "32",
              "--output", str(tmp_path / "out"))
    assert_one_line_error(run_script("export.py", *common, "--precision", "int4"), "precision", "int8")
    assert_one_line_error(run_script("export.py", *common, "--precision", "int8"), "--calib_dir")
    assert_one_line_error(run_script("export.py", *common, "--precision", "int8", "--calib_dir",
                                     str(tmp_path / "none")), "--calib_dir", "not a folder")
    assert_one_line_error(run_script("export.py", *common, "--precision", "int8", "--calib_dir", str(empty)),
                          "--calib_dir", "holds no image files")
    assert_one_line_error(run_script("export.py", *common, "--precision", "int8", "--calib_dir", str(calib),
                                     prelude=hide_quantization), "onnxruntime.quantization", "pip install")
    assert_one_line_error(run_script("infer.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt),
                                     "--image_path", str(calib), "--backend", "onnxruntime", "--precision", "int8",
                                     prelude=hide_quantization), "onnxruntime.quantization", "pip install")
    assert_one_line_error(run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt),
                                     "--precision", "int8"), "--backend onnxruntime")
    assert_one_line_error(run_script("validate.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt),
                                     "--precision", "fp16"), "precision", "fp32, int8")
    assert not (tmp_path / "out.onnx").exists()


def test_cli_exports_int8(tmp_path):
    calib = _calib_dir(tmp_path / "calib", 8)
    ckpt = random_checkpoint(tmp_path, "mobilenet_v1_025", 5, seed=4)
    proc = run_script("export.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--file_format", "ONNX",
                      "--image_size", "32", "--precision", "int8", "--calib_dir", str(calib), "--output",
                      str(tmp_path / "v1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ONNX int8, input Nx3x32x32" in proc.stdout and "calibrated on 8 images of --calib_dir" in proc.stdout
    assert OnnxPredictor(str(tmp_path / "v1.onnx"))(_held_out_images(2)[:, :, :32, :32]).shape == (2, 5)
