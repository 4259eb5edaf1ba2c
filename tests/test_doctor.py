"""python -m mindcv_mobilenet.doctor: backends that run, and the missing library named when one does not."""

from __future__ import annotations

import os
import subprocess
import sys

from mindcv_mobilenet import doctor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cpu_runs_and_a_missing_library_is_named(tmp_path):
    assert doctor.probe_backend("CPU") == (True, "2x2 matmul ran")
    assert doctor.load_library("libc.so.6", []) is None
    assert "libnot_there" in doctor.load_library("libnot_there.so.1", [str(tmp_path)])
    missing = doctor.missing_cuda_libraries([str(tmp_path)])
    for soname, fix in missing.items():  # on a machine without CUDA 11: each says what to pip install
        package = doctor.CUDA_LIBRARIES[soname]
        assert (package in fix) if package else "driver" in fix


def test_requirements_gpu_lists_every_package_doctor_asks_for():
    with open(os.path.join(REPO, "requirements-gpu.txt"), encoding="utf-8") as f:
        listed = {line.split("==")[0].strip() for line in f if line.strip() and not line.startswith("#")}
    wanted = {p.split("<")[0] for p in doctor.CUDA_LIBRARIES.values() if p}
    assert wanted == listed


def test_ld_library_path_option_prints_one_line():
    run = subprocess.run([sys.executable, "-m", "mindcv_mobilenet.doctor", "--ld-library-path"], capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert run.returncode == 0 and len(run.stdout.splitlines()) <= 1


def test_report_says_whether_the_cpu_kernels_are_used():
    lines = doctor.report(("CPU",))
    for used_for in ("depthwise convolutions", "hard-swish activations", "training-mode BatchNorms"):
        kernel = [line for line in lines if f"kernel for {used_for}" in line]
        assert len(kernel) == 1 and ("ready" in kernel[0] or "not used" in kernel[0])
