"""Import Google's own MobileNets: Keras (``.h5``, or ``.npz`` with Keras names) and TFLite (``.tflite``) files.

Both are read into the layer list of the torchvision import (:mod:`mindcv_mobilenet.convert`): convolutions in OIHW,
BatchNorms, linear layers, in network order. That import's mapping then assigns them to the ``tf_mobilenet_*``
model's cells position by position, checking every shape, so a file of another model or width fails on the first
layer that does not fit, naming it. What each format needs on the way:

* Keras (MobileNetV1 of ``keras.applications``: ``conv1``, ``conv_dw_N``, ``conv_pw_N``, ``*_bn``, ``conv_preds``):
  kernels are HWIO (depthwise HWC1), BatchNorm eps is 1e-3 (kept as var + eps by the mapping), 1,000 classes.
* TFLite (TF-slim's quantized releases): weights and biases are dequantized (``(q - zero_point) * scale``, per
  tensor or per channel), BatchNorm is folded into each convolution (the model's BatchNorm becomes the identity plus
  that bias), and the 1,001 outputs start with a background class, dropped for a 1,000-class model. The 1x1
  convolutions after the last spatial layer (on the pooled 1x1 map) are the classifier's linear layers.

The readers need ``h5py`` and ``tflite``: ``pip install 'mindcv_mobilenet[convert]'``.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .convert import _map_onto, _models_that_fit, _TorchLayer
from .utils.errors import CheckpointError, UserError

KERAS_BN_EPS = 1e-3
TF_FORMATS = (".h5", ".hdf5", ".tflite")
CONVERT_EXTRA = "pip install 'mindcv_mobilenet[convert]'"
_KERAS_V1_LAYER = re.compile(r"^(conv1|conv_(dw|pw)_(\d+)|conv_preds)(_bn)?$")


def is_tf_input(path: str, state: dict[str, np.ndarray] | None = None) -> bool:
    """True for a Keras/TFLite file: by extension, or a ``.npz`` whose names are Keras's ``layer/weight``."""
    if os.path.splitext(path)[1].lower() in TF_FORMATS:
        return True
    return state is not None and bool(state) and all("/" in key for key in state)


def _need(module: str, path: str):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"reading {path} needs the '{module}' package, which is not installed here; "
                        f"{CONVERT_EXTRA} (or pip install {module})") from None


# ------------------------------------------------------------------------------------------------------------- Keras
def load_keras_h5(path: str) -> dict[str, np.ndarray]:
    """A Keras ``.h5`` (whole model or weights only) as ``layer/weight`` -> array, in the file's layer order."""
    h5py = _need("h5py", path)
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise UserError(f"{path} is an HDF5 file but not a Keras model (no 'layer_names'); is it a Keras .h5?")
            state = {}
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                for weight in group[layer].attrs.get("weight_names", []):
                    weight = weight.decode() if isinstance(weight, bytes) else str(weight)
                    short = weight.rsplit("/", 1)[-1].split(":")[0]
                    state[f"{layer}/{short}"] = np.asarray(group[layer][weight], np.float32)
    except OSError as err:
        raise UserError(f"cannot read {path} as an HDF5 file ({str(err)[:120]})") from None
    if not state:
        raise UserError(f"{path} holds no weights")
    return state


def _keras_order(layer: str) -> tuple:
    match = _KERAS_V1_LAYER.match(layer)
    name, kind, block = match.group(1), match.group(2), match.group(3)
    if name == "conv1":
        return (0, 0, 0)
    if name == "conv_preds":
        return (2, 0, 0)
    return (1, int(block), 0 if kind == "dw" else 1)


