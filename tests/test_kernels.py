"""This package's CPU kernels (depthwise convolution, hard-swish, training-mode BatchNorm) compute what MindSpore's
own operators compute.

Depthwise: forward, gradient w.r.t. the input and w.r.t. the weights, for every geometry the models use (kernel 3
and 5, stride 1 and 2, ``pad`` and TF's ``same`` padding, odd and even sizes); hard-swish: forward and gradient on
both sides of its kinks; BatchNorm: output, the three gradients and the moving statistics; in graph and PyNative
mode, alone and inside a whole network; and the fallbacks: turned off, no compiler, a failed build. Speed is in
BENCHMARKS.md, not here.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

import mindcv_mobilenet as mm
from mindcv_mobilenet import kernels
from mindcv_mobilenet.kernels import activation, batchnorm, depthwise, squeeze_excite
from mindcv_mobilenet.kernels.batchnorm import BatchNorm2d
from mindcv_mobilenet.kernels.depthwise import Conv2d, DepthwiseConv2d, depthwise_cells
from mindcv_mobilenet.models.fuse import fuse_bn
from mindcv_mobilenet.models.layers import (
    ACTIVATIONS,
    GlobalAvgPool,
    HardSwish,
    LayerScale2d,
    SqueezeExcite,
    exportable_operators,
)

needs_kernel = pytest.mark.skipif(kernels.library_path("depthwise_conv") is None,
                                  reason="the depthwise kernel could not be built here (no C++ compiler?)")


def _reset_kernel_caches():
    kernels.build.cache_clear()
    kernels.library_path.cache_clear()
    kernels._WARNED.clear()
    depthwise.depthwise_op.cache_clear()
    activation.hswish_op.cache_clear()
    activation.bias_activation_op.cache_clear()
    batchnorm.batchnorm_op.cache_clear()
    squeeze_excite.channel_mean_op.cache_clear()
    squeeze_excite.gate_op.cache_clear()


@pytest.fixture
def fresh_kernels(monkeypatch):
    """Kernel lookups start over and are reset afterwards (they are cached per process)."""
    _reset_kernel_caches()
    yield monkeypatch
    monkeypatch.undo()
    _reset_kernel_caches()


class _Loss(nn.Cell):
    """``sum(net(x) * weights)``: a fixed random output gradient."""

    def __init__(self, net: nn.Cell, out_grad: Tensor) -> None:
        super().__init__()
        self.net = net
        self.out_grad = out_grad

    def construct(self, x):
        return (self.net(x) * self.out_grad).sum()


def _forward_and_grads(net: nn.Cell, x: Tensor, out_grad: np.ndarray):
    loss = _Loss(net, Tensor(out_grad))
    grad_fn = ops.GradOperation(get_all=True, get_by_list=True)(loss, ms.ParameterTuple(net.trainable_params()))
    input_grads, weight_grads = grad_fn(x)
    return net(x).asnumpy(), input_grads[0].asnumpy(), [g.asnumpy() for g in weight_grads]


def _rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


GEOMETRIES = [  # channels, size, kernel, stride, pad_mode
    (8, 9, 3, 1, "pad"), (8, 10, 3, 2, "pad"), (6, 11, 5, 2, "pad"), (4, 7, 5, 1, "pad"), (16, 33, 3, 1, "pad"),
    (5, 8, 3, 2, "same"), (5, 9, 5, 1, "same"), (3, 7, 3, 2, "same"), (4, 12, 5, 2, "same"),
    (24, 6, 3, 1, "pad"), (20, 13, 5, 2, "same"),  # channel blocks of 16 with a remainder of 8 and of 4
]


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("channels,size,kernel,stride,pad_mode", GEOMETRIES)
def test_kernel_matches_stock_operator(mode, channels, size, kernel, stride, pad_mode):
    ms.set_context(mode=mode)
    rng = np.random.default_rng(channels * size + kernel + stride)
    padding = (kernel - 1) // 2 if pad_mode == "pad" else 0
    ours = DepthwiseConv2d(channels, kernel, stride, pad_mode=pad_mode, padding=padding, has_bias=True)
    stock = DepthwiseConv2d(channels, kernel, stride, pad_mode=pad_mode, padding=padding, has_bias=True)
    assert ours.use_kernel
    stock.use_kernel = False
    for mine, theirs in zip(ours.get_parameters(), stock.get_parameters(), strict=True):
        value = rng.standard_normal(mine.shape).astype(np.float32)
        mine.set_data(Tensor(value))
        theirs.set_data(Tensor(value))
    x = Tensor(rng.standard_normal((3, channels, size, size)).astype(np.float32))
    want_out = stock(x).asnumpy()
    out_grad = rng.standard_normal(want_out.shape).astype(np.float32)
    got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert _rel_err(got[1], want[1]) < 1e-5
    for got_grad, want_grad in zip(got[2], want[2], strict=True):
        assert _rel_err(got_grad, want_grad) < 1e-5


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_hswish_kernel_matches_stock_operator(mode):
    ms.set_context(mode=mode)
    ours, stock = HardSwish(), HardSwish()
    assert ours.use_kernel
    stock.use_kernel = False
    rng = np.random.default_rng(1)
    # values on both sides of the kinks at -3 and 3, and an odd size that is not a whole number of blocks or lanes
    x = Tensor((rng.standard_normal((3, 5, 37, 41)) * 4).astype(np.float32))
    out_grad = rng.standard_normal(x.shape).astype(np.float32)
    got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6)
    big = Tensor(rng.standard_normal((2, 8, 160, 160)).astype(np.float32))  # several blocks: the threaded path
    np.testing.assert_allclose(ours(big).asnumpy(), stock(big).asnumpy(), rtol=1e-6, atol=1e-6)


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("activation", [None, "relu", "relu6", "hswish"])
def test_batchnorm_kernel_matches_stock_operator(mode, activation):
    """BatchNorm + the activation it applies: one kernel each way against MindSpore's BatchNorm and activation."""
    ms.set_context(mode=mode)
    rng = np.random.default_rng(2)
    ours, stock = (BatchNorm2d(6, activation=ACTIVATIONS[activation]() if activation else None,
                               activation_name=activation) for _ in range(2))
    assert ours.use_kernel
    stock.use_kernel = False
    for mine, theirs in zip(ours.get_parameters(), stock.get_parameters(), strict=True):
        value = rng.uniform(0.5, 2.0, mine.shape).astype(np.float32)
        if mine.name.endswith("gamma"):
            value *= 3  # outputs on both sides of every kink (0 and 6; -3 and 3)
        mine.set_data(Tensor(value))
        theirs.set_data(Tensor(value))
    ours.set_train(True)
    stock.set_train(True)
    x = Tensor((rng.standard_normal((4, 6, 9, 11)) * 3 + 2).astype(np.float32))  # odd sizes, mean far from 0
    out_grad = rng.standard_normal(x.shape).astype(np.float32)
    got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
    for got_grad, want_grad in zip(got[2], want[2], strict=True):  # gamma, beta
        assert _rel_err(got_grad, want_grad) < 1e-5
    # every call above updated the moving statistics (unbiased variance), the same number of times in both
    np.testing.assert_allclose(ours.moving_mean.asnumpy(), stock.moving_mean.asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.asnumpy(), stock.moving_variance.asnumpy(), rtol=1e-5)
    assert not np.allclose(ours.moving_variance.asnumpy(), 1.0)
    ours.set_train(False)  # inference: moving statistics, MindSpore's operator
    stock.set_train(False)
    np.testing.assert_allclose(ours(x).asnumpy(), stock(x).asnumpy(), rtol=1e-5, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("keep_dims", [True, False])
def test_global_pool_kernel_matches_stock_operator(mode, keep_dims):
    ms.set_context(mode=mode)
    ours, stock = GlobalAvgPool(keep_dims), GlobalAvgPool(keep_dims)
    assert ours.use_kernel
    stock.use_kernel = False
    rng = np.random.default_rng(3)
    for shape in [(3, 5, 7, 9), (2, 40, 1, 1), (2, 64, 28, 28)]:  # odd plane, a 1 x 1 plane, many planes (threads)
        x = Tensor((rng.standard_normal(shape) + 1).astype(np.float32))
        out_grad = rng.standard_normal(shape[:2] + ((1, 1) if keep_dims else ())).astype(np.float32)
        got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7)


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_squeeze_excite_kernel_matches_stock_operators(mode):
    """The gate and rescale (and the pool) of this package's kernels against MindSpore's: outputs, the input's and
    every weight's gradient, with gate logits on both sides of the hard-sigmoid's kinks."""
    ms.set_context(mode=mode)
    ms.set_seed(0)
    ours, stock = SqueezeExcite(24), SqueezeExcite(24)
    assert ours.use_kernel and ours.pool.use_kernel
    rng = np.random.default_rng(4)
    for mine, theirs in zip(ours.get_parameters(), stock.get_parameters(), strict=True):
        value = (rng.standard_normal(mine.shape) * 0.5).astype(np.float32)
        mine.set_data(Tensor(value))
        theirs.set_data(Tensor(value))
    _stock_operators(stock)
    x = Tensor((rng.standard_normal((3, 24, 11, 13)) * 2 + 0.5).astype(np.float32))
    out_grad = rng.standard_normal(x.shape).astype(np.float32)
    gate_logits = ours.conv_expand(ours.act(ours.conv_reduce(ours.pool(x)))).asnumpy()
    assert (np.abs(gate_logits) < 3).mean() > 0.2 and (np.abs(gate_logits) > 3).mean() > 0.2
    got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert _rel_err(got[1], want[1]) < 1e-5
    for got_grad, want_grad in zip(got[2], want[2], strict=True):
        assert _rel_err(got_grad, want_grad) < 1e-5


