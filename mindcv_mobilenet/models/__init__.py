"""The MobileNet family, registered in one factory: ``create_model``, ``list_models``, ``is_model``."""

from . import mobilenet_v1, mobilenet_v2, mobilenet_v3, mobilenet_v4  # noqa: F401  (registers every variant)
from .mobilenet_v1 import MobileNetV1
from .mobilenet_v2 import MobileNetV2
from .mobilenet_v3 import MobileNetV3
from .mobilenet_v4 import MobileNetV4
from .registry import ModelConfig, create_model, get_model_config, is_model, list_models, register_model

__all__ = [
    "MobileNetV1", "MobileNetV2", "MobileNetV3", "MobileNetV4", "ModelConfig",
    "create_model", "get_model_config", "is_model", "list_models", "register_model",
]
