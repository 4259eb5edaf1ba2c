"""Validation behind ``validate.py``: Top-1, Top-5, mean loss over every image of a split, exactly once.

The evaluation loop is the training engine's (:func:`mindcv_mobilenet.engine.metrics.evaluate`): counts of correct
predictions, loss sums and image counts are summed over ranks before dividing, so a sharded run reports what a
single process would; the last, partial batch is kept. Either backend (MindSpore or ONNX Runtime) runs the model.
"""

from __future__ import annotations

import logging

from ..config import Config
from ..data import create_dataset, create_loader, load_class_names
from ..data.constants import dataset_spec
from ..data.loader import loader_steps
from ..data.preprocessing import DataConfig, resolve_data_config
from ..engine.distributed import DistInfo, Reducer, init_distributed
from ..engine.metrics import evaluate, write_json
from ..utils.errors import DataError
from ..utils.logs import setup_logging
from .calibration import calibration_for
from .classes import saved_class_list
from .loading import LoadedModel, load_model, set_mode
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


def run_validation(cfg: Config) -> dict:
    """Validate ``cfg.model`` on ``cfg.val_split`` and return the metrics (printed and written by rank 0)."""
    setup_logging()
    set_mode(cfg.mode, cfg.device_target)
    info = init_distributed(cfg.distribute)
    dataset = eval_dataset(cfg, info)  # before the model: a wrong path is reported at once
    loaded = load_model(cfg.model, cfg.ckpt_path, cfg.pretrained, cfg.num_classes, cfg.in_channels, cfg.ema)
    settings = resolve_data_config(cfg)
    results = validate_loaded(cfg, loaded, settings, dataset, info, Reducer(info))
    if info.is_main:
        print(format_results(results), flush=True)
        if cfg.output:
            write_json(cfg.output, results)
            _logger.info("results written to %s", cfg.output)
    return results


def eval_dataset(cfg: Config, info: DistInfo):
    """This rank's shard of the split, in order (evaluation shards are disjoint and cover every image once)."""
    return create_dataset(
        cfg.dataset, root=cfg.data_dir or None, split=cfg.val_split, shuffle=False, num_samples=cfg.num_samples,
        num_parallel_workers=cfg.num_parallel_workers, num_shards=info.size if info.distributed else None,
        shard_id=info.rank if info.distributed else None, download=cfg.dataset_download,
    )


def validate_loaded(cfg: Config, loaded: LoadedModel, settings: DataConfig, dataset, info: DistInfo,
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
    metrics = evaluate(CellAdapter(predictor), batches, reducer)
    skipped = int(reducer.sum([dataset.info.stats.skipped])[0])
    images_per_s = float(reducer.sum([progress.images_per_s])[0])  # ranks run side by side: rates add up
    return {
        "model": cfg.model, "weights": loaded.weights, "backend": cfg.backend, "precision": cfg.precision,
        "calibration": calibration.description if calibration else None, "dataset": cfg.dataset,
        "data_dir": dataset.info.root, "split": cfg.val_split, "image_size": settings.image_size,
        "crop_pct": settings.crop_pct, "interpolation": settings.interpolation, "batch_size": cfg.batch_size,
        "mode": cfg.mode, "ranks": info.size, "top1": metrics["top1"], "top5": metrics["top5"],
        "loss": metrics["loss"], "num_images": metrics["count"], "skipped_images": skipped,
        "bad_files": list(dataset.info.stats.bad_file_names), "images_per_s": images_per_s,
        "elapsed_s": progress.elapsed,
    }


def format_results(results: dict) -> str:
    skipped = f"  skipped (unreadable): {results['skipped_images']}" if results["skipped_images"] else ""
    return (f"{results['model']}: Top-1 {results['top1']:.2f}%  Top-5 {results['top5']:.2f}%  "
            f"loss {results['loss']:.4f}  images {results['num_images']}{skipped}  "
            f"{results['images_per_s']:.1f} images/s ({results['backend']} {results['precision']}, "
            f"{results['elapsed_s']:.1f} s in all)")
