"""Reading option values written by people: booleans as YAML and command lines spell them, and numbers that refuse
what would silently change their meaning (``True`` as 1, ``2.5`` as an integer).

One home for the option parser (:mod:`mindcv_mobilenet.cli.parser`) and the model_zoo/mindcv key table
(:mod:`mindcv_mobilenet.cli.foreign`), which both read such values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def str2bool(value: Any) -> bool:
    """``True/False/true/false/yes/no/1/0`` (and real booleans) to bool; anything else is an error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"expected a boolean (True/False/1/0), got {value!r}")


def is_bool(value: Any) -> bool:
    """Whether :func:`str2bool` reads ``value``."""
    try:
        str2bool(value)
    except ValueError:
        return False
    return True


def number_type(conv: Callable) -> Callable:
    """``conv`` (int or float) that refuses booleans and, for int, floats with a fraction (ValueError)."""

    def convert(value: Any):
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if conv is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        return conv(value)

    convert.__name__ = conv.__name__
    return convert


to_int = number_type(int)
to_float = number_type(float)


def to_positive_int(value: Any) -> int:
    """:data:`to_int`, refusing zero and negative numbers (ValueError)."""
    number = to_int(value)
    if number <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number
