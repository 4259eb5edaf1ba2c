"""CPU kernels of this package's own, built from C++ on first use and run as MindSpore AOT custom operators.

MindSpore 2.10's CPU depthwise convolution (oneDNN, im2col + GEMM per channel) is the largest item of MobileNet
training on CPU; ``depthwise_conv.cc`` replaces it (forward and both gradients) where it can run,
``activation.cc`` its hard-swish (3-10x slower than a memory-bound pass), ``batchnorm.cc`` its training-mode
BatchNorm and gradient (a quarter of a MobileNetV3 training step), ``squeeze_excite.cc`` its global pooling and the
squeeze-excite gate (pooling, broadcast product and their gradients: a sixth of a V3-Small step), ``momentum.cc`` the
optimizer's one ``ApplyMomentum`` launch per parameter (one call for all of them). Each library is
compiled once per source version (its ``.cc`` and the shared headers), compiler and CPU into the package's cache
(``kernels/`` under ``$MINDCV_MOBILENET_CACHE``, else ``~/.cache/mindcv_mobilenet``) with the C++ compiler found
(``$CXX``, ``g++``, ``c++``, ``clang++``). Where none is present, or the build fails, the models use MindSpore's
stock operators (same results, slower) and one warning says why. ``MINDCV_MOBILENET_NO_CUSTOM_KERNELS=1`` turns the
kernels off.

The libraries are built for the CPU they run on (``-march=native``). ``MINDCV_MOBILENET_KERNEL_ISA`` caps the
instruction set, as ``ONEDNN_MAX_CPU_ISA`` caps oneDNN's: ``native`` (the default) or ``avx2`` (``-march=native
-mno-avx512f``: the CPU's own instructions without AVX-512, what ``-march=native`` gives on an AVX2-only CPU of the
same family), so that an AVX-512 machine can stand in for an AVX2-only one in benchmarks (``benchmark.py --isa
avx2``). The cap is part of the cache key and of the library's name (``depthwise_conv-avx2-<key>.so``); the kernels
choose their loop shapes for the vector width they are compiled for (``simd.h``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Sequence

import mindspore as ms
from mindspore import ops
from mindspore.ops import signature as sig

from ..utils.download import default_cache_dir
from ..utils.errors import ConfigError

_logger = logging.getLogger("mindcv_mobilenet")

OPT_OUT_ENV = "MINDCV_MOBILENET_NO_CUSTOM_KERNELS"
ISA_ENV = "MINDCV_MOBILENET_KERNEL_ISA"
# instruction-set cap -> the compiler flags to try, in order (some compilers or CPUs reject -march=native)
ISA_FLAGS = {"native": (["-march=native"], []), "avx2": (["-march=native", "-mno-avx512f"], ["-march=haswell"])}
_SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
_BASE_FLAGS = ["-O3", "-std=c++17", "-fopenmp-simd", "-shared", "-fPIC", "-pthread"]
_HEADERS = ("parallel.h", "activations.h", "aot.h", "simd.h")
# What falls back to MindSpore's stock operators when a library cannot be had (the warning says so).
USED_FOR = {"depthwise_conv": "depthwise convolutions", "activation": "hard-swish activations",
            "batchnorm": "training-mode BatchNorms", "squeeze_excite": "global pooling and squeeze-excite gates",
            "momentum": "momentum optimizer updates"}
_WARNED: set[str] = set()


def on_cpu() -> bool:
    """Whether MindSpore targets the CPU now: the cells decide when they are built whether to run the kernels."""
    return ms.get_context("device_target") == "CPU"


def kernels_disabled() -> bool:
    """True when the user turned the custom kernels off (``MINDCV_MOBILENET_NO_CUSTOM_KERNELS``)."""
    return os.environ.get(OPT_OUT_ENV, "").strip() not in ("", "0")


def kernel_isa() -> str:
    """The instruction-set cap of the kernels (``MINDCV_MOBILENET_KERNEL_ISA``, default ``native``); a value that is
    not one of :data:`ISA_FLAGS` (or ``avx2`` off x86) is a :class:`ConfigError`."""
    isa = os.environ.get(ISA_ENV, "").strip().lower() or "native"
    if isa not in ISA_FLAGS:
        raise ConfigError(f"{ISA_ENV}={os.environ[ISA_ENV]!r}: expected one of {', '.join(ISA_FLAGS)}")
    if isa != "native" and platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        raise ConfigError(f"{ISA_ENV}={isa} is for x86 CPUs; this one is {platform.machine()}: unset it")
    return isa


def _compiler() -> str | None:
    candidates = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return next(filter(None, (shutil.which(c) for c in candidates if c)), None)


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: a library built for one CPU must not be loaded on another."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _compile(compiler: str, source: str, target: str, isa: str = "native") -> str | None:
    """Compile ``source`` into ``target`` atomically for the instruction-set cap ``isa``; returns None on success, else
    the compiler's first error."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
    os.close(fd)
    error = "no output"
    try:
        for arch in ISA_FLAGS[isa]:
            result = subprocess.run([compiler, *_BASE_FLAGS, *arch, "-o", tmp, source], capture_output=True,
                                    text=True, timeout=300)
            if result.returncode == 0:
                os.replace(tmp, target)
                return None
            lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
            error = next((line for line in lines if "error" in line.lower()), lines[-1]).strip()
    except (OSError, subprocess.SubprocessError) as err:
        error = str(err)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return error


