"""Validation behind ``validate.py``: Top-1, Top-5, mean loss over every image of a split, exactly once.

The evaluation loop is the training engine's (:func:`mindcv_mobilenet.engine.metrics.evaluate`): counts of correct
predictions, loss sums and image counts are summed over ranks before dividing, so a sharded run reports what a
single process would; the last, partial batch is kept. Either backend (MindSpore or ONNX Runtime) runs the model.

The same pass counts (true class, predicted class) pairs, summed over ranks like the rest: the per-class Top-1, the
five most confused pairs (printed by name) and, for at most 100 classes, a confusion-matrix picture (``--confusion``,
by default beside ``--output``) come from it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os

from ..data import create_dataset, create_loader, load_class_names
from ..data.constants import dataset_spec
from ..data.dataset import dataset_for_data_dir
from ..data.loader import loader_steps
from ..data.preprocessing import DataConfig, resolve_data_config
from ..engine.distributed import DistInfo, Reducer, init_distributed
from ..engine.metrics import evaluate, most_confused, per_class_top1, write_json
from ..models import get_model_config
from ..runtime import set_mode
from ..utils.errors import DataError
from ..utils.fileio import atomic_path
from ..utils.logs import setup_logging
from ..utils.plot import PICTURE_MAX_CLASSES, draw_confusion, matplotlib_missing
from .calibration import calibration_for
from .classes import resolve_class_names, saved_class_list, short_name
from .loading import LoadedModel, load_model, training_run_config
from .predictor import CellAdapter, create_predictor
from .progress import Progress

_logger = logging.getLogger("mindcv_mobilenet")

def check_labels(dataset, num_classes: int, ckpt_path: str) -> None:
    """Labels must mean what the classifier's outputs mean: same number of classes, same order as training's."""
    info = dataset.info
    if info.num_classes != num_classes:
        raise DataError(
            f"the data set has {info.num_classes} classes ({info.root}) but the model {num_classes}: "
            "labels would not line up with the outputs (ImageNet needs all 1,000 class folders, even empty ones)"
        )
    saved = saved_class_list(ckpt_path)
    if saved and dataset_spec(info.name).is_folder:
        trained = load_class_names(saved)
        if list(trained) != list(info.class_names):
            raise DataError(f"the class folders of {info.root} differ from the classes the checkpoint was "
                            f"trained on ({saved}); validate on a split with the same class folders")


def run_validation(cfg: argparse.Namespace) -> dict:
    """Validate ``cfg.model`` on ``cfg.val_split`` and return the metrics (printed and written by rank 0)."""
    setup_logging()
    set_mode(cfg.mode, cfg.device_target)
    info = init_distributed(cfg.distribute)
    settings = resolve_data_config(cfg, get_model_config(cfg.model), training_run_config(cfg),
                                   default_dataset=dataset_for_data_dir(cfg.data_dir))
    dataset = eval_dataset(cfg, settings.dataset, info)  # before the weights: a wrong path is reported at once
    loaded = load_model(cfg.model, cfg.ckpt_path, cfg.pretrained, cfg.num_classes, cfg.in_channels, cfg.ema)
    results = validate_loaded(cfg, loaded, settings, dataset, info, Reducer(info))
    if info.is_main:
        print(format_results(results), flush=True)
        print(format_class_report(results), flush=True)
        write_class_report(cfg, results)
        if cfg.output:
            write_json(cfg.output, results)
            _logger.info("results written to %s", cfg.output)
    return results


def eval_dataset(cfg: argparse.Namespace, dataset: str, info: DistInfo):
    """This rank's shard of ``cfg.val_split`` of data set ``dataset`` (the resolved name: ``DataConfig.dataset``), in
    order (evaluation shards are disjoint and cover every image once)."""
    return create_dataset(
        dataset, root=cfg.data_dir or None, split=cfg.val_split, shuffle=False, num_samples=cfg.num_samples,
        num_parallel_workers=cfg.num_parallel_workers, num_shards=info.size if info.distributed else None,
        shard_id=info.rank if info.distributed else None, download=cfg.dataset_download,
    )


def validate_loaded(cfg: argparse.Namespace, loaded: LoadedModel, settings: DataConfig, dataset, info: DistInfo,
                    reducer: Reducer) -> dict:
    """Evaluate ``dataset`` (this rank's shard); every sum goes through ``reducer`` (the all-reduce) before dividing."""
    check_labels(dataset, loaded.num_classes, cfg.ckpt_path)
    loader = create_loader(dataset, cfg.batch_size, drop_remainder=False, is_training=False,
                           transform=settings.transforms(), num_parallel_workers=cfg.num_parallel_workers)
    calibration = calibration_for(cfg, settings)
    predictor = create_predictor(loaded, cfg.backend, settings.image_size, cfg.batch_size, calibration)
    if info.is_main:
        _logger.info("validating %s (%s) on %s split '%s' with %s; backend %s %s%s", cfg.model, loaded.weights,
                     dataset.info.root, cfg.val_split, settings.describe(), cfg.backend, cfg.precision,
                     f"; {info.size} ranks" if info.distributed else "")
    steps = loader_steps(loader)
    progress = Progress(steps, "validate", enabled=info.is_main)
    batches = progress.track(loader.create_tuple_iterator(num_epochs=1, output_numpy=False))
    metrics = evaluate(CellAdapter(predictor), batches, reducer, loaded.num_classes)
    skipped = int(reducer.sum([dataset.info.stats.skipped])[0])
    images_per_s = float(reducer.sum([progress.images_per_s])[0])  # ranks run side by side: rates add up
    return {
        "model": cfg.model, "weights": loaded.weights, "backend": cfg.backend, "precision": cfg.precision,
        "calibration": calibration.description if calibration else None, "dataset": settings.dataset,
        "data_dir": dataset.info.root, "split": cfg.val_split, "image_size": settings.image_size,
        "crop_pct": settings.crop_pct, "interpolation": settings.interpolation, "batch_size": cfg.batch_size,
        "mode": cfg.mode, "ranks": info.size, "top1": metrics["top1"], "top5": metrics["top5"],
        "loss": metrics["loss"], "num_images": metrics["count"], "skipped_images": skipped,
        "bad_files": list(dataset.info.stats.bad_file_names), "images_per_s": images_per_s,
        "elapsed_s": progress.elapsed,
    } | class_report(metrics["confusion"], class_names_for(cfg, loaded.num_classes, dataset))


def class_names_for(cfg: argparse.Namespace, num_classes: int, dataset) -> list[str]:
    """Names to report classes by: the checkpoint's list, CIFAR-10's or ImageNet's (first synonym), else the data
    set's folder names, else the indices."""
    names, source = resolve_class_names(num_classes, dataset.info.name,
                                        ckpt_path=getattr(cfg, "ckpt_path", "") or "")
    if source.startswith("ImageNet"):
        return [short_name(n) for n in names]
    if source.startswith("class indices") and len(dataset.info.class_names) == num_classes:
        return [str(n) for n in dataset.info.class_names]
    return names


def class_report(confusion, names: list[str]) -> dict:
    """The results' per-class part: Top-1 of each class, the five most confused pairs and, for at most
    PICTURE_MAX_CLASSES classes, the matrix itself (rows: true class, columns: predicted)."""
    report = {
        "per_class": [{"class": names[i], "images": n, "top1": top1 if n else None}
                      for i, (n, top1) in enumerate(per_class_top1(confusion))],
        "most_confused": [{"true": names[i], "predicted": names[j], "images": count,
                           "share_of_true": 100.0 * count / max(int(confusion[i].sum()), 1)}
                          for i, j, count in most_confused(confusion, 5)],
    }
    if len(names) <= PICTURE_MAX_CLASSES:
        report["confusion_matrix"] = confusion.tolist()
    return report


def format_class_report(results: dict) -> str:
    """Per-class Top-1 (every class up to 20, else the five lowest) and the five most confused pairs, by name."""
    rows = [r for r in results["per_class"] if r["images"]]
    width = max((len(r["class"]) for r in rows), default=5)
    if len(results["per_class"]) <= 20:
        lines = ["per-class Top-1:"] + [f"  {r['class']:<{width}}  {r['top1']:6.2f}%  ({r['images']} images)"
                                        for r in rows]
    else:
        lowest = sorted(rows, key=lambda r: r["top1"])[:5]
        lines = [f"per-class Top-1 ({len(rows)} classes with images), lowest five:"] + [
            f"  {r['class']:<{width}}  {r['top1']:6.2f}%  ({r['images']} images)" for r in lowest]
    lines.append("most confused (true -> predicted):" if results["most_confused"] else "no image was confused")
    lines += [f"  {p['true']} -> {p['predicted']}: {p['images']} images ({p['share_of_true']:.1f}% of {p['true']})"
              for p in results["most_confused"]]
    return "\n".join(lines)


def class_report_paths(cfg: argparse.Namespace, num_classes: int) -> tuple[str | None, str | None]:
    """(confusion picture, per-class CSV): ``--confusion``, else ``<output>_confusion.png`` for at most
    PICTURE_MAX_CLASSES classes; the CSV beside ``--output``, else the picture (``<name>_per_class.csv``); None
    where there is none."""
    picture = cfg.confusion or ""
    if not picture and cfg.output and num_classes <= PICTURE_MAX_CLASSES:
        picture = os.path.splitext(cfg.output)[0] + "_confusion.png"
    base = cfg.output or picture
    table = os.path.splitext(base)[0] + "_per_class.csv" if base else None
    if picture and num_classes > PICTURE_MAX_CLASSES:
        _logger.info("no confusion picture for %d classes (at most %d are drawn): the per-class table and the most "
                     "confused pairs only", num_classes, PICTURE_MAX_CLASSES)
        picture = ""
    return picture or None, table


def write_class_report(cfg: argparse.Namespace, results: dict) -> None:
    """The per-class CSV and the confusion picture, where :func:`class_report_paths` puts them."""
    picture, table = class_report_paths(cfg, len(results["per_class"]))
    if table:
        with atomic_path(table) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["class_index", "class", "images", "top1"])
            for index, row in enumerate(results["per_class"]):
                writer.writerow([index, row["class"], row["images"], row["top1"]])
        _logger.info("per-class Top-1 written to %s", table)
    if picture:
        missing = matplotlib_missing()
        if missing:
            _logger.info("no confusion picture %s: %s", picture, missing)
            return
        data = os.path.basename(os.path.normpath(results["data_dir"] or results["dataset"]))
        title = (f"{results['model']}: Top-1 {results['top1']:.2f}% on {results['num_images']:,} images "
                 f"({data}, split '{results['split']}')")
        draw_confusion(results["confusion_matrix"], [r["class"] for r in results["per_class"]], picture, title)
        _logger.info("confusion matrix drawn in %s", picture)


def format_results(results: dict) -> str:
    skipped = f"  skipped (unreadable): {results['skipped_images']}" if results["skipped_images"] else ""
    return (f"{results['model']}: Top-1 {results['top1']:.2f}%  Top-5 {results['top5']:.2f}%  "
            f"loss {results['loss']:.4f}  images {results['num_images']}{skipped}  "
            f"{results['images_per_s']:.1f} images/s ({results['backend']} {results['precision']}, "
            f"{results['elapsed_s']:.1f} s in all)")
