"""benchmark.py --torch's row processes taking turns (bench/torch_compare): the protocol between the driver and a
row's process, the rotation of the order, each row's timings, and a row whose process fails. The rows here are fake
steps (a short sleep), so neither PyTorch nor a model is needed."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from bench.layout import REPO_ROOT
from bench.torch_compare import RowProcess, format_row, take_turns

WORKER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from bench.torch_compare import serve
    name, log, behaviour = sys.argv[1], sys.argv[2], sys.argv[3]
    if behaviour == "silent":
        time.sleep(60)
    def step():
        if behaviour == "crash" and steps:
            raise SystemExit("step failed")
        steps.append(1)
        with open(log, "a") as f:
            f.write(name + "\\n")
        time.sleep(0.002)
    steps = []
    print("some other output")
    row = serve(step, {{"framework": name, "model": name, "task": "train", "image_size": 8, "batch": 4}})
    print("RESULT " + json.dumps(row), flush=True)
""")


def _row(tmp_path, name: str, behaviour: str = "ok", timeout: float = 30) -> RowProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(REPO_ROOT)))
    log = tmp_path / "steps.log"
    return RowProcess([sys.executable, str(script), name, str(log), behaviour], {"name": name, "task": "train"},
                      timeout=timeout)


def _order(tmp_path) -> list[str]:
    return (tmp_path / "steps.log").read_text().split()


def test_rows_take_turns_in_rotating_order(tmp_path):
    rows = [_row(tmp_path, name) for name in ("a", "b", "c")]
    assert _order(tmp_path) == ["a", "b", "c"]  # the first calls, one process after the other
    results = take_turns(rows, repeats=2, rounds=3, pause=0)
    windows = _order(tmp_path)[3:]
    assert windows == ["a", "a", "b", "b", "c", "c", "b", "b", "c", "c", "a", "a", "c", "c", "a", "a", "b", "b"]
    for name, row in zip("abc", results, strict=True):
        assert "error" not in row and row["model"] == name
        assert len(row["window_steps_s"]) == 3 and row["step_s"] >= 0.002
        assert row["images_per_s"] == pytest.approx(4 / row["step_s"]) and row["first_s"] > 0
        assert "img/s" in format_row(row)
    assert all(row.proc.returncode == 0 for row in rows)


def test_a_failing_row_is_reported_and_the_others_finish(tmp_path):
    rows = [_row(tmp_path, "a"), _row(tmp_path, "b", "crash")]
    good, bad = take_turns(rows, repeats=2, rounds=2, pause=0)
    assert "error" not in good and len(good["window_steps_s"]) == 2
    assert bad["model"] == "b" and "ended" in bad["error"] and "step failed" in bad["error"]
    assert "ERROR" in format_row(bad)


def test_a_silent_row_times_out(tmp_path):
    row = _row(tmp_path, "a", "silent", timeout=1)
    assert row.error is not None and "timeout" in row.error
    (result,) = take_turns([row], repeats=1, rounds=1, pause=0)
    assert "error" in result and json.dumps(result)
