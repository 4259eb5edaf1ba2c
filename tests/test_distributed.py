"""Two-process data-parallel training on CPU under msrun: identical weights, different samples, exact validation."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VENV_MSRUN = os.path.join(os.path.dirname(sys.executable), "msrun")  # the launcher of this interpreter's MindSpore
MSRUN = _VENV_MSRUN if os.path.exists(_VENV_MSRUN) else (shutil.which("msrun") or _VENV_MSRUN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not os.path.exists(MSRUN), reason="msrun (MindSpore's launcher) is not installed")
def test_two_ranks_on_cpu(tmp_path):
    debug, run, logs = tmp_path / "debug", tmp_path / "run", tmp_path / "logs"
    cmd = [
        MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
        f"--log_dir={logs}", "--cluster_time_out=60", os.path.join(REPO, "train.py"),
        "--distribute", "True", "--model", "mobilenet_v1_025", "--num_samples", "32", "--batch_size", "8",
        "--epoch_size", "1", "--num_parallel_workers", "1", "--opt", "momentum", "--lr", "0.05",
        "--warmup_epochs", "0", "--ckpt_save_dir", str(run), "--log_interval", "2",
    ]
    # msrun starts its workers with the `python` on PATH: make it this interpreter (CI does not activate the venv)
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MINDCV_MOBILENET_DEBUG_DIR": str(debug), "PYTHONPATH": REPO, "PATH": path}
    result = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=280)
    worker_logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("worker_*.log")))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:] + worker_logs

    # both ranks trained the same number of steps on different images
    seen = [[json.loads(line) for line in (debug / f"samples_rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4
    digests = [{s["digest"] for s in rank} for rank in seen]
    assert digests[0].isdisjoint(digests[1])
    assert [s["labels"] for s in seen[0]] != [s["labels"] for s in seen[1]]

    # ...and end with identical weights (gradients all-reduced, BatchNorm statistics averaged)
    w0, w1 = (np.load(debug / f"weights_rank{r}.npz") for r in (0, 1))
    assert sorted(w0.files) == sorted(w1.files)
    for name in w0.files:
        np.testing.assert_allclose(w0[name], w1[name], rtol=1e-5, atol=1e-6, err_msg=name)

    # only rank 0 writes; validation counts every test image of both shards once (32 + 32)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["val_images"] == 64
    assert "global batch 16 (8 x 2 ranks)" in worker_logs
    assert sorted(p.name for p in run.glob("*.ckpt")) == ["mobilenet_v1_025-1_4.ckpt", "mobilenet_v1_025_best.ckpt"]
