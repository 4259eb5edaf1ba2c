"""TF-slim's quantized MobileNets (``.tflite`` flatbuffers, needs ``tflite``) as source layers.

Weights and biases are dequantized (``(q - zero_point) * scale``, per tensor or per channel); BatchNorm is folded
into each convolution (the mapping makes the model's BatchNorm the identity plus that bias); the 1x1 convolutions
after the last spatial layer (on the pooled 1x1 map) are the classifier's linear layers; the 1,001 outputs start
with a background class (dropped by :func:`.tf.convert_tf` for a 1,000-class model).
"""

from __future__ import annotations

import re

import numpy as np

from ..utils.errors import CheckpointError, UserError
from .files import require
from .layers import SourceLayer

_TFLITE_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 7: np.int16, 9: np.int8}


class TFLiteGraph:
    """The operators and constant tensors of a ``.tflite`` file (its first subgraph), dequantized to float32."""

    def __init__(self, path: str) -> None:
        tflite = require("tflite", path)
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

    def layers(self) -> list[SourceLayer]:
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
                layers.append(SourceLayer(prefix, "conv", tensors, meta))
            elif i > last_spatial and weight.shape[1:3] == (1, 1):  # on the pooled 1x1 map: a linear layer
                tensors["weight"] = weight[:, 0, 0, :]
                layers.append(SourceLayer(prefix, "linear", tensors))
            else:  # O, H, W, I -> O, I, H, W
                tensors["weight"] = weight.transpose(0, 3, 1, 2)
                layers.append(SourceLayer(prefix, "conv", tensors, np.array([options.StrideH(), 0, 1])))
        if not layers:
            raise CheckpointError(f"{self.path} has no convolutions: it is not a MobileNet")
        return layers
