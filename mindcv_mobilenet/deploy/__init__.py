"""Deployment and evaluation: shared model loading, validation, inference, export (MINDIR/ONNX), ONNX Runtime backend.

Submodules are imported where used (``from mindcv_mobilenet.deploy.export import export_model``) so that the command
lines answer ``--help`` and argument errors without building anything.
"""