@functools.cache
def build(name: str) -> tuple[str | None, str]:
    """``(path, how)``: the compiled ``<name>.cc`` library, built on first use, and how it was had; path None when it
    cannot be (``how`` then says why and what to do)."""
    if kernels_disabled():
        return None, f"turned off by {OPT_OUT_ENV}"
    isa = kernel_isa()
    source = os.path.join(_SOURCE_DIR, f"{name}.cc")
    compiler = _compiler()
    if compiler is None:
        return None, "no C++ compiler found (g++, c++, clang++ or $CXX): install g++ to speed up CPU training"
    flags = [*_BASE_FLAGS, *(flag for arch in ISA_FLAGS[isa] for flag in arch)]
    digest = hashlib.sha256(" ".join([compiler, *flags]).encode() + _cpu_identity().encode())
    for path in (source, *(os.path.join(_SOURCE_DIR, header) for header in _HEADERS)):
        with open(path, "rb") as f:
            digest.update(f.read())
    tag = "" if isa == "native" else f"{isa}-"
    target = os.path.join(default_cache_dir(), "kernels", f"{name}-{tag}{digest.hexdigest()[:16]}.so")
    cap = "" if isa == "native" else f", capped at {isa} by {ISA_ENV}"
    if os.path.isfile(target):
        return target, f"built earlier with {compiler}{cap}"
    error = _compile(compiler, source, target, isa)
    if error is not None:
        return None, f"{compiler} could not build {name}.cc{cap} ({error})"
    return target, f"built now with {compiler}{cap}"


@functools.cache
def library_path(name: str) -> str | None:
    """Path of the compiled ``<name>.cc`` library; None when it cannot be had (said once per reason, unless turned
    off: with no compiler, one line for all libraries)."""
    path, how = build(name)
    if path is None and not kernels_disabled() and how not in _WARNED:
        _WARNED.add(how)
        _logger.warning(f"{how}; MobileNet's {', '.join(USED_FOR.values())} use MindSpore's stock CPU operators "
                        "instead (same results, slower)")
    return path


class KernelOp(ops.Custom):
    """A custom operator that deep copies to itself (it holds no state), so models using it can be copied."""

    def __deepcopy__(self, memo):
        return self

    def writes_inputs(self, names: Sequence[str], written: Collection[str]) -> KernelOp:
        """Declare the inputs (``names``, in order) that the kernel updates in place (``written``): MindSpore then
        orders the call as it orders ``Assign`` (reads of those parameters before it, later reads after it)."""
        signature = [sig.make_sig(name, sig.sig_rw.RW_WRITE) if name in written else sig.make_sig(name)
                     for name in names]
        self.set_signatures(self._fill_signature(tuple(signature)))
        self.add_prim_attr("side_effect_mem", True)
        return self
