"""infer.py: top-k with names on real photos, class lists of fine-tuned checkpoints, JSON/CSV, annotated copies that
never overwrite the inputs, unreadable files reported and skipped, one-line errors."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest
from helpers import (
    SAMPLES,
    assert_one_line_error,
    converted_mnv2,
    random_checkpoint,
    run_script,
    shared_path,
)
from PIL import Image

PHOTOS = {"n01440764": 0, "n02099601": 207, "n04254680": 805}  # tench, golden retriever, soccer ball


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three real ImageNet photos (one saved as x.jpg, a name an annotated copy would take) and one corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    for synset in PHOTOS:
        source = next(shared_path(*SAMPLES, "val", synset).iterdir())
        shutil.copy(source, folder / source.name)
    first = next(folder.glob("n04254680*"))
    first.rename(folder / "x.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


def _digests(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def ms_run(photos, base):
    """infer.py on the folder with the converted MobileNetV2 (MindSpore), annotating into the input folder itself."""
    before = _digests(photos)
    out = base / "preds.json"
    proc = run_script("infer.py", "--model", "mobilenet_v2_100", "--ckpt_path", str(converted_mnv2(base)),
                      "--image_path", str(photos), "--topk", "3", "--output", str(out), "--save_dir", str(photos))
    return proc, json.loads(out.read_text()) if out.exists() else None, before


def test_topk_with_imagenet_names(ms_run, photos):
    proc, preds, _ = ms_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert preds["class_names"] == "ImageNet-1k"
    by_name = {p["image"].rsplit("/", 1)[-1]: p["top"] for p in preds["predictions"]}
    assert len(by_name) == 3
    for image, top in by_name.items():
        synset = "n04254680" if image == "x.jpg" else image.split("_")[0]
        assert top[0]["class"] == PHOTOS[synset], (image, top)
        probs = [t["probability"] for t in top]
        assert len(top) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert by_name["x.jpg"][0]["name"] == "soccer ball"
    assert "tench" in proc.stdout and "golden retriever" in proc.stdout


def test_unreadable_file_reported_and_skipped(ms_run):
    proc, preds, _ = ms_run
    assert [f["image"].rsplit("/", 1)[-1] for f in preds["failed"]] == ["broken.jpg"]
    assert "broken.jpg" in proc.stderr and "could not be read" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_annotated_copies_never_overwrite_inputs(ms_run, photos):
    _, _, before = ms_run
    after = _digests(photos)
    assert {k: after[k] for k in before} == before  # every input byte-identical
    written = sorted(set(after) - set(before))
    assert written == ["n01440764_tench.jpg", "n02099601_golden_retriever.jpg", "x_pred.jpg"]
    original = cv2.imread(str(photos / "x.jpg"))
    annotated = cv2.imread(str(photos / "x_pred.jpg"))
    assert annotated.shape == original.shape
    assert np.abs(annotated.astype(int) - original.astype(int))[:20].mean() > 10  # the label box is drawn


def test_onnx_backend_gives_the_same_predictions(ms_run, photos, base):
    pytest.importorskip("onnxruntime")
    _, ms_preds, _ = ms_run
    out = base / "preds_onnx.csv"
    proc = run_script("infer.py", "--model", "mobilenet_v2_100", "--ckpt_path", str(converted_mnv2(base)),
                      "--image_path", str(photos / "x.jpg"), str(next(photos.glob("n01440764*.JPEG"))),
                      "--topk", "3", "--output", str(out), "--backend", "onnxruntime")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] * 2
    expected = {(p["image"].rsplit("/", 1)[-1], t["rank"]): t for p in ms_preds["predictions"] for t in p["top"]}
    for row in rows:
        ref = expected[(row["image"].rsplit("/", 1)[-1], int(row["rank"]))]
        assert int(row["class"]) == ref["class"] and row["name"] == ref["name"]
        assert float(row["probability"]) == pytest.approx(ref["probability"], abs=1e-4)


# ---------------------------------------------------------------- fine-tuned checkpoints and their class lists
FRUIT = ["apple", "banana", "cherry"]


@pytest.fixture(scope="module")
def fruit_ckpt(base):
    return random_checkpoint(base, "mobilenet_v1_025", 3, seed=5, class_names=FRUIT)


def _infer_json(tmp_path, ckpt, photos, *extra):
    out = tmp_path / "p.json"
    proc = run_script("infer.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(ckpt), "--image_path",
                      str(photos / "x.jpg"), "--image_resize", "64", "--output", str(out), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_class_list_saved_beside_checkpoint_is_used(tmp_path, fruit_ckpt, photos):
    preds = _infer_json(tmp_path, fruit_ckpt, photos)
    top = preds["predictions"][0]["top"]
    assert preds["class_names"].endswith("class_names.json")
    assert len(top) == 3 and sorted(t["name"] for t in top) == FRUIT  # topk 5 capped at the 3 classes
    assert {t["name"] for t in top} == {FRUIT[t["class"]] for t in top}
    assert sum(t["probability"] for t in top) == pytest.approx(1.0, abs=1e-5)


def test_class_names_option_overrides(tmp_path, fruit_ckpt, photos):
    names = tmp_path / "names.txt"
    names.write_text("red\ngreen\nblue\n")
    preds = _infer_json(tmp_path, fruit_ckpt, photos, "--class_names", str(names), "--topk", "1")
    top = preds["predictions"][0]["top"]
    assert len(top) == 1 and top[0]["name"] == ["red", "green", "blue"][top[0]["class"]]


def test_class_list_of_wrong_length_is_one_line(tmp_path, fruit_ckpt, photos):
    names = tmp_path / "names.txt"
    names.write_text("only\ntwo\n")
    proc = run_script("infer.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(fruit_ckpt), "--image_path",
                      str(photos / "x.jpg"), "--class_names", str(names))
    assert_one_line_error(proc, "2 names", "3 classes")


def test_training_run_preprocessing_is_adopted(tmp_path):
    """A checkpoint in a train.py run folder: its config.yaml decides data set recipe and resolution when unset."""
    from mindcv_mobilenet.cli import parse_args
    from mindcv_mobilenet.data.preprocessing import resolve_data_config
    from mindcv_mobilenet.inference.loading import training_run_config
    from mindcv_mobilenet.models import get_model_config

    def resolved(cfg):  # as infer.py resolves them
        return resolve_data_config(cfg, get_model_config(cfg.model), training_run_config(cfg), for_files=True)

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("dataset: cifar10_demo\nimage_resize: 48\nlr: 0.1\nmodel: mobilenet_v1_025\n")
    ckpt = str(run / "m.ckpt")
    cfg = parse_args("infer", ["--model", "mobilenet_v1_025", "--ckpt_path", ckpt, "--image_path", "a.jpg"])
    settings = resolved(cfg)
    assert (settings.dataset, settings.image_size, settings.crop_pct) == ("cifar10_demo", 48, 1.0)
    assert (cfg.dataset, cfg.image_size) == (None, None)  # the resolver writes nothing back
    cfg = parse_args("infer", ["--model", "mobilenet_v1_025", "--ckpt_path", ckpt, "--image_path", "a.jpg",
                               "--image_resize", "96"])
    assert resolved(cfg).image_size == 96  # the command line wins
    # the CIFAR recipe at 48 px, applied to a real-size photo: shorter-side resize + center crop to 48x48
    from mindcv_mobilenet.inference.preprocess import FilePreprocessor

    photo = tmp_path / "p.png"
    Image.fromarray(np.full((100, 160, 3), 128, np.uint8)).save(photo)
    assert FilePreprocessor(settings)(str(photo)).shape == (3, 48, 48)


# ---------------------------------------------------------------- one-line errors
def test_wrong_path_is_one_line(tmp_path, fruit_ckpt):
    proc = run_script("infer.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(fruit_ckpt), "--image_path",
                      str(tmp_path / "missing.jpg"))
    assert_one_line_error(proc, "missing.jpg", "not found")


def test_outputs_that_cannot_be_written_are_one_line(tmp_path, fruit_ckpt, photos):
    (tmp_path / "file").write_text("")
    for flag, target, folder, cause in (
            ("--save_dir", tmp_path / "file" / "gallery", f"{tmp_path / 'file' / 'gallery'} (--save_dir)",
             "Not a directory"),
            ("--output", tmp_path / "file" / "p.json", tmp_path / "file", "File exists")):
        proc = run_script("infer.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(fruit_ckpt), "--image_path",
                          str(photos / "x.jpg"), flag, str(target))
        assert_one_line_error(proc, f"cannot create the folder {folder}: {cause}")


def test_only_corrupt_images_is_one_line(tmp_path, fruit_ckpt):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    proc = run_script("infer.py", "--model", "mobilenet_v1_025", "--ckpt_path", str(fruit_ckpt), "--image_path",
                      str(tmp_path / "bad.png"), "--image_resize", "32")
    assert_one_line_error(proc, "could be read")
    assert "bad.png" in proc.stdout + proc.stderr


def test_checkpoint_of_another_model_is_one_line(fruit_ckpt, photos):
    proc = run_script("infer.py", "--model", "mobilenet_v2_100", "--ckpt_path", str(fruit_ckpt), "--image_path",
                      str(photos / "x.jpg"))
    assert_one_line_error(proc, "does not fit mobilenet_v2_100")
