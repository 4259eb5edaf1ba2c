"""Which x86 instruction sets a benchmark runs with: the CPU's own (``--isa native``), or an AVX2-only CPU
approximated on an AVX-512 one (``--isa avx2``, issue 26).

The approximation caps, in every row's process, each library that picks its code from the CPU at run time:
oneDNN in MindSpore and in PyTorch (``ONEDNN_MAX_CPU_ISA=AVX2``; this package sets that cap for MindSpore on every
CPU anyway, ``mindcv_mobilenet/runtime.py``), PyTorch's own ATen kernels (``ATEN_CPU_CAPABILITY=avx2``), MKL, which
PyTorch's x86 wheels call for dense matrix products (``MKL_ENABLE_INSTRUCTIONS=AVX2``), and this package's C++
kernels, compiled without AVX-512 (``MINDCV_MOBILENET_KERNEL_ISA=avx2``, ``mindcv_mobilenet/kernels``). Not capped:
MindSpore's nnacl kernels (its MatMul of the classifier, element-wise adds, the optimizer) take their AVX-512 paths
where ``cpuid`` reports AVX-512, and MindSpore documents no switch for that; the header says so.

PyTorch's rows never inherit the oneDNN cap that importing this package puts into the benchmark's own environment:
without ``--isa avx2`` PyTorch's oneDNN runs at its default, the CPU's best.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mindcv_mobilenet.kernels import ISA_ENV as KERNEL_ISA_ENV
from mindcv_mobilenet.kernels import ISA_FLAGS, kernel_isa

# What an instruction-set choice puts into every row's environment.
ENVIRONMENTS = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             KERNEL_ISA_ENV: "avx2"},
}
# The CPU flags (as /proc/cpuinfo names them) that decide which code the libraries take.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni")


def apply(isa: str) -> None:
    """Put ``isa``'s environment into this process's, for the rows it runs itself and the processes it starts; before
    MindSpore or PyTorch run anything (oneDNN and ATen read it once)."""
    os.environ.update(ENVIRONMENTS[isa])


def row_environment(isa: str, uncapped: bool = False, variant: Mapping[str, str] | None = None) -> dict:
    """The environment of one row's process: this one's and ``isa``'s. ``uncapped``: without the oneDNN cap this
    package puts into this process (a PyTorch row; bench/compare.py's rows, whose ``variant`` environment, applied
    before ``isa``'s, sets a cap of its own or leaves the package to set it)."""
    env = dict(os.environ)
    if uncapped:
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        env.pop("DNNL_MAX_CPU_ISA", None)
    env.update(variant or {})
    env.update(ENVIRONMENTS[isa])
    return env


def cpu() -> tuple[str, list[str]]:
    """(model name, which of :data:`CPU_FLAGS` the CPU reports), from ``/proc/cpuinfo`` (``?`` and [] elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "?", []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, [flag for flag in CPU_FLAGS if flag in flags]


def describe(isa: str) -> dict:
    """The CPU, its flags and what each library is set to use (after :func:`apply`), for the header and the JSON."""
    model, flags = cpu()
    if isa == "native":
        kind = "the CPU's own instruction sets"
    elif "avx512f" in flags:
        kind = "an AVX2-only CPU approximated on this AVX-512 one"
    else:
        kind = "this CPU, which has no AVX-512 (the caps change nothing)"
    ours, theirs = row_environment(isa), row_environment(isa, uncapped=True)
    kernels = kernel_isa()  # after apply(isa): the value ours has
    best = "the CPU's best"
    return {"cpu": model, "cpu_flags": flags, "isa": isa, "kind": kind,
            "mindspore_onednn": ours.get("ONEDNN_MAX_CPU_ISA", best), "kernels": kernels,
            "kernel_flags": " ".join(ISA_FLAGS[kernels][0]), "torch_onednn": theirs.get("ONEDNN_MAX_CPU_ISA", best),
            "torch_aten": theirs.get("ATEN_CPU_CAPABILITY", best),
            "torch_mkl": theirs.get("MKL_ENABLE_INSTRUCTIONS", best)}


def header(isa: str) -> str:
    """Two lines naming the CPU, its flags and the instruction sets each framework uses (the JSON has the same)."""
    d = describe(isa)
    return (f"CPU: {d['cpu']}, flags {' '.join(d['cpu_flags']) or '(none of ' + ' '.join(CPU_FLAGS) + ')'}; "
            f"--isa {isa}: {d['kind']}\n"
            f"  ours: oneDNN {d['mindspore_onednn']}, kernels {d['kernels']} ({d['kernel_flags']}), nnacl uncapped; "
            f"PyTorch: oneDNN {d['torch_onednn']}, ATen {d['torch_aten']}, MKL {d['torch_mkl']}")
