"""export.py and the ONNX Runtime backend: every family to ONNX (MobileNetV3's hard-swish and 'same' padding
included) and MINDIR with a dynamic batch, logits equal to the network's, atomic writes, cache, one-line errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import (
    assert_one_line_error,
    random_checkpoint,
    randomize,
    run_script,
)

from mindcv_mobilenet import create_model
from mindcv_mobilenet.inference.export import ExportError, compare_logits, export_files, export_model, sample_input
from mindcv_mobilenet.utils.errors import UserError

FAMILIES = ["mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_small_075", "mobilenet_v3_large_100"]
SIZE = 32  # even: V3's stride-2 'same' padding is then asymmetric (0 before, 1 after), the case exporters get wrong


@pytest.fixture(scope="module")
def nets():
    """One randomized network per family (realistic BatchNorm statistics and classifier scale)."""
    built = {}
    for seed, name in enumerate(FAMILIES):
        net = create_model(name)
        randomize(net, seed)
        net.set_train(False)
        built[name] = net
    return built


def _ort_logits(path, images):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_export_matches_network(name, nets, tmp_path):
    from mindspore import Tensor

    net = nets[name]
    result = export_model(net, "ONNX", str(tmp_path / f"{name}.onnx"), SIZE, batch_size=2)
    assert result.input_shape == [None, 3, SIZE, SIZE] and os.path.isfile(result.path)
    assert result.check["batch_sizes"] == [2, 3]  # the check ran two batch sizes through the named batch axis
    images = sample_input(2, 3, SIZE, seed=11)  # not the input the export check used
    expected = net(Tensor(images)).asnumpy()
    got = _ort_logits(result.path, images)
    # logits that depend on the input (not a constant head), so agreeing within 1e-4 of their scale means something
    assert np.abs(expected[0] - expected[1]).max() > 0.01 * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert result.check["runtime"].startswith("ONNX Runtime")
    assert not [f for f in os.listdir(tmp_path) if ".part" in f]  # no temporary file left behind


def test_export_check_catches_a_padding_mistake(nets, tmp_path):
    """The same V3 with torchvision's symmetric padding: the comparison must refuse it (what a wrong 'same'
    padding translation would look like)."""
    from mindspore import Tensor

    from mindcv_mobilenet.convert import torchvision_padding_twin

    net = nets["mobilenet_v3_small_075"]
    images = sample_input(2, 3, SIZE)
    twin = create_model("mobilenet_v3_small_075")
    randomize(twin, FAMILIES.index("mobilenet_v3_small_075"))
    twin = torchvision_padding_twin(twin)
    twin.set_train(False)
    with pytest.raises(ExportError, match="does not reproduce"):
        compare_logits(net(Tensor(images)).asnumpy(), twin(Tensor(images)).asnumpy(), "twin")


def test_mindir_has_a_dynamic_batch(nets, tmp_path):
    import mindspore as ms
    from mindspore import Tensor, nn

    net = nets["mobilenet_v3_small_075"]
    result = export_model(net, "MINDIR", str(tmp_path / "v3.mindir"), SIZE)
    assert result.input_shape[0] is None and result.check["batch_sizes"] == [1, 2]
    graph = nn.GraphCell(ms.load(result.path))
    for batch in (1, 3):
        images = sample_input(batch, 3, SIZE, seed=batch)
        np.testing.assert_allclose(graph(Tensor(images)).asnumpy(), net(Tensor(images)).asnumpy(), rtol=0,
                                   atol=1e-5)


def test_refuses_to_overwrite_without_force(nets, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"keep me")
    with pytest.raises(UserError, match="--force"):
        export_model(nets["mobilenet_v1_025"], "ONNX", str(path), SIZE)
    assert path.read_bytes() == b"keep me"
    export_model(nets["mobilenet_v1_025"], "ONNX", str(path), SIZE, force=True, check=False)
    assert path.read_bytes() != b"keep me"


# ---------------------------------------------------------------- command line, from a checkpoint
@pytest.fixture(scope="module")
def v1_ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.getbasetemp(), "mobilenet_v1_025", 7, seed=9)


def test_cli_exports_checkpoint_to_both_formats(v1_ckpt, tmp_path):
    from mindspore import Tensor

    from mindcv_mobilenet.inference.loading import load_model

    proc = run_script("export.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(v1_ckpt), "--file_format",
                      "MINDIR", "onnx", "--image_size", "32", "--batch_size", "2", "--output", str(tmp_path / "v1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("logits match the network") == 2
    assert sorted(os.listdir(tmp_path)) == ["v1.mindir", "v1.onnx"]
    net = load_model("mobilenet_v1_025", str(v1_ckpt)).model  # 7 classes, read from the checkpoint
    images = sample_input(2, 3, 32, seed=5)
    expected = net(Tensor(images)).asnumpy()
    assert expected.shape == (2, 7)
    np.testing.assert_allclose(_ort_logits(tmp_path / "v1.onnx", images), expected, rtol=0,
                               atol=1e-4 * np.abs(expected).max())
    again = run_script("export.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(v1_ckpt), "--file_format",
                       "ONNX", "--image_size", "32", "--output", str(tmp_path / "v1.onnx"))
    assert_one_line_error(again, "exists", "--force")


def test_cli_errors_are_one_line(v1_ckpt, tmp_path):
    assert_one_line_error(run_script("export.py", "--model", "mobilenet_v9", "--output", str(tmp_path / "a")),
                          "unknown model")
    assert_one_line_error(run_script("export.py", "--model", "mobilenet_v2_100", "--ckpt_path", str(v1_ckpt),
                                     "--output", str(tmp_path / "b")), "does not fit mobilenet_v2_100")
    assert_one_line_error(run_script("export.py", "--model", "mobilenet_v1_025", "--ckpt_path",
                                     str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "c")), "not found")
    assert not os.listdir(tmp_path)


def test_export_takes_the_training_runs_resolution(tmp_path):
    """export.py asks the one preprocessing resolver, as validate/infer do: a fine-tuned checkpoint with its run's
    config.yaml beside it is exported at the run's resolution; the command line wins; without a run, the model's."""
    from mindcv_mobilenet.cli import parse_args
    from mindcv_mobilenet.data.preprocessing import resolve_data_config
    from mindcv_mobilenet.engine.checkpoint_manager import write_run_config
    from mindcv_mobilenet.inference.export import run_export
    from mindcv_mobilenet.inference.loading import training_run_config
    from mindcv_mobilenet.models import get_model_config

    def resolved(cfg):  # as export.py resolves them
        return resolve_data_config(cfg, get_model_config(cfg.model), training_run_config(cfg), for_files=True)

    ckpt = random_checkpoint(tmp_path, "mobilenet_v1_025", 10, seed=3)
    run_config = ckpt.parent / "config.yaml"
    write_run_config(vars(parse_args("train", ["--model", "mobilenet_v1_025", "--dataset", "cifar10_demo",
                                               "--image_resize", "48"])), str(run_config))
    argv = ["--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--file_format", "ONNX", "--no_check",
            "--output", str(tmp_path / "out")]
    cfg = parse_args("export", argv)
    assert (resolved(cfg).dataset, resolved(cfg).image_size) == ("cifar10_demo", 48)
    (result,) = run_export(cfg)
    assert result.input_shape == [None, 3, 48, 48] and os.path.isfile(tmp_path / "out.onnx")  # any batch
    assert resolved(parse_args("export", argv + ["--image_size", "40"])).image_size == 40  # the command line wins
    run_config.unlink()
    assert resolved(parse_args("export", argv)).image_size == 224


# ---------------------------------------------------------------- ONNX Runtime backend
def test_onnx_backend_exports_once_and_caches(v1_ckpt, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from mindspore import Tensor

    from mindcv_mobilenet.inference import predictor as predictor_module
    from mindcv_mobilenet.inference.loading import load_model
    from mindcv_mobilenet.inference.onnx_backend import cache_path
    from mindcv_mobilenet.inference.predictor import onnx_predictor

    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path / "cache"))
    loaded = load_model("mobilenet_v1_025", str(v1_ckpt))
    calls = []
    real_export = predictor_module.export_model
    monkeypatch.setattr(predictor_module, "export_model", lambda *a, **k: calls.append(a) or real_export(*a, **k))
    first = onnx_predictor(loaded, 32, 4)
    second = onnx_predictor(loaded, 32, 4)
    assert len(calls) == 1 and first.path == second.path == cache_path(loaded, 32)
    assert os.path.basename(first.path).startswith("mobilenet_v1_025-" + loaded.weights_id[:16])
    onnx_predictor(loaded, 40, 4)
    assert len(calls) == 2  # another resolution is another file
    images = sample_input(6, 3, 32, seed=2)  # 6 images through a file traced at batch 4: its batch axis is named
    expected = loaded.model(Tensor(images)).asnumpy()
    np.testing.assert_allclose(second(images), expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_onnxruntime_missing_is_a_clear_error(monkeypatch):
    import sys

    from mindcv_mobilenet.inference.onnx_backend import require_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match=r"pip install .*onnx"):
        require_onnxruntime()


def test_export_files_checks_every_target_before_writing(nets, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match="exists"):
        export_files("mobilenet_v1_025", ["MINDIR", "ONNX"], str(tmp_path / "m"), image_size=SIZE)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]  # the MINDIR was not written either