@needs_kernel
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_layer_scale_kernel_matches_stock_operators(mode):
    """MobileNetV4's per-channel scale on the kernel against ``x * gamma``: output, input and gamma gradients."""
    ms.set_context(mode=mode)
    ours, stock = LayerScale2d(20, 1e-5), LayerScale2d(20, 1e-5)
    assert ours.use_kernel
    stock.use_kernel = False
    gamma = np.random.default_rng(5).standard_normal(20).astype(np.float32)
    ours.gamma.set_data(Tensor(gamma))
    stock.gamma.set_data(Tensor(gamma))
    rng = np.random.default_rng(6)
    x = Tensor(rng.standard_normal((3, 20, 7, 9)).astype(np.float32))
    out_grad = rng.standard_normal((3, 20, 7, 9)).astype(np.float32)
    got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
    assert _rel_err(got[1], want[1]) < 1e-6
    assert _rel_err(got[2][0], want[2][0]) < 1e-5


def _stock_operators(model: nn.Cell) -> None:
    for _, cell in model.cells_and_names():
        if isinstance(cell, (DepthwiseConv2d, HardSwish, BatchNorm2d, GlobalAvgPool, SqueezeExcite, LayerScale2d)):
            cell.use_kernel = False


@needs_kernel
@pytest.mark.parametrize("name", ["mobilenet_v3_small_075", "mobilenet_v3_large_100", "mobilenet_v2_075",
                                  "tf_mobilenet_v1_050"])
