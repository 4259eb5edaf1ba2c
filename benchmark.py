"""Benchmarks. Each mode is one function (``bench_data``, and later ``bench_infer``/``bench_train``) behind a flag.

    python tools/make_imagenet_sized.py   # once: the ImageNet-sized JPEGs --data reads by default
    python benchmark.py --data [--data-root DIR] [--workers 1 2] [--batch-size 64] [--json out.json]
    python benchmark.py --train [--train-models M ...] [--train-batch-size 32] [--train-image-size 224]
                        [--train-modes 0 1] [--mindcv_path /tmp/mindcv/src:/tmp/mcvdeps]
    python benchmark.py --infer [--infer-models PATTERN ...] [--all] [--infer-batch-size 32] [--infer-modes 0 1]
                        [--infer-repeats 5] [--no-mindcv] [--no-onnx] [--int8 CALIB_DIR]
    python benchmark.py --torch --torch_python ../torchenv/bin/python [--isa avx2]   # and --profile, --compare

``--isa avx2`` runs every mode as on an AVX2-only CPU, approximated on an AVX-512 one (bench/isa.py: oneDNN, ATen,
MKL and this package's kernels capped at AVX2); the header names the CPU's flags and what each framework uses.

The flags (:data:`BENCHMARK_OPTIONS`) go through the package's one parser (``mindcv_mobilenet.cli.parse_args``): a
wrong flag is one line naming the nearest, ``-`` and ``_`` are the same in flag names, switches take True/False.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from bench import isa
from mindcv_mobilenet.cli import Config, Option, parse_args
from mindcv_mobilenet.utils.errors import ConfigError, DataError, run_cli
from mindcv_mobilenet.utils.values import str2bool, to_positive_int
from tools.make_imagenet_sized import DEFAULT_DST as IMAGENET_SIZED_DIR


def _rates(build, epochs: int) -> tuple:
    """(median images/s over passes 2.., images/s of the first pass, median CPU ms/image over passes 2..).

    Each pass builds its pipeline with ``build()`` (timed with it), as the trainer does every epoch: this package's
    first pass runs the checking Python reader, later ones the C++ reader over the files it found good
    (``mindcv_mobilenet/data/folder.py``). CPU time is this process's (all pipeline threads): unlike images/s it
    hardly moves with other load on the machine.
    """
    rates, cpu = [], []
    for _ in range(epochs):
        start, start_cpu, count = time.perf_counter(), time.process_time(), 0
        for image, _label in build().create_tuple_iterator(num_epochs=1, output_numpy=False):
            count += image.shape[0]
        rates.append(count / (time.perf_counter() - start))
        cpu.append((time.process_time() - start_cpu) * 1e3 / count)
    return float(np.median(rates[1:])), rates[0], float(np.median(cpu[1:]))


def _ours_loader(root: str, split: str, size: int, batch_size: int, workers: int, training: bool,
                 normalize_on_device: bool = False):
    """A pipeline builder on one scanned source (the tree is scanned once, as in a training run)."""
    from mindcv_mobilenet.data import create_dataset, create_loader, create_transforms
    from mindcv_mobilenet.data.dataset import load_source

    source = load_source("imagenet", root, split)

    def build():
        dataset = create_dataset(data_source=source, shuffle=training)
        return create_loader(dataset, batch_size, is_training=training, num_parallel_workers=workers,
                             drop_remainder=training,
                             transform=create_transforms("imagenet", size, is_training=training),
                             normalize_on_device=normalize_on_device)
    return build


def _ours_uint8_loader(*args):
    """This package's pipeline with ``normalize_on_device``: uint8 batches, the network normalises them."""
    return _ours_loader(*args, normalize_on_device=True)


def _mindcv_loader(root: str, split: str, size: int, batch_size: int, workers: int, training: bool):
    from mindcv.data import create_dataset, create_loader, create_transforms

    def build():
        dataset = create_dataset("imagenet", root, split=split, shuffle=training, num_parallel_workers=workers)
        return create_loader(dataset, batch_size, is_training=training, num_parallel_workers=workers,
                             drop_remainder=training,
                             transform=create_transforms("imagenet", size, is_training=training))
    return build


