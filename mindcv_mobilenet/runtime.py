"""How MindSpore runs here: the CPU runtime settings its 2.10 CPU kernels need to run MobileNets at a sane speed, and
the execution mode of every script (:func:`set_mode`).

On x86 CPUs with AVX-512, the oneDNN 3.10 bundled with MindSpore 2.10 answers every convolution with a k x k kernel in
MindSpore's plain NCHW layout with ``jit_uni_ncsp:conv+ref:any`` -- a wrapper around oneDNN's *reference* (scalar
loop) convolution: a depthwise 3x3 on (32, 144, 56, 56) takes ~2.6 s and a dense 3x3 144->144 ~100 s. Capping oneDNN
at AVX2 makes it pick its JIT GEMM convolution (``x64:gemm:jit``) instead: the same depthwise takes ~75 ms, whole
networks run 8-14x faster, forward and backward. ``ONEDNN_VERBOSE=1`` shows the implementation each primitive uses.

oneDNN reads the cap once, when the process creates its first oneDNN primitive, so it has to be in the environment
before MindSpore runs anything on the CPU; the package root applies it on import (``import mindcv_mobilenet`` or any
of its modules), before the models exist.
"""

from __future__ import annotations

import os

ISA_ENV = "ONEDNN_MAX_CPU_ISA"
LEGACY_ISA_ENV = "DNNL_MAX_CPU_ISA"
OPT_OUT_ENV = "MINDCV_MOBILENET_NO_CPU_TUNING"
DEFAULT_ISA = "AVX2"


def configure_cpu_runtime(isa: str = DEFAULT_ISA) -> str | None:
    """Cap oneDNN's instruction set at ``isa`` unless the user chose one already; returns the cap now in effect.

    A user's own ``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA`` wins (``ONEDNN_MAX_CPU_ISA=ALL`` restores oneDNN's
    default), and ``MINDCV_MOBILENET_NO_CPU_TUNING=1`` leaves the environment alone. The cap only limits which
    oneDNN JIT kernels are generated: on a CPU without AVX-512 it changes nothing, and GPU/Ascend kernels never read it.
    Setting it after MindSpore has already run a CPU kernel in this process has no effect.
    """
    if os.environ.get(OPT_OUT_ENV, "").strip() not in ("", "0"):
        return os.environ.get(ISA_ENV) or os.environ.get(LEGACY_ISA_ENV)
    current = os.environ.get(ISA_ENV) or os.environ.get(LEGACY_ISA_ENV)
    if current:
        return current
    os.environ[ISA_ENV] = isa
    return isa


def set_mode(mode: int, device_target: str = "auto") -> None:
    """MindSpore's execution mode for a script: 0 graph (compiled), 1 PyNative; ``device_target`` 'auto' keeps
    MindSpore's default device. Training and evaluation set it the same way, here."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if int(mode) == 0 else ms.PYNATIVE_MODE)
    if device_target and device_target != "auto":
        ms.set_device(device_target)


def jit_forward(model) -> object:
    """Compile ``model``'s forward as one graph when run in PyNative mode (``mindspore.jit``), in place.

    PyNative dispatches every operator from Python; for MobileNetV3-Small that is ~600 kernels per training step and
    dominates the step time on CPU. Compiling the forward (its backward follows) gives graph-mode speed while the loop,
    the optimizer and everything around the model stay eager. In graph mode it changes nothing.
    """
    import mindspore as ms

    model.construct = ms.jit(model.construct)
    return model
