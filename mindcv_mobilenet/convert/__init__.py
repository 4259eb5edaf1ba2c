"""Convert torchvision, Keras or TFLite MobileNet weights into a MindSpore checkpoint for this package's models.

Usage: ``python -m mindcv_mobilenet.convert --model mobilenet_v2_100 --input weights.npz|weights.pth --output out.ckpt``
(Google's Keras ``.h5``/``.npz`` and TFLite ``.tflite`` files go into the ``tf_mobilenet_*`` models, e.g.
``--model tf_mobilenet_v1_075 --input mobilenet_v1_0.75_224_keras.npz``; timm's ``.safetensors``/``.pth`` into the
``mobilenet_v4_*`` models.)

One package, one path: a reader per source turns its file into source layers in network order (:mod:`.torchvision`,
:mod:`.keras`, :mod:`.tflite`; file reading in :mod:`.files`), one routine maps them onto the model's cells
(:func:`.layers.map_onto`, which checks every shape), and :func:`convert_file` writes the checkpoint after proving
that it reloads strictly. timm's MobileNetV4 keeps timm's names, so :mod:`.timm` maps it by a name table instead.
The command line is :mod:`.__main__`.
"""

from __future__ import annotations

import os

import numpy as np

from ..utils.errors import CheckpointError, UserError
from .files import load_state_file
from .layers import as_parameters, num_classes_of
from .tf import convert_tf, is_tf_input
from .timm import convert_timm, is_timm_model, timm_state_to_params
from .torchvision import PADDING_WARNING, convert_torchvision, measure_padding_gap, torchvision_padding_twin

__all__ = [
    "PADDING_WARNING", "as_parameters", "convert_file", "convert_tf", "convert_timm", "convert_torchvision",
    "load_state_file", "measure_padding_gap", "timm_state_to_params", "torchvision_padding_twin",
]


def _convert_input(model_name: str, input_path: str, num_classes: int | None, bn_eps: float | None):
    """Read ``input_path`` and convert it with the reader of its source (timm for MobileNetV4, Keras/TFLite, else
    torchvision)."""
    if is_timm_model(model_name) or input_path.endswith(".safetensors"):
        return convert_timm(model_name, input_path, num_classes)
    if is_tf_input(input_path):
        return convert_tf(model_name, input_path, num_classes)
    state = load_state_file(input_path)
    if is_tf_input(input_path, state):  # a .npz with Keras's layer/weight names
        return convert_tf(model_name, input_path, num_classes, state=state)
    return convert_torchvision(model_name, state, num_classes, bn_eps, source=os.path.basename(input_path))


def convert_file(model_name: str, input_path: str, output_path: str, num_classes: int | None = None,
                 force: bool = False, bn_eps: float | None = None) -> dict[str, np.ndarray]:
    """Convert ``input_path`` and write ``output_path`` atomically, after proving it loads strictly into a new model."""
    from ..models import create_model
    from ..utils.checkpoint import load_model_weights, save_checkpoint
    from ..utils.fileio import atomic_path

    if not output_path.endswith(".ckpt"):
        raise UserError(f"output {output_path} must end in .ckpt (MindSpore would append it to any other name)")
    if os.path.isdir(output_path):
        raise UserError(f"output {output_path} is a folder; give a file name ending in .ckpt")
    if os.path.exists(output_path) and not force:
        raise UserError(f"output {output_path} exists; pass --force to overwrite it")
    params = _convert_input(model_name, input_path, num_classes, bn_eps)
    classes = num_classes_of(params)
    with atomic_path(output_path) as tmp_path:
        save_checkpoint(params, tmp_path)
        fresh = create_model(model_name, num_classes=classes)
        load_model_weights(fresh, tmp_path, new_classifier=False)  # strict: raises on any parameter that does not fit
        loaded = {p.name: p.asnumpy() for p in fresh.get_parameters()}
        differ = [n for n, a in params.items() if not np.array_equal(loaded[n], a)]
        if differ:
            raise CheckpointError(f"written checkpoint does not reload as converted: {', '.join(differ[:5])}")
    return params
