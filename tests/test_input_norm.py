"""normalize_on_device: uint8 batches from the loader, normalised by the network's first op, give what the host's
Normalize gives: the same images, the same parameter names, the same training run."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from helpers import iterate
from mindspore import nn

from mindcv_mobilenet.cli import parse_args
from mindcv_mobilenet.data import create_dataset, create_loader, create_transforms
from mindcv_mobilenet.engine.trainer import train
from mindcv_mobilenet.models import create_model
from mindcv_mobilenet.models.input_norm import NormalizedInput
from mindcv_mobilenet.utils.errors import ConfigError


def test_uint8_batches_normalised_in_the_network_match_the_host(messy_tree):
    batches = {}
    for on_device in (False, True):
        dataset = create_dataset("folder", messy_tree, split="val", shuffle=False)
        loader = create_loader(dataset, 4, transform=create_transforms("folder", 32), normalize_on_device=on_device)
        batches[on_device] = (np.concatenate([b["image"] for b in iterate(loader)]), loader.info.input_normalization)
    (host, none), (raw, (mean, std)) = batches[False], batches[True]
    assert none is None and raw.dtype == np.uint8 and raw.shape == (8, 32, 32, 3) and host.shape == (8, 3, 32, 32)
    normalised = NormalizedInput(nn.Identity(), mean, std)(ms.Tensor(raw)).asnumpy()
    np.testing.assert_allclose(normalised, host, rtol=1e-6, atol=1e-6)


def test_parameter_names_stay_the_models():
    model = create_model("mobilenet_v1_025", num_classes=10)
    wrapped = NormalizedInput(model, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert [p.name for p in wrapped.trainable_params()] == [p.name for p in model.trainable_params()]


def test_refused_where_float_images_are_needed_after_normalize(messy_tree):
    dataset = create_dataset("folder", messy_tree, split="train")
    with pytest.raises(ConfigError, match="normalize_on_device"):
        create_loader(dataset, 4, is_training=True, mixup=0.2, normalize_on_device=True,
                      transform=create_transforms("folder", 32, is_training=True))
    with pytest.raises(ConfigError, match="normalize_on_device"):
        create_loader(dataset, 4, is_training=True, normalize_on_device=True,
                      transform=create_transforms("folder", 32, is_training=True, re_prob=0.5))
    with pytest.raises(ConfigError, match="freeze_backbone"):
        parse_args("train", ["--normalize_on_device", "True", "--freeze_backbone", "True"])


def test_training_on_uint8_batches_follows_host_normalisation(tmp_path):
    summaries = []
    for on_device in ("False", "True"):
        cfg = parse_args("train", [
            "--model", "mobilenet_v1_025", "--num_samples", "16", "--batch_size", "8", "--epoch_size", "1",
            "--log_interval", "1", "--ckpt_save_dir", str(tmp_path / on_device), "--num_parallel_workers", "1",
            "--warmup_epochs", "0", "--normalize_on_device", on_device, "--opt", "momentum", "--lr", "0.05",
        ])
        summaries.append(train(cfg))
    host, device = summaries
    np.testing.assert_allclose(device["step_losses"], host["step_losses"], rtol=1e-4)
    assert device["last_val"]["count"] == host["last_val"]["count"]
    assert device["last_val"]["top1"] == pytest.approx(host["last_val"]["top1"])