def bench_data(args: Config) -> dict:
    """Decoded-and-augmented images/s of the training and evaluation pipelines, this package vs mindcv, back to back.

    Default data: the ImageNet-sized copies of the shared samples that ``tools/make_imagenet_sized.py`` writes.
    """
    import mindspore as ms

    root = args.data_root or IMAGENET_SIZED_DIR
    split_dir = os.path.join(root, args.split)
    if not os.path.isdir(split_dir):
        raise DataError(f"no images at {split_dir}: run `python tools/make_imagenet_sized.py` first, or pass "
                        f"--data-root (holding {args.split}/<synset>/...)")
    try:
        import mindcv.data  # noqa: F401
        builders = [("ours", _ours_loader), ("ours_uint8", _ours_uint8_loader), ("mindcv", _mindcv_loader)]
    except Exception as err:  # not installed, or its own imports fail
        print(f"mindcv not importable ({type(err).__name__}: {err}); timing this package only", file=sys.stderr)
        builders = [("ours", _ours_loader), ("ours_uint8", _ours_uint8_loader)]
    images = sum(len(files) for _, _, files in os.walk(split_dir))
    print(f"data benchmark: {images} images from {split_dir}, {args.image_size} px, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU(s); median of {args.epochs - 1} passes after the first (first: its img/s; ours reads "
          f"in Python on it, in C++ after). cpu ms: CPU time of "
          f"the whole process per image; x mindcv: images/s over mindcv's, and mindcv's CPU per image over ours. "
          f"ours_uint8: normalize_on_device (uint8 batches, normalised in the network)")
    print(f"  {'pipeline':<8} {'workers':>7} {'who':<11} {'img/s':>8} {'cpu ms':>7} {'x mindcv':>9} "
          f"{'cpu x mindcv':>13} {'first img/s':>12} {'first x':>8}")
    rows = []
    nan = float("nan")
    for workers in args.workers:
        for pipeline in ("train", "eval"):
            rates = {}
            for who, build in builders:
                ms.dataset.config.set_seed(0)
                loader = build(root, args.split, args.image_size, args.batch_size, workers, pipeline == "train")
                rates[who] = _rates(loader, args.epochs)
            theirs, theirs_first, theirs_cpu = rates.get("mindcv", (None, None, None))
            for who, (rate, first, cpu) in rates.items():
                ratio = rate / theirs if theirs else None
                cpu_ratio = theirs_cpu / cpu if theirs_cpu else None
                first_ratio = first / theirs_first if theirs_first else None
                print(f"  {pipeline:<8} {workers:>7} {who:<11} {rate:>8.1f} {cpu:>7.2f} {ratio or nan:>9.2f} "
                      f"{cpu_ratio or nan:>13.2f} {first:>12.1f} {first_ratio or nan:>8.2f}", flush=True)
                rows.append({"pipeline": pipeline, "workers": workers, "who": who, "images_per_s": rate,
                             "first_pass_images_per_s": first, "first_pass_ratio": first_ratio,
                             "cpu_ms_per_image": cpu, "ratio": ratio, "cpu_ratio": cpu_ratio})
    return {"images": images, "image_size": args.image_size, "batch_size": args.batch_size,
            "cpu_count": os.cpu_count(), "rows": rows}


DEFAULT_TRAIN_MODELS = ["mobilenet_v1_100", "mobilenet_v2_100", "mobilenet_v3_large_100"]


def _train_step_rate(model, batch_size: int, size: int, warmup: int, steps: int) -> float:
    """Images/s of forward + backward + momentum update on a fixed random batch (data loading excluded)."""
    import mindspore as ms
    from mindspore import nn

    from mindcv_mobilenet.engine.loss import CrossEntropySmooth
    from mindcv_mobilenet.engine.optim import create_optimizer
    from mindcv_mobilenet.engine.train_step import TrainStep

    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch_size, 3, size, size), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, 1000, batch_size).astype(np.int32))
    optimizer = create_optimizer(model.trainable_params(), "momentum", 0.01, 1e-5)
    step = TrainStep(nn.WithLossCell(model, CrossEntropySmooth(0.1)), optimizer)
    step.set_train()
    for _ in range(warmup):  # the first call compiles (graph mode)
        step(images, labels)[0].asnumpy()
    start = time.perf_counter()
    for _ in range(steps):
        step(images, labels)[0].asnumpy()
    return batch_size * steps / (time.perf_counter() - start)


