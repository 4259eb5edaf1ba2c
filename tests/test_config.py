"""The shared config parser: precedence, booleans, unknown keys, and every recipe in configs/."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from mindcv_mobilenet.config import OPTIONS_BY_NAME, Option, load_yaml, parse_args, str2bool
from mindcv_mobilenet.models import list_models
from mindcv_mobilenet.utils.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))
DEMO = os.path.join(REPO, "configs", "demo", "tf_mobilenet_v1_025_finetune.yaml")


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


@pytest.mark.parametrize("flag, key", [("--learning_rate", "lr"), ("--epochs", "epoch_size"),
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


def test_weight_decay_filter_folds_into_filter_bias_and_bn():
    assert parse_args("train", ["--weight_decay_filter", "disable"]).filter_bias_and_bn is False
    assert parse_args("train", ["--weight_decay_filter", "auto", "--filter_bias_and_bn", "False"]).filter_bias_and_bn


def test_validate_takes_train_recipe_but_keeps_its_own_keys():
    cfg = parse_args("validate", ["-c", os.path.join(REPO, "configs", "mobilenetv2", "mobilenet_v2_1.0_ascend.yaml")])
    assert cfg.model == "mobilenet_v2_100_224" and cfg.batch_size == 256
    assert not hasattr(cfg, "lr")


def test_extra_script_options():
    extra = [Option("passes", int, 5, "passes over each image", frozenset({"infer"})),
             Option("image", str, None, "image paths", frozenset({"infer"}), positional=True, nargs="+")]
    cfg = parse_args("infer", ["a.jpg", "b.jpg", "--passes", "3", "--model", "mobilenet_v1_025"], extra=extra)
    assert cfg.image == ["a.jpg", "b.jpg"] and cfg.passes == 3 and cfg.model == "mobilenet_v1_025"


def test_saved_config_loads_back(tmp_path):
    cfg = parse_args("train", ["--lr", "0.123", "--scale", "0.3", "1.0", "--color_jitter", "0.4"])
    path = cfg.save(str(tmp_path / "config.yaml"))
    again = parse_args("train", ["-c", path])
    assert {k: v for k, v in vars(again).items() if k != "config"} == {
        k: v for k, v in vars(cfg).items() if k != "config"}


def test_no_arguments_is_the_cpu_demo():
    from mindcv_mobilenet.config import PREPROCESSING_KEYS
    from mindcv_mobilenet.data.preprocessing import resolve_data_config

    default_cfg, demo_cfg = parse_args("train", []), parse_args("train", ["-c", DEMO])
    defaults, demo = vars(default_cfg), vars(demo_cfg)
    skip = {"config", *PREPROCESSING_KEYS}  # unset in the defaults ("the data set's"), spelled out in the recipe
    assert {k: v for k, v in demo.items() if k not in skip} == {k: v for k, v in defaults.items() if k not in skip}
    assert resolve_data_config(demo_cfg) == resolve_data_config(default_cfg)
    assert resolve_data_config(default_cfg).image_size == 96
    assert defaults["dataset"] == "cifar10_demo" and not defaults["distribute"] and defaults["pretrained"]
    # the packaged weights are the default only for the built-in model: another model starts from scratch
    assert not parse_args("train", ["--model", "mobilenet_v2_035"]).pretrained
    assert parse_args("train", ["--epoch_size", "1"]).pretrained
    assert not parse_args("train", ["--pretrained", "False"]).pretrained


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, REPO) for p in CONFIGS])
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
])
def test_published_recipe_values(name, expected):
    values = load_yaml(os.path.join(REPO, "configs", name))
    for key, value in expected.items():
        assert values[key] == pytest.approx(value) if isinstance(value, float) else values[key] == value, key


def test_recipes_are_plain_yaml_with_a_source_comment():
    for path in CONFIGS:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert text.startswith("#"), path  # where the values come from
        assert isinstance(yaml.safe_load(text), dict)
