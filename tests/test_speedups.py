"""The CPU speed-ups change how fast the models run, never what they compute.

* the oneDNN instruction-set cap (mindcv_mobilenet/runtime.py) is applied on import, respects the user's choice,
  and gives the same logits and gradients as oneDNN's default kernels;
* BatchNorm folding (mindcv_mobilenet/models/fuse.py) gives the same logits and leaves the original model alone.

No wall-clock assertions: timings live in BENCHMARKS.md ("Where the CPU time goes").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import mindcv_mobilenet as mm
from mindcv_mobilenet import runtime
from mindcv_mobilenet.models.fuse import fuse_bn

ISA_ENVS = (runtime.ISA_ENV, runtime.LEGACY_ISA_ENV, runtime.OPT_OUT_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    for key in ISA_ENVS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_cap_is_set_when_the_user_chose_nothing(clean_env):
    assert runtime.configure_cpu_runtime() == "AVX2"
    assert os.environ[runtime.ISA_ENV] == "AVX2"


@pytest.mark.parametrize("key", [runtime.ISA_ENV, runtime.LEGACY_ISA_ENV])
def test_users_own_isa_wins(clean_env, key):
    clean_env.setenv(key, "ALL")
    assert runtime.configure_cpu_runtime() == "ALL"
    assert os.environ.get(runtime.ISA_ENV, "ALL") == "ALL"


def test_opt_out_leaves_the_environment_alone(clean_env):
    clean_env.setenv(runtime.OPT_OUT_ENV, "1")
    assert runtime.configure_cpu_runtime() is None
    assert runtime.ISA_ENV not in os.environ


_CHILD = r"""
import json, sys
import numpy as np, mindspore as ms
from mindspore import Tensor, ops
ms.set_context(mode=ms.GRAPH_MODE)
import mindcv_mobilenet as mm
ms.set_seed(0)
net = mm.create_model(sys.argv[1], num_classes=10)
x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 96, 96)).astype(np.float32))
net.set_train(True)
train_logits = net(x).asnumpy()
net.set_train(False)
logits = net(x).asnumpy()
grads = ops.GradOperation(get_all=True, get_by_list=True)(net, ms.ParameterTuple(net.trainable_params()))(x)
input_grad, weight_grads = grads[0][0].asnumpy(), [g.asnumpy() for g in grads[1]]
print("RESULT " + json.dumps({"logits": logits.tolist(), "train_logits": train_logits.tolist(),
      "input_grad": input_grad.ravel()[:4096].tolist(),
      "weight_grads": [g.ravel()[:256].tolist() for g in weight_grads]}))
"""


def _child(name: str, isa: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ISA_ENVS}
    env[runtime.ISA_ENV] = isa
    proc = subprocess.run([sys.executable, "-c", _CHILD, name], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("name", ["mobilenet_v3_small_075", "mobilenet_v2_035", "mobilenet_v1_025"])
def test_isa_cap_keeps_logits_and_gradients(name):
    """oneDNN's default (reference) kernels and the capped (JIT GEMM) kernels: same forward, same backward."""
    default, capped = _child(name, "ALL"), _child(name, "AVX2")
    np.testing.assert_allclose(capped["logits"], default["logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(capped["train_logits"], default["train_logits"], rtol=1e-4, atol=1e-5)
    # Gradients (conv backward-data and backward-weights kernels) are compared with BN in inference mode: through
    # batch-statistics BN at batch 4 the gradients of random-init nets are so ill-conditioned that a 1e-6 change of
    # the input moves some weight gradients by >100% with the same kernels, so no kernel comparison is possible there.
    assert _rel_err(capped["input_grad"], default["input_grad"]) < 1e-4
    for got, want in zip(capped["weight_grads"], default["weight_grads"], strict=True):
        assert _rel_err(got, want) < 1e-4


def _rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def test_cap_avoids_reference_convolutions():
    """With the package imported first, no convolution runs on oneDNN's reference kernel (``ref:any``)."""
    code = ("import numpy as np, mindspore as ms\nimport mindcv_mobilenet\nfrom mindspore import nn, Tensor\n"
            "ms.set_context(mode=ms.GRAPH_MODE)\n"
            "nn.Conv2d(8, 8, 3, group=8)(Tensor(np.ones((2, 8, 9, 9), np.float32))).asnumpy()\n")
    env = {k: v for k, v in os.environ.items() if k not in ISA_ENVS}
    env["ONEDNN_VERBOSE"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    convs = [line for line in proc.stdout.splitlines() if "primitive,exec" in line and "convolution" in line]
    assert convs, "ONEDNN_VERBOSE printed no convolution"
    assert not any("ref:any" in line for line in convs), convs


def _randomize_bn_stats(model: nn.Cell, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for p in model.get_parameters():
        if p.name.endswith(("moving_mean", "beta")):
            p.set_data(Tensor(rng.normal(0, 0.2, p.shape).astype(np.float32)))
        elif p.name.endswith(("moving_variance", "gamma")):
            p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))


@pytest.mark.parametrize("name", ["mobilenet_v3_small_075", "mobilenet_v3_large_075", "mobilenet_v2_035",
                                  "mobilenet_v1_025"])
@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_fuse_bn_keeps_logits(name, mode):
    ms.set_context(mode=mode)
    ms.set_seed(0)
    model = mm.create_model(name, num_classes=10)
    _randomize_bn_stats(model)
    model.set_train(False)
    before = {p.name: p.asnumpy().copy() for p in model.get_parameters()}
    x = Tensor(np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32))
    expected = model(x).asnumpy()
    fused = fuse_bn(model)
    got = fused(x).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * float(np.abs(expected).max()))
    assert not any(isinstance(c, nn.BatchNorm2d) for _, c in fused.cells_and_names())
    n_bn = sum(isinstance(c, nn.BatchNorm2d) for _, c in model.cells_and_names())
    assert fused.fused_bn_layers == n_bn
    after = {p.name: p.asnumpy() for p in model.get_parameters()}  # the original is untouched
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    conv_names = {p.name for p in model.get_parameters() if p.name.endswith(".weight")}
    assert conv_names <= {p.name for p in fused.get_parameters()}  # folded layers keep the conv weights' names
    ms.set_context(mode=ms.PYNATIVE_MODE)


def test_fuse_bn_inplace():
    ms.set_seed(0)
    model = mm.create_model("mobilenet_v1_025", num_classes=3)
    assert fuse_bn(model, inplace=True) is model
    assert not any(isinstance(c, nn.BatchNorm2d) for _, c in model.cells_and_names())
