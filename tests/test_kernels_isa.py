"""The CPU kernels built for an AVX2-only CPU (``MINDCV_MOBILENET_KERNEL_ISA=avx2``) hold no AVX-512 instruction, and
both builds (that one and the native one) compute what a NumPy reference computes, through the same C entry points
MindSpore calls.

The libraries are called with ctypes (MindSpore's AOT calling convention), so every loop shape that depends on the
vector width (the depthwise weight gradient's register-held sums, the flattened and per-row loops, the remainders
after 8- and 16-lane blocks) is reached without graph compiles; ``test_kernels.py`` checks the native build against
MindSpore's own operators inside the models. Each build is compiled once per session (the test cache is per session).
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess

import numpy as np
import pytest

from mindcv_mobilenet import kernels
from mindcv_mobilenet.utils.errors import ConfigError

LIBRARIES = tuple(kernels.USED_FOR)
ISAS = ("native", "avx2")
# AVX-512 in a disassembly: its registers (zmm, ymm/xmm 16-31 and the mask registers) and the mnemonics that only
# exist as EVEX encodings
AVX512 = re.compile(r"%zmm|%[xy]mm(1[6-9]|2\d|3[01])\b|%k[0-7]\b|\b(vpternlog|vpermt2|vpermi2|kmov|vmovdq[au](32|64)|"
                    r"vpbroadcastm|vcompress|vexpand|vscalef|vgetexp|vrndscale)")


@pytest.fixture(scope="module")
def builds() -> dict:
    """{isa: {library: path}}, each library compiled (once) for each instruction-set cap."""
    if kernels._compiler() is None:
        pytest.skip("no C++ compiler here")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the avx2 cap is for x86 CPUs")
    paths: dict = {isa: {} for isa in ISAS}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(kernels.OPT_OUT_ENV, raising=False)
        for isa in ISAS:
            patch.setenv(kernels.ISA_ENV, isa)
            kernels.build.cache_clear()
            for name in LIBRARIES:
                path, how = kernels.build(name)
                assert path is not None, how
                paths[isa][name] = path
    kernels.build.cache_clear()
    return paths


def test_the_cap_is_part_of_the_library_name_and_cache_key(builds):
    for name in LIBRARIES:
        native, avx2 = builds["native"][name], builds["avx2"][name]
        assert native != avx2 and f"{name}-avx2-" in os.path.basename(avx2) and "-avx2-" not in native


def test_a_wrong_cap_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(kernels.ISA_ENV, "avx-512")
    kernels.build.cache_clear()
    try:
        with pytest.raises(ConfigError, match=f"{kernels.ISA_ENV}='avx-512': expected one of native, avx2"):
            kernels.build("activation")
    finally:
        kernels.build.cache_clear()


def _disassembly(path: str) -> str:
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed: cannot read the instructions")
    return subprocess.run([objdump, "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("name", LIBRARIES)
def test_avx2_build_has_no_avx512_instruction(builds, name):
    found = sorted({m.group(0) for m in AVX512.finditer(_disassembly(builds["avx2"][name]))})
    assert not found, f"{name}: AVX-512 in the avx2 build: {found[:10]}"
    assert "ymm" in _disassembly(builds["avx2"][name])  # 8-wide vectors, not SSE only


def test_the_check_finds_avx512_in_a_native_build_where_the_cpu_has_it(builds):
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        if "avx512f" not in f.read().split():
            pytest.skip("this CPU has no AVX-512: the native build is an AVX2 one")
    assert AVX512.search(_disassembly(builds["native"]["depthwise_conv"]))


# --- calling the libraries as MindSpore does ------------------------------------------------------------------------

def _call(path: str, entry: str, *arrays: np.ndarray) -> None:
    """``entry(nparam, params, ndims, shapes, dtypes, stream, extra)`` over ``arrays`` (inputs then outputs)."""
    library = ctypes.CDLL(path)
    n = len(arrays)
    params = (ctypes.c_void_p * n)(*(a.ctypes.data for a in arrays))
    ndims = (ctypes.c_int * n)(*(a.ndim for a in arrays))
    shape_arrays = [(ctypes.c_int64 * max(a.ndim, 1))(*a.shape) for a in arrays]
    shapes = (ctypes.POINTER(ctypes.c_int64) * n)(*(ctypes.cast(s, ctypes.POINTER(ctypes.c_int64))
                                                    for s in shape_arrays))
    dtypes = (ctypes.c_char_p * n)(*([b"float32"] * n))
    assert getattr(library, entry)(n, params, ndims, shapes, dtypes, None, None) == 0, entry


def _rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


# --- depthwise convolution ------------------------------------------------------------------------------------------

def _depthwise_geometry(size: int, k: int, s: int, same: bool) -> tuple[int, int]:
    """(output size, padding at the top/left) of the kernels' two padding rules."""
    if same:
        out = -(-size // s)
        return out, max((out - 1) * s + k - size, 0) // 2
    pad = (k - 1) // 2
    return (size + 2 * pad - k) // s + 1, pad


def _padded(x: np.ndarray, k: int, s: int, out: int, pad: int) -> np.ndarray:
    """x zero-padded to the (out - 1) * s + k rows and columns the taps read, ``pad`` of them above and left."""
    n, c, h, w = x.shape
    full = (out - 1) * s + k
    xp = np.zeros((n, c, full + h, full + w), np.float64)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    return xp[:, :, :full, :full]


def _depthwise_reference(x, w, dy, k: int, s: int, pad: int):
    """(y, dx, dw) in float64: the forward, and both gradients of sum(y * dy)."""
    n, c, h, width = x.shape
    out = dy.shape[2]
    xp = _padded(x, k, s, out, pad)
    y = np.zeros(dy.shape, np.float64)
    dxp = np.zeros_like(xp)
    dw = np.zeros((c, 1, k, k), np.float64)
    for ky in range(k):
        for kx in range(k):
            window = (slice(None), slice(None), slice(ky, ky + s * out, s), slice(kx, kx + s * out, s))
            tap = w[None, :, 0, ky, kx, None, None].astype(np.float64)
            y += tap * xp[window]
            dxp[window] += tap * dy
            dw[:, 0, ky, kx] = (dy * xp[window]).sum(axis=(0, 2, 3))
    dx = np.zeros(x.shape, np.float64)
    rows = min(h, dxp.shape[2] - pad)
    cols = min(width, dxp.shape[3] - pad)
    dx[:, :, :rows, :cols] = dxp[:, :, pad:pad + rows, pad:pad + cols]
    return y, dx, dw


# size, kernel, stride, padding rule, channels: the plane loops (flattened for stride 1 and rows under 16 outputs,
# per row for longer stride-2 rows, the polyphase stride-2 input gradient: stride-2 outputs over 28 x 28) and the
# channel blocks (outputs of up to 64 pixels, stride-2 5 x 5 layers, every stride-2 weight gradient up to 28 x 28),
# with plane sizes and channel counts that leave remainders after blocks of 8 and of 16
DEPTHWISE = [(9, 3, 1, "pad", 5), (35, 3, 1, "pad", 5), (13, 5, 1, "pad", 5), (37, 5, 1, "same", 5),
             (10, 3, 2, "pad", 5), (35, 3, 2, "pad", 5), (40, 3, 2, "same", 5), (11, 5, 2, "pad", 5),
             (41, 5, 2, "pad", 5), (33, 5, 2, "same", 5), (60, 3, 2, "pad", 3), (61, 5, 2, "same", 3),
             (7, 3, 1, "pad", 24), (4, 5, 1, "pad", 37), (9, 5, 2, "same", 20), (30, 5, 2, "same", 19)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("size,k,s,rule,channels", DEPTHWISE)
def test_depthwise_matches_reference(builds, isa, size, k, s, rule, channels):
    rng = np.random.default_rng(size * 10 + k + s)
    out, pad = _depthwise_geometry(size, k, s, rule == "same")
    x = rng.standard_normal((2, channels, size, size)).astype(np.float32)
    w = rng.standard_normal((channels, 1, k, k)).astype(np.float32)
    dy = rng.standard_normal((2, channels, out, out)).astype(np.float32)
    want_y, want_dx, want_dw = _depthwise_reference(x, w, dy, k, s, pad)
    path, suffix = builds[isa]["depthwise_conv"], f"S{s}{rule.capitalize()}"
    y, dx, dw = np.empty(dy.shape, np.float32), np.empty_like(x), np.empty_like(w)
    _call(path, f"DwForward{suffix}", x, w, y)
    _call(path, f"DwBackwardInput{suffix}", dy, w, x, dx)
    _call(path, f"DwBackwardWeight{suffix}", dy, x, w, dw)
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    assert _rel_err(dx, want_dx) < 1e-6
    assert _rel_err(dw, want_dw) < 1e-6


# --- BatchNorm + activation, hard-swish, bias + activation ----------------------------------------------------------

ACTIVATIONS = {  # name: (f, f') as activations.h computes them
    "Linear": (lambda z: z, lambda z: np.ones_like(z)),
    "Relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "Relu6": (lambda z: np.clip(z, 0, 6), lambda z: ((z > 0) & (z < 6)).astype(z.dtype)),
    "HSwish": (lambda z: z * np.clip(z + 3, 0, 6) / 6,
               lambda z: np.where(z < -3, 0.0, np.where(z > 3, 1.0, (2 * z + 3) / 6))),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_batchnorm_matches_reference(builds, isa, act):
    f, df = ACTIVATIONS[act]
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((3, 4, 9, 13)) * 3 + 2).astype(np.float32)  # odd plane: remainders after any block
    gamma = rng.uniform(1.0, 6.0, 4).astype(np.float32)  # outputs on both sides of every kink
    beta = rng.uniform(-1.0, 1.0, 4).astype(np.float32)
    eps = np.array([1e-3], np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    invstd = 1 / np.sqrt(var + eps[0])
    xc = x64 - mean[None, :, None, None]
    z = xc * (gamma * invstd)[None, :, None, None] + beta[None, :, None, None]
    dz = dy * df(z)
    count = x.size / x.shape[1]
    sum_dz, sum_dz_xc = dz.sum(axis=(0, 2, 3)), (dz * xc).sum(axis=(0, 2, 3))
    want_dx = (gamma * invstd)[None, :, None, None] * (
        dz - (sum_dz / count)[None, :, None, None] - xc * (invstd**2 * sum_dz_xc / count)[None, :, None, None])
    settings = np.array([eps[0], 0.9, 0.1], np.float32)  # eps, keep, momentum
    moving_mean, moving_var = rng.uniform(-1.0, 1.0, 4).astype(np.float32), rng.uniform(0.5, 2.0, 4).astype(np.float32)
    path = builds[isa]["batchnorm"]
    new_mean, new_var = moving_mean.copy(), moving_var.copy()  # updated in place
    y, got_mean, got_var = np.empty_like(x), np.empty(4, np.float32), np.empty(4, np.float32)
    _call(path, f"BnTrainForward{act}", x, gamma, beta, settings, new_mean, new_var, y, got_mean, got_var)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_var, var, rtol=1e-6)
    np.testing.assert_allclose(y, f(z), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_mean, 0.9 * moving_mean + 0.1 * mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new_var, 0.9 * moving_var + 0.1 * var * count / (count - 1), rtol=1e-6)
    dx, dgamma, dbeta = np.empty_like(x), np.empty(4, np.float32), np.empty(4, np.float32)
    _call(path, f"BnTrainBackward{act}", dy, x, gamma, beta, got_mean, got_var, settings, dx, dgamma, dbeta)
    np.testing.assert_allclose(dbeta, sum_dz, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dgamma, sum_dz_xc * invstd, rtol=1e-5, atol=1e-4)
    assert _rel_err(dx, want_dx) < 1e-5


@pytest.mark.parametrize("isa", ISAS)
def test_activations_match_reference(builds, isa):
    path = builds[isa]["activation"]
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((2, 3, 37, 41)) * 4).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    f, df = ACTIVATIONS["HSwish"]
    y, dx = np.empty_like(x), np.empty_like(x)
    _call(path, "HSwishForward", x, y)
    _call(path, "HSwishBackward", dy, x, dx)
    np.testing.assert_allclose(y, f(x.astype(np.float64)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, dy * df(x.astype(np.float64)), rtol=1e-6, atol=1e-6)
    bias = rng.standard_normal(3).astype(np.float32)
    for act, (f, _) in ACTIVATIONS.items():
        _call(path, f"BiasActivation{act}", x, bias, y)
        np.testing.assert_allclose(y, f(x.astype(np.float64) + bias[None, :, None, None]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("isa", ISAS)
def test_pool_gate_and_scale_match_reference(builds, isa):
    path = builds[isa]["squeeze_excite"]
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((2, 6, 11, 13)) + 1).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    s = (rng.standard_normal((2, 6, 1, 1)) * 4).astype(np.float32)  # gate logits on both sides of -3 and 3
    x64 = x.astype(np.float64)
    pooled, dx = np.empty((2, 6, 1, 1), np.float32), np.empty_like(x)
    _call(path, "ChannelMeanForward", x, pooled)
    np.testing.assert_allclose(pooled, x64.mean(axis=(2, 3), keepdims=True), rtol=1e-6, atol=1e-6)
    _call(path, "ChannelMeanBackward", s, x, dx)
    np.testing.assert_allclose(dx, np.broadcast_to(s / (11 * 13), x.shape), rtol=1e-6)
    gate = np.clip(s.astype(np.float64) + 3, 0, 6) / 6
    y, ds = np.empty_like(x), np.empty_like(s)
    _call(path, "GateForward", x, s, y)
    np.testing.assert_allclose(y, x64 * gate, rtol=1e-6, atol=1e-6)
    _call(path, "GateBackward", dy, x, s, dx, ds)
    np.testing.assert_allclose(dx, dy * gate, rtol=1e-6, atol=1e-6)
    want_ds = (dy * x64).sum(axis=(2, 3), keepdims=True) * np.where(np.abs(s) < 3, 1 / 6, 0.0)
    np.testing.assert_allclose(ds, want_ds, rtol=1e-5, atol=1e-5)
    scale, dscale = rng.standard_normal(6).astype(np.float32), np.empty(6, np.float32)  # one per channel
    _call(path, "ChannelScaleForward", x, scale, y)
    np.testing.assert_allclose(y, x64 * scale.reshape(1, -1, 1, 1), rtol=1e-6, atol=1e-6)
    _call(path, "ChannelScaleBackward", dy, x, scale, dx, dscale)
    np.testing.assert_allclose(dx, dy * scale.reshape(1, -1, 1, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dscale, (dy * x64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)


# --- the benchmark's switch -----------------------------------------------------------------------------------------

def test_benchmark_isa_switch_caps_every_row_of_both_frameworks(monkeypatch):
    """``benchmark.py --isa avx2``: every row's process, ours and PyTorch's, gets the AVX2 caps; without it PyTorch's
    rows do not inherit the oneDNN cap that importing this package puts into the benchmark's environment."""
    from bench import isa
    from benchmark import BENCHMARK_OPTIONS
    from mindcv_mobilenet.cli import parse_args

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # what `import mindcv_mobilenet` sets
    for torch in (False, True):
        env = isa.row_environment("avx2", uncapped=torch)
        assert (env["ONEDNN_MAX_CPU_ISA"], env["ATEN_CPU_CAPABILITY"], env[kernels.ISA_ENV]) == ("AVX2", "avx2", "avx2")
    assert isa.row_environment("native")["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert "ONEDNN_MAX_CPU_ISA" not in isa.row_environment("native", uncapped=True)
    assert parse_args("benchmark", ["--torch", "--isa", "avx2"], extra=BENCHMARK_OPTIONS).isa == "avx2"
    with pytest.raises(ConfigError, match="isa"):
        parse_args("benchmark", ["--torch", "--isa", "avx512"], extra=BENCHMARK_OPTIONS)
    monkeypatch.setenv(kernels.ISA_ENV, "avx2")
    assert "kernels avx2 (-march=native -mno-avx512f)" in isa.header("avx2")
