"""MobileNetV4: registry and configs, head and backbone API, blocks and a training step equal to timm's, timm's weights
convert exactly."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from helpers import shared_path
from reference import seeded_timm_weight

import mindcv_mobilenet as mm
from mindcv_mobilenet.convert import convert_file, timm_state_to_params
from mindcv_mobilenet.convert.timm import BN_NAMES, package_name
from mindcv_mobilenet.engine.loss import create_loss
from mindcv_mobilenet.models.mobilenet_v4 import Block, make_block
from mindcv_mobilenet.models.registry import get_model_config
from mindcv_mobilenet.utils.checkpoint import load_model_weights, save_checkpoint
from mindcv_mobilenet.utils.errors import CheckpointError, UserError

FIXTURE = Path(__file__).parent / "fixtures" / "timm_mobilenet_v4_blocks.npz"
TIMM = ("weights", "timm")
V4 = ["conv_small", "conv_medium", "conv_large", "hybrid_medium", "hybrid_large"]


def _input(size: int = 64, batch: int = 2, seed: int = 0) -> ms.Tensor:
    return ms.Tensor(np.random.RandomState(seed).randn(batch, 3, size, size).astype(np.float32))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


pytestmark = pytest.mark.usefixtures("pynative_mode")  # each test sets graph mode itself where it needs it


@pytest.fixture(scope="session")
def hybrid() -> ms.nn.Cell:
    """One hybrid-medium, built once: every block kind, attention included."""
    return mm.create_model("mobilenet_v4_hybrid_medium", num_classes=6)


def test_registry_names_aliases_and_timm_data_configs(caplog):
    assert mm.list_models("mobilenet_v4*") == sorted(f"mobilenet_v4_{a}" for a in V4)
    expected = {  # timm 1.0.31's default pretrained configs
        "conv_small": (224, 0.875, 256, 0.95), "conv_medium": (256, 0.95, 320, 1.0),
        "conv_large": (384, 0.95, 448, 1.0), "hybrid_medium": (256, 0.95, 320, 1.0),
        "hybrid_large": (384, 0.95, 448, 1.0),
    }
    for arch, (size, crop, test_size, test_crop) in expected.items():
        config = get_model_config(f"mobilenetv4_{arch}")  # timm's name is an alias
        assert config is get_model_config(f"mobilenet_v4_{arch}")
        assert (config.image_size, config.crop_pct, config.test_image_size, config.test_crop_pct) == (
            size, crop, test_size, test_crop)
        assert config.interpolation == "bicubic"
        assert config.mean == pytest.approx((123.675, 116.28, 103.53)) and config.std == pytest.approx(
            (58.395, 57.12, 57.375))
    assert "mobilenetv4_conv_small" not in mm.list_models()
    with caplog.at_level(logging.INFO, logger="mindcv_mobilenet"):
        model = mm.create_model("mobilenetv4_conv_small", num_classes=3)
    assert model.model_name == "mobilenet_v4_conv_small"
    assert "model mobilenetv4_conv_small is mobilenet_v4_conv_small" in caplog.text


def test_head_api_and_a_new_classifier_keeps_the_backbone(hybrid, tmp_path):
    hybrid.set_train(False)
    x = _input()
    features = hybrid.forward_features(x)
    assert features.shape == (2, 960, 2, 2)
    np.testing.assert_allclose(hybrid.forward_head(features).asnumpy(), hybrid(x).asnumpy(), rtol=1e-5, atol=1e-6)
    assert hybrid.get_classifier().weight.shape == (6, 1280)
    path = str(tmp_path / "hybrid6.ckpt")
    save_checkpoint(hybrid, path)
    other = mm.create_model("mobilenet_v4_hybrid_medium", num_classes=4, checkpoint_path=path)
    saved = {p.name: p.asnumpy() for p in hybrid.get_parameters()}
    for p in other.get_parameters():
        if p.name.startswith("classifier.4."):
            assert p.shape[0] == 4
        else:
            np.testing.assert_array_equal(p.asnumpy(), saved[p.name], err_msg=p.name)
    other.reset_classifier(9)
    other.set_train(False)
    assert other(x).shape == (2, 9)
    assert [p.name for p in other.get_parameters()][-2:] == ["classifier.4.weight", "classifier.4.bias"]


def test_graph_mode_matches_pynative_in_training(hybrid):
    """Training mode normalises with batch statistics, so activations stay O(1) at initialisation (eval-mode
    BatchNorm of an untrained net shrinks them to nothing and would compare zeros); attention in both modes."""
    x = _input()
    hybrid.set_train(True)
    try:
        eager = hybrid(x).asnumpy()
        ms.set_context(mode=ms.GRAPH_MODE)
        graph = hybrid(x).asnumpy()
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        hybrid.set_train(False)
    assert np.abs(eager).max() > 1e-3
    np.testing.assert_allclose(graph, eager, rtol=1e-4, atol=1e-4 * np.abs(eager).max())


@pytest.mark.parametrize("arch,channels", [("conv_small", (32, 32, 64, 96, 960)),
                                           ("hybrid_medium", (32, 48, 80, 160, 960))])
def test_features_only_at_strides_2_to_32(arch, channels):
    backbone = mm.create_model(f"mobilenet_v4_{arch}", features_only=True)
    strides = (2, 4, 8, 16, 32)
    assert [(i.num_chs, i.reduction) for i in backbone.feature_info] == list(zip(channels, strides, strict=True))
    backbone.set_train(False)
    maps = backbone(_input(64))
    assert [m.shape for m in maps] == [(2, c, 64 // r, 64 // r) for c, r in zip(channels, strides, strict=True)]
    two = mm.create_model(f"mobilenet_v4_{arch}", features_only=True, out_indices=(2, 4))
    assert [i.reduction for i in two.feature_info] == [8, 32]


# --- single blocks against timm's (tests/fixtures/timm_mobilenet_v4_blocks.npz, tools/make_timm_v4_fixture.py) ----

BLOCKS = {  # the fixture's blocks as (this package's Block, input channels, activation, layer scale)
    "mqa_kv2": (Block("mqa", 32, kernel=3, heads=2, key_dim=16, kv_stride=2), 32, "relu", 1e-5),
    "mqa_kv1": (Block("mqa", 24, kernel=3, heads=4, key_dim=8, kv_stride=1), 24, "relu", 1e-5),
    "extradw_gelu": (Block("uib", 16, start=3, mid=5, expand=2), 16, "gelu", 1e-5),
    "extradw_s2": (Block("uib", 24, 2, start=5, mid=3, expand=4), 16, "relu", None),
    "ib": (Block("uib", 16, mid=3, expand=3), 16, "relu", None),
    "convnext": (Block("uib", 16, start=3, expand=4), 16, "relu", 1e-5),
    "ffn": (Block("uib", 16, expand=2), 16, "relu", 1e-5),
    "fused": (Block("fused", 16, 2, kernel=3, expand=4), 8, "relu", None),
}


def _fixture(prefix: str) -> dict[str, np.ndarray]:
    """The fixture's entries under ``prefix/``, without it."""
    with np.load(FIXTURE) as data:
        return {k[len(prefix) + 1:]: data[k] for k in data.files if k.startswith(prefix + "/")}


