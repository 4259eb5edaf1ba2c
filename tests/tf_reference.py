"""Independent references for Google's MobileNet files, free of MindSpore and of the package's converter.

* :func:`keras_v1_forward`: a NumPy MobileNetV1 run directly on the Keras ``layer/weight`` arrays (HWIO kernels,
  BatchNorm eps 1e-3, ReLU6, TensorFlow "same" padding).
* :class:`TFLiteFloatGraph`: the ``.tflite`` graph interpreted operator by operator in NumPy, on dequantized constants
  (what the float model computes; checks the structure the converter maps, including padding and squeeze-excite).
* :func:`tflite_runtime_logits`: the real quantized model in TensorFlow Lite's own interpreter (``tflite-runtime``).

All work in NHWC like TensorFlow; inputs come from :func:`tf_preprocess` (``reference.py``'s PIL decode and NumPy
resize, mean/std 0.5: ``x / 127.5 - 1``).
"""

from __future__ import annotations

import numpy as np
from reference import reference_metrics, reference_preprocess

TF_HALF = np.array([0.5, 0.5, 0.5], np.float32)


def tf_preprocess(path: str, size: int) -> np.ndarray:
    """NCHW-ready CHW float32: shorter side to size / 0.875 (bilinear), center crop, x / 127.5 - 1."""
    return reference_preprocess(path, size, 0.875, mean=TF_HALF, std=TF_HALF)


def same_pad(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """TensorFlow's 'same' padding of an NHWC map: total max((out - 1) * s + k - in, 0), the smaller half first."""
    pads = [(0, 0)]
    for n in x.shape[1:3]:
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)])


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, depthwise: bool) -> np.ndarray:
    """NHWC 'same' convolution; ``w`` is (kh, kw, in, out), or (kh, kw, channels) when ``depthwise``."""
    k = w.shape[0]
    x = same_pad(x, k, stride)
    ho, wo = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = None
    for i in range(k):
        for j in range(k):
            tap = x[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            term = tap * w[i, j] if depthwise else tap @ w[i, j]
            out = term if out is None else out + term
    return out if b is None else out + b


def keras_v1_forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Keras applications' MobileNetV1 on NCHW ``x``: logits (N, 1000)."""
    def bn_relu6(h: np.ndarray, name: str) -> np.ndarray:
        g, b = weights[f"{name}/gamma"], weights[f"{name}/beta"]
        m, v = weights[f"{name}/moving_mean"], weights[f"{name}/moving_variance"]
        return np.clip((h - m) / np.sqrt(v + 1e-3) * g + b, 0.0, 6.0)

    h = bn_relu6(conv(x.transpose(0, 2, 3, 1).astype(np.float64), weights["conv1/kernel"], None, 2, False), "conv1_bn")
    for n, stride in enumerate((1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1), start=1):
        h = bn_relu6(conv(h, weights[f"conv_dw_{n}/depthwise_kernel"][..., 0], None, stride, True), f"conv_dw_{n}_bn")
        h = bn_relu6(conv(h, weights[f"conv_pw_{n}/kernel"], None, 1, False), f"conv_pw_{n}_bn")
    return h.mean(axis=(1, 2)) @ weights["conv_preds/kernel"][0, 0] + weights["conv_preds/bias"]


class TFLiteFloatGraph:
    """A ``.tflite`` file's operators run in order in float64 NumPy on its dequantized constants."""

    _FUSED = {0: lambda v: v, 1: lambda v: np.maximum(v, 0), 3: lambda v: np.clip(v, 0, 6)}

    def __init__(self, path: str) -> None:
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        with open(path, "rb") as f:
            self.model = tflite.Model.GetRootAsModel(f.read(), 0)
        self.graph = self.model.Subgraphs(0)
        self.names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}

    def _const(self, index: int) -> np.ndarray | None:
        tensor = self.graph.Tensors(index)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int):
            return None
        dtype = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8}[tensor.Type()]
        q = np.frombuffer(data.tobytes(), dtype).reshape(tensor.ShapeAsNumpy()).astype(np.float64)
        quant = tensor.Quantization()
        if quant is None or not quant.ScaleLength() or tensor.Type() == 0 and tensor.Buffer() == 0:
            return q
        shape = [1] * q.ndim
        if quant.ScaleLength() > 1:
            shape[quant.QuantizedDimension()] = -1
        return (q - quant.ZeroPointAsNumpy().reshape(shape)) * quant.ScaleAsNumpy().reshape(shape)

    def _clamp(self, index: int, y: np.ndarray) -> np.ndarray:
        """The activation a quantized graph keeps only in an output's range: a uint8 range starting at 0 is a ReLU,
        [0, 6] a ReLU6 (the squeeze-excite gate's ``add 3, ReLU6`` has no fused activation, only that range)."""
        tensor = self.graph.Tensors(index)
        quant = tensor.Quantization()
        if tensor.Type() != 3 or quant is None or not quant.ScaleLength() or quant.ZeroPointAsNumpy()[0] != 0:
            return y
        top = 255 * float(quant.ScaleAsNumpy()[0])
        return np.clip(y, 0.0, 6.0 if abs(top - 6.0) < 0.05 else None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, 1001, before the softmax) of NCHW inputs in [-1, 1]."""
        from tflite.AddOptions import AddOptions
        from tflite.Conv2DOptions import Conv2DOptions
        from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions
        from tflite.MulOptions import MulOptions

        values = {self.graph.Inputs(0): x.transpose(0, 2, 3, 1).astype(np.float64)}

        def get(index: int) -> np.ndarray:
            return values[index] if index in values else self._const(index)

        def options(op, cls):
            opt, table = cls(), op.BuiltinOptions()
            opt.Init(table.Bytes, table.Pos)
            return opt

        result = None
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = self.names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins, out = list(op.InputsAsNumpy()), int(op.OutputsAsNumpy()[0])
            if kind == "CONV_2D":
                o = options(op, Conv2DOptions)
                w = get(ins[1]).transpose(1, 2, 3, 0)  # O, H, W, I -> H, W, I, O
                y = self._FUSED[o.FusedActivationFunction()](conv(get(ins[0]), w, get(ins[2]), o.StrideH(), False))
            elif kind == "DEPTHWISE_CONV_2D":
                o = options(op, DepthwiseConv2DOptions)
                w = get(ins[1])[0]  # 1, H, W, C -> H, W, C
                y = self._FUSED[o.FusedActivationFunction()](conv(get(ins[0]), w, get(ins[2]), o.StrideH(), True))
            elif kind in ("ADD", "MUL"):
                a, b = get(ins[0]), get(ins[1])
                o = options(op, AddOptions if kind == "ADD" else MulOptions)
                y = self._FUSED[o.FusedActivationFunction()](a + b if kind == "ADD" else a * b)
            elif kind == "HARD_SWISH":
                a = get(ins[0])
                y = a * np.clip(a + 3, 0, 6) / 6
            elif kind == "AVERAGE_POOL_2D":  # global in these networks
                y = get(ins[0]).mean(axis=(1, 2), keepdims=True)
            elif kind == "RESHAPE":
                y = get(ins[0]).reshape(len(x), -1)
                result = y
            elif kind == "SOFTMAX":
                continue
            else:
                raise NotImplementedError(kind)
            values[out] = self._clamp(out, y)
        return result


def tflite_runtime_logits(path: str, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of TFLite's interpreter on NCHW inputs in [-1, 1] (quantized to its uint8 input)."""
    from tflite_runtime.interpreter import Interpreter

    graph = TFLiteFloatGraph(path)
    logits_index = next(int(op.InputsAsNumpy()[0]) for op in (graph.graph.Operators(i)
                        for i in range(graph.graph.OperatorsLength()))
                        if graph.names[graph.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()] == "SOFTMAX")
    interpreter = Interpreter(model_path=path, experimental_preserve_all_tensors=True)  # read the pre-softmax logits
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    scale, zero = inp["quantization"]
    detail = next(d for d in interpreter.get_tensor_details() if d["index"] == logits_index)
    out_scale, out_zero = detail["quantization"]
    rows = []
    for image in x.transpose(0, 2, 3, 1):
        q = np.clip(np.rint(image / scale + zero), 0, 255).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        rows.append((interpreter.get_tensor(logits_index).reshape(-1).astype(np.float64) - out_zero) * out_scale)
    return np.stack(rows)


