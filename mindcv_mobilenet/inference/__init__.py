"""Using a trained model: loading (:mod:`.loading`), evaluation preprocessing (:mod:`.preprocess`), validation
(:mod:`.validate`), inference on image files (:mod:`.infer`), backends (:mod:`.predictor`: MindSpore or ONNX Runtime,
:mod:`.onnx_backend`), export to MINDIR/ONNX (:mod:`.export`) and class names (:mod:`.classes`).

Submodules are imported where used (``from mindcv_mobilenet.inference.export import export_model``) so that the
command lines answer ``--help`` and argument errors without building anything.
"""