def test_whole_network_same_logits_and_gradients(name):
    """Training mode (batch-statistics BN), every parameter's gradient: the kernels vs MindSpore's operators.

    The widths are ones whose gradients are well conditioned at this seed: at some (V2 0.35 and 0.5, V1 0.25) a
    change of the input by 1e-6 moves the stock network's input gradient by ~1% (BatchNorms over near-constant
    channels amplify rounding), so any change of summation order fails the comparison there."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    ours = mm.create_model(name, num_classes=10, drop_rate=0.0)  # no dropout: its masks differ between the two nets
    stock = mm.create_model(name, num_classes=10, drop_rate=0.0)
    ms.load_param_into_net(stock, {p.name: p for p in ours.get_parameters()})
    assert depthwise_cells(ours) and all(cell.use_kernel for cell in depthwise_cells(ours))
    _stock_operators(stock)
    ours.set_train(True)
    stock.set_train(True)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3, 64, 64)).astype(np.float32))
    out_grad = rng.standard_normal((4, 10)).astype(np.float32)
    got, want = _forward_and_grads(ours, x, out_grad), _forward_and_grads(stock, x, out_grad)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    assert _rel_err(got[1], want[1]) < 1e-4
    # Per parameter, relative to the largest gradient: some are zero in exact arithmetic (a BN's input shift) and
    # hold only float noise, which any change of summation order redraws.
    scale = max(float(np.abs(g).max()) for g in want[2])
    errors = [float(np.abs(g - w).max()) / scale for g, w in zip(got[2], want[2], strict=True)]
    assert max(errors) < 1e-4, errors


def test_models_use_the_kernel_for_every_depthwise_convolution(fresh_kernels):
    model = mm.create_model("mobilenet_v2_100")
    depthwise_convs = [c for _, c in model.cells_and_names() if isinstance(c, nn.Conv2d) and c.group > 1]
    assert len(depthwise_convs) == 17
    assert all(isinstance(c, DepthwiseConv2d) for c in depthwise_convs)
    # checkpoints are interchangeable: the same parameters, names and shapes with the kernel as without it
    fresh_kernels.setenv(kernels.OPT_OUT_ENV, "1")
    _reset_kernel_caches()
    stock = mm.create_model("mobilenet_v2_100")
    assert not any(cell.use_kernel for cell in depthwise_cells(stock))
    assert ({(p.name, p.shape) for p in model.get_parameters()}
            == {(p.name, p.shape) for p in stock.get_parameters()})


def test_geometries_the_kernel_does_not_cover_use_the_stock_operator():
    assert not DepthwiseConv2d(4, 3, 1, pad_mode="pad", padding=0).use_kernel  # asymmetric to the kernel's rule
    assert not DepthwiseConv2d(4, 3, 3, pad_mode="pad", padding=1).use_kernel  # stride 3
    assert not DepthwiseConv2d(4, 3, 1, pad_mode="pad", padding=2, dilation=2).use_kernel


@needs_kernel
def test_export_sees_only_stock_operators():
    model = mm.create_model("mobilenet_v3_small_075")
    with exportable_operators(model):
        assert all(cell.exportable for cell in depthwise_cells(model))
    assert not any(cell.exportable for cell in depthwise_cells(model))
    assert all(cell.use_kernel for cell in depthwise_cells(model))


def test_opt_out_uses_the_stock_operator(fresh_kernels):
    fresh_kernels.setenv(kernels.OPT_OUT_ENV, "1")
    assert kernels.library_path("depthwise_conv") is None
    assert not DepthwiseConv2d(8, 3, 1, pad_mode="pad", padding=1).use_kernel
    assert kernels.library_path("activation") is None and not HardSwish().use_kernel
    assert kernels.library_path("batchnorm") is None and not BatchNorm2d(4).use_kernel
    assert kernels.library_path("squeeze_excite") is None
    assert not GlobalAvgPool().use_kernel and not SqueezeExcite(8).use_kernel


def test_no_compiler_warns_once_and_falls_back(fresh_kernels, caplog):
    fresh_kernels.setattr(kernels, "_compiler", lambda: None)
    with caplog.at_level(logging.WARNING, logger="mindcv_mobilenet"):
        model = mm.create_model("mobilenet_v3_small_075", num_classes=10)
    warnings = [r.getMessage() for r in caplog.records if "compiler" in r.getMessage()]
    assert len(warnings) == 1 and "stock" in warnings[0]
    assert not any(cell.use_kernel for cell in depthwise_cells(model))
    model.set_train(False)
    assert model(Tensor(np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 10)


def test_failed_build_names_the_error_and_leaves_nothing(tmp_path):
    source = tmp_path / "broken.cc"
    source.write_text("this is not C++\n")
    target = tmp_path / "out" / "broken.so"
    compiler = kernels._compiler()
    if compiler is None:
        pytest.skip("no C++ compiler here")
    error = kernels._compile(compiler, str(source), str(target))
    assert error and "error" in error.lower()
    assert not target.exists() and not list((tmp_path / "out").iterdir())


def _call_forward(library: ctypes.CDLL, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``DwForwardS1Pad(x, w)`` through MindSpore's AOT calling convention, straight from ctypes (no GIL held)."""
    y = np.empty_like(x)
    arrays = [x, w, y]
    params = (ctypes.c_void_p * 3)(*(a.ctypes.data for a in arrays))
    ndims = (ctypes.c_int * 3)(4, 4, 4)
    shape_arrays = [(ctypes.c_int64 * 4)(*a.shape) for a in arrays]
    shapes = (ctypes.POINTER(ctypes.c_int64) * 3)(*(ctypes.cast(s, ctypes.POINTER(ctypes.c_int64))
                                                    for s in shape_arrays))
    dtypes = (ctypes.c_char_p * 3)(*([b"float32"] * 3))
    assert library.DwForwardS1Pad(3, params, ndims, shapes, dtypes, None, None) == 0
    return y


