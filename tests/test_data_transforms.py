"""Transforms (mindcv names and defaults), auto-augment strings, Mixup/CutMix and the loader's label formats."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import iterate
from mindspore.dataset import transforms as T
from mindspore.dataset import vision

from mindcv_mobilenet.constants import IMAGENET_DEFAULT_MEAN
from mindcv_mobilenet.data import Mixup, create_dataset, create_loader, create_transforms
from mindcv_mobilenet.utils.errors import ConfigError

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (120, 160, 3), dtype=np.uint8)


def _apply(ops, image=IMAGE):
    out = T.Compose(list(ops))(image)
    return out[0] if isinstance(out, tuple) else out  # eager Compose ending in a Python op returns a 1-tuple


def test_imagenet_train_recipe_and_defaults():
    ops = create_transforms("imagenet", 64, is_training=True)
    assert [type(o).__name__ for o in ops] == ["RandomResizedCrop", "RandomHorizontalFlip", "Normalize", "HWC2CHW"]
    out = _apply(ops)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    full = create_transforms("", 64, is_training=True, auto_augment="randaug-m9-mstd0.5", vflip=0.5,
                             re_prob=0.5, interpolation="bicubic")
    names = [type(o).__name__ for o in full]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomMagnitude",
                     "Normalize", "HWC2CHW", "RandomErasing"]
    assert _apply(full).shape == (3, 64, 64)
    jitter = create_transforms("imagenet", 64, is_training=True, color_jitter=0.4)
    assert "RandomColorAdjust" in [type(o).__name__ for o in jitter]


def test_imagenet_eval_resizes_then_center_crops():
    ops = create_transforms("imagenet", 224)
    assert [type(o).__name__ for o in ops] == ["Resize", "CenterCrop", "Normalize", "HWC2CHW"]
    resized = _apply(ops[:1])
    assert min(resized.shape[:2]) == int(224 / 0.875) == 256
    mean_image = np.broadcast_to(np.round(IMAGENET_DEFAULT_MEAN).astype(np.uint8), (300, 400, 3)).copy()
    out = _apply(ops, mean_image)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32 and np.abs(out).max() < 0.02


@pytest.mark.parametrize("config", ["randaug-m9-mstd0.5", "randaug-m7-n3", "randaug-m9-mstd0.5-inc1", "autoaug",
                                    "trivialaugwide"])
def test_auto_augment_strings(config):
    ops = create_transforms("imagenet", 48, is_training=True, auto_augment=config)
    for _ in range(3):
        assert _apply(ops).shape == (3, 48, 48)


@pytest.mark.parametrize("config", ["augmix-m5", "randaug-q9", "autoaug-m3"])
def test_bad_auto_augment_is_a_clear_error(config):
    with pytest.raises(ConfigError, match="auto_augment"):
        create_transforms("imagenet", 48, is_training=True, auto_augment=config)


def test_mindcv_image_resize_keyword_is_image_size():
    """mindcv's create_transforms(dataset_name, image_resize=...) still works: the same transforms as image_size=."""
    for dataset, training in (("imagenet", True), ("imagenet", False), ("cifar10", False)):
        ours = create_transforms(dataset, image_size=48, is_training=training)
        theirs = create_transforms(dataset, image_resize=48, is_training=training)
        assert [type(o).__name__ for o in ours] == [type(o).__name__ for o in theirs]
        assert _apply(theirs).shape == (3, 48, 48)
    assert _apply(create_transforms("imagenet")).shape == (3, 224, 224)  # neither: 224
    with pytest.raises(ConfigError, match="image_size or mindcv's image_resize, not both"):
        create_transforms("imagenet", 48, image_resize=64)


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown transform option.*hlfip"):
        create_transforms("imagenet", 48, hlfip=0.5)
    with pytest.raises(ConfigError, match="interpolation"):
        create_transforms("imagenet", 48, interpolation="magic")
    with pytest.raises(ConfigError, match="unknown data set 'mnist'"):
        create_transforms("mnist")