def _timm_block(name: str, weights: dict[str, np.ndarray]) -> tuple[ms.nn.Cell, dict[str, str]]:
    """``BLOCKS[name]`` built here with timm's ``weights``; also timm's name of each parameter, by ours."""
    spec, in_channels, act, layer_scale = BLOCKS[name]
    block = make_block(spec, in_channels, spec.stride, act, layer_scale)
    # the converter's names, under a stage prefix: blocks.0.0.<key> -> features.2.0.<key>
    bn_prefixes = {"blocks.0.0." + k[: -len(".running_mean")] for k in weights if k.endswith(".running_mean")}
    params = {p.name: p for p in block.get_parameters()}
    assert len(params) == len(weights)
    timm_names = {}
    for key, value in weights.items():
        target = package_name("blocks.0.0." + key, bn_prefixes).removeprefix("features.2.0.")
        params[target].set_data(ms.Tensor(value.reshape(params[target].shape)))
        timm_names[target] = key
    return block, timm_names


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_equals_timms(name):
    entries = _fixture(name)
    x, expected = entries.pop("input"), entries.pop("output")
    block, _ = _timm_block(name, entries)
    block.set_train(False)
    got = block(ms.Tensor(x)).asnumpy()
    assert got.shape == expected.shape
    assert _rel(got, expected) < 1e-5


