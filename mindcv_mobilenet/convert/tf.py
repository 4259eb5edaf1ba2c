"""Google's own MobileNets into the ``tf_mobilenet_*`` models: Keras (``.h5``, or ``.npz`` with Keras names) and
TFLite (``.tflite``) files, read by :mod:`.keras` and :mod:`.tflite` and mapped by :func:`.layers.map_onto`.

The readers need ``h5py`` and ``tflite``: ``pip install 'mindcv_mobilenet[convert]'``.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..utils.errors import CheckpointError, UserError
from .keras import KERAS_BN_EPS, keras_layers, load_keras_h5
from .layers import SourceLayer, map_onto, models_that_fit
from .tflite import TFLiteGraph

TF_FORMATS = (".h5", ".hdf5", ".tflite")


def is_tf_input(path: str, state: dict[str, np.ndarray] | None = None) -> bool:
    """True for a Keras/TFLite file: by extension, or a ``.npz`` whose names are Keras's ``layer/weight``."""
    if os.path.splitext(path)[1].lower() in TF_FORMATS:
        return True
    return state is not None and bool(state) and all("/" in key for key in state)


def read_tf_file(path: str, state: dict[str, np.ndarray] | None = None) -> tuple[list[SourceLayer], str, float]:
    """(layers, family 'v1'/'v2'/'v3', BatchNorm eps) of a Keras ``.h5``/``.npz`` (``state``: its arrays) or a
    ``.tflite``."""
    source = os.path.basename(path)
    if not os.path.isfile(path):
        raise UserError(f"input {path} not found; pass a Keras .h5/.npz or a .tflite file with --input")
    if path.lower().endswith(".tflite"):
        graph = TFLiteGraph(path)
        family = graph.family()
        if family is None:
            raise CheckpointError(f"{source} is not a TF-slim MobileNet: no MobilenetV1/V2/V3 layer names")
        return graph.layers(), family, KERAS_BN_EPS  # eps is unused: BatchNorm is folded
    if state is None:
        state = load_keras_h5(path)
    return keras_layers(state, source), "v1", KERAS_BN_EPS


def convert_tf(model_name: str, path: str, num_classes: int | None = None,
               state: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Map a Keras or TFLite MobileNet onto the ``tf_`` model ``model_name``; parameter name -> float32 array.

    ``num_classes`` defaults to 1,000 (a TF-slim background class is dropped); pass 1001 to keep it.
    """
    from ..models import create_model, get_model_config

    get_model_config(model_name)  # unknown name: one UserError with close matches
    source = os.path.basename(path)
    layers, family, eps = read_tf_file(path, state)
    target = re.match(r"tf_mobilenet_(v[123])_", model_name)
    if target is None:
        raise UserError(f"{source} is a TensorFlow MobileNet{family.upper()} ('same' padding, TF preprocessing): "
                        f"convert it into a tf_mobilenet_{family}_* model, not {model_name}")
    if target.group(1) != family:
        raise CheckpointError(f"{source} holds a MobileNet{family.upper()} but {model_name} is a "
                              f"MobileNet{target.group(1).upper()}; use a tf_mobilenet_{family}_* model")
    head = layers[-1]
    if head.kind == "linear" and head.tensors["weight"].shape[0] == 1001 and num_classes in (None, 1000):
        head.tensors = {k: v[1:] for k, v in head.tensors.items()}  # TF-slim's background class comes first
    if num_classes is None:
        num_classes = int(head.tensors["weight"].shape[0]) if head.kind == "linear" else 1000
    model = create_model(model_name, num_classes=num_classes)
    try:
        return map_onto(model, layers, eps, source, model_name)
    except CheckpointError as err:
        fits = models_that_fit(family, layers, eps, num_classes, prefix="tf_mobilenet")
        hint = f"; the file fits {', '.join(fits)}" if fits else ""
        raise CheckpointError(f"{err}{hint}") from None
