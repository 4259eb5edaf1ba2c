"""``python -m mindcv_mobilenet.doctor``: which MindSpore device backends work here, and what is missing when one
does not.

MindSpore 2.10's PyPI wheel carries GPU plugins built for CUDA 11.x (``lib/plugin/libmindspore_gpu.so.11.1`` and
``.11.6``). Their dependencies, read with ``readelf -d`` from the wheel, are the CUDA 11 runtime libraries in
:data:`CUDA_LIBRARIES`; all come from PyPI (``requirements-gpu.txt``) except ``libcuda.so.1``, which is the NVIDIA
driver's. pip puts them under ``site-packages/nvidia/*/lib``, where the dynamic loader does not look:
``--ld-library-path`` prints the folders to put on ``LD_LIBRARY_PATH``.

    python -m mindcv_mobilenet.doctor                 # report
    export LD_LIBRARY_PATH=$(python -m mindcv_mobilenet.doctor --ld-library-path):$LD_LIBRARY_PATH
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import subprocess
import sys
import sysconfig

from .cli import parse_args
from .cli.options import DEVICES
from .utils.errors import run_cli

# soname needed by libmindspore_gpu.so.11.x -> the PyPI package that ships it (None: the NVIDIA driver)
CUDA_LIBRARIES = {
    "libcuda.so.1": None,
    "libcudart.so.11.0": "nvidia-cuda-runtime-cu11",
    "libcublas.so.11": "nvidia-cublas-cu11",
    "libcublasLt.so.11": "nvidia-cublas-cu11",
    "libcurand.so.10": "nvidia-curand-cu11",
    "libcudnn.so.8": "nvidia-cudnn-cu11<9",
    "libcusolver.so.11": "nvidia-cusolver-cu11",
    "libcufft.so.10": "nvidia-cufft-cu11",
    "libcusparse.so.11": "nvidia-cusparse-cu11",
    "libnvrtc.so.11.2": "nvidia-cuda-nvrtc-cu11",
}
# Ascend needs Huawei's CANN toolkit (not on PyPI); these are what libmindspore_ascend.so.2 loads from it.
ASCEND_LIBRARIES = ("libascendcl.so", "libge_runner.so", "libgraph.so", "libmsprofiler.so")
PROBE = ("import mindspore as ms, numpy as np; ms.set_device('{device}'); "
         "x = ms.Tensor(np.ones((2, 2), np.float32)); print(float((x @ x).sum().asnumpy()))")


def pip_cuda_dirs() -> list[str]:
    """The ``lib`` folders of pip-installed NVIDIA packages (``site-packages/nvidia/<name>/lib``)."""
    site = sysconfig.get_paths()["purelib"]
    return sorted(d for d in glob.glob(os.path.join(site, "nvidia", "*", "lib")) if os.path.isdir(d))


def load_library(soname: str, dirs: list[str]) -> str | None:
    """None when ``soname`` loads (from ``dirs`` first, then the loader's path), else the loader's error."""
    for folder in dirs:
        path = os.path.join(folder, soname)
        if os.path.exists(path):
            soname = path
            break
    try:
        ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)  # global: later libraries find it by soname
        return None
    except OSError as err:
        return str(err)


def missing_cuda_libraries(dirs: list[str] | None = None) -> dict[str, str]:
    """{soname: what to install} for each CUDA library of :data:`CUDA_LIBRARIES` that does not load."""
    dirs = pip_cuda_dirs() if dirs is None else dirs
    missing = {}
    for soname, package in CUDA_LIBRARIES.items():
        if load_library(soname, dirs) is not None:
            missing[soname] = f"pip install '{package}'" if package else "the NVIDIA driver (no GPU driver here)"
    return missing


def probe_backend(device: str, timeout: float = 300.0) -> tuple[bool, str]:
    """Run a 2x2 matmul on ``device`` in a fresh process: (works, last line of its output)."""
    env = dict(os.environ)
    dirs = pip_cuda_dirs()
    if dirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs + [env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    try:
        run = subprocess.run([sys.executable, "-c", PROBE.format(device=device)], capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    if run.returncode == 0 and lines and lines[-1].strip() == "8.0":
        return True, "2x2 matmul ran"
    raised = [line.split(". Please")[0] for line in lines if re.match(r"^\w+(Error|Exception): ", line)]
    return False, (raised or lines or [f"exit status {run.returncode}"])[-1].strip()[:300]


def report(backends: tuple[str, ...] = DEVICES) -> list[str]:
    """One block of lines per backend: whether it runs, and for one that does not, what is missing."""
    lines = [f"python {sys.version.split()[0]} at {sys.executable}"]
    try:
        import mindspore as ms

        lines.append(f"mindspore {ms.__version__} at {os.path.dirname(ms.__file__)}")
    except ImportError as err:
        return lines + [f"mindspore is not importable ({err}): pip install -r requirements.txt"]
    dirs = pip_cuda_dirs()
    for device in backends:
        works, detail = probe_backend(device)
        lines.append(f"{device:<7} {'works' if works else 'not available'}: {detail}")
        if device == "CPU":
            from .kernels import USED_FOR, build

            for library, used_for in USED_FOR.items():
                path, how = build(library)
                lines.append(f"        kernel for {used_for} {'ready' if path else 'not used'}: "
                             f"{how}{f' ({path})' if path else ''}")
        if works or device == "CPU":
            continue
        if device == "GPU":
            missing = missing_cuda_libraries(dirs)
            for soname, fix in missing.items():
                lines.append(f"        missing {soname}: {fix}")
            if not missing and dirs:
                lines.append("        every CUDA library loads: export LD_LIBRARY_PATH=$(python -m "
                             "mindcv_mobilenet.doctor --ld-library-path):$LD_LIBRARY_PATH, then check the driver "
                             "(nvidia-smi) supports CUDA 11")
        elif device == "Ascend":
            absent = [lib for lib in ASCEND_LIBRARIES if load_library(lib, []) is not None]
            if absent:
                lines.append(f"        missing {', '.join(absent)}: install Huawei's CANN toolkit and source its "
                             "set_env.sh (not on PyPI)")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args("doctor", argv, description=__doc__.splitlines()[0])
    if args.ld_library_path:
        print(os.pathsep.join(pip_cuda_dirs()))
        return 0
    for line in report(tuple(args.backends)):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