def test_attention_block_trains_like_timms():
    """Mobile MQA in training mode (batch statistics in its pre-norm and key/value downsampling): output, the input's
    gradient and every parameter's (query/key/value/output projections, layer scale) equal timm's backward pass."""
    entries = _fixture("mqa_train")
    x, cotangent = ms.Tensor(entries.pop("input")), ms.Tensor(entries.pop("cotangent"))
    expected_out, expected_dx = entries.pop("output"), entries.pop("input_grad")
    expected_grads = {k.removeprefix("grad/"): entries.pop(k) for k in list(entries) if k.startswith("grad/")}
    block, timm_names = _timm_block("mqa_kv2", entries)
    block.set_train(True)
    weights = block.trainable_params()
    assert sorted(timm_names[p.name] for p in weights) == sorted(expected_grads)
    assert {"attn.query.proj.weight", "attn.key.proj.weight", "attn.value.proj.weight", "attn.output.proj.weight",
            "layer_scale.gamma"} <= set(expected_grads)
    out, (dx, grads) = _pull_back(block, weights, x, cotangent)
    assert _rel(out, expected_out) < 1e-5
    assert _rel(dx, expected_dx) < 1e-4
    largest = max(float(np.abs(g).max()) for g in expected_grads.values())
    for p, grad in zip(weights, grads, strict=True):
        expected = expected_grads[timm_names[p.name]]
        # the key's BatchNorm shift cancels in the softmax: its gradient is float noise (~1e-6), compare absolutely
        scale = max(float(np.abs(expected).max()), 1e-2 * largest)
        assert np.abs(grad - expected).max() < 1e-4 * scale, p.name


def _pull_back(cell: ms.nn.Cell, weights: list, x: ms.Tensor, cotangent: ms.Tensor):
    """``cell(x)`` and the pull-back of ``cotangent``: the gradient of ``sum(cell(x) * cotangent)`` with respect to
    ``x`` and ``weights``."""
    def objective(t):
        y = cell(t)
        return (y * cotangent).sum(), y

    (_, y), (dx, grads) = ms.value_and_grad(objective, grad_position=0, weights=weights, has_aux=True)(x)
    return y.asnumpy(), (dx.asnumpy(), [g.asnumpy() for g in grads])


def test_training_step_equals_timms():
    """One batch in training mode through timm's whole hybrid_large (seeded weights, GELU: a smooth network, so
    float32 rounding moves its gradients by ~5e-5, not by ReLU flips): the loss and the gradients of the stem, of the
    attention block features.4.7 (timm's blocks.2.7) and of the classifier equal timm's within 1e-3 relative."""
    ref = _fixture("train_hybrid_large")
    model = mm.create_model("mobilenet_v4_hybrid_large")
    state = {k: seeded_timm_weight(k, v.shape) for k, v in _timm_state(model).items() if v.dtype.kind == "f"}
    params = timm_state_to_params("mobilenet_v4_hybrid_large", state)
    for p in model.get_parameters():
        p.set_data(ms.Tensor(params[p.name]))
    bn_prefixes = {k[: -len(".running_mean")] for k in state if k.endswith(".running_mean")}
    expected = {k.removeprefix("grad/"): v for k, v in ref.items() if k.startswith("grad/") and "[" not in k
                and ":" not in k}
    expected["classifier.weight"] = None
    checked = {package_name(k, bn_prefixes): k for k in expected}
    assert len(checked) == 16 and "features.4.7.attn.query.proj.weight" in checked
    named = {p.name: p for p in model.trainable_params()}
    loss_fn = create_loss("CE")
    model.set_train(True)
    loss, grads = ms.value_and_grad(lambda x, y: loss_fn(model(x), y), None,
                                    weights=[named[n] for n in checked])(ms.Tensor(ref["input"]),
                                                                         ms.Tensor(ref["labels"]))
    assert abs(float(loss.asnumpy()) / float(ref["loss"]) - 1) < 1e-4
    grads = {checked[n]: g.asnumpy() for n, g in zip(checked, grads, strict=True)}
    classifier = grads.pop("classifier.weight")
    assert _rel(classifier[ref["classifier_rows"]], ref["grad/classifier.weight[rows]"]) < 1e-3
    assert abs(np.linalg.norm(classifier) / ref["grad/classifier.weight:norm"] - 1) < 1e-3
    for name, grad in grads.items():
        want = expected[name].reshape(grad.shape)
        # the key's BatchNorm shift cancels in the softmax: its gradient is float noise, compare absolutely
        scale = max(float(np.abs(want).max()), 1e-2 * float(np.abs(expected[checked["features.4.7.attn.key.proj."
                                                                                    "weight"]]).max()))
        assert np.abs(grad - want).max() < 1e-3 * scale, name


