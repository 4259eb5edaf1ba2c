"""Draw a training run's curves from its metrics.jsonl: ``python -m mindcv_mobilenet.plot RUN_DIR [--output PNG]``.

train.py draws ``curves.png`` itself at each epoch end when matplotlib is installed; this draws it afterwards, for a
run made without matplotlib or copied from another machine (only ``metrics.jsonl`` is needed). Also rewrites
``summary.csv`` beside the picture. The drawing lives in :mod:`mindcv_mobilenet.utils.plot`.
"""

from __future__ import annotations

import os

import yaml

from .cli import parse_args
from .engine.checkpoint_manager import RUN_CONFIG_FILE
from .engine.monitor import CURVES_FILE, METRICS_FILE, SUMMARY_FILE, read_metrics, write_summary_csv
from .utils.errors import DataError, UserError, run_cli
from .utils.plot import draw_curves, matplotlib_missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args("plot", argv, description=__doc__.splitlines()[0])
    if not os.path.isdir(args.run_dir):
        raise DataError(f"run folder {args.run_dir} not found")
    records = read_metrics(os.path.join(args.run_dir, METRICS_FILE))
    missing = matplotlib_missing()
    if missing:
        raise UserError(f"cannot draw: {missing}")
    output = args.output or os.path.join(args.run_dir, CURVES_FILE)
    draw_curves(records, output, title=f"{_model(args.run_dir)}: {args.run_dir}")
    summary = write_summary_csv(records, os.path.join(os.path.dirname(os.path.abspath(output)), SUMMARY_FILE))
    print(f"{output}: {len(records)} epochs ({summary} beside it)")
    return 0


def _model(run_dir: str) -> str:
    """The run's model as its config.yaml names it (the picture's title), else 'run'."""
    try:
        with open(os.path.join(run_dir, RUN_CONFIG_FILE), encoding="utf-8") as f:
            return str(yaml.safe_load(f).get("model", "run"))
    except (OSError, yaml.YAMLError, AttributeError):
        return "run"


if __name__ == "__main__":
    run_cli(main)