def _mindcv_factory(path: str | None):
    """mindcv's ``create_model`` when mindcv is importable (``--mindcv_path`` dirs are added to sys.path)."""
    for folder in reversed((path or "").split(os.pathsep)):
        if folder and folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        from mindcv.models import create_model as mindcv_create_model
    except Exception as err:  # not installed, or its own imports fail
        print(f"mindcv not importable ({type(err).__name__}: {err}); timing this package only", file=sys.stderr)
        return None
    return mindcv_create_model


def _mindcv_model(factory, name: str):
    """mindcv's model of the same name, or None (said on stderr)."""
    from bench.compare import mindcv_model

    model = mindcv_model(factory, name)
    if model is None:
        print(f"mindcv has no model {name}", file=sys.stderr)
    return model


def bench_train(args: Config) -> dict:
    """Training images/s per model and execution mode, beside mindcv's model of the same name when available."""
    import mindspore as ms

    from mindcv_mobilenet.models import create_model

    mindcv_create = _mindcv_factory(args.mindcv_path)
    rows = []
    print(f"training step, batch {args.train_batch_size}, {args.train_image_size} px, {args.train_warmup} warm-up + "
          f"{args.train_steps} timed steps, momentum SGD, fp32")
    print(f"{'model':<26} {'mode':<9} {'ours img/s':>11} {'mindcv img/s':>13} {'ours/mindcv':>12}")
    for name in args.train_models:
        for mode in args.train_modes:
            ms.set_context(mode=mode)
            ms.set_seed(0)
            ours = _train_step_rate(create_model(name), args.train_batch_size, args.train_image_size,
                                    args.train_warmup, args.train_steps)
            theirs = None
            mindcv_model = _mindcv_model(mindcv_create, name) if mindcv_create is not None else None
            if mindcv_model is not None:
                ms.set_seed(0)
                theirs = _train_step_rate(mindcv_model, args.train_batch_size, args.train_image_size,
                                          args.train_warmup, args.train_steps)
            ratio = ours / theirs if theirs else None
            mode_name = "graph" if mode == 0 else "pynative"
            print(f"{name:<26} {mode_name:<9} {ours:>11.1f} {theirs or float('nan'):>13.1f} "
                  f"{ratio or float('nan'):>12.2f}", flush=True)
            rows.append({"model": name, "mode": mode_name, "ours_images_per_s": ours,
                         "mindcv_images_per_s": theirs, "ratio": ratio})
    return {"batch_size": args.train_batch_size, "image_size": args.train_image_size, "steps": args.train_steps,
            "warmup": args.train_warmup, "rows": rows}


DEFAULT_INFER_MODELS = ["mobilenet_v1_100", "mobilenet_v2_100", "mobilenet_v3_small_100", "mobilenet_v3_large_100"]


def bench_infer(args: Config) -> dict:
    """Inference latency (batch 1), throughput (batch N) and first-call time per model at its default resolution:
    this package in graph and PyNative mode, mindcv's model of the same name, and the ONNX export in ONNX Runtime."""
    from bench.speed import HEADER, format_row, mindspore_speed, onnxruntime_speed
    from mindcv_mobilenet.models import create_model, get_model_config, list_models
    from mindcv_mobilenet.utils.errors import UserError

    names = list_models() if args.all else list(dict.fromkeys(m for p in args.infer_models for m in list_models(p)))
    if not names:
        raise UserError(f"no model matches {' '.join(args.infer_models)} (python -m mindcv_mobilenet.summary)")
    mindcv_create = None if args.no_mindcv else _mindcv_factory(args.mindcv_path)
    use_onnx = not args.no_onnx
    if use_onnx:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("onnxruntime not installed (pip install .[onnx]): skipping the ONNX Runtime rows", file=sys.stderr)
            use_onnx = False
    batch, repeats = args.infer_batch_size, args.infer_repeats
    print(f"inference, fp32, CPU ({os.cpu_count()} cores): batch-1 latency (median of {repeats}) and batch-{batch} "
          f"throughput; 1st call = graph compile / PyNative set-up / ONNX export + load")
    print(HEADER)
    rows = []
    for name in names:
        size = args.infer_image_size or get_model_config(name).image_size
        for mode in args.infer_modes:
            mode_name = "graph" if mode == 0 else "pynative"
            runs = [("ours " + mode_name, lambda n=name: create_model(n))]
            if mindcv_create is not None:
                runs.append(("mindcv " + mode_name, lambda n=name: _mindcv_model(mindcv_create, n)))
            for runtime, build in runs:
                model = build()
                if model is None:
                    continue
                result = mindspore_speed(model, name, runtime, mode, size, batch, repeats)
                print(format_row(result), flush=True)
                rows.append(result.as_dict())
        if use_onnx:
            result = onnxruntime_speed(create_model(name), name, size, batch, repeats)
            print(format_row(result), flush=True)
            rows.append(result.as_dict())
    return {"batch_size": batch, "repeats": repeats, "cpu_count": os.cpu_count(), "rows": rows}


