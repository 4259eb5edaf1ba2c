"""What a training run leaves behind, and who reads it (issue 22, parts 5-7).

* validate.py, infer.py and export.py naming no weights use what train.py wrote for the model in ``ckpt_save_dir``
  (the model_zoo's sequence: tests/test_compat.py), with the run's preprocessing, as ``--ckpt_path`` would;
* ``class_names.json`` travels with the checkpoints, and infer.py prints its names;
* a write that fails (disk full, a folder that cannot exist) ends the run with one line naming the file, the cause,
  the last complete checkpoint and the ``--resume`` command, and leaves no partial file.

The full disk is real to MindSpore's checkpoint writer: the second checkpoint is written under a file-size limit
(``RLIMIT_FSIZE``; Python ignores SIGXFSZ, so the write fails with EFBIG as a full disk fails with ENOSPC).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, assert_one_line_error, run_script, write_good_class

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.data.cifar10 import CLASS_NAMES as CIFAR10_CLASS_NAMES
from mindcv_mobilenet.engine.checkpoint_manager import run_checkpoint
from mindcv_mobilenet.utils.errors import WriteError
from mindcv_mobilenet.utils.fileio import appending, atomic_path

MODEL = "mobilenet_v1_025"  # the quickest MobileNet to compile
TINY = ["--model", MODEL, "--num_samples", "16", "--batch_size", "8", "--image_resize", "32", "--mode", "1",
        "--num_parallel_workers", "1", "--log_interval", "0", "--warmup_epochs", "0"]

# the second checkpoint of the run (epoch 1's best, after its periodic one) is written on a "disk" that fills up
# 4 KiB into the file: MindSpore's own writer fails in the middle of its temporary file
DISK_FILLS_AT_SECOND_CHECKPOINT = """
import resource
import mindspore

_real_save, _calls = mindspore.save_checkpoint, []


def _save(*args, **kwargs):
    _calls.append(args[1])
    if len(_calls) != 2:
        return _real_save(*args, **kwargs)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        return _real_save(*args, **kwargs)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


mindspore.save_checkpoint = _save
"""


def _in(cwd, script: str, *args: str) -> subprocess.CompletedProcess:
    """A top-level script run from ``cwd`` (relative paths and the default ./ckpt are the user's)."""
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=dict(os.environ, GLOG_v="3", PYTHONWARNINGS="ignore"))


# ---------------------------------------------------------------- writes that fail
def test_failed_atomic_write_leaves_nothing_and_names_the_file(tmp_path):
    target = tmp_path / "m_best.ckpt"
    target.write_bytes(b"the good one")
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device"):
        with atomic_path(str(target)) as tmp:
            with open(os.path.splitext(tmp)[0] + ".tmp", "wb") as f:  # as MindSpore's writer names its own
                f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert os.listdir(tmp_path) == ["m_best.ckpt"] and target.read_bytes() == b"the good one"
    (tmp_path / "file").write_text("")
    with pytest.raises(WriteError, match="cannot create the folder .*file/sub: Not a directory"):
        with atomic_path(str(tmp_path / "file" / "sub" / "x.json")):
            pass


