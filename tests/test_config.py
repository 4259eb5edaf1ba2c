"""The shared config parser: precedence, booleans, unknown keys, and every recipe in configs/."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from helpers import REPO_ROOT

from mindcv_mobilenet.cli import KINDS, OPTIONS_BY_NAME, Option, load_yaml, parse_args
from mindcv_mobilenet.constants import program
from mindcv_mobilenet.engine.checkpoint_manager import write_run_config
from mindcv_mobilenet.models import get_model_config, list_models
from mindcv_mobilenet.utils.errors import ConfigError
from mindcv_mobilenet.utils.values import str2bool

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True))
DEMO = os.path.join(REPO_ROOT, "configs", "demo", "tf_mobilenet_v1_025_finetune.yaml")


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_precedence_defaults_yaml_command_line(tmp_path):
    path = _write(tmp_path, "lr: 0.5\nbatch_size: 16\nopt: adamw\n")
    cfg = parse_args("train", ["-c", path, "--lr", "0.25"])
    assert cfg.lr == 0.25  # command line beats the file
    assert cfg.batch_size == 16 and cfg.opt == "adamw"  # file beats the defaults
    assert cfg.momentum == OPTIONS_BY_NAME["momentum"].default  # default where neither says
    assert cfg.config == path


@pytest.mark.parametrize("text,expected", [("False", False), ("false", False), ("0", False), ("True", True),
                                           ("true", True), ("1", True)])
def test_booleans_on_the_command_line(text, expected):
    assert parse_args("train", ["--pretrained", text]).pretrained is expected
    assert parse_args("validate", ["--ema", text]).ema is expected


def test_bare_flag_means_true_and_yaml_booleans(tmp_path):
    assert parse_args("train", ["--pretrained"]).pretrained is True
    path = _write(tmp_path, "pretrained: False\nema: 1\nshuffle: 'false'\n")
    cfg = parse_args("train", ["-c", path])
    assert cfg.pretrained is False and cfg.ema is True and cfg.shuffle is False
    with pytest.raises(ValueError):
        str2bool("maybe")


def test_unknown_yaml_key_suggests_nearest(tmp_path):
    path = _write(tmp_path, "lr: 0.1\nwarmup_epoch: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'warmup_epoch'.*did you mean 'warmup_epochs'"):
        parse_args("train", ["-c", path])


def test_unknown_flag_suggests_nearest():
    with pytest.raises(ConfigError, match="unknown option --label_smooth.*did you mean 'label_smoothing'"):
        parse_args("train", ["--label_smooth", "0.1"])
    with pytest.raises(ConfigError, match="not used by this script"):
        parse_args("validate", ["--lr", "0.1"])


@pytest.mark.parametrize("flag, key", [("--learnin_rate", "lr"), ("--epochs", "epoch_size"),
                                       ("--optimizer", "opt")])
def test_other_trainers_names_point_to_mindcv_keys(flag, key):
    with pytest.raises(ConfigError, match=f"unknown option {flag}; did you mean '{key}'"):
        parse_args("train", [flag, "1"])


def test_bad_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="'lr'"):
        parse_args("train", ["--lr", "fast"])
    with pytest.raises(ConfigError, match="'opt' must be one of"):
        parse_args("train", ["--opt", "lbfgs"])
    with pytest.raises(ConfigError, match="'batch_size'"):
        parse_args("train", ["-c", _write(tmp_path, "batch_size: 3.5\n")])
    with pytest.raises(ConfigError, match="not found"):
        parse_args("train", ["-c", str(tmp_path / "missing.yaml")])
    with pytest.raises(ConfigError, match="either --resume"):
        parse_args("train", ["--resume", "a.ckpt", "--ckpt_path", "b.ckpt"])


def test_lists_none_and_aliases():
    cfg = parse_args("train", ["--scale", "0.2", "1.0", "--num_classes", "none", "--nesterov", "true",
                               "--multi_step_decay_milestones", "3", "6"])
    assert cfg.scale == [0.2, 1.0] and cfg.num_classes is None and cfg.use_nesterov is True
    assert cfg.multi_step_decay_milestones == [3, 6]


def test_every_name_of_the_input_size_sets_image_size(tmp_path, capsys):
    """image_size is the one name; mindcv's image_resize (its recipes' key), img_size and the model_zoo's resize set
    it on the command line and in a YAML file, and --help shows image_size first with its aliases."""
    spellings = [["--image_size", "48"], ["--image_resize", "48"], ["--img_size", "48"], ["--image-resize=48"],
                 ["image_resize=48"], ["--resize", "48"]]
    for i, text in enumerate(("image_resize: 48\n", "img_size: 48\n", "resize: 48\n", "image_size: 48\n")):
        path = tmp_path / f"recipe{i}.yaml"
        path.write_text(text)
        spellings.append(["-c", str(path)])
    for argv in spellings:
        cfg = parse_args("validate", argv)
        assert cfg.image_size == 48 and not hasattr(cfg, "image_resize"), argv
    with pytest.raises(ConfigError, match=r"bad value for 'image_size' \(or image_resize, img_size\)"):
        parse_args("validate", ["--img_size", "x"])  # the message names the spelling given
    with pytest.raises(SystemExit):
        parse_args("validate", ["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse's line breaks as spaces
    assert "--image_size IMAGE_SIZE, --image_resize IMAGE_SIZE, --img_size IMAGE_SIZE input resolution" in out, out
    assert "--resize RESIZE model_zoo: input resolution (with arch also the model's resolution) (-> image_size)" in out


def test_weight_decay_filter_folds_into_filter_bias_and_bn():
    assert parse_args("train", ["--weight_decay_filter", "disable"]).filter_bias_and_bn is False
    assert parse_args("train", ["--weight_decay_filter", "auto", "--filter_bias_and_bn", "False"]).filter_bias_and_bn


def test_validate_takes_train_recipe_but_keeps_its_own_keys():
    recipe = os.path.join(REPO_ROOT, "configs", "mobilenetv2", "mobilenet_v2_1.0_ascend.yaml")
    cfg = parse_args("validate", ["-c", recipe])
    assert cfg.model == "mobilenet_v2_100_224" and cfg.batch_size == 256
    assert not hasattr(cfg, "lr")


def test_extra_script_options():
    extra = [Option("passes", int, 5, "passes over each image", frozenset({"infer"})),
             Option("image", str, None, "image paths", frozenset({"infer"}), positional=True, nargs="+")]
    cfg = parse_args("infer", ["a.jpg", "b.jpg", "--passes", "3", "--model", "mobilenet_v1_025"], extra=extra)
    assert cfg.image == ["a.jpg", "b.jpg"] and cfg.passes == 3 and cfg.model == "mobilenet_v1_025"


def test_saved_config_loads_back(tmp_path):
    cfg = parse_args("train", ["--lr", "0.123", "--scale", "0.3", "1.0", "--color_jitter", "0.4"])
    path = write_run_config(vars(cfg), str(tmp_path / "config.yaml"))
    again = parse_args("train", ["-c", path])
    assert {k: v for k, v in vars(again).items() if k != "config"} == {
        k: v for k, v in vars(cfg).items() if k != "config"}


def test_no_arguments_is_the_cpu_demo():
    from mindcv_mobilenet.data.dataset import dataset_for_data_dir
    from mindcv_mobilenet.data.preprocessing import PREPROCESSING_KEYS, resolve_data_config

    default_cfg, demo_cfg = parse_args("train", []), parse_args("train", ["-c", DEMO])
    defaults, demo = vars(default_cfg), vars(demo_cfg)
    skip = {"config", *PREPROCESSING_KEYS}  # unset in the defaults ("the data set's"), spelled out in the recipe
    assert {k: v for k, v in demo.items() if k not in skip} == {k: v for k, v in defaults.items() if k not in skip}

    def resolved(cfg):  # as the trainer resolves them
        return resolve_data_config(cfg, get_model_config(cfg.model), default_dataset=dataset_for_data_dir(cfg.data_dir))

    assert resolved(demo_cfg) == resolved(default_cfg)
    assert resolved(default_cfg).image_size == 96 and resolved(default_cfg).dataset == "cifar10_demo"
    assert defaults["dataset"] is None and defaults["distribute"] is None and defaults["pretrained"]
    # the packaged weights are the default only for the built-in model: another model starts from scratch
    assert not parse_args("train", ["--model", "mobilenet_v2_035"]).pretrained
    assert parse_args("train", ["--epoch_size", "1"]).pretrained
    assert not parse_args("train", ["--pretrained", "False"]).pretrained


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_every_recipe_parses_for_every_script(path):
    for kind in ("train", "validate", "infer"):
        cfg = parse_args(kind, ["-c", path])
        assert cfg.model in list_models()


def test_every_model_has_an_imagenet_recipe():
    models = {load_yaml(p)["model"] for p in CONFIGS if load_yaml(p).get("dataset") == "imagenet"}
    canonical = {m for m in list_models() if not (m.startswith("mobilenet_v2_") and m.count("_") == 2)
                 and not (m.startswith("mobilenet_v1_") and m.count("_") == 3)
                 and not m.startswith("tf_")}  # tf_: imports of Google's weights (test_tf_import.py), no recipe
    # (mobilenet_v2_100 is the same model as mobilenet_v2_100_224; mindcv's V1 recipes are for the 224-px names only)
    assert canonical - models == set()


@pytest.mark.parametrize("name,expected", [
    # mindcv's published recipe values
    ("mobilenetv1/mobilenet_v1_1.0_ascend.yaml", dict(batch_size=64, epoch_size=200, lr=0.4, warmup_epochs=2,
                                                      weight_decay=3e-5, amp_level="O2", label_smoothing=0.1)),
    ("mobilenetv2/mobilenet_v2_1.0_ascend.yaml", dict(batch_size=256, epoch_size=300, lr=0.4, warmup_epochs=4,
                                                      weight_decay=4e-5, opt="momentum", scheduler="cosine_decay")),
    ("mobilenetv2/mobilenet_v2_0.75_ascend.yaml", dict(epoch_size=400, lr=0.3, weight_decay=3e-5)),
    ("mobilenetv2/mobilenet_v2_1.4_ascend.yaml", dict(epoch_size=300, lr=0.4, amp_level="O3")),
    ("mobilenetv3/mobilenet_v3_small_ascend.yaml", dict(batch_size=75, epoch_size=470, lr=0.77, weight_decay=2e-5,
                                                        color_jitter=0.4, amp_level="O3")),
    ("mobilenetv3/mobilenet_v3_large_ascend.yaml", dict(batch_size=75, epoch_size=420, lr=1.08, decay_epochs=416)),
    # the MobileNetV4 paper authors' (TensorFlow Model Garden's imagenet_mobilenetv4_*_tpu.yaml)
    ("mobilenetv4/mobilenet_v4_conv_small.yaml", dict(epoch_size=9623, lr=0.002, weight_decay=0.01, warmup_epochs=5,
                                                      opt="adamw", eps=1e-6, drop_rate=0.3, ema=True, image_size=224,
                                                      auto_augment="randaug-m9-n2")),
    ("mobilenetv4/mobilenet_v4_hybrid_large.yaml", dict(epoch_size=500, lr=0.01, min_lr=1e-5, weight_decay=0.2,
                                                        warmup_epochs=20, mixup=0.8, cutmix=1.0, cutmix_prob=0.3,
                                                        image_size=384, drop_rate=0.2)),
])
def test_published_recipe_values(name, expected):
    values = load_yaml(os.path.join(REPO_ROOT, "configs", name))
    for key, value in expected.items():
        assert values[key] == pytest.approx(value) if isinstance(value, float) else values[key] == value, key


def test_recipes_are_plain_yaml_with_a_source_comment():
    for path in CONFIGS:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert text.startswith("#"), path  # where the values come from
        assert isinstance(yaml.safe_load(text), dict)


# ---------------------------------------------------------------- the other scripts: one table, one parser
def test_export_convert_summary_doctor_read_their_keys_from_the_table():
    cfg = parse_args("export", ["--model", "mobilenet_v3_small", "--image_size", "48", "--file_format", "MINDIR",
                                "onnx", "--no_check", "--force", "False"])
    assert (cfg.model, cfg.image_size, cfg.file_format, cfg.no_check, cfg.force, cfg.batch_size, cfg.output) == (
        "mobilenet_v3_small_100", 48, ["MINDIR", "ONNX"], True, False, 1, "")
    assert not hasattr(cfg, "lr") and not hasattr(cfg, "backend")
    cfg = parse_args("convert", ["--model", "mobilenet_v2_100", "--input", "w.npz", "--output=w.ckpt",
                                 "--skip_padding_check", "--bn_eps", "1e-3", "--force"])
    assert (cfg.input, cfg.output, cfg.skip_padding_check, cfg.bn_eps, cfg.force, cfg.num_classes) == (
        "w.npz", "w.ckpt", True, 1e-3, True, None)
    cfg = parse_args("summary", ["--pattern", "mobilenet_v3*", "--markdown"])
    assert (cfg.pattern, cfg.markdown) == ("mobilenet_v3*", True) and not hasattr(cfg, "model")
    assert parse_args("doctor", ["--ld-library-path"]).ld_library_path is True  # the spelling the README quotes
    assert parse_args("doctor", ["--backends", "CPU", "GPU"]).backends == ["CPU", "GPU"]


def test_benchmark_options_go_through_the_same_parser(monkeypatch):
    monkeypatch.syspath_prepend(REPO_ROOT)
    from benchmark import BENCHMARK_OPTIONS

    def bench(*argv):
        return parse_args("benchmark", list(argv), extra=BENCHMARK_OPTIONS)

    cfg = bench("--data", "--data-root", "/data/a-b", "--workers", "1", "--batch-size", "8", "--image-size", "64",
                "--profile-repeats", "2", "--mindcv-path", "a:b", "--no-onnx", "True", "--json=/tmp/x-y.json")
    assert (cfg.data, cfg.data_root, cfg.workers, cfg.batch_size, cfg.image_size, cfg.profile_repeats) == (
        True, "/data/a-b", [1], 8, 64, 2)  # values keep their '-'
    assert (cfg.mindcv_path, cfg.no_onnx, cfg.json, cfg.train, cfg.no_mindcv) == ("a:b", True, "/tmp/x-y.json",
                                                                                 False, False)
    assert (bench().image_size, bench().batch_size, bench().infer_image_size) == (224, 64, None)
    with pytest.raises(ConfigError, match="unknown option --data_rot; did you mean 'data_root'"):
        bench("--data-rot", "x")
    assert bench("--torch_rounds", "3").torch_rounds == 3
    with pytest.raises(ConfigError, match="'torch_rounds': expected a positive integer"):
        bench("--torch_rounds", "0")
    with pytest.raises(ConfigError, match="'train_modes' must be one of 0, 1"):
        bench("--train-modes", "2")
    with pytest.raises(ConfigError, match="not used by this script"):
        bench("--lr", "0.1")


def test_other_scripts_check_like_train():
    with pytest.raises(ConfigError, match="unknown option --file_formt; did you mean 'file_format'"):
        parse_args("export", ["--model", "mobilenet_v1_025", "--file_formt", "ONNX"])
    with pytest.raises(ConfigError, match="'file_format' must be one of MINDIR, ONNX, not 'PNG'"):
        parse_args("export", ["--model", "mobilenet_v1_025", "--file_format", "png"])
    with pytest.raises(ConfigError, match="export.py needs --model"):
        parse_args("export", ["--ckpt_path", "a.ckpt"])
    with pytest.raises(ConfigError, match="python -m mindcv_mobilenet.convert needs --output, --input"):
        parse_args("convert", ["--model", "mobilenet_v2_100"])
    with pytest.raises(ConfigError, match="option --lr is not used by this script"):
        parse_args("convert", ["--lr", "0.1"])
    with pytest.raises(ConfigError, match="'force'.*boolean"):
        parse_args("convert", ["--model", "m", "--input", "i", "--output", "o", "--force", "maybe"])
    with pytest.raises(ConfigError, match="'backends' must be one of CPU, GPU, Ascend"):
        parse_args("doctor", ["--backends", "TPU"])


@pytest.mark.parametrize("kind, flag", [("export", "--file_format"), ("convert", "--skip_padding_check"),
                                        ("summary", "--markdown"), ("doctor", "--ld_library_path")])
def test_help_of_every_script(kind, flag, capsys):
    with pytest.raises(SystemExit) as done:
        parse_args(kind, ["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and f"usage: {program(kind)}" in out and flag in out
    if kind in ("export", "convert"):
        assert "(required)" in out  # --model


@pytest.mark.parametrize("command, flag, nearest", [
    (["export.py", "--model", "mobilenet_v1_025"], "--no-chek", "no_check"),
    (["-m", "mindcv_mobilenet.convert"], "--ouput", "output"),
    (["-m", "mindcv_mobilenet.summary"], "--markdwon", "markdown"),
    (["-m", "mindcv_mobilenet.doctor"], "--ld-libary-path", "ld_library_path"),
    (["benchmark.py", "--data"], "--data-rot", "data_root"),
])
def test_every_script_reports_a_bad_flag_in_one_line(command, flag, nearest):
    from helpers import assert_one_line_error

    if command[0].endswith(".py"):
        command = [os.path.join(REPO_ROOT, command[0]), *command[1:]]
    proc = subprocess.run([sys.executable, *command, flag, "x"], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=dict(os.environ, GLOG_v="3"), timeout=300)
    assert_one_line_error(proc, "unknown option --", f"did you mean '{nearest}'")


_COMMAND = re.compile(r"python (\S+\.py|-m mindcv_mobilenet\.\w+)(.*)")


def _documented_commands() -> list[tuple[str, str, list[str]]]:
    """(file, script kind, arguments) of every command of a package script quoted in a code block of the docs."""
    found = []
    for doc in ["README.md", "BENCHMARKS.md", *sorted(glob.glob(os.path.join(REPO_ROOT, "docs", "*.md")))]:
        with open(os.path.join(REPO_ROOT, doc), encoding="utf-8") as f:
            text = f.read().replace("\\\n", " ")
        for line in text.splitlines():
            match = _COMMAND.search(line) if line.startswith("    ") and "..." not in line else None
            if match:
                script, rest = match.groups()
                kind = script.rsplit(".", 1)[-1] if script.startswith("-m") else os.path.basename(script)[:-3]
                rest = rest.split("#")[0].split(")")[0].replace("[", "").replace("]", "")  # comment, $(...), [optional]
                if kind in KINDS:
                    found.append((os.path.basename(doc), kind, shlex.split(rest)))
    return found


_PLACEHOLDER = re.compile(r"^/path/to/")


def test_documented_commands_name_no_machine_local_path():
    """A quoted command names files relative to the repository (or ../shared, ../torchenv, exp/ scratch) or a
    /path/to/ placeholder: never an absolute path that exists on one machine only (/tmp/..., /work/...)."""
    local = [(doc, kind, arg) for doc, kind, argv in _documented_commands() for value in argv
             for arg in value.split(":") if arg.startswith(("/", "~")) and not _PLACEHOLDER.match(arg)]
    assert not local, local


def test_every_documented_command_parses(monkeypatch, tmp_path):
    """The flag spellings README, BENCHMARKS.md and docs/ quote (--data-root, --no_check, --file_format MINDIR ONNX,
    --ld-library-path...) all still parse, through the one parser. They parse in an empty folder that holds only the
    repository's configs/ (their -c files), so no checkpoint, run folder or data set left on this machine (a demo run's
    ckpt/, a scratch exp/) changes what is parsed."""
    os.symlink(os.path.join(REPO_ROOT, "configs"), tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(REPO_ROOT)
    from benchmark import BENCHMARK_OPTIONS

    commands = _documented_commands()
    quoted = {kind for _, kind, _ in commands}
    assert quoted >= {"train", "validate", "infer", "export", "convert", "doctor", "benchmark"}, quoted
    for doc, kind, argv in commands:
        try:
            parse_args(kind, argv, extra=BENCHMARK_OPTIONS if kind == "benchmark" else ())
        except ConfigError as err:
            pytest.fail(f"{doc}: {kind} {' '.join(argv)}: {err}")


_PARSE_AND_RECORD = """
import json, os, sys
from mindcv_mobilenet.cli import parse_args

