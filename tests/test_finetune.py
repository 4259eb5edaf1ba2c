"""Fine-tuning: BatchNorm unfolding, frozen layers, layer decay, cached-feature head training, features_only."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from helpers import converted_mnv2, imagenet_samples, randomize
from mindspore import Tensor, nn
from reference import reference_preprocess

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.engine.finetune import (
    FeatureCache,
    HeadOnFeatures,
    freeze_backbone,
    layer_ids,
    layer_lr_scales,
)
from mindcv_mobilenet.engine.loss import CrossEntropySmooth
from mindcv_mobilenet.engine.optim import create_optimizer
from mindcv_mobilenet.engine.train_step import TrainStep
from mindcv_mobilenet.engine.trainer import train
from mindcv_mobilenet.models import create_model
from mindcv_mobilenet.models.features import REDUCTIONS
from mindcv_mobilenet.models.fuse import conv_bn_pairs, folded_pairs, fuse_bn, unfold_bn
from mindcv_mobilenet.utils.checkpoint import read_checkpoint, save_checkpoint
from mindcv_mobilenet.utils.errors import ConfigError, UserError

SMALL = "mobilenet_v2_035"


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, 3, size, size)).astype(np.float32)


def _folded_copy(model: nn.Cell, name: str) -> nn.Cell:
    """A new ``name`` model holding ``model``'s weights with BatchNorm folded in, loaded as a converter loads them:
    every BN the identity plus the folded bias (gamma 1, beta = bias, mean 0, var 1 - eps)."""
    fused = {cell.weight.name: cell for _, cell in fuse_bn(model).cells_and_names() if isinstance(cell, nn.Conv2d)}
    target = create_model(name, num_classes=model.num_classes, drop_rate=0.0)
    for conv, bn in conv_bn_pairs(target):
        folded = fused[conv.weight.name]
        conv.weight.set_data(Tensor(folded.weight.asnumpy()))
        bn.gamma.set_data(Tensor(np.ones(bn.num_features, np.float32)))
        bn.beta.set_data(Tensor(folded.bias.asnumpy()))
        bn.moving_mean.set_data(Tensor(np.zeros(bn.num_features, np.float32)))
        bn.moving_variance.set_data(Tensor(np.full(bn.num_features, 1.0 - bn.eps, np.float32)))
    for (_, src), (_, dst) in zip(model.parameters_and_names(), target.parameters_and_names(), strict=True):
        if dst.name.startswith("classifier"):
            dst.set_data(Tensor(src.asnumpy()))
    return target


def _forward(model: nn.Cell, x: np.ndarray, training: bool) -> np.ndarray:
    model.set_train(training)
    out = model(Tensor(x)).asnumpy()
    model.set_train(False)
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def pynative():
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=previous)


def test_unfold_keeps_inference_logits_and_makes_training_mode_agree(pynative):
    source = create_model(SMALL, num_classes=10, drop_rate=0.0)
    randomize(source, seed=1)
    folded = _folded_copy(source, SMALL)
    calib = _images(32, seed=2)
    assert len(folded_pairs(folded)) == len(conv_bn_pairs(folded)) > 0
    before = _forward(folded, calib, training=False)
    np.testing.assert_allclose(before, _forward(source, calib, training=False), rtol=1e-4, atol=1e-4)
    # (a training-mode forward updates the moving statistics: measure it on a copy)
    gap_folded = _rel(_forward(_folded_copy(source, SMALL), calib, training=True), before)

    assert unfold_bn(folded, [calib[:16], calib[16:]]) == len(conv_bn_pairs(folded))
    assert not folded_pairs(folded)
    after = _forward(folded, calib, training=False)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)
    # a training-mode forward on the calibration images normalises with the statistics it was given
    gap_unfolded = _rel(_forward(folded, calib, training=True), after)
    assert gap_unfolded < 0.05 < gap_folded, (gap_unfolded, gap_folded)


def test_unfold_on_real_folded_weights(pynative, tmp_path_factory):
    """The shared torchvision MobileNetV2 (BatchNorm folded): unfolding keeps its logits, training mode follows."""
    ckpt = converted_mnv2(tmp_path_factory.getbasetemp())  # shared with the validate/infer tests
    samples = imagenet_samples(every=40)
    x = np.stack([reference_preprocess(path, size=96, crop_pct=1.0) for path, _ in samples[:24]])
    model = create_model("mobilenet_v2_100", checkpoint_path=str(ckpt), drop_rate=0.0)
    assert len(folded_pairs(model)) == 52
    before = _forward(model, x, training=False)
    unfold_bn(model, [x])
    np.testing.assert_allclose(_forward(model, x, training=False), before, rtol=1e-3, atol=1e-3)
    training = _forward(model, x, training=True)
    assert _rel(training, before) < 0.1
    assert (training.argmax(1) == before.argmax(1)).mean() >= 0.9


def test_cached_head_training_equals_training_through_the_frozen_backbone(pynative):
    x, labels = _images(8, seed=3), np.arange(8, dtype=np.int32) % 4
    losses, heads = [], []
    for cached in (False, True):
        ms.set_seed(0)
        model = create_model(SMALL, num_classes=4, drop_rate=0.0)
        randomize(model, seed=4)
        freeze_backbone(model)
        batches = [(Tensor(x[i:i + 4]), Tensor(labels[i:i + 4])) for i in (0, 4)]
        if cached:
            network = HeadOnFeatures(model)
            batches = list(FeatureCache(model, iter(batches)).batches(4))
        else:
            network = model
        optimizer = create_optimizer(model.trainable_params(), "momentum", 0.1, 1e-4)
        step = TrainStep(nn.WithLossCell(network, CrossEntropySmooth(0.1)), optimizer)
        step.set_train(True)
        losses.append([float(step(images, y)[0].asnumpy()) for _ in range(2) for images, y in batches])
        heads.append(model.get_classifier().weight.asnumpy())
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    np.testing.assert_allclose(heads[0], heads[1], rtol=1e-5, atol=1e-5)  # cached features: BN folded, rounding


def _tiny_run(run_dir, *extra: str):
    return parse_args("train", [
        "--model", "mobilenet_v1_025", "--num_samples", "32", "--batch_size", "16", "--epoch_size", "1",
        "--log_interval", "0", "--ckpt_save_dir", str(run_dir), "--num_parallel_workers", "1", "--opt", "momentum",
        "--lr", "0.05", "--warmup_epochs", "0", "--weight_decay", "1e-4", "--val_while_train", "False", *extra,
    ])


@pytest.fixture(scope="module")
def imagenet_checkpoint(tmp_path_factory):
    source = create_model("mobilenet_v1_025")
    randomize(source, seed=5)
    return source, save_checkpoint(source, str(tmp_path_factory.mktemp("src") / "imagenet.ckpt"))


@pytest.mark.parametrize("flag", ["freeze_bn", "freeze_backbone"])
def test_frozen_parameters_do_not_change(flag, imagenet_checkpoint, tmp_path):
    source, path = imagenet_checkpoint
    summary = train(_tiny_run(tmp_path / "run", "--ckpt_path", path, f"--{flag}", "True"))
    trained = {k: v.asnumpy() for k, v in read_checkpoint(summary["checkpoint"]).items()}
    changed = {p.name for p in source.get_parameters()
               if not p.name.startswith("classifier") and not np.array_equal(trained[p.name], p.asnumpy())}
    frozen_by_flag = {p.name for p in source.get_parameters() if ".moving_" in p.name or p.name.endswith(
        (".gamma", ".beta"))}
    if flag == "freeze_bn":
        assert changed and not changed & frozen_by_flag  # convolutions train, BatchNorm stays as loaded
    else:
        assert not changed  # only the classifier trains
    assert not np.allclose(trained["classifier.weight"], 0.0)


def test_freeze_backbone_without_weights_warns(tmp_path, capsys):
    train(_tiny_run(tmp_path / "run", "--freeze_backbone", "True"))
    assert "freeze_backbone without pretrained or ckpt_path weights trains a classifier on randomly initialised" \
        in capsys.readouterr().out


def test_trainer_unfolds_folded_checkpoints(tmp_path, capsys, pynative):
    source = create_model("mobilenet_v1_025", drop_rate=0.0)
    randomize(source, seed=6)
    folded = _folded_copy(source, "mobilenet_v1_025")
    path = save_checkpoint(folded, str(tmp_path / "folded.ckpt"))
    summary = train(_tiny_run(tmp_path / "run", "--ckpt_path", path, "--lr", "0", "--scheduler", "constant",
                              "--bn_calibration_images", "16"))
    assert "BatchNorm unfolded in 27 layers from the statistics of 16 images" in capsys.readouterr().out
    trained = read_checkpoint(summary["checkpoint"])
    assert not np.allclose(trained["features.1.moving_mean"].asnumpy(), 0.0)


def test_layer_decay_scales_and_config_check():
    model = create_model("mobilenet_v1_025", num_classes=10)
    params = model.trainable_params()
    ids, depth = layer_ids(params)
    assert ids[0] == 0 and ids[-1] == depth == 16  # stem conv (features.0-2), 13 blocks, classifier
    scales = dict(zip([p.name for p in params], layer_lr_scales(params, 0.5), strict=True))
    assert scales["classifier.weight"] == 1.0 and scales["features.15.0.weight"] == 0.5
    assert scales["features.0.weight"] == 0.5 ** 16
    optimizer = create_optimizer(params, "momentum", np.full(4, 0.1), 1e-4, lr_scales=layer_lr_scales(params, 0.5))
    assert optimizer.is_group_lr
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(ConfigError, match="layer_decay must be in"):
            parse_args("train", ["--layer_decay", bad])


@pytest.mark.parametrize("name", ["mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_small_075",
                                  "mobilenet_v3_large_075"])
def test_features_only_maps_at_every_stride(name):
    ms.set_context(mode=ms.GRAPH_MODE)
    backbone = create_model(name, features_only=True)
    maps = backbone(Tensor(_images(2, size=64)))
    assert [info.reduction for info in backbone.feature_info] == list(REDUCTIONS)
    assert [m.shape for m in maps] == [(2, info.num_chs, 64 // info.reduction, 64 // info.reduction)
                                       for info in backbone.feature_info]
    assert not [p.name for p in backbone.get_parameters() if not p.name.startswith("features.")]


def test_features_only_loads_checkpoints_and_matches_the_full_model(tmp_path):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    full = create_model(SMALL, num_classes=10)
    randomize(full, seed=7)
    path = save_checkpoint(full, str(tmp_path / "cifar.ckpt"))
    backbone = create_model(SMALL, features_only=True, out_indices=(2, 4), checkpoint_path=path)
    assert [info.reduction for info in backbone.feature_info] == [8, 32]
    x = Tensor(_images(2))
    full.set_train(False)
    backbone.set_train(False)
    np.testing.assert_allclose(backbone(x)[-1].asnumpy(), full.forward_features(x).asnumpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match=r"out_indices \(5,\) not valid; .*4 \(stride 32\)"):
        create_model(SMALL, features_only=True, out_indices=(5,))
