"""Every registered model builds and runs; counts match the papers; names match mindcv's checkpoints."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

import mindcv_mobilenet as mm
from mindcv_mobilenet.models.registry import get_model_config
from mindcv_mobilenet.profile import count_macs, count_params
from mindcv_mobilenet.utils.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"
ALL_MODELS = mm.list_models()
GRAPH_SUBSET = ["mobilenet_v1_025", "mobilenet_v2_035_96", "mobilenet_v3_small_075", "mobilenet_v3_large_100"]


def _input(batch: int = 2, size: int = 32, channels: int = 3, seed: int = 0) -> ms.Tensor:
    return ms.Tensor(np.random.RandomState(seed).randn(batch, channels, size, size).astype(np.float32))


pytestmark = pytest.mark.usefixtures("pynative_mode")  # each test sets graph mode itself where it needs it


def test_every_model_name_is_written_out_where_it_is_registered():
    """grep finds each model: its name is a whole string in its family's file (no name made up in a loop)."""
    models = Path(mm.models.__file__).parent
    written = {node.value for path in models.glob("mobilenet_v*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert [name for name in ALL_MODELS if name not in written] == []


def test_registry_has_every_variant():
    assert len(ALL_MODELS) - len(mm.list_models("tf_*")) == 65  # the tf_ variants: test_tf_import.py
    for width in ("025", "050", "075", "100"):
        assert mm.is_model(f"mobilenet_v1_{width}")
        for res in (128, 160, 192, 224):  # mindcv's earlier names (mobilenet_v1_100_224), one network per width
            name = f"mobilenet_v1_{width}_{res}"
            assert mm.is_model(name)
            assert get_model_config(name).image_size == res
            assert get_model_config(name).url == get_model_config(f"mobilenet_v1_{width}").url
        assert get_model_config(f"mobilenet_v1_{width}_224") == get_model_config(f"mobilenet_v1_{width}")
    for width in ("035", "050", "075", "100", "130", "140"):
        assert mm.is_model(f"mobilenet_v2_{width}")
        for res in (96, 128, 160, 192, 224):
            name = f"mobilenet_v2_{width}_{res}"
            assert mm.is_model(name)
            assert get_model_config(name).image_size == res
    assert mm.list_models("mobilenet_v3*") == [
        "mobilenet_v3_large_075", "mobilenet_v3_large_100", "mobilenet_v3_small_075", "mobilenet_v3_small_100"]
    assert all(get_model_config(n).num_classes == 1000 for n in ALL_MODELS)


def test_unknown_model_suggests_a_close_name():
    with pytest.raises(UserError, match="did you mean mobilenet_v3_small_100"):
        mm.create_model("mobilenet_v3_smal_100")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_every_model_pynative(name):
    model = mm.create_model(name, num_classes=7)
    model.set_train(False)
    out = model(_input())
    assert out.shape == (2, 7)
    assert np.isfinite(out.asnumpy()).all()


@pytest.fixture(scope="session")
def graph_models():
    """Models compiled once in graph mode, reused by every graph-mode test."""
    models = {}
    for name in GRAPH_SUBSET:
        model = mm.create_model(name, num_classes=5)
        model.set_train(False)
        models[name] = model
    return models


@pytest.mark.parametrize("name", GRAPH_SUBSET)
def test_graph_mode_matches_pynative(name, graph_models):
    model = graph_models[name]
    x = _input()
    eager = model(x).asnumpy()
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = model(x).asnumpy()
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    np.testing.assert_allclose(graph, eager, rtol=1e-4, atol=1e-5)


def test_model_arguments_and_head_api():
    model = mm.create_model("mobilenet_v2_035", num_classes=4, in_channels=1, drop_rate=0.5)
    model.set_train(False)
    x = _input(channels=1)
    features = model.forward_features(x)
    assert features.shape == (2, 1280, 1, 1)
    logits = model.forward_head(features)
    np.testing.assert_allclose(logits.asnumpy(), model(x).asnumpy(), rtol=1e-5, atol=1e-6)
    assert model.get_classifier().weight.shape == (4, 1280)
    model.reset_classifier(9)
    assert model(x).shape == (2, 9)
    assert [p.name for p in model.get_parameters()][-2:] == ["classifier.1.weight", "classifier.1.bias"]
    v3 = mm.create_model("mobilenet_v3_small_100", drop_rate=0.3)
    assert v3.classifier[2].p == pytest.approx(0.3)
    v1 = mm.create_model("mobilenet_v1_025", drop_rate=0.1)
    v1.reset_classifier(3)
    assert v1.get_classifier().weight.shape == (3, 256)


def test_dropout_is_active_only_in_training():
    model = mm.create_model("mobilenet_v1_025", num_classes=3, drop_rate=0.9)
    x = _input()
    model.set_train(False)
    np.testing.assert_array_equal(model(x).asnumpy(), model(x).asnumpy())
    model.set_train(True)
    assert not np.allclose(model(x).asnumpy(), model(x).asnumpy())


# Measured from the networks (params exclude BatchNorm running statistics; MACs of conv + dense (+ attention) at the
# model's default size).
# The paper's figures are in each model's config; the counts must stay within a few percent of them.
PINNED = {
    "mobilenet_v1_025": (470_072, 41),
    "mobilenet_v1_050": (1_331_592, 149),
    "mobilenet_v1_075": (2_585_560, 325),
    "mobilenet_v1_100": (4_231_976, 569),
    "mobilenet_v2_035": (1_677_128, 59),
    "mobilenet_v2_050": (1_968_680, 97),
    "mobilenet_v2_075": (2_636_424, 209),
    "mobilenet_v2_100": (3_504_872, 301),
    "mobilenet_v2_130": (5_386_792, 509),
    "mobilenet_v2_140": (6_108_776, 582),
    "mobilenet_v3_small_075": (2_041_872, 43),
    "mobilenet_v3_small_100": (2_542_856, 57),
    "mobilenet_v3_large_075": (3_993_528, 155),
    "mobilenet_v3_large_100": (5_483_032, 217),
    # MobileNetV4 at timm's default sizes (224/256/384): params are timm 1.0.31's exactly
    "mobilenet_v4_conv_small": (3_774_024, 186),
    "mobilenet_v4_conv_medium": (9_715_512, 1080),
    "mobilenet_v4_conv_large": (32_590_864, 6376),
    "mobilenet_v4_hybrid_medium": (11_074_648, 1271),
    "mobilenet_v4_hybrid_large": (37_764_624, 7712),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_params_and_macs_match_the_paper(name):
    model = mm.create_model(name)
    config = get_model_config(name)
    params, macs = count_params(model), count_macs(model, config.image_size)
    assert (params, round(macs / 1e6)) == PINNED[name]
    if name.startswith("mobilenet_v4"):  # timm's networks: up to 6% above the paper's table (config.paper_note)
        assert config.paper_note
        assert params / 1e6 == pytest.approx(config.paper_params_m, rel=0.06)
        assert macs / 1e6 == pytest.approx(config.paper_macs_m, rel=0.09)
        return
    # papers print one decimal (0.47M -> "0.5M"); V2 1.0's 3.4M is 3.5M in every implementation
    assert abs(params / 1e6 - config.paper_params_m) <= 0.05 + 0.03 * config.paper_params_m
    assert macs / 1e6 == pytest.approx(config.paper_macs_m, rel=0.025)


def test_resolution_variants_share_the_network():
    a, b = mm.create_model("mobilenet_v2_075_96"), mm.create_model("mobilenet_v2_075")
    assert [(p.name, p.shape) for p in a.get_parameters()] == [(p.name, p.shape) for p in b.get_parameters()]
    assert count_macs(a, 96) < count_macs(b, 224)


def test_parameter_names_and_shapes_match_mindcv():
    """The fixture was generated from mindcv 0.3.0's models; its published checkpoints load by these names."""
    reference = json.loads((FIXTURES / "mindcv_param_shapes.json").read_text())
    for name, params in reference.items():
        num_classes = 1001 if name.startswith("mobilenet_v1") else 1000
        model = mm.create_model(name, num_classes=num_classes)
        ours = [[p.name, list(p.shape)] for p in model.get_parameters()]
        assert ours == params, name


def test_same_logits_as_mindcv_when_installed():
    mindcv = pytest.importorskip("mindcv", reason="mindcv not installed (pip install mindcv tqdm --no-deps)")
    for name in ("mobilenet_v2_100", "mobilenet_v3_small_100", "mobilenet_v1_025"):
        reference = mindcv.create_model(name, num_classes=1000)
        ours = mm.create_model(name, num_classes=1000)
        ms.load_param_into_net(ours, {p.name: p for p in reference.get_parameters()}, strict_load=True)
        reference.set_train(False)
        ours.set_train(False)
        x = _input(size=64)
        np.testing.assert_allclose(ours(x).asnumpy(), reference(x).asnumpy(), rtol=1e-5, atol=1e-5)
