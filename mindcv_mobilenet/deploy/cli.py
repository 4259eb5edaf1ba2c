"""Argument parsing of validate.py and infer.py on top of the shared config parser (``mindcv_mobilenet.config``).

The shared parser gives every key a value (its default when unset). Evaluation must know which keys the user set:
an unset ``image_resize`` means "the model's resolution" (224 for ImageNet models), not the training demo's 32.
:func:`parse` therefore also returns the keys given on the command line or in the ``-c`` YAML file. A checkpoint
written by ``train.py`` sits in a run folder with the run's ``config.yaml``: its preprocessing keys (data set recipe,
resolution, crop, interpolation, statistics) fill the ones not given, so a fine-tuned model is evaluated the way it
was trained.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..config import Config, Option, given_keys, load_yaml, parse_args
from ..utils.errors import ConfigError

_logger = logging.getLogger("mindcv_mobilenet")

RUN_CONFIG_FILE = "config.yaml"
PREPROCESSING_KEYS = ("dataset", "image_resize", "crop_pct", "interpolation", "mean", "std")


def _text(value: Any) -> str:
    if isinstance(value, (list, dict)):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a positive integer, got {value!r}")
    number = int(value)
    if number <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def option(name: str, type_, default: Any, help_: str, kind: str, group: str = "deploy", **kwargs) -> Option:
    """A script-specific key (passed to the shared parser as ``extra``)."""
    return Option(name, type_, default, help_, frozenset({kind}), group, **kwargs)


def text_option(name: str, default: str, help_: str, kind: str, **kwargs) -> Option:
    return option(name, _text, default, help_, kind, **kwargs)


def int_option(name: str, default: int, help_: str, kind: str, **kwargs) -> Option:
    return option(name, _positive_int, default, help_, kind, **kwargs)


def explicit_keys(kind: str, argv: Sequence[str], extra: Sequence[Option]) -> set[str]:
    """Keys set on the command line or in the ``-c`` YAML file (call after :func:`parse_args` accepted ``argv``)."""
    return given_keys(kind, argv, extra)


def adopt_run_preprocessing(cfg: Config, explicit: set[str]) -> str | None:
    """Fill unset preprocessing keys from the ``config.yaml`` beside ``cfg.ckpt_path`` (a train.py run folder)."""
    if not getattr(cfg, "ckpt_path", "") or cfg.config:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(cfg.ckpt_path)), RUN_CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        values = load_yaml(path)
    except ConfigError as err:
        _logger.warning("ignoring %s: %s", path, err)
        return None
    adopted = [k for k in PREPROCESSING_KEYS if k in values and k not in explicit and k in cfg]
    for key in adopted:
        setattr(cfg, key, values[key])
        explicit.add(key)
    if adopted:
        _logger.info("preprocessing from the training run's %s: %s", path,
                     ", ".join(f"{k}={getattr(cfg, k)}" for k in adopted))
    return path if adopted else None


def parse(kind: str, extra: Sequence[Option], description: str, argv: Sequence[str] | None = None
          ) -> tuple[Config, set[str]]:
    """(resolved config, explicitly set keys) for ``kind`` ('validate' or 'infer')."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_args(kind, argv, extra=extra, description=description)
    explicit = explicit_keys(kind, argv, extra)
    adopt_run_preprocessing(cfg, explicit)
    return cfg, explicit


def setup_logging() -> None:
    """Library log lines (info and up) on stderr, message only, once."""
    logger = logging.getLogger("mindcv_mobilenet")
    if not any(getattr(h, "_mcv_deploy", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._mcv_deploy = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
