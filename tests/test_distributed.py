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

import numpy as np
import psutil
import pytest

from mindcv_mobilenet.launch import starts_scheduler

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
        os.path.join(REPO, "train.py"),
        "--distribute", "True", "--model", "mobilenet_v1_025", "--num_samples", "32", "--batch_size", "8",
        "--epoch_size", "1", "--num_parallel_workers", "1", "--opt", "momentum", "--lr", "0.05",
        "--warmup_epochs", "0", "--ckpt_save_dir", str(run), "--log_interval", "2",
    ]


def _env(debug) -> dict:
    # msrun starts its workers with the `python` on PATH: make it this interpreter (CI does not activate the venv)
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return {**os.environ, "MINDCV_MOBILENET_DEBUG_DIR": str(debug), "PYTHONPATH": REPO, "PATH": path}


def _worker_logs(*log_dirs) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for d in log_dirs for p in sorted(d.glob("worker_*.log")))


def _check_ranks_agree(debug, run) -> None:
    """Both ranks trained the same steps on different images, end with identical weights; rank 0 alone wrote."""
    seen = [[json.loads(line) for line in (debug / f"samples_rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4
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
    assert len(records) == 1 and records[0]["val_images"] == 64
    assert sorted(p.name for p in run.glob("*.ckpt")) == ["mobilenet_v1_025-1_4.ckpt", "mobilenet_v1_025_best.ckpt"]


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
        os.path.join(REPO, "train.py"), "--distribute", "True", "--model", "mobilenet_v1_025", "--dataset", "folder",
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