# --- timm's state dicts --------------------------------------------------------------------------------------------

def _timm_state(model: ms.nn.Cell) -> dict[str, np.ndarray]:
    """``model``'s parameters under timm's names (an independent inverse of the converter's table)."""
    state = {}
    for p in model.get_parameters():
        head, _, leaf = p.name.rpartition(".")
        parts = head.split(".")
        if parts[0] == "features":
            index = int(parts[1])
            head = {0: "conv_stem", 1: "bn1"}.get(index) or ".".join(["blocks", str(index - 2)] + parts[2:])
        else:
            head = {"classifier.0": "conv_head", "classifier.1": "norm_head", "classifier.4": "classifier"}[head]
        if not head.endswith("layer_scale"):  # a layer scale's gamma is timm's name too
            leaf = {v: k for k, v in BN_NAMES.items()}.get(leaf, leaf)
        value = p.asnumpy()
        state[f"{head}.{leaf}"] = value[:, :, None, None] if head == "conv_head" else value
        if leaf == "running_var":
            state[f"{head}.num_batches_tracked"] = np.array(0)
    return state


def test_timm_names_round_trip_and_errors_name_the_key(hybrid):
    state = _timm_state(hybrid)
    assert state["conv_head.weight"].shape == (1280, 960, 1, 1)
    assert "blocks.2.4.attn.key.down_conv.weight" in state and "blocks.2.4.layer_scale.gamma" in state
    params = timm_state_to_params("mobilenetv4_hybrid_medium", state)
    assert list(params) == [p.name for p in hybrid.get_parameters()]
    for p in hybrid.get_parameters():
        np.testing.assert_array_equal(params[p.name], p.asnumpy(), err_msg=p.name)

    with pytest.raises(CheckpointError, match=r"timm's blocks\.9\.0\.conv\.weight .* has no place"):
        timm_state_to_params("mobilenet_v4_hybrid_medium", {**state, "blocks.9.0.conv.weight": np.zeros((1, 1))})
    wrong = dict(state, **{"blocks.1.0.pw_exp.conv.weight": np.zeros((8, 48, 1, 1), np.float32)})
    with pytest.raises(CheckpointError, match=r"blocks\.1\.0\.pw_exp\.conv\.weight has shape \(8, 48, 1, 1\) but "
                                              r"features\.3\.0\.pw_exp\.conv\.weight needs \(192, 48, 1, 1\)"):
        timm_state_to_params("mobilenet_v4_hybrid_medium", wrong)
    missing = {k: v for k, v in state.items() if k != "blocks.2.4.norm.running_var"}
    with pytest.raises(CheckpointError, match=r"nothing for its features\.4\.4\.norm\.moving_variance"):
        timm_state_to_params("mobilenet_v4_hybrid_medium", missing)
    with pytest.raises(CheckpointError, match=r"timm's blocks\.0\.0\.conv_exp\.weight .* no place"):  # another variant
        timm_state_to_params("mobilenet_v4_conv_small", state)
    with pytest.raises(UserError, match="mobilenet_v4_"):
        timm_state_to_params("mobilenet_v3_small_100", state)


