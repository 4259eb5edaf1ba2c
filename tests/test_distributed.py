"""Data-parallel training on CPU under msrun: identical weights, different samples, exact validation; one launcher
with two workers, and two launchers on this machine as two nodes (``python -m mindcv_mobilenet.launch``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from helpers import REPO_ROOT

from mindcv_mobilenet.launch import starts_scheduler

_VENV_MSRUN = os.path.join(os.path.dirname(sys.executable), "msrun")  # the launcher of this interpreter's MindSpore
MSRUN = _VENV_MSRUN if os.path.exists(_VENV_MSRUN) else (shutil.which("msrun") or _VENV_MSRUN)
needs_msrun = pytest.mark.skipif(not os.path.exists(MSRUN), reason="msrun (MindSpore's launcher) is not installed")
LAUNCH_TIMEOUT = 280


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(run) -> list:
    """A tiny 2-rank training run: 32 CIFAR demo images per rank, batch 8, 4 steps, weights dumped at the end."""
    return [
        os.path.join(REPO_ROOT, "train.py"),
        "--distribute", "True", "--model", "mobilenet_v1_025", "--num_samples", "32", "--batch_size", "8",
        "--epoch_size", "1", "--num_parallel_workers", "1", "--opt", "momentum", "--lr", "0.05",
        "--warmup_epochs", "0", "--ckpt_save_dir", str(run), "--log_interval", "2",
    ]


def _env(debug) -> dict:
    # msrun starts its workers with the `python` on PATH: make it this interpreter (CI does not activate the venv)
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return {**os.environ, "MINDCV_MOBILENET_DEBUG_DIR": str(debug), "PYTHONPATH": str(REPO_ROOT), "PATH": path}


def _worker_logs(*log_dirs) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for d in log_dirs for p in sorted(d.glob("worker_*.log")))


def _check_ranks_agree(debug, run, epochs: int = 1) -> None:
    """Both ranks trained the same steps on different images, end with identical weights; rank 0 alone wrote."""
    seen = [[json.loads(line) for line in (debug / f"samples_rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4 * epochs
    digests = [{s["digest"] for s in rank} for rank in seen]
    assert digests[0].isdisjoint(digests[1])
    assert [s["labels"] for s in seen[0]] != [s["labels"] for s in seen[1]]

    # gradients all-reduced, BatchNorm statistics averaged
    w0, w1 = (np.load(debug / f"weights_rank{r}.npz") for r in (0, 1))
    assert sorted(w0.files) == sorted(w1.files)
    for name in w0.files:
        np.testing.assert_allclose(w0[name], w1[name], rtol=1e-5, atol=1e-6, err_msg=name)

    # validation counts every test image of both shards once (32 + 32)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == epochs and all(r["val_images"] == 64 for r in records)
    periodic = [f"mobilenet_v1_025-{e}_{4 * e}.ckpt" for e in range(1, epochs + 1)]
    assert sorted(p.name for p in run.glob("*.ckpt")) == [*periodic, "mobilenet_v1_025_best.ckpt"]


@needs_msrun
def test_two_ranks_on_cpu(tmp_path):
    debug, run, logs = tmp_path / "debug", tmp_path / "run", tmp_path / "logs"
    cmd = [MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
           f"--log_dir={logs}", "--cluster_time_out=60", *_train_args(run)]
    result = subprocess.run(cmd, cwd=str(tmp_path), env=_env(debug), capture_output=True, text=True,
                            timeout=LAUNCH_TIMEOUT)
    worker_logs = _worker_logs(logs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:] + worker_logs
    _check_ranks_agree(debug, run)
    assert "global batch 16 (8 x 2 ranks)" in worker_logs


def _stop(launcher: subprocess.Popen) -> None:
    """End a launcher that is still running and every process below it (msrun puts workers in their own session)."""
    if launcher.poll() is not None:
        return
    try:
        below = psutil.Process(launcher.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        below = []
    for proc in [*below, launcher]:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launcher.wait()


@needs_msrun
def test_two_nodes_on_one_machine(tmp_path):
    """Two launchers as node 0 and node 1 of a 2-node cluster (one worker each) at the same master address: only
    node 0 starts the scheduler, both exit 0, and the ranks end with the same weights."""
    debug, run = tmp_path / "debug", tmp_path / "run"
    port = _free_port()
    launchers, outputs = [], []
    try:
        for node in (0, 1):
            out = open(tmp_path / f"launcher{node}.out", "w+")  # noqa: SIM115 - closed in finally
            outputs.append(out)
            cmd = [sys.executable, "-m", "mindcv_mobilenet.launch", "--worker_num=2", "--local_worker_num=1",
                   f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}", "--join=True",
                   f"--log_dir={tmp_path / f'logs{node}'}", "--cluster_time_out=120", *_train_args(run)]
            launchers.append(subprocess.Popen(cmd, cwd=str(tmp_path), env=_env(debug), stdout=out,
                                              stderr=subprocess.STDOUT))
        codes = [launcher.wait(timeout=LAUNCH_TIMEOUT) for launcher in launchers]
    finally:
        for launcher in launchers:
            _stop(launcher)
        texts = []
        for out in outputs:
            out.seek(0)
            texts.append(out.read()[-2000:])
            out.close()
    logs0, logs1 = tmp_path / "logs0", tmp_path / "logs1"
    assert codes == [0, 0], "\n".join(texts) + _worker_logs(logs0, logs1)
    assert (logs0 / "scheduler.log").exists() and not (logs1 / "scheduler.log").exists()
    assert [p.name for p in logs0.glob("worker_*.log")] == ["worker_0.log"]
    assert [p.name for p in logs1.glob("worker_*.log")] == ["worker_1.log"]
    _check_ranks_agree(debug, run)
    assert "global batch 16 (8 x 2 ranks)" in _worker_logs(logs0)


def test_scheduler_only_on_node_zero_of_the_master_machine():
    assert starts_scheduler(True, 0) and starts_scheduler(True, -1)
    assert not starts_scheduler(True, 1)
    assert not starts_scheduler(False, 0)


@needs_msrun
def test_two_ranks_share_what_their_readers_found(tmp_path, messy_tree):
    """An image folder with bad and converted files, 2 epochs on 2 ranks: each rank's first pass reads only its
    shard; after it the ranks merge what they found (an all-reduce), so epoch 2 (training and validation) reads in
    C++ on both, with the same steps, and the ranks still end with identical weights."""
    debug, run, logs = tmp_path / "debug", tmp_path / "run", tmp_path / "logs"
    args = [
        os.path.join(REPO_ROOT, "train.py"), "--distribute", "True", "--model", "mobilenet_v1_025",
        "--dataset", "folder",
        "--data_dir", messy_tree, "--train_split", "train", "--val_split", "validation", "--image_resize", "32",
        "--batch_size", "2", "--epoch_size", "2", "--num_parallel_workers", "1", "--opt", "momentum", "--lr", "0.05",
        "--warmup_epochs", "0", "--ckpt_save_dir", str(run), "--log_interval", "1",
    ]
    cmd = [MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
           f"--log_dir={logs}", "--cluster_time_out=60", *args]
    result = subprocess.run(cmd, cwd=str(tmp_path), env=_env(debug), capture_output=True, text=True,
                            timeout=LAUNCH_TIMEOUT)
    worker_logs = _worker_logs(logs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:] + worker_logs
    rank0 = (logs / "worker_0.log").read_text(errors="replace")
    assert rank0.count("later passes read them in C++") == 2, rank0[-3000:]  # the training and validation trees
    seen = [[json.loads(line) for line in (debug / f"samples_rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    for rank in seen:  # 10 rows -> 5 per rank -> 2 full batches of 2, in both epochs
        assert [s["epoch"] for s in rank] == [0, 0, 1, 1]
    w0, w1 = (np.load(debug / f"weights_rank{r}.npz") for r in (0, 1))
    for name in w0.files:
        np.testing.assert_allclose(w0[name], w1[name], rtol=1e-5, atol=1e-6, err_msg=name)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_images"] for r in records] == [8, 8]  # every good validation image once, both epochs


# ---- mpirun on CPU: rank 0 starts MindSpore's scheduler, the ranks learn its address by MPI_Bcast ------------------

def _open_mpi() -> str | None:
    path = shutil.which("mpirun")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return path if "Open MPI" in version else None


MPIRUN = _open_mpi()
needs_mpirun = pytest.mark.skipif(MPIRUN is None, reason="Open MPI's mpirun is not installed (Debian: openmpi-bin; "
                                                         ".ci/run installs it)")


def _mpirun(ranks: int, *args: str) -> list:
    # as root Open MPI wants --allow-run-as-root (or OMPI_ALLOW_RUN_AS_ROOT=1 + OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return [MPIRUN, *root, "--oversubscribe", "-n", str(ranks), sys.executable, *args]


@needs_mpirun
def test_mpirun_two_ranks_on_cpu(tmp_path):
    """`mpirun -n 2 python train.py ...` on CPU trains data-parallel as under msrun: rank 0 starts the scheduler,
    different samples per rank, identical weights, rank 0 alone writes; `--resume` under mpirun continues."""
    debug, run = tmp_path / "debug", tmp_path / "run"
    args = [*_train_args(run), "--epoch_size", "2"]
    del args[1:3]  # "--distribute True": as the seeds write it, mpirun's ranks alone make the run data-parallel
    result = subprocess.run(_mpirun(2, *args), cwd=str(tmp_path), env=_env(debug), capture_output=True,
                            text=True, timeout=LAUNCH_TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "global batch 16 (8 x 2 ranks)" in output and "distribute True (data parallel)" in output
    _check_ranks_agree(debug, run, epochs=2)
    assert len((run / "train.log").read_text().splitlines()) > 3 and not list(tmp_path.glob("rank*"))

    # resume from epoch 1 of 2 under mpirun: the same epoch 2 again, from the saved weights, optimizer and position
    resumed = subprocess.run(_mpirun(2, *args, "--resume", str(run / "mobilenet_v1_025-1_4.ckpt")),
                             cwd=str(tmp_path), env=_env(tmp_path / "debug2"), capture_output=True, text=True,
                             timeout=LAUNCH_TIMEOUT)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "1 epochs and 4 steps done" in resumed.stdout + resumed.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 2]
    first, again = np.load(debug / "weights_rank0.npz"), np.load(tmp_path / "debug2" / "weights_rank1.npz")
    for name in first.files:
        np.testing.assert_allclose(again[name], first[name], rtol=1e-4, atol=1e-5, err_msg=name)


def _long_run_args(run) -> list:
    """Real CIFAR-10 images (the packaged demo's), 64 steps an epoch at 32 px: long enough to be killed mid-run."""
    return [
        os.path.join(REPO_ROOT, "train.py"), "--distribute", "True", "--model", "mobilenet_v1_025",
        "--num_samples", "512",
        "--image_resize", "32", "--batch_size", "8", "--epoch_size", "40", "--num_parallel_workers", "1",
        "--opt", "momentum", "--lr", "0.05", "--warmup_epochs", "0", "--ckpt_save_dir", str(run), "--log_interval", "4",
    ]


def _kill_one_rank_after_first_checkpoint(job: subprocess.Popen, run, rank_of) -> int:
    """Wait for epoch 1's checkpoint, then `kill -9` the rank-1 process (``rank_of(proc)`` reads a process's rank)."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while not list(run.glob("mobilenet_v1_025-1_*.ckpt")):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before its first checkpoint"
        time.sleep(0.5)
    time.sleep(1)  # into epoch 2
    workers = [p for p in psutil.Process(job.pid).children(recursive=True) if "train.py" in " ".join(p.cmdline())]
    victim = next(p for p in workers if rank_of(p) == 1)
    victim.kill()
    return victim.pid


def _env_rank(proc: psutil.Process, key: str) -> int:
    try:
        return int(proc.environ().get(key, -1))
    except (psutil.Error, ValueError):
        return -1


@pytest.mark.parametrize("launcher", ["mpirun", "launch"])
def test_a_lost_rank_ends_the_job(tmp_path, launcher):
    """`kill -9` of one rank mid-epoch: the job ends non-zero within 60 s with a line naming the lost rank (no hang
    until a collective times out); the last checkpoint is intact and `--resume` continues from it."""
    if launcher == "mpirun" and MPIRUN is None:
        pytest.skip("Open MPI's mpirun is not installed")
    if launcher == "launch" and not os.path.exists(MSRUN):
        pytest.skip("msrun (MindSpore's launcher) is not installed")
    run = tmp_path / "run"
    if launcher == "mpirun":
        cmd, rank_key = _mpirun(2, *_long_run_args(run)), "OMPI_COMM_WORLD_RANK"
    else:
        cmd = [sys.executable, "-m", "mindcv_mobilenet.launch", "--worker_num=2", "--local_worker_num=2",
               f"--master_port={_free_port()}", "--join=True", f"--log_dir={tmp_path / 'logs'}",
               "--cluster_time_out=60", *_long_run_args(run)]
        rank_key = "RANK_ID"
    with open(tmp_path / "job.out", "w+") as out:
        job = subprocess.Popen(cmd, cwd=str(tmp_path), env=_env(tmp_path / "debug"), stdout=out,
                               stderr=subprocess.STDOUT)
        try:
            _kill_one_rank_after_first_checkpoint(job, run, lambda p: _env_rank(p, rank_key))
            killed_at = time.monotonic()
            code = job.wait(timeout=90)
            ended_after = time.monotonic() - killed_at
        finally:
            _stop(job)
        out.seek(0)
        text = out.read()
    assert code != 0, text[-3000:]
    assert ended_after < 60, f"{ended_after:.0f} s"
    named = ("process rank 1" if launcher == "mpirun" else "launch: rank 1 was killed by signal 9 (SIGKILL)")
    assert any(named in line for line in text.splitlines()), text[-3000:]

    epochs_done, checkpoint = max((int(p.stem.split("-")[1].split("_")[0]), p)
                                  for p in run.glob("mobilenet_v1_025-*_*.ckpt"))
    # the same run resumed (the schedule's length is part of the saved optimizer state): it continues with the next
    # epoch, which is all this test waits for
    args = [*_long_run_args(run), "--resume", str(checkpoint)]
    cmd = (_mpirun(2, *args) if launcher == "mpirun" else
           [MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
            f"--log_dir={tmp_path / 'logs2'}", "--cluster_time_out=60", *args])
    metrics = run / "metrics.jsonl"
    with open(tmp_path / "resume.out", "w+") as out:
        job = subprocess.Popen(cmd, cwd=str(tmp_path), env=_env(tmp_path / "debug2"), stdout=out,
                               stderr=subprocess.STDOUT)
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        try:
            while epochs_done + 1 not in [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]:
                assert job.poll() is None and time.monotonic() < deadline, "the resumed job ended or hung"
                time.sleep(0.5)
        except AssertionError:
            out.seek(0)
            raise AssertionError(out.read()[-3000:] + _worker_logs(tmp_path / "logs2")) from None
        finally:
            _stop(job)
    assert list(run.glob(f"mobilenet_v1_025-{epochs_done + 1}_*.ckpt"))
