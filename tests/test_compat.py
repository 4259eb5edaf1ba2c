"""The MindSpore model_zoo's and mindcv's MobileNet command lines (issue 10) run as written.

Each command of the issue runs end to end on local data (a small ImageNet-layout folder, the CIFAR-10 binaries, a
folder of images), with only flags added that shorten the run (``--mode 1`` skips graph compilation, ``--num_samples``,
``--batch_size``, ``--epoch_size 1``), a weights flag where the command has none (validate/infer need weights) and an
output folder to read the run's config from. What each resolves to is asserted on the parsed config. Offline is a
proxy on a closed local port, so ``--pretrained`` ends in the download error at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys

import pytest
import yaml
from helpers import (
    REPO_ROOT,
    assert_one_line_error,
    random_checkpoint,
    run_script,
    shared_path,
    write_good_class,
)

import mindcv_mobilenet as mm
from mindcv_mobilenet.cli import OPTIONS, OPTIONS_BY_NAME, load_yaml, parse_args
from mindcv_mobilenet.cli.foreign import FOREIGN_KEYS
from mindcv_mobilenet.data.dataset import dataset_for_data_dir
from mindcv_mobilenet.data.preprocessing import resolve_data_config
from mindcv_mobilenet.engine.distributed import launched_rank, launched_ranks, wants_data_parallel
from mindcv_mobilenet.inference.loading import training_run_config
from mindcv_mobilenet.utils.errors import ConfigError

SHORT = ["--mode", "1", "--num_samples", "4", "--batch_size", "2"]


def _validate(argv: list[str]):
    """(config, evaluation settings) as validate.py resolves them."""
    cfg = parse_args("validate", argv)
    return cfg, resolve_data_config(cfg, mm.get_model_config(cfg.model), training_run_config(cfg),
                                    default_dataset=dataset_for_data_dir(cfg.data_dir))


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    """./dataset/imagenet: train/ and val/ with two classes of small JPEGs."""
    root = tmp_path_factory.mktemp("dataset") / "imagenet"
    for split in ("train", "val"):
        for index, name in enumerate(("n01440764", "n01443537")):
            write_good_class(str(root / split / name), 3, seed=index + 1)
    return root


@pytest.fixture
def offline(monkeypatch):
    """Every download goes to a closed port on 127.0.0.1 (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _run_config(run_dir) -> dict:
    with open(run_dir / "config.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


# ------------------------------------------------------------------ the commands, end to end
def test_model_zoo_v2_train(imagenet_dir, tmp_path):
    command = ["--arch", "mobilenetv2", "--alpha", "1.0", "--resize", "224", "--data_url", str(imagenet_dir)]
    cfg = parse_args("train", command)
    assert (cfg.model, cfg.image_size, cfg.data_dir, cfg.dataset) == (
        "mobilenet_v2_100_224", 224, str(imagenet_dir), None)
    assert dataset_for_data_dir(cfg.data_dir) == "imagenet"  # what the unset data set means for that folder
    proc = run_script("train.py", *command, *SHORT, "--epoch_size", "1", "--ckpt_save_dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = _run_config(tmp_path / "run")
    assert (saved["model"], saved["image_size"], saved["dataset"]) == ("mobilenet_v2_100_224", 224, "imagenet")
    assert (tmp_path / "run" / "mobilenet_v2_100_224-1_2.ckpt").is_file()


def test_model_zoo_v2_validate_pretrained_offline(imagenet_dir, offline):
    command = ["--arch", "mobilenetv2", "--alpha", "0.75", "--resize", "192", "--pretrained", "True", "--data_url",
               str(imagenet_dir)]
    cfg, settings = _validate(command)
    assert cfg.model == "mobilenet_v2_075_192" and cfg.pretrained is True and cfg.data_dir == str(imagenet_dir)
    assert (settings.image_size, settings.crop_pct, settings.dataset) == (192, 0.875, "imagenet")
    proc = run_script("validate.py", *command)
    assert_one_line_error(proc, "cannot download", "mobilenet_v2_075-bd7bd4c4.ckpt", "place it at")
    assert "trained at 224 px" in proc.stderr  # the 192-px model loads the width's 224-px weights, and says so


def test_model_zoo_v3_train(imagenet_dir, tmp_path):
    command = ["--model", "mobilenet_v3_small", "--data_url", str(imagenet_dir), "--epoch_size", "120"]
    cfg = parse_args("train", command)
    assert (cfg.model, cfg.epoch_size, cfg.data_dir, cfg.dataset) == (
        "mobilenet_v3_small_100", 120, str(imagenet_dir), None)
    assert dataset_for_data_dir(cfg.data_dir) == "imagenet"
    assert "mobilenet_v3_small" not in mm.list_models()
    proc = run_script("train.py", *command, *SHORT, "--epoch_size", "1", "--ckpt_save_dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("note: model mobilenet_v3_small is mobilenet_v3_small_100") == 1
    assert _run_config(tmp_path / "run")["model"] == "mobilenet_v3_small_100"


@pytest.fixture(scope="module")
def v3_small_ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.getbasetemp(), "mobilenet_v3_small_100", 2, seed=11)


def test_model_zoo_v3_validate(imagenet_dir, v3_small_ckpt):
    command = ["--model", "mobilenet_v3_small", "--data_url", str(imagenet_dir)]
    cfg, settings = _validate(command)
    assert cfg.model == "mobilenet_v3_small_100" and cfg.data_dir == str(imagenet_dir)
    assert (settings.image_size, settings.crop_pct) == (224, 0.875)
    proc = run_script("validate.py", *command, "--checkpoint_path", str(v3_small_ckpt), *SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mobilenet_v3_small_100: Top-1" in proc.stdout and "images 4" in proc.stdout
    assert "imagenet transforms at 224 px, crop_pct 0.875" in proc.stderr


def test_model_zoo_v3_sequence_evaluates_what_training_wrote(imagenet_dir, tmp_path):
    """The seeds' sequence as written (issue 22): train.py, then validate.py and infer.py naming no checkpoint, from
    the same folder: they use ./ckpt/mobilenet_v3_small_100_best.ckpt, with one note line naming it, at the run's
    preprocessing, and infer.py prints the run's class folders."""
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "imagenet").symlink_to(imagenet_dir)
    shutil.copytree(imagenet_dir / "val" / "n01440764", tmp_path / "infer")

    def run(script, *args):
        return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env=dict(os.environ, GLOG_v="3", PYTHONWARNINGS="ignore"))

    model, data = ["--model", "mobilenet_v3_small"], ["--data_url", "./dataset/imagenet"]
    proc = run("train.py", *model, *data, *SHORT, "--epoch_size", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    used = "note: no --ckpt_path or --pretrained: using ./ckpt/mobilenet_v3_small_100_best.ckpt"
    proc = run("validate.py", *model, *data, *SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(used) == 1 and "mobilenet_v3_small_100: Top-1" in proc.stdout
    assert "imagenet transforms at 224 px, crop_pct 0.875" in proc.stderr
    proc = run("infer.py", *model, "--data_url", "./infer", "--mode", "1", "--topk", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(used) == 1
    top = [line.split("%", 1)[1].strip() for line in proc.stdout.splitlines() if "%" in line]
    assert len(top) == 3 and all(name.split(" (")[0] in ("n01440764", "n01443537") for name in top)


def test_model_zoo_v3_infer(imagenet_dir, v3_small_ckpt, tmp_path):
    images = tmp_path / "infer"
    shutil.copytree(imagenet_dir / "val" / "n01440764", images)
    command = ["--model", "mobilenet_v3_small", "--data_url", str(images)]
    cfg = parse_args("infer", command)
    assert cfg.model == "mobilenet_v3_small_100" and cfg.image_path == [str(images)]
    proc = run_script("infer.py", *command, "--checkpoint_path", str(v3_small_ckpt), "--mode", "1", "--topk", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len([line for line in proc.stdout.splitlines() if line.startswith(str(images))]) == 3


def test_mindcv_v1_validate_pretrained_offline(imagenet_dir, offline):
    command = ["--model=mobilenet_v1_100_224", "--dataset=imagenet", "--val_split=val", "--pretrained"]
    cfg, settings = _validate(command)
    assert (cfg.model, cfg.dataset, cfg.val_split, cfg.pretrained) == ("mobilenet_v1_100_224", "imagenet", "val", True)
    assert settings.image_size == 224
    proc = run_script("validate.py", *command, "--data_dir", str(imagenet_dir))
    assert_one_line_error(proc, "cannot download", "mobilenet_v1_100-91c7b206.ckpt")


def test_mindcv_v1_validate_checkpoint(imagenet_dir, tmp_path):
    ckpt = tmp_path / "ckpt" / "mobilenet_v1_100_224-200_2502.ckpt"
    ckpt.parent.mkdir()
    shutil.copy(random_checkpoint(tmp_path, "mobilenet_v1_100_224", 2, seed=12), ckpt)
    command = ["--model=mobilenet_v1_100_224", "--dataset=imagenet", "--val_split=val", f"--ckpt_path={ckpt}"]
    cfg, settings = _validate(command)
    assert (cfg.model, cfg.ckpt_path, settings.image_size) == ("mobilenet_v1_100_224", str(ckpt), 224)
    proc = run_script("validate.py", *command, "--data_dir", str(imagenet_dir), *SHORT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mobilenet_v1_100_224: Top-1" in proc.stdout


def test_mindcv_v1_finetune_cifar10_offline(offline):
    command = ["--model=mobilenet_v1_100_224", "--pretrained", "--opt=momentum", "--lr=0.001", "dataset=cifar10",
               "--num_classes=10", "--dataset_download"]
    cfg = parse_args("train", command)
    assert (cfg.model, cfg.pretrained, cfg.opt, cfg.lr, cfg.dataset, cfg.num_classes, cfg.dataset_download) == (
        "mobilenet_v1_100_224", True, "momentum", 0.001, "cifar10", 10, True)
    # no CIFAR-10 in the (test) cache: the data set's download is the first thing that needs the network
    assert_one_line_error(run_script("train.py", *command), "cannot download", "cifar-10-binary.tar.gz")


def test_mindcv_v1_finetune_reaches_the_weights_download(offline, tmp_path):
    """The same command on the local CIFAR-10 binaries, less --dataset_download (the shared copy lacks batches 4
    and 5, which would be downloaded), ends at the published weights' download."""
    cifar = shared_path("data", "cifar-10-batches-bin")
    proc = run_script("train.py", "--model=mobilenet_v1_100_224", "--pretrained", "--opt=momentum", "--lr=0.001",
                      "dataset=cifar10", "--num_classes=10", f"data_dir={cifar}", "--val_while_train", "False",
                      "--ckpt_save_dir", str(tmp_path / "run"))
    assert_one_line_error(proc, "cannot download", "mobilenet_v1_100-91c7b206.ckpt")


# ------------------------------------------------------------------ the key table
def test_model_zoo_keys_on_the_command_line():
    cfg = parse_args("train", ["--run_distribute", "False", "--smooth_factor", "0.2", "--max_lr", "0.4",
                               "--min_lr", "0.001", "--lr_decay_mode", "cosine_decay_lr", "--decay_epoch", "150",
                               "--num_parallel_workers", "3", "--keep_checkpoint_max", "5", "--ckpt_save_dir", "out",
                               "--device_target", "CPU", "--epoch_size", "200", "--repeat_num", "1",
                               "--resize", "192", "--pretrained", "./ckpt/x.ckpt"])
    assert (cfg.distribute, cfg.label_smoothing, cfg.lr, cfg.min_lr) == (False, 0.2, 0.4, 0.001)
    assert (cfg.scheduler, cfg.lr_epoch_stair, cfg.decay_epochs) == ("cosine_decay", True, 150)
    assert (cfg.num_parallel_workers, cfg.keep_checkpoint_max, cfg.ckpt_save_dir) == (3, 5, "out")
    assert (cfg.device_target, cfg.epoch_size, cfg.image_size) == ("CPU", 200, 192)
    assert cfg.pretrained is False and cfg.ckpt_path == "./ckpt/x.ckpt"  # the V3 zoo's checkpoint-path form


def test_model_zoo_keys_in_yaml(tmp_path, capsys):
    path = tmp_path / "zoo.yaml"
    path.write_text("arch: mobilenetv1\nalpha: 0.5\nresize: 160\ndata_url: /data/imagenet\nrun_distribute: True\n"
                    "lr_decay_mode: steps\nmilestone: [30, 60, 90]\nlearning_rates: [0.1, 0.01, 0.001]\n"
                    "dataset_sink_mode: True\npretrained: False\n")
    cfg = parse_args("train", ["-c", str(path), "--max_lr", "0.2"])  # the command line still wins
    assert (cfg.model, cfg.image_size, cfg.data_dir, cfg.distribute) == (
        "mobilenet_v1_050_160", 160, "/data/imagenet", True)
    assert (cfg.scheduler, cfg.multi_step_decay_milestones, cfg.decay_rate, cfg.lr) == (
        "multi_step_decay", [30, 60], 0.1, 0.2)
    notes = capsys.readouterr().err.splitlines()
    assert notes == ["note: milestone: read as epochs after warmup (MindSpore's piecewise_constant_lr counts steps)",
                     "note: dataset_sink_mode True: batches go through MindSpore's device queue on GPU/Ascend; on CPU "
                     "steps are driven from Python (same results)"]
    assert load_yaml(str(path), list(OPTIONS), kind="infer")["image_path"] == ["/data/imagenet"]
    cfg = parse_args("infer", ["-c", str(path)])
    assert cfg.image_path == ["/data/imagenet"] and cfg.model == "mobilenet_v1_050_160"


def test_bare_key_value_gets_the_same_checks():
    assert parse_args("train", ["dataset=cifar10", "lr=0.5", "data_url=/d"]).lr == 0.5
    with pytest.raises(ConfigError, match="'dataset' must be one of"):
        parse_args("train", ["dataset=mnist"])
    with pytest.raises(ConfigError, match="--max_lr is not used by this script"):
        parse_args("validate", ["max_lr=0.1"])
    with pytest.raises(ConfigError, match="unknown option"):
        parse_args("train", ["not_a_key=1"])


@pytest.mark.parametrize("argv,message", [
    (["--arch", "mobilenetv2", "--alpha", "0.6"], "no width 0.6: registered widths are 0.35, 0.5, 0.75, 1, 1.3, 1.4"),
    (["--arch", "mobilenetv1", "--resize", "96"], "registered at 128, 160, 192, 224 px, not at resize 96"),
    (["--arch", "mobilenetv3", "--resize", "192"], "registered at 224 px, not at resize 192"),
    (["--arch", "resnet50"], "unknown arch 'resnet50': use one of mobilenetv1"),
    (["--alpha", "0.5"], "'alpha' picks a width of --arch"),
    (["--max_lr", "0.1", "--lr", "0.2"], "'max_lr' sets 'lr', which is also given"),
    (["--data_url", "/a", "--data_dir", "/b"], "'data_url' sets 'data_dir'"),
    (["--lr_decay_mode", "poly"], "unknown lr_decay_mode 'poly'"),
    (["--learning_rates", "0.1", "0.05", "0.001", "--milestone", "10", "20"], "do not fall by one factor"),
    (["--learning_rates", "0.1", "0.01"], "learning_rates needs milestone"),
    (["--repeat_num", "2"], "repeat_num 2 is not supported"),
    (["--run_distribute", "maybe"], "bad value for 'distribute'"),
])
def test_what_cannot_be_read_is_one_error(argv, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_args("train", argv)


def test_arch_picks_every_registered_variant():
    for arch, alpha, resize, name in [("mobilenetv1", 0.25, 128, "mobilenet_v1_025_128"),
                                      ("mobilenetv1", 1.0, None, "mobilenet_v1_100_224"),
                                      ("mobilenetv2", 1.4, 96, "mobilenet_v2_140_96"),
                                      ("mobilenetv3", 0.75, None, "mobilenet_v3_large_075"),
                                      ("mobilenetv3_small", 1.0, 224, "mobilenet_v3_small_100")]:
        argv = ["--arch", arch, "--alpha", str(alpha)] + (["--resize", str(resize)] if resize else [])
        cfg = parse_args("validate", argv)
        assert cfg.model == name and mm.is_model(name)
        assert mm.get_model_config(name).image_size == (resize or 224)


def test_aliases_resolve_with_one_info_line_and_are_not_listed(caplog, monkeypatch):
    assert "mobilenet_v3_large" not in mm.list_models() and mm.is_model("mobilenet_v3_large")
    # (the scripts' logging setup, run in-process by other modules, stops this logger propagating to pytest's)
    monkeypatch.setattr(logging.getLogger("mindcv_mobilenet"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="mindcv_mobilenet"):
        model = mm.create_model("mobilenet_v3_large", num_classes=3)
    assert model.model_name == "mobilenet_v3_large_100"
    assert [r.getMessage() for r in caplog.records] == ["model mobilenet_v3_large is mobilenet_v3_large_100"]


def test_several_ranks_mean_data_parallel_unless_told(monkeypatch, capsys):
    """The parser leaves an unset distribute None; the engine decides (several ranks started: data parallel), with one
    note. Notes, the parser's and the engine's, come from rank 0 only: once per launch."""
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "8")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "0")
    assert (launched_ranks(), launched_rank()) == (8, 0)
    cfg = parse_args("train", ["--model", "mobilenet_v3_small"])
    assert cfg.distribute is None and "note: model mobilenet_v3_small is" in capsys.readouterr().err
    assert wants_data_parallel(cfg.distribute) is True
    assert "note: started as 8 ranks and distribute unset: distribute True (data parallel)" in capsys.readouterr().err
    assert parse_args("train", ["--run_distribute", "False"]).distribute is False
    assert wants_data_parallel(False) is False and wants_data_parallel(None, {}) is False
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert wants_data_parallel(parse_args("train", ["--model", "mobilenet_v3_small"]).distribute) is True
    assert capsys.readouterr().err == ""


def test_every_foreign_key_has_a_target_of_this_project():
    targets = {k.target for k in FOREIGN_KEYS.values()} | {k.infer_target for k in FOREIGN_KEYS.values()}
    assert targets - {None, "image_path"} <= set(OPTIONS_BY_NAME)
    assert not set(FOREIGN_KEYS) & set(OPTIONS_BY_NAME)  # a foreign name never shadows one of ours


def test_learning_rate_is_lr_and_misspellings_point_to_lr(tmp_path):
    """The model_zoo's ``learning_rate`` sets ``lr`` (command line and YAML, with lr's checks); a misspelt key is
    matched against every name a key answers to, foreign ones included, and the key itself is suggested."""
    assert parse_args("train", ["--learning_rate", "0.3"]).lr == 0.3
    recipe = tmp_path / "zoo.yaml"
    recipe.write_text("learning_rate: 0.2\n")
    assert parse_args("train", ["-c", str(recipe)]).lr == 0.2
    with pytest.raises(ConfigError, match="'learning_rate' sets 'lr', which is also given"):
        parse_args("train", ["--learning_rate", "0.1", "--lr", "0.2"])
    with pytest.raises(ConfigError, match="bad value for 'lr'"):
        parse_args("train", ["--learning_rate", "fast"])
    with pytest.raises(ConfigError, match="--learning_rate is not used by this script"):
        parse_args("validate", ["--learning_rate", "0.1"])
    for flag in ("--learnin_rate", "--learning-rat", "--learning_rte"):
        with pytest.raises(ConfigError, match=f"unknown option {flag.replace('-rat', '_rat')}; did you mean 'lr'"):
            parse_args("train", [flag, "0.1"])
    recipe.write_text("learnin_rate: 0.2\n")
    with pytest.raises(ConfigError, match="unknown key 'learnin_rate'; did you mean 'lr'"):
        parse_args("train", ["-c", str(recipe)])
    with pytest.raises(ConfigError, match="unknown option --nesterv; did you mean 'use_nesterov'"):  # an alias's key
        parse_args("train", ["--nesterv", "True"])
