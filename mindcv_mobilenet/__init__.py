"""mindcv_mobilenet: MobileNet V1/V2/V3 for MindSpore, with data, training, validation, inference and export."""

from .models import create_model, get_model_config, is_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "get_model_config", "is_model", "list_models", "__version__"]