def reference_accuracy(relpath: str, size: int, shared: str, batch: int = 25) -> tuple[float, float, int]:
    """Top-1/Top-5 (%) of the reference run of a shared file over all of imagenet-samples (Keras: NumPy forward,
    TFLite: TensorFlow Lite's quantized interpreter)."""
    import os

    val = os.path.join(shared, "data", "imagenet-samples", "val")
    synsets = sorted(os.listdir(val))
    samples = [(os.path.join(val, s, f), i) for i, s in enumerate(synsets)
               for f in sorted(os.listdir(os.path.join(val, s)))]
    path = os.path.join(shared, "weights", relpath)
    top1 = top5 = 0
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        x = np.stack([tf_preprocess(p, size) for p, _ in chunk])
        labels = np.array([label for _, label in chunk])
        logits = keras_v1_forward(dict(np.load(path)), x) if relpath.endswith(".npz") else \
            tflite_runtime_logits(path, x)[:, 1:]
        metrics = reference_metrics(logits, labels)
        top1, top5 = top1 + metrics["top1_correct"], top5 + metrics["top5_correct"]
    return 100.0 * top1 / len(samples), 100.0 * top5 / len(samples), len(samples)


if __name__ == "__main__":  # python tests/tf_reference.py [shared dir]: the reference figures of BENCHMARKS.md
    import sys

    from helpers import shared_dir  # where the tests find the files too

    shared_root = sys.argv[1] if len(sys.argv) > 1 else shared_dir()
    for relpath, size in (("keras/mobilenet_v1_0.25_224_keras.npz", 224),
                          ("keras/mobilenet_v1_0.75_224_keras.npz", 224),
                          ("tflite/mobilenet_v1_0.25_128_quant.tflite", 128),
                          ("tflite/mobilenet_v1_0.5_160_quant.tflite", 160),
                          ("tflite/mobilenet_v1_0.75_192_quant.tflite", 192),
                          ("tflite/mobilenet_v2_1.0_224_quant.tflite", 224),
                          ("tflite/v3-small_224_1.0_uint8.tflite", 224)):
        top1, top5, count = reference_accuracy(relpath, size, shared_root)
        print(f"{relpath}: reference Top-1 {top1:.2f}%  Top-5 {top5:.2f}%  images {count}", flush=True)