def keras_layers(state: dict[str, np.ndarray], source: str = "weights") -> list[_TorchLayer]:
    """Keras MobileNetV1 weights (``conv_dw_3/depthwise_kernel``, ``conv1_bn/moving_mean``...) as ordered layers."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        layer, _, weight = key.rpartition("/")
        groups.setdefault(layer, {})[weight] = np.asarray(value, np.float32)
    foreign = sorted(name for name in groups if not _KERAS_V1_LAYER.match(name))
    if foreign:
        raise CheckpointError(
            f"{source} is not a Keras MobileNetV1: layers {', '.join(foreign[:4])}{' ...' if len(foreign) > 4 else ''}"
            " are not conv1, conv_dw_N, conv_pw_N, their _bn, or conv_preds"
        )
    layers = []
    for name in sorted(groups, key=lambda n: (_keras_order(n.removesuffix("_bn")), n.endswith("_bn"))):
        w = groups[name]
        if "moving_mean" in w:
            tensors = {"running_mean": w["moving_mean"], "running_var": w["moving_variance"]}
            tensors.update({k: w[v] for k, v in (("weight", "gamma"), ("bias", "beta")) if v in w})
            layers.append(_TorchLayer(name, "bn", tensors))
        elif "depthwise_kernel" in w:  # H, W, C, 1 -> C, 1, H, W
            layers.append(_TorchLayer(name, "conv", {"weight": w["depthwise_kernel"].transpose(2, 3, 0, 1)}))
        elif name == "conv_preds":  # 1x1 convolution on the pooled features: the classifier
            tensors = {"weight": w["kernel"][0, 0].T.copy()}
            if "bias" in w:
                tensors["bias"] = w["bias"]
            layers.append(_TorchLayer(name, "linear", tensors))
        else:  # H, W, I, O -> O, I, H, W
            tensors = {"weight": w["kernel"].transpose(3, 2, 0, 1)}
            if "bias" in w:
                tensors["bias"] = w["bias"]
            layers.append(_TorchLayer(name, "conv", tensors))
    return layers


# ------------------------------------------------------------------------------------------------------------ TFLite
_TFLITE_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 7: np.int16, 9: np.int8}


class TFLiteGraph:
    """The operators and constant tensors of a ``.tflite`` file (its first subgraph), dequantized to float32."""

    def __init__(self, path: str) -> None:
        tflite = _need("tflite", path)
        from tflite.BuiltinOperator import BuiltinOperator

        self.path = path
        with open(path, "rb") as f:
            buf = f.read()
        try:
            if buf[4:8] != b"TFL3":
                raise ValueError("no TFL3 identifier")
            self.model = tflite.Model.GetRootAsModel(buf, 0)
            self.graph = self.model.Subgraphs(0)
        except Exception as err:
            raise UserError(f"cannot read {path} as a TFLite flatbuffer ({str(err)[:100]})") from None
        names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self.ops = []  # (builtin name, input tensor indices, output tensor indices, operator)
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            self.ops.append((names.get(builtin, str(builtin)), [int(j) for j in op.InputsAsNumpy()],
                             [int(j) for j in op.OutputsAsNumpy()], op))

    def name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode()

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.graph.Tensors(index).ShapeAsNumpy())

    def constant(self, index: int) -> np.ndarray:
        """A weight or bias tensor as float32: ``(q - zero_point) * scale`` along its quantized dimension."""
        tensor = self.graph.Tensors(index)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        dtype = _TFLITE_DTYPES.get(tensor.Type())
        if dtype is None or isinstance(data, int):
            raise CheckpointError(f"{self.path}: tensor {self.name(index)} has no constant data of a known type")
        values = np.frombuffer(data.tobytes(), dtype).reshape(self.shape(index)).astype(np.float64)
        quant = tensor.Quantization()
        if quant is not None and quant.ScaleLength():
            scale, zero = quant.ScaleAsNumpy().astype(np.float64), quant.ZeroPointAsNumpy().astype(np.float64)
            if scale.size > 1:  # per channel
                axis = quant.QuantizedDimension()
                view = [1] * values.ndim
                view[axis] = -1
                scale, zero = scale.reshape(view), zero.reshape(view)
            values = (values - zero) * scale
        return values.astype(np.float32)

    def input_quantization(self) -> tuple[float, float] | None:
        """(scale, zero point) of a quantized graph input, None for a float input."""
        quant = self.graph.Tensors(self.graph.Inputs(0)).Quantization()
        if quant is None or not quant.ScaleLength():
            return None
        return float(quant.ScaleAsNumpy()[0]), float(quant.ZeroPointAsNumpy()[0])

    def family(self) -> str | None:
        """'v1', 'v2' or 'v3' from TF-slim's scope names (``MobilenetV1/...``), None when there are none."""
        found = {m.group(1) for i in range(self.graph.TensorsLength())
                 if (m := re.match(r"Mobilenet(V[123])/", self.name(i)))}
        return found.pop().lower() if len(found) == 1 else None

    def layers(self) -> list[_TorchLayer]:
        """Convolutions (BatchNorm folded: weight + bias) in operator order; those on the pooled map are linear."""
        from tflite.Conv2DOptions import Conv2DOptions
        from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions

        spatial = [i for i, (_, _, outputs, _) in enumerate(self.ops)
                   if len(self.shape(outputs[0])) == 4 and self.shape(outputs[0])[1] * self.shape(outputs[0])[2] > 1]
        last_spatial = spatial[-1] if spatial else -1
        layers = []
        for i, (kind, inputs, _, op) in enumerate(self.ops):
            if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                continue
            weight = self.constant(inputs[1])
            tensors = {"bias": self.constant(inputs[2])} if len(inputs) > 2 and inputs[2] >= 0 else {}
            options = Conv2DOptions() if kind == "CONV_2D" else DepthwiseConv2DOptions()
            table = op.BuiltinOptions()
            options.Init(table.Bytes, table.Pos)
            prefix = self.name(inputs[1]).split("/weights_quant")[0]
            if kind == "DEPTHWISE_CONV_2D":  # 1, H, W, C -> C, 1, H, W
                tensors["weight"] = weight.transpose(3, 0, 1, 2)
                meta = np.array([options.StrideH(), 0, weight.shape[-1]])
                layers.append(_TorchLayer(prefix, "conv", tensors, meta))
            elif i > last_spatial and weight.shape[1:3] == (1, 1):  # on the pooled 1x1 map: a linear layer
                tensors["weight"] = weight[:, 0, 0, :]
                layers.append(_TorchLayer(prefix, "linear", tensors))
            else:  # O, H, W, I -> O, I, H, W
                tensors["weight"] = weight.transpose(0, 3, 1, 2)
                layers.append(_TorchLayer(prefix, "conv", tensors, np.array([options.StrideH(), 0, 1])))
        if not layers:
            raise CheckpointError(f"{self.path} has no convolutions: it is not a MobileNet")
        return layers


# ----------------------------------------------------------------------------------------------------------- convert
def read_tf_file(path: str, state: dict[str, np.ndarray] | None = None) -> tuple[list[_TorchLayer], str, float]:
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
    from .models import create_model, get_model_config

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
        return _map_onto(model, layers, eps, source, model_name)
    except CheckpointError as err:
        fits = _models_that_fit(family, layers, eps, num_classes, prefix="tf_mobilenet")
        hint = f"; the file fits {', '.join(fits)}" if fits else ""
        raise CheckpointError(f"{err}{hint}") from None