@needs_kernel
def test_kernel_calls_from_several_threads_at_once_give_the_same_results():
    """MindSpore may run two kernels of a library at once: the pool serves one, the others run on their own thread."""
    library = ctypes.CDLL(kernels.library_path("depthwise_conv"))
    rng = np.random.default_rng(0)
    inputs = [(rng.standard_normal((4, 24, 20, 20)).astype(np.float32),
               rng.standard_normal((24, 1, 3, 3)).astype(np.float32)) for _ in range(8)]
    want = [_call_forward(library, x, w) for x, w in inputs]
    for _ in range(5):
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda args: _call_forward(library, *args), inputs))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


@needs_kernel
@pytest.mark.parametrize("name", ["mobilenet_v3_small_075", "mobilenet_v2_035"])
def test_folded_convolutions_run_bias_and_activation_in_one_kernel(name):
    """fuse_bn moves each activation into its folded convolution; on CPU bias + activation (ReLU, ReLU6, hard-swish,
    none) run as one kernel, with the logits of BiasAdd + the activation cell, which exports still use."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    model = mm.create_model(name, num_classes=10)
    rng = np.random.default_rng(5)
    for p in model.get_parameters():
        if p.name.endswith(("moving_mean", "beta")):
            p.set_data(Tensor(rng.normal(0, 0.5, p.shape).astype(np.float32)))
    fused, stock = fuse_bn(model), fuse_bn(model)
    convs = [c for _, c in fused.features.cells_and_names() if isinstance(c, Conv2d)]
    assert convs and all(c.bias_activation is not None for c in convs)
    activations = {type(c.activation).__name__ for c in convs}
    assert activations == ({"ReLU", "HardSwish", "NoneType"} if "v3" in name else {"ReLU6", "NoneType"})
    assert not any(isinstance(c, (nn.ReLU, nn.ReLU6, HardSwish)) for c in fused.features.cell_list)
    for _, cell in stock.cells_and_names():
        if isinstance(cell, Conv2d):
            cell.bias_activation = None
    x = Tensor(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    want = stock(x).asnumpy()
    np.testing.assert_allclose(fused(x).asnumpy(), want, rtol=1e-5, atol=1e-6 * float(np.abs(want).max()))
    with exportable_operators(fused):
        assert all(c.exportable for c in convs)
        np.testing.assert_allclose(fused(x).asnumpy(), want, rtol=1e-5, atol=1e-6 * float(np.abs(want).max()))
