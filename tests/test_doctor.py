"""python -m mindcv_mobilenet.doctor: backends that run, and the missing library named when one does not."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
from helpers import REPO_ROOT

from mindcv_mobilenet import doctor, kernels
from mindcv_mobilenet.kernels import USED_FOR


def test_cpu_runs_and_a_missing_library_is_named(tmp_path):
    assert doctor.probe_backend("CPU") == (True, "2x2 matmul ran")
    assert doctor.load_library("libc.so.6", []) is None
    assert "libnot_there" in doctor.load_library("libnot_there.so.1", [str(tmp_path)])
    missing = doctor.missing_cuda_libraries([str(tmp_path)])
    for soname, fix in missing.items():  # on a machine without CUDA 11: each says what to pip install
        package = doctor.CUDA_LIBRARIES[soname]
        assert (package in fix) if package else "driver" in fix


def test_requirements_gpu_lists_every_package_doctor_asks_for():
    with open(os.path.join(REPO_ROOT, "requirements-gpu.txt"), encoding="utf-8") as f:
        listed = {line.split("==")[0].strip() for line in f if line.strip() and not line.startswith("#")}
    wanted = {p.split("<")[0] for p in doctor.CUDA_LIBRARIES.values() if p}
    assert wanted == listed


def _nvidia_lib_dirs() -> list[str]:
    """Where pip put NVIDIA's libraries, found through the import system (the doctor globs site-packages)."""
    spec = importlib.util.find_spec("nvidia")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return sorted(os.path.join(top, name, "lib") for top in locations for name in os.listdir(top)
                  if os.path.isdir(os.path.join(top, name, "lib")))


def test_ld_library_path_option_prints_the_pip_cuda_folders():
    run = subprocess.run([sys.executable, "-m", "mindcv_mobilenet.doctor", "--ld-library-path"], capture_output=True,
                         text=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert run.returncode == 0
    assert run.stdout == os.pathsep.join(_nvidia_lib_dirs()) + "\n"  # one line, empty when pip installed none


def test_ld_library_path_names_each_nvidia_lib_folder(tmp_path, monkeypatch, capsys):
    for name in ("cublas", "cuda_runtime"):
        (tmp_path / "nvidia" / name / "lib").mkdir(parents=True)
    (tmp_path / "nvidia" / "headers_only" / "include").mkdir(parents=True)
    monkeypatch.setattr(doctor.sysconfig, "get_paths", lambda: {"purelib": str(tmp_path)})
    assert doctor.main(["--ld-library-path"]) == 0
    wanted = [str(tmp_path / "nvidia" / name / "lib") for name in ("cublas", "cuda_runtime")]
    assert capsys.readouterr().out == os.pathsep.join(wanted) + "\n"


@pytest.fixture
def fresh_build():
    """kernels.build answers once per process and library: these tests ask it again, and leave no answer behind."""
    kernels.build.cache_clear()
    yield
    kernels.build.cache_clear()


def _kernel_lines(lines: list[str]) -> dict[str, str]:
    found = {used_for: [line for line in lines if f"kernel for {used_for} " in line] for used_for in USED_FOR.values()}
    assert all(len(one) == 1 for one in found.values()), lines
    return {used_for: one[0] for used_for, one in found.items()}


def test_report_says_whether_the_cpu_kernels_are_used(fresh_build):
    """'ready' exactly when they are not turned off and a C++ compiler is here; then the named library loads."""
    turned_off = os.environ.get(kernels.OPT_OUT_ENV, "").strip() not in ("", "0")
    compiler = any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "c++", "clang++") if c)
    for line in _kernel_lines(doctor.report(("CPU",))).values():
        if turned_off:
            assert f"not used: turned off by {kernels.OPT_OUT_ENV}" in line
        elif not compiler:
            assert "not used: no C++ compiler found" in line
        else:
            assert " ready: " in line, line
            path = line.rsplit("(", 1)[1].rstrip(")")
            ctypes.CDLL(path)  # raises when the library the report names does not load


def test_report_says_the_kernels_are_turned_off(fresh_build, monkeypatch):
    monkeypatch.setenv(kernels.OPT_OUT_ENV, "1")
    monkeypatch.setattr(doctor, "probe_backend", lambda device: (True, "2x2 matmul ran"))
    for line in _kernel_lines(doctor.report(("CPU",))).values():
        assert line.endswith(f"not used: turned off by {kernels.OPT_OUT_ENV}")
