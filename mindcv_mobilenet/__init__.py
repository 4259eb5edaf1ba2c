"""mindcv_mobilenet: MobileNet V1/V2/V3 for MindSpore, with data, training, validation, inference and export."""

from .runtime import configure_cpu_runtime

# before any model runs: MindSpore 2.10's oneDNN falls back to reference convolutions on AVX-512 CPUs (runtime.py)
configure_cpu_runtime()

from .constants import __version__  # noqa: E402
from .models import create_model, get_model_config, is_model, list_models  # noqa: E402

__all__ = ["create_model", "get_model_config", "is_model", "list_models", "__version__"]
