"""Print every registered model's parameters and multiply-adds, measured from the network, next to the paper's.

Usage: ``python -m mindcv_mobilenet.summary [--pattern 'mobilenet_v3*'] [--markdown]``
"""

from __future__ import annotations

from .cli import parse_args
from .models import create_model, get_model_config, list_models
from .profile import count_macs, count_params
from .utils.errors import run_cli


def summarize(name: str) -> dict:
    """Measured params/MACs of ``name`` at its default resolution, with the paper's and mindcv's figures."""
    config = get_model_config(name)
    model = create_model(name)
    return {
        "model": name,
        "resolution": config.image_size,
        "params_m": count_params(model) / 1e6,
        "macs_m": count_macs(model, config.image_size) / 1e6,
        "paper_params_m": config.paper_params_m,
        "paper_macs_m": config.paper_macs_m,
        "top1": config.top1,
        "top5": config.top5,
        "pretrained": bool(config.url),
    }


def _fmt(value, spec: str = "g", width: int = 0) -> str:
    text = "-" if value is None else format(value, spec)
    return text.rjust(width)


def main(argv: list[str] | None = None) -> int:
    args = parse_args("summary", argv, description=__doc__.splitlines()[0])
    names = list_models(args.pattern)
    if args.markdown:
        print("| model | resolution | params (M) | MACs (M) | paper params / MACs | Top-1 / Top-5 (mindcv weights) |")
        print("|---|---|---|---|---|---|")
    else:
        print(f"{'model':<26}{'res':>5}{'params(M)':>11}{'paper':>8}{'MACs(M)':>10}{'paper':>8}{'top1':>8}")
    for name in names:
        row = summarize(name)
        if args.markdown:
            paper = f"{_fmt(row['paper_params_m'])} / {_fmt(row['paper_macs_m'])}"
            acc = f"{row['top1']} / {_fmt(row['top5'])}" if row["top1"] else "-"
            print(f"| {name} | {row['resolution']} | {row['params_m']:.2f} | {row['macs_m']:.0f} | {paper} | {acc} |")
        else:
            print(f"{name:<26}{row['resolution']:>5}{row['params_m']:>11.2f}{_fmt(row['paper_params_m'], 'g', 8)}"
                  f"{row['macs_m']:>10.0f}{_fmt(row['paper_macs_m'], 'g', 8)}{_fmt(row['top1'], '.2f', 8)}", flush=True)
    for note in dict.fromkeys(get_model_config(name).paper_note for name in names):  # where paper and network differ
        if note:
            print(f"\nnote: {note}")
    return 0


if __name__ == "__main__":
    run_cli(main)