def test_cifar_native_and_upsampled():
    img = IMAGE[:32, :32]
    train = create_transforms("cifar10", 32, is_training=True)
    assert [type(o).__name__ for o in train][:2] == ["RandomCrop", "RandomHorizontalFlip"]
    assert _apply(train, img).shape == (3, 32, 32)
    assert _apply(create_transforms("cifar10", 96, is_training=True), img).shape == (3, 96, 96)
    evl = create_transforms("cifar10", 64)
    assert "CenterCrop" not in [type(o).__name__ for o in evl] and _apply(evl, img).shape == (3, 64, 64)
    cropped = create_transforms("cifar10", 64, crop_pct=0.875)
    assert "CenterCrop" in [type(o).__name__ for o in cropped] and _apply(cropped, img).shape == (3, 64, 64)
    assert _apply(create_transforms("cifar10", 32), img).shape == (3, 32, 32)


def test_separate_returns_three_lists():
    primary, secondary, final = create_transforms("imagenet", 32, is_training=True, auto_augment="autoaug",
                                                  separate=True)
    assert isinstance(primary[0], vision.RandomResizedCrop) and len(secondary) == 1
    assert isinstance(final[-1], vision.HWC2CHW)


def test_mixup_batch_and_elem_soft_labels():
    images = RNG.normal(size=(6, 3, 16, 16)).astype(np.float32)
    labels = np.arange(6, dtype=np.int32)
    for kwargs in ({"mixup_alpha": 0.4}, {"mixup_alpha": 0.0, "cutmix_alpha": 1.0}, {"cutmix_minmax": (0.2, 0.8)},
                   {"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "mode": "elem"}):
        mixer = Mixup(label_smoothing=0.1, num_classes=10, **kwargs)
        out, target = mixer(images, labels)
        assert out.dtype == np.float32 and out.shape == images.shape
        assert target.dtype == np.float32 and target.shape == (6, 10)
        np.testing.assert_allclose(target.sum(1), 1.0, rtol=1e-5)
        assert target.min() >= 0.01 - 1e-6  # smoothing 0.1 over 10 classes
        assert np.allclose(target[:, 6:], 0.01)  # only the image's own and its partner's classes get more
    snapshot = images.copy()
    Mixup(mixup_alpha=1.0, num_classes=10)(images, labels)
    np.testing.assert_array_equal(images, snapshot)  # the input batch is not modified in place


def test_mixup_lambda_matches_pixels():
    a, b = np.zeros((1, 1, 10, 10), np.float32), np.ones((1, 1, 10, 10), np.float32)
    images, labels = np.concatenate([a, b]), np.array([0, 1])
    out, target = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=2)(images, labels)
    # image 0 got a box of ones from image 1: its label weight on class 1 is the pasted area
    np.testing.assert_allclose(target[0, 1], out[0].mean(), atol=1e-6)
    out, target = Mixup(mixup_alpha=1.0, label_smoothing=0.0, num_classes=2)(images, labels)
    np.testing.assert_allclose(target[0, 1], out[0, 0, 0, 0], atol=1e-6)


def test_loader_label_formats():
    ds = create_dataset("cifar10_demo", split="val", num_samples=64)
    tfs = create_transforms("cifar10", 32, True, re_prob=0.5, color_jitter=0.3)
    plain = iterate(create_loader(ds, 16, is_training=True, transform=tfs, num_classes=10, label_smoothing=0.1,
                                  drop_remainder=True))
    assert plain[0]["label"].dtype == np.int32 and plain[0]["label"].shape == (16,)
    ds = create_dataset("cifar10_demo", split="val", num_samples=64)
    mixed = create_loader(ds, 16, is_training=True, transform=create_transforms("cifar10", 32, True),
                          num_classes=10, mixup=0.2, cutmix=1.0, label_smoothing=0.1, drop_remainder=True)
    batches = iterate(mixed)
    assert len(batches) == 4 == mixed.get_dataset_size()
    b = batches[0]
    assert b["image"].dtype == np.float32 and b["image"].shape == (16, 3, 32, 32)
    assert b["label"].dtype == np.float32 and b["label"].shape == (16, 10)
    np.testing.assert_allclose(b["label"].sum(1), 1.0, rtol=1e-5)
    assert b["label"].min() >= 0.01 - 1e-6


def test_loader_separate_branches():
    ds = create_dataset("cifar10_demo", split="val", num_samples=8)
    tfs = create_transforms("cifar10", 32, is_training=True, auto_augment="autoaug", separate=True)
    batches = iterate(create_loader(ds, 4, is_training=True, transform=tfs, separate=True, num_classes=10))
    assert batches[0]["image"].shape == (12, 3, 32, 32) and batches[0]["label"].shape == (12,)
    np.testing.assert_array_equal(batches[0]["label"][:4], batches[0]["label"][4:8])