DEFAULT_PROFILE_MODELS = ["mobilenet_v2_100", "mobilenet_v3_small_100", "mobilenet_v1_100"]


def bench_profile(args: Config) -> dict:
    """Per-operator-type CPU time of each model, every layer timed alone at its real shape (mindcv_mobilenet.perf)."""
    from bench.opprofile import format_profile, profile_model

    print(f"per-layer profile, graph mode, batch {args.profile_batch_size}, oneDNN ISA cap "
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(default)')}, kernels {args.isa}; median of {args.profile_repeats}")
    results = []
    for name in args.profile_models:
        result = profile_model(name, args.profile_batch_size, args.image_size, args.profile_repeats,
                               backward=not args.profile_forward_only)
        print(format_profile(result) + "\n", flush=True)
        results.append(result)
    return {"isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""), "kernel_isa": args.isa, "models": results}


def bench_compare(args: Config) -> dict:
    """Ours vs mindcv (as shipped, and with our CPU setting), one fresh process per row (mindcv_mobilenet.perf)."""
    from bench.compare import HEADER, compare, ratios

    print(f"compare, fp32, {os.cpu_count()} CPU(s): inference batch {args.compare_infer_batches}, training batch "
          f"{args.compare_train_batch}; median of {args.compare_repeats} steps after the first call")
    print(HEADER.format(infer="inference"))
    rows = compare(args.compare_models, args.compare_variants, args.compare_modes, args.compare_infer_batches,
                   args.compare_train_batch, args.compare_repeats, args.isa)
    table = ratios(rows)
    for entry in table:
        print("  ours/mindcv " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in entry.items()))
    return {"rows": rows, "ratios": table}


def bench_int8(args: Config) -> dict:
    """fp32 vs int8 ONNX Runtime images/s per ``--infer-models`` model at ``--infer-batch-size``, back to back, the
    int8 file calibrated on ``--int8 CALIB_DIR`` (up to 300 images, prepared as the model's evaluation does)."""
    from types import SimpleNamespace

    from bench.speed import int8_speedup
    from mindcv_mobilenet.cli import OPTIONS_BY_NAME
    from mindcv_mobilenet.data.preprocessing import resolve_data_config
    from mindcv_mobilenet.inference.calibration import from_folder
    from mindcv_mobilenet.models import create_model, get_model_config, list_models

    print(f"ONNX Runtime fp32 vs int8 (QDQ, per-channel weights), batch {args.infer_batch_size}, {os.cpu_count()} "
          f"CPU(s); median of {args.infer_repeats} calls after one")
    rows = []
    for name in dict.fromkeys(m for p in args.infer_models for m in list_models(p)):
        keys = SimpleNamespace(dataset="imagenet", image_size=args.infer_image_size, crop_pct=None,
                               interpolation=None, mean=None, std=None)
        settings = resolve_data_config(keys, get_model_config(name))
        calibration = from_folder(args.int8, settings, OPTIONS_BY_NAME["calib_images"].default)
        row = int8_speedup(create_model(name), name, calibration, settings.image_size, args.infer_batch_size,
                           args.infer_repeats)
        print(f"{name:<26} fp32 {row['fp32_images_per_s']:8.1f} img/s  int8 {row['int8_images_per_s']:8.1f} img/s  "
              f"int8/fp32 {row['speedup']:.2f}x", flush=True)
        rows.append(row)
    return {"rows": rows}


def bench_torch(args: Config) -> dict:
    """Ours (graph mode) vs PyTorch eager on the same architectures (torchvision's V2/V3, timm's V4), issue 14's
    protocol (bench/torch_compare)."""
    from bench.torch_compare import TASKS, THREADS, compare

    if not args.torch_python or not os.path.isfile(args.torch_python):
        raise ConfigError(f"--torch needs --torch_python: the python of a virtualenv with torch and torchvision, and "
                          f"timm for the MobileNetV4 rows (pip install torch==2.13.0+cpu; torchvision==0.28 --no-deps; "
                          f"timm --no-deps), not {args.torch_python!r}")
    turns = (f"{args.torch_rounds} rounds of {args.torch_repeats} steps per row, the three rows of a model and task "
             "taking turns" if args.torch_rounds > 1 else f"{args.torch_repeats} steps per row, back to back")
    print(f"ours vs PyTorch eager, fp32, batch {args.torch_batch}, {THREADS} threads, fresh process per row; "
          f"{', '.join(f'{task} at {size} px' for task, size in TASKS.items())}; after the first call, {turns}; "
          "median step")
    return {"rows": compare(args.torch_models, args.torch_python, args.torch_batch, args.torch_repeats, args.isa,
                            args.torch_rounds)}


def _option(name: str, type_, default, help_: str, group: str, **kw) -> Option:
    return Option(name, type_, default, help_, frozenset({"benchmark"}), group, **kw)


_DATA, _TRAIN, _INFER = "--data: data pipeline", "--train: training speed", "--infer: inference speed"
_ISA = "instruction sets (bench/isa.py)"
_PROFILE = "--profile: per-operator-type time (bench/opprofile.py)"
_COMPARE = "--compare: ours vs mindcv, fresh process per row (bench/compare.py)"
_TORCH = "--torch: ours vs PyTorch eager on torchvision's and timm's architectures (bench/torch_compare.py)"
# benchmark.py's own keys, handed to the package's parser (it also takes batch_size and image_size, aliases
# image_resize and img_size, from cli.OPTIONS); flags are read with '-' as '_', so --data-root is --data_root
BENCHMARK_OPTIONS = (
    _option("isa", str, "native", "native: the CPU's own instruction sets; avx2: an AVX2-only CPU approximated on an "
            "AVX-512 one (oneDNN of both frameworks, PyTorch's ATen and MKL, and this package's kernels capped at "
            "AVX2), in every mode", _ISA, choices=tuple(isa.ENVIRONMENTS)),
    _option("data", str2bool, False, "data pipeline throughput (decode + augment), training and evaluation, vs mindcv",
            _DATA),
    _option("data_root", str, None, "ImageNet-layout folder (None: the ImageNet-sized copies "
            f"tools/make_imagenet_sized.py writes to {IMAGENET_SIZED_DIR})", _DATA, optional=True),
    _option("split", str, "val", "split folder under data_root", _DATA),
    _option("workers", int, [1, 2], "data workers (one row each)", _DATA, nargs="+"),
    _option("epochs", int, 4, "passes per setting; the first is warm-up", _DATA),
    _option("json", str, None, "also write the results to this JSON file", _DATA, optional=True),
    _option("train", str2bool, False, "training images/s (graph and PyNative) vs mindcv", _TRAIN),
    _option("train_models", str, DEFAULT_TRAIN_MODELS, "models to time", _TRAIN, nargs="+"),
    _option("train_batch_size", int, 32, "training batch", _TRAIN),
    _option("train_image_size", int, 224, "training resolution", _TRAIN),
    _option("train_modes", int, [0, 1], "0: graph, 1: PyNative", _TRAIN, nargs="+", choices=(0, 1)),
    _option("train_steps", int, 5, "timed steps per setting", _TRAIN),
    _option("train_warmup", int, 2, "untimed steps first (graph compile)", _TRAIN),
    _option("mindcv_path", str, None, "folders to add to sys.path for mindcv (os.pathsep-separated), e.g. "
            "/tmp/mindcv/src:/tmp/mcvdeps", _TRAIN, optional=True),
    _option("infer", str2bool, False, "inference latency/throughput: graph, PyNative, mindcv, ONNX Runtime", _INFER),
    _option("infer_models", str, DEFAULT_INFER_MODELS, "model names or patterns (default: one per family: V1, V2, V3 "
            "small and large)", _INFER, nargs="+"),
    _option("all", str2bool, False, "every registered model (--infer)", _INFER),
    _option("infer_batch_size", int, 32, "throughput batch size", _INFER),
    _option("infer_image_size", int, None, "resolution (None: each model's own)", _INFER, optional=True),
    _option("infer_modes", int, [0, 1], "0: graph, 1: PyNative", _INFER, nargs="+", choices=(0, 1)),
    _option("infer_repeats", int, 5, "timed calls at batch 1 (half as many at batch N)", _INFER),
    _option("no_mindcv", str2bool, False, "skip mindcv's models", _INFER),
    _option("no_onnx", str2bool, False, "skip ONNX Runtime", _INFER),
    _option("int8", str, None, "CALIB_DIR: instead, fp32 vs int8 ONNX Runtime images/s of --infer-models at "
            "--infer-batch-size, int8 calibrated on CALIB_DIR's images", _INFER, optional=True),
    _option("profile", str2bool, False, "time every layer alone at its real shape, per op type", _PROFILE),
    _option("profile_models", str, DEFAULT_PROFILE_MODELS, "models to profile", _PROFILE, nargs="+"),
    _option("profile_batch_size", int, 32, "batch", _PROFILE),
    _option("profile_repeats", int, 3, "timed calls per layer", _PROFILE),
    _option("profile_forward_only", str2bool, False, "skip forward+backward", _PROFILE),
    _option("compare", str2bool, False, "ours vs mindcv: inference, training, compile, RSS", _COMPARE),
    _option("compare_models", str, DEFAULT_PROFILE_MODELS, "models to compare", _COMPARE, nargs="+"),
    _option("compare_variants", str, ["mindcv", "mindcv+cap", "ours", "ours fused"], "rows per model", _COMPARE,
            nargs="+", choices=("mindcv", "mindcv+cap", "ours", "ours fused", "ours jit")),
    _option("compare_modes", str, ["graph", "pynative"], "execution modes", _COMPARE, nargs="+",
            choices=("graph", "pynative")),
    _option("compare_infer_batches", int, [1, 32], "inference batches", _COMPARE, nargs="+"),
    _option("compare_train_batch", int, 32, "training batch (0: no training row)", _COMPARE),
    _option("compare_repeats", int, 3, "timed steps after the first call", _COMPARE),
    _option("torch", str2bool, False, "training at 112 px and inference at 224 px vs PyTorch eager", _TORCH),
    _option("torch_python", str, None, "python of a virtualenv with torch, torchvision (and timm)", _TORCH,
            optional=True),
    _option("torch_models", str, ["mobilenet_v2_100", "mobilenet_v3_small_100", "mobilenet_v3_large_100",
                                  "mobilenet_v4_conv_small", "mobilenet_v4_hybrid_medium"],
            "models (those torchvision or timm also has)", _TORCH, nargs="+"),
    _option("torch_batch", to_positive_int, 32, "batch", _TORCH),
    _option("torch_repeats", to_positive_int, 5, "timed steps after the first call (per round)", _TORCH),
    _option("torch_rounds", to_positive_int, 1, "rounds in which a model and task's rows (ours, PyTorch NCHW, PyTorch "
            "channels_last) take turns, repeats steps each, so that the machine's slow periods fall on all of them "
            "(1: one after the other)", _TORCH),
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args("benchmark", argv, extra=BENCHMARK_OPTIONS, description="mindcv_mobilenet benchmarks")
    modes = {"data": bench_data, "train": bench_train, "infer": bench_infer,
             "profile": bench_profile, "compare": bench_compare, "int8": bench_int8, "torch": bench_torch}
    chosen = [name for name in modes if getattr(args, name)]
    if not chosen:
        raise ConfigError(f"choose a benchmark: {', '.join('--' + m for m in modes)}")
    isa.apply(args.isa)  # before MindSpore or any row's process runs a kernel
    print(isa.header(args.isa), flush=True)
    results = {"cpu": isa.describe(args.isa)}
    results.update((name, modes[name](args)) for name in chosen)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    run_cli(main)
