"""Checkpoints: strict loading, the classifier-only exception, atomic writes, verified and cached downloads."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os

import mindspore as ms
import numpy as np
import pytest

import mindcv_mobilenet as mm
from mindcv_mobilenet.models import registry
from mindcv_mobilenet.utils import checkpoint as ckpt
from mindcv_mobilenet.utils.errors import CheckpointError, DownloadError

NAME = "mobilenet_v2_035_96"


@pytest.fixture(scope="module")
def v2_checkpoint(tmp_path_factory):
    """A saved 1000-class model and its path."""
    model = mm.create_model(NAME)
    path = str(tmp_path_factory.mktemp("ckpt") / "v2.ckpt")
    ckpt.save_checkpoint(model, path, extra={"epoch_num": 3})
    return model, path


def _same_params(a, b, skip=()):
    pb = {p.name: p.asnumpy() for p in b.get_parameters()}
    for p in a.get_parameters():
        if p.name not in skip:
            np.testing.assert_array_equal(p.asnumpy(), pb[p.name], err_msg=p.name)


def test_roundtrip_loads_every_parameter(v2_checkpoint):
    model, path = v2_checkpoint
    loaded = mm.create_model(NAME, checkpoint_path=path)
    _same_params(model, loaded)


def test_other_num_classes_drops_only_the_classifier(v2_checkpoint, caplog):
    model, path = v2_checkpoint
    with caplog.at_level(logging.WARNING, logger="mindcv_mobilenet"):
        loaded = mm.create_model(NAME, num_classes=10, checkpoint_path=path)
    head = {"classifier.1.weight", "classifier.1.bias"}
    _same_params(model, loaded, skip=head)
    assert loaded.get_classifier().weight.shape == (10, 1280)
    messages = [r.getMessage() for r in caplog.records if "classifier" in r.getMessage()]
    assert len(messages) == 1 and "1000 classes" in messages[0] and "10" in messages[0]


def test_where_weights_must_be_complete_another_classifier_is_one_error_and_no_warning(v2_checkpoint, caplog):
    """One rule: only a caller asking for a new head (create_model with num_classes) skips the classifier; evaluation
    (load_model), resuming and conversion checks get one error before anything is loaded, not a warning first."""
    from mindcv_mobilenet.inference.loading import load_model

    _, path = v2_checkpoint
    model = mm.create_model(NAME, num_classes=10)
    before = {p.name: p.asnumpy().copy() for p in model.get_parameters()}
    with caplog.at_level(logging.WARNING, logger="mindcv_mobilenet"), pytest.raises(CheckpointError) as info:
        ckpt.load_model_weights(model, path, new_classifier=False)
    assert "1000 classes" in str(info.value) and "10" in str(info.value) and "\n" not in str(info.value)
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in model.get_parameters())  # nothing loaded
    with caplog.at_level(logging.WARNING, logger="mindcv_mobilenet"), pytest.raises(CheckpointError) as info:
        load_model(NAME, path, num_classes=10)
    assert "leave --num_classes unset" in str(info.value)
    assert [r.getMessage() for r in caplog.records if "classifier" in r.getMessage()] == []


def test_checkpoint_of_another_model_is_one_clear_error(v2_checkpoint):
    _, path = v2_checkpoint
    with pytest.raises(CheckpointError) as info:
        mm.create_model("mobilenet_v3_small_100", checkpoint_path=path)
    message = str(info.value)
    assert "does not fit mobilenet_v3_small_100" in message and "missing" in message and "\n" not in message


def test_a_mismatch_outside_the_classifier_is_an_error(v2_checkpoint):
    _, path = v2_checkpoint
    params = ckpt.read_checkpoint(path)
    params["features.0.weight"] = ms.Parameter(ms.Tensor(np.zeros((8, 3, 5, 5), np.float32)), name="features.0.weight")
    with pytest.raises(CheckpointError, match=r"features\.0\.weight \(8, 3, 5, 5\) vs"):
        ckpt.load_model_weights(mm.create_model(NAME), params)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        mm.create_model(NAME, checkpoint_path=str(tmp_path / "nope.ckpt"))
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        mm.create_model(NAME, checkpoint_path=str(bad))


def test_mindcv_v1_1001_classes_and_one_channel_input(tmp_path):
    source = mm.create_model("mobilenet_v1_025", num_classes=1001)
    path = str(tmp_path / "v1.ckpt")
    ckpt.save_checkpoint(source, path)
    model = mm.create_model("mobilenet_v1_025", checkpoint_path=path, in_channels=1)
    src = {p.name: p.asnumpy() for p in source.get_parameters()}
    got = {p.name: p.asnumpy() for p in model.get_parameters()}
    np.testing.assert_array_equal(got["classifier.weight"], src["classifier.weight"][:1000])
    np.testing.assert_allclose(got["features.0.weight"], src["features.0.weight"].sum(axis=1, keepdims=True))
    as_is = mm.create_model("mobilenet_v1_025", num_classes=1001, checkpoint_path=path)
    assert as_is.get_classifier().weight.shape == (1001, 256)


def test_ema_weights_are_loaded_on_request(tmp_path):
    model = mm.create_model(NAME)
    params = {p.name: p.asnumpy() for p in model.get_parameters()}
    params.update({f"ema.{k}": v + 1.0 for k, v in params.items()})
    params["moments.features.0.weight"] = np.zeros_like(params["features.0.weight"])  # optimizer state is ignored
    path = str(tmp_path / "ema.ckpt")
    ckpt.save_checkpoint(params, path)
    ema_model = mm.create_model(NAME, checkpoint_path=path, ema=True)
    np.testing.assert_allclose(ema_model.features[0].weight.asnumpy(), params["features.0.weight"] + 1.0)
    plain = mm.create_model(NAME, checkpoint_path=path)
    np.testing.assert_allclose(plain.features[0].weight.asnumpy(), params["features.0.weight"])


def test_save_is_atomic(tmp_path, monkeypatch):
    model = mm.create_model(NAME)
    path = tmp_path / "keep.ckpt"
    ckpt.save_checkpoint(model, str(path))
    original = path.read_bytes()

    def crash(save_obj, file_name, **kwargs):
        with open(file_name, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ms, "save_checkpoint", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_checkpoint(model, str(path))
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["keep.ckpt"]


# --- pretrained weights from a server on 127.0.0.1 --------------------------------------------------------------


def _publish(monkeypatch, url: str, sha256: str) -> None:
    config = dataclasses.replace(registry.get_model_config(NAME), url=url, sha256=sha256)
    monkeypatch.setitem(registry._model_configs, NAME, config)


def test_pretrained_downloads_verifies_and_reuses_the_cache(file_server, v2_checkpoint, monkeypatch, tmp_path):
    model, path = v2_checkpoint
    data = open(path, "rb").read()
    digest = hashlib.sha256(data).hexdigest()
    file_server.routes["/w/v2-abc.ckpt"] = data
    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path / "cache"))
    _publish(monkeypatch, file_server.url("/w/v2-abc.ckpt"), digest[:8])
    loaded = mm.create_model(NAME, pretrained=True)
    _same_params(model, loaded)
    assert (tmp_path / "cache" / "checkpoints" / "v2-abc.ckpt").read_bytes() == data
    mm.create_model(NAME, pretrained=True)
    assert file_server.requests == {"/w/v2-abc.ckpt": 1}  # the second call used the cache


def test_pretrained_sha_mismatch_keeps_nothing(file_server, v2_checkpoint, monkeypatch, tmp_path):
    file_server.routes["/w/v2.ckpt"] = open(v2_checkpoint[1], "rb").read()
    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path / "cache"))
    _publish(monkeypatch, file_server.url("/w/v2.ckpt"), "0123abcd")
    with pytest.raises(DownloadError, match="sha256 .* expected 0123abcd"):
        mm.create_model(NAME, pretrained=True)
    assert os.listdir(tmp_path / "cache" / "checkpoints") == []


def test_pretrained_cut_short_keeps_nothing(file_server, v2_checkpoint, monkeypatch, tmp_path):
    file_server.routes["/w/v2.ckpt"] = open(v2_checkpoint[1], "rb").read()
    file_server.short.add("/w/v2.ckpt")
    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path / "cache"))
    _publish(monkeypatch, file_server.url("/w/v2.ckpt"), "")
    with pytest.raises(DownloadError):
        mm.create_model(NAME, pretrained=True)
    assert os.listdir(tmp_path / "cache" / "checkpoints") == []


def test_offline_error_names_the_url_and_the_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("MINDCV_MOBILENET_CACHE", str(tmp_path / "cache"))
    _publish(monkeypatch, "http://127.0.0.1:9/nowhere/v2-1234.ckpt", "1234")
    with pytest.raises(DownloadError) as info:
        mm.create_model(NAME, pretrained=True)
    message = str(info.value)
    assert "http://127.0.0.1:9/nowhere/v2-1234.ckpt" in message
    assert str(tmp_path / "cache" / "checkpoints" / "v2-1234.ckpt") in message


def test_no_published_weights_says_what_to_do():
    with pytest.raises(CheckpointError, match="no published weights for mobilenet_v2_035_96.*--ckpt_path"):
        mm.create_model(NAME, pretrained=True)