def test_failed_append_is_cut_back(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n')
    with pytest.raises(WriteError, match="cannot write .*metrics.jsonl: No space left on device"):
        with appending(str(log)):
            with open(log, "a") as f:
                f.write('{"epo')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert log.read_text() == '{"epoch": 1}\n'
    fresh = tmp_path / "new.jsonl"
    with pytest.raises(WriteError):
        with appending(str(fresh)):
            fresh.write_text("{")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert not fresh.exists()


def test_train_log_that_cannot_be_written_is_a_write_error(tmp_path):
    from mindcv_mobilenet.utils.logs import RunLogFile

    logger = logging.getLogger("test_run_outputs")
    handler = RunLogFile(str(tmp_path / "train.log"))
    logger.addHandler(handler)
    try:
        def full(_text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        handler.stream.write = full
        with pytest.raises(WriteError, match="cannot write .*train.log: No space left on device"):
            logger.warning("epoch 1")
    finally:
        logger.removeHandler(handler)
    with pytest.raises(WriteError, match="cannot write .*: Is a directory"):
        RunLogFile(str(tmp_path))


def test_run_folder_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_script("train.py", *TINY, "--ckpt_save_dir", str(tmp_path / "file" / "run"))
    assert_one_line_error(proc, f"cannot create the folder {tmp_path / 'file' / 'run'} (--ckpt_save_dir): Not a "
                          "directory; no checkpoint was written")


def test_disk_full_at_the_second_checkpoint_keeps_the_first_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = run_script("train.py", *TINY, "--epoch_size", "2", "--ckpt_save_dir", str(run),
                      prelude=DISK_FILLS_AT_SECOND_CHECKPOINT)
    first, best = run / f"{MODEL}-1_2.ckpt", run / f"{MODEL}_best.ckpt"
    error = assert_one_line_error(proc, f"cannot write {best}: File too large",
                                  f"the last complete checkpoint is {first}")
    assert "CRITICAL" not in proc.stderr  # MindSpore's own line about its temporary file is not shown
    assert sorted(os.listdir(run)) == ["class_names.json", "config.yaml", first.name, "train.log"]  # no *.tmp
    assert json.loads((run / "class_names.json").read_text())["class_names"] == CIFAR10_CLASS_NAMES

    from mindcv_mobilenet.models import create_model
    from mindcv_mobilenet.utils.checkpoint import load_model_weights

    assert load_model_weights(create_model(MODEL, num_classes=10), str(first)) == []  # complete and loadable
    command = shlex.split(error.split("continue with ", 1)[1])
    assert command[:2] == ["python", "train.py"] and command[-2:] == ["--resume", str(first)]
    resumed = run_script("train.py", *command[2:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {first}: 1 epochs and 2 steps done" in resumed.stdout
    assert (run / f"{MODEL}-2_4.ckpt").is_file()
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [2]


@pytest.mark.parametrize("blocked", ["config.yaml", "train.log", "metrics.jsonl"])
def test_run_files_that_cannot_be_written_end_the_same_way(blocked, tmp_path):
    """A folder where the file should be: the write fails as on a full disk, at start or after epoch 1."""
    from mindcv_mobilenet.engine.trainer import train

    run = tmp_path / "run"
    (run / blocked).mkdir(parents=True)
    cfg = parse_args("train", [*TINY, "--epoch_size", "1", "--val_while_train", "False", "--ckpt_save_dir", str(run)])
    with pytest.raises(WriteError) as failed:
        train(cfg)
    message = str(failed.value)
    assert message.startswith(f"cannot write {run / blocked}: Is a directory; ")
    if blocked == "metrics.jsonl":  # after the epoch's checkpoint
        assert message.endswith(f"the last complete checkpoint is {run / f'{MODEL}-1_2.ckpt'}: continue with python "
                                f"train.py -c {run / 'config.yaml'} --resume {run / f'{MODEL}-1_2.ckpt'}")
    else:
        assert message.endswith("no checkpoint was written")
    assert not [name for name in os.listdir(run) if name.startswith(".")]  # no temporary file left


# ---------------------------------------------------------------- the checkpoint a run folder offers
def test_run_checkpoint_is_the_best_else_the_newest_periodic(tmp_path):
    assert run_checkpoint(str(tmp_path / "missing"), MODEL) is None
    for name, mtime in [(f"{MODEL}-2_8.ckpt", 200), (f"{MODEL}-10_40.ckpt", 100), (f"{MODEL}-3_12.ckpt", 300),
                        ("mobilenet_v1_050-4_16.ckpt", 400), (f"{MODEL}-x.ckpt", 500)]:
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (mtime, mtime))
    assert run_checkpoint(str(tmp_path), MODEL) == str(tmp_path / f"{MODEL}-3_12.ckpt")  # newest written
    (tmp_path / f"{MODEL}_best.ckpt").write_bytes(b"")
    assert run_checkpoint(str(tmp_path), MODEL) == str(tmp_path / f"{MODEL}_best.ckpt")


def test_an_older_runs_config_yaml_is_read_under_todays_names(tmp_path):
    """A run's config.yaml saves the input size as image_size; one written by an older train.py holds mindcv's
    image_resize, and validate/infer/export still take its input size from it (a file with both: image_size)."""
    from mindcv_mobilenet.data.preprocessing import resolve_data_config
    from mindcv_mobilenet.engine.checkpoint_manager import read_run_config
    from mindcv_mobilenet.inference.loading import training_run_config
    from mindcv_mobilenet.models import get_model_config

    run_config = tmp_path / "config.yaml"
    run_config.write_text(f"dataset: cifar10_demo\nimage_resize: 48\nmodel: {MODEL}\n")
    assert read_run_config(str(run_config)) == {"dataset": "cifar10_demo", "image_size": 48, "model": MODEL}
    cfg = parse_args("validate", ["--model", MODEL, "--ckpt_path", str(tmp_path / "m.ckpt")])
    settings = resolve_data_config(cfg, get_model_config(MODEL), training_run_config(cfg))
    assert (settings.dataset, settings.image_size) == ("cifar10_demo", 48)
    assert settings.as_settings()["image_size"] == 48 and "image_resize" not in settings.as_settings()  # as saved now
    run_config.write_text("image_resize: 48\nimage_size: 64\n")
    assert read_run_config(str(run_config)) == {"image_size": 64}


@pytest.mark.parametrize("kind", ["validate", "infer", "export"])
def test_no_weights_named_means_the_runs_checkpoint_with_its_preprocessing(kind, tmp_path, monkeypatch, capsys):
    """The run's checkpoint is taken as if given with --ckpt_path: its config.yaml decides the data set (over the
    data set's default (what data_dir holds, or photos) and resolution; keys given on the command line win;
    --pretrained or --ckpt_path are kept."""
    from mindcv_mobilenet.data.dataset import dataset_for_data_dir
    from mindcv_mobilenet.data.preprocessing import resolve_data_config
    from mindcv_mobilenet.engine.checkpoint_manager import write_run_config
    from mindcv_mobilenet.inference.loading import training_run_config, use_run_checkpoint
    from mindcv_mobilenet.models import get_model_config

    def resolved(cfg) -> tuple[str, int]:  # as the scripts resolve them
        files = kind != "validate"
        settings = resolve_data_config(cfg, get_model_config(cfg.model), training_run_config(cfg), for_files=files,
                                       default_dataset="imagenet" if files else dataset_for_data_dir(cfg.data_dir))
        return settings.dataset, settings.image_size

    monkeypatch.chdir(tmp_path)
    write_run_config(vars(parse_args("train", ["--model", MODEL, "--dataset", "cifar10_demo", "--image_resize", "48"])),
                     "ckpt/config.yaml")
    (tmp_path / "ckpt" / f"{MODEL}_best.ckpt").write_bytes(b"")
    argv = ["--model", MODEL] + (["--image_path", "a.jpg"] if kind == "infer" else [])
    explicit = parse_args(kind, argv + ["--ckpt_path", os.path.join("ckpt", f"{MODEL}_best.ckpt")])
    capsys.readouterr()
    cfg = parse_args(kind, argv)
    assert use_run_checkpoint(cfg) == os.path.join(".", "ckpt", f"{MODEL}_best.ckpt") == cfg.ckpt_path
    notes = capsys.readouterr().err.splitlines()
    assert notes[0].startswith(f"note: no --ckpt_path or --pretrained: using ./ckpt/{MODEL}_best.ckpt")
    assert resolved(cfg) == resolved(explicit) == ("cifar10_demo", 48)
    assert capsys.readouterr().err.startswith(f"note: preprocessing from the training run's {tmp_path}")
    cfg = parse_args(kind, argv + ["--dataset", "imagenet", "--image_resize", "40"])
    use_run_checkpoint(cfg)
    assert resolved(cfg) == ("imagenet", 40)
    cfg = parse_args(kind, argv + ["--pretrained"])
    assert use_run_checkpoint(cfg) is None and cfg.ckpt_path == ""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("ckpt_save_dir: elsewhere\n")
    cfg = parse_args(kind, argv + ["-c", str(recipe)])
    assert use_run_checkpoint(cfg) is None and cfg.ckpt_path == ""  # the recipe's run folder holds nothing


def test_nothing_trained_is_todays_error(tmp_path):
    proc = _in(tmp_path, "validate.py", "--model", MODEL, "--num_samples", "4")
    assert_one_line_error(proc, f"no weights for {MODEL}: pass --pretrained (published weights) or --ckpt_path FILE")


# ---------------------------------------------------------------- the class list travels with the weights
def test_fine_tuned_folder_classes_are_saved_and_printed_by_infer(tmp_path):
    from mindcv_mobilenet.engine.trainer import train

    names = ["okapi", "red_teapot", "zebra crossing"]
    for split in ("train", "val"):
        for index, name in enumerate(names):
            write_good_class(str(tmp_path / "tree" / split / name), 4, seed=10 * index + (split == "val"))
    run = tmp_path / "run"
    train(parse_args("train", [
        "--model", "tf_mobilenet_v1_025", "--pretrained", "--dataset", "folder", "--data_dir", str(tmp_path / "tree"),
        "--image_resize", "32", "--batch_size", "4", "--epoch_size", "1", "--mode", "1", "--log_interval", "0",
        "--num_parallel_workers", "1", "--bn_calibration_images", "0", "--ckpt_save_dir", str(run)]))
    assert json.loads((run / "class_names.json").read_text()) == {"num_classes": 3, "class_names": names}
    proc = _in(tmp_path, "infer.py", "--model", "tf_mobilenet_v1_025", "--ckpt_save_dir", str(run),
               "--image_path", str(tmp_path / "tree" / "val" / "okapi"), "--topk", "3", "--mode", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [line.split("%", 1)[1].strip() for line in proc.stdout.splitlines() if "%" in line]
    assert len(printed) == 12 and {line.rsplit(" (", 1)[0] for line in printed} == set(names)
    assert f"class names: {run / 'class_names.json'}" in proc.stderr


def test_a_saved_list_of_imagenet_synsets_is_shown_with_imagenet_names(tmp_path):
    from mindcv_mobilenet.data import save_class_names
    from mindcv_mobilenet.inference.classes import imagenet_class_names, resolve_class_names

    save_class_names([f"n{i:08d}" for i in range(1000)], str(tmp_path))
    names, source = resolve_class_names(1000, "imagenet", ckpt_path=str(tmp_path / "m_best.ckpt"))
    assert names == imagenet_class_names() and names[0].startswith("tench") and "synsets" in source
    save_class_names([f"n{i:08d}" for i in range(10)], str(tmp_path))
    assert resolve_class_names(10, "imagenet", ckpt_path=str(tmp_path / "m_best.ckpt"))[0][0] == "n00000000"