def test_timms_conv_small_converts_exactly(tmp_path):
    """timm's own mobilenetv4_conv_small (random weights and BatchNorm statistics) through the command's path:
    timm's logits and forward_features on real preprocessed samples."""
    weights = shared_path(*TIMM, "mobilenetv4_conv_small.safetensors")
    pytest.importorskip("safetensors")
    with np.load(shared_path(*TIMM, "mobilenetv4_conv_small_reference.npz"), allow_pickle=True) as data:
        x, logits, features = data["input"], data["logits"], data["features"]
    out = str(tmp_path / "mnv4s.ckpt")
    convert_file("mobilenetv4_conv_small", str(weights), out)
    model = mm.create_model("mobilenet_v4_conv_small", checkpoint_path=out)
    model.set_train(False)
    ours = model.forward_features(ms.Tensor(x))
    got = model.forward_head(ours).asnumpy()
    assert _rel(ours.asnumpy(), features) < 1e-4
    assert _rel(got, logits) < 1e-3
    assert (got.argmax(1) == logits.argmax(1)).all()
    with pytest.raises(CheckpointError, match="does not fit mobilenet_v4_conv_medium"):
        convert_file("mobilenet_v4_conv_medium", str(weights), str(tmp_path / "no.ckpt"))
    assert not (tmp_path / "no.ckpt").exists()
    unused = load_model_weights(mm.create_model("mobilenet_v4_conv_small", num_classes=10), out)
    assert unused == ["classifier.4.weight", "classifier.4.bias"]


# --- inference, export, training -------------------------------------------------------------------------------------

EXPORTED = ["conv_small", "hybrid_medium"]
SIZE = 32


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """arch -> (LoadedModel of a randomized checkpoint, its float ONNX Runtime predictor, its int8 one): the
    ONNX Runtime backend's path (export checked against the network at batches 2 and 3, then quantized), once."""
    from helpers import random_checkpoint

    from mindcv_mobilenet.data.preprocessing import DataConfig
    from mindcv_mobilenet.inference.calibration import Calibration
    from mindcv_mobilenet.inference.loading import load_model
    from mindcv_mobilenet.inference.predictor import onnx_predictor

    pytest.importorskip("onnxruntime.quantization")
    base = tmp_path_factory.mktemp("v4_deploy")
    settings = DataConfig("imagenet", SIZE, 1.0, "bilinear", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    rng = np.random.default_rng(0)  # smooth images: blobs upsampled 8x
    images = [np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((8, 8, 1))).astype(np.uint8) for _ in range(16)]
    calibration = Calibration("16 smooth random images", "0" * 12, settings, lambda: images)
    previous = os.environ.get("MINDCV_MOBILENET_CACHE")
    os.environ["MINDCV_MOBILENET_CACHE"] = str(base / "cache")
    try:
        built = {}
        for seed, arch in enumerate(EXPORTED):
            loaded = load_model(f"mobilenet_v4_{arch}", str(random_checkpoint(base, f"mobilenet_v4_{arch}", 10, seed)))
            built[arch] = (loaded, onnx_predictor(loaded, SIZE, 2), onnx_predictor(loaded, SIZE, 2, calibration))
        yield built
    finally:
        if previous is None:
            del os.environ["MINDCV_MOBILENET_CACHE"]
        else:
            os.environ["MINDCV_MOBILENET_CACHE"] = previous