parse_args("validate", ["--model", "mobilenet_v1_025"])  # once untraced: every lazy import is done
seen = []

def record(event, args):
    if event in ("open", "os.listdir", "os.scandir") and isinstance(args[0], (str, bytes, os.PathLike)):
        seen.append([event, os.fsdecode(args[0])])

real_stat = os.stat

def traced_stat(path, *args, **kwargs):
    if isinstance(path, (str, bytes, os.PathLike)):
        seen.append(["stat", os.fsdecode(path)])
    return real_stat(path, *args, **kwargs)

sys.addaudithook(record)
os.stat = traced_stat  # os.path.isfile/isdir/exists go through it (no audit event of their own)
for kind, argv in json.loads(sys.argv[1]):
    parse_args(kind, argv)
print("SEEN " + json.dumps(seen))
"""


def test_parsing_reads_only_the_config_file(tmp_path):
    """The parser only parses: given a -c file, a checkpoint in a run folder with its config.yaml and a data_dir of
    CIFAR-10 batch files, the -c file is the one file it opens or looks at (in a fresh interpreter, traced by an audit
    hook and os.stat). The run's preprocessing and the data set are decided later, by their owners."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: mobilenet_v1_025\nbatch_size: 4\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("dataset: cifar10_demo\nimage_resize: 48\n")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("data_batch_1.bin", "test_batch.bin"):
        (data / name).write_bytes(b"")
    common = ["-c", str(recipe), "--ckpt_path", str(run / "m.ckpt")]
    calls = [["train", common + ["--data_dir", str(data)]], ["validate", common + ["--data_dir", str(data)]],
             ["infer", common + ["--image_path", str(tmp_path / "a.jpg")]], ["export", common]]
    proc = subprocess.run([sys.executable, "-c", _PARSE_AND_RECORD, json.dumps(calls)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.split("SEEN ", 1)[1])
    opened = {path for event, path in seen if event == "open"}
    looked_at = {path for _, path in seen if path.startswith(str(tmp_path))}
    assert opened == looked_at == {str(recipe)}