@pytest.mark.parametrize("arch", EXPORTED)
def test_onnx_runtime_backend_and_int8_files(arch, deployed):
    """The float file (attention as MatMul/Softmax, any batch) gives the network's logits within 1e-4 in ONNX
    Runtime; the int8 file is quantized (integer convolutions) and points the way the float logits do."""
    import onnx

    from mindcv_mobilenet.inference.export import sample_input

    loaded, float_predictor, int8_predictor = deployed[arch]
    images = sample_input(3, 3, SIZE, seed=11)  # not what the export's check used
    expected = loaded.model(ms.Tensor(images)).asnumpy()
    assert np.abs(expected[0] - expected[1]).max() > 0.01 * np.abs(expected).max()
    got = float_predictor(images)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    float_ops = {n.op_type for n in onnx.load(float_predictor.path).graph.node}
    assert ("MatMul" in float_ops and "Softmax" in float_ops) == arch.startswith("hybrid")
    int8_ops = {n.op_type for n in onnx.load(int8_predictor.path).graph.node}
    assert "DequantizeLinear" in int8_ops and int8_predictor.path != float_predictor.path
    quantized = int8_predictor(images)
    cosine = (quantized * got).sum(1) / np.linalg.norm(quantized, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.5, cosine


@pytest.mark.parametrize("arch", EXPORTED)
def test_fuse_bn_folds_every_conv_and_keeps_the_logits(arch, deployed):
    from mindcv_mobilenet.inference.export import sample_input
    from mindcv_mobilenet.kernels.batchnorm import BatchNorm2d
    from mindcv_mobilenet.models.fuse import conv_bn_pairs, fuse_bn

    model = deployed[arch][0].model
    folded = fuse_bn(model)
    assert folded.fused_bn_layers == len(conv_bn_pairs(model)) > 40
    left = [name for name, cell in folded.cells_and_names() if isinstance(cell, BatchNorm2d)]
    assert all(name.endswith(".norm") for name in left)  # attention's pre-norm: no convolution before it
    assert len(left) == (8 if arch == "hybrid_medium" else 0)  # one per attention block
    x = ms.Tensor(sample_input(2, 3, SIZE, seed=3))
    expected = model(x).asnumpy()
    assert _rel(folded(x).asnumpy(), expected) < 1e-5


def test_exact_gelu_exports_without_erf(tmp_path):
    """hybrid_large's exact GELU: the export formula agrees with MindSpore's erf GELU, and a GELU network exports to
    ONNX (MindSpore's exporter has no Erf) and runs in ONNX Runtime like the network."""
    import onnx

    from mindcv_mobilenet.inference.export import export_model
    from mindcv_mobilenet.models.layers import GELU, GlobalAvgPool, conv_bn_act, exportable_operators

    gelu = GELU()
    x = ms.Tensor(np.linspace(-12, 12, 100001, dtype=np.float32))
    exact = gelu(x).asnumpy()
    with exportable_operators(gelu):
        formula = gelu(x).asnumpy()
    assert np.abs(formula - exact).max() < 6e-7  # each within 2.4e-7 (the formula) and 4.5e-7 (MindSpore) of erf's
    torch_values = {-3.0: -0.0040496, -1.0: -0.1586553, 0.5: 0.3457312, 2.0: 1.9544997}  # x * Phi(x)
    got = gelu(ms.Tensor(np.array(list(torch_values), np.float32))).asnumpy()
    np.testing.assert_allclose(got, list(torch_values.values()), atol=1e-6)
    net = ms.nn.SequentialCell(conv_bn_act(3, 8, 3, 2, act="gelu") + [GlobalAvgPool(), ms.nn.Dense(8, 4)])
    from helpers import randomize

    randomize(net, 0)
    result = export_model(net, "ONNX", str(tmp_path / "gelu.onnx"), SIZE, batch_size=2)
    assert result.check["runtime"].startswith("ONNX Runtime")
    ops_used = {n.op_type for n in onnx.load(result.path).graph.node}
    assert "Erf" not in ops_used and {"Exp", "Abs"} <= ops_used


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_training_steps_lower_the_loss(mode):
    """A few optimizer steps of the hybrid (attention, layer scale, the head's BatchNorm1d) on one batch, through the
    trainer's TrainStep, in graph and PyNative mode."""
    from mindcv_mobilenet.engine.loss import CrossEntropySmooth
    from mindcv_mobilenet.engine.optim import create_optimizer
    from mindcv_mobilenet.engine.train_step import TrainStep

    ms.set_context(mode=mode)
    ms.set_seed(0)
    net = mm.create_model("mobilenet_v4_hybrid_medium", num_classes=4)
    # batch 8: training-mode BatchNorm over the 1x1 maps of the last stage and the head sees 8 values per channel
    step = TrainStep(ms.nn.WithLossCell(net, CrossEntropySmooth(0.1)),
                     create_optimizer(net.trainable_params(), "momentum", 0.005, 0.0, momentum=0.9))
    step.set_train()
    x, y = _input(SIZE, batch=8, seed=5), ms.Tensor(np.arange(8, dtype=np.int32) % 4)
    losses = [float(step(x, y)[0].asnumpy()) for _ in range(6)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.2, losses
