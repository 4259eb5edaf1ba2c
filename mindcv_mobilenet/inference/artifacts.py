"""What an export produces (:class:`ExportResult`), how it fails (:class:`ExportError`), and the optional ONNX
packages it needs: shared by export, quantization and the ONNX Runtime backend, which import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..utils.errors import UserError

INSTALL_HINT = "pip install 'mindcv_mobilenet[onnx]' (or: pip install onnxruntime)"


class ExportError(UserError):
    """An export that failed or does not reproduce the network; the file is not kept."""


@dataclass
class ExportResult:
    """What was written and how it was checked (``check`` is empty when checking was skipped)."""

    path: str
    file_format: str
    input_shape: list
    check: dict = field(default_factory=dict)
    precision: str = "fp32"

    def describe(self) -> str:
        shape = "x".join("N" if d is None else str(d) for d in self.input_shape)
        line = f"wrote {self.path} ({self.file_format} {self.precision}, input {shape})"
        if self.check.get("calibration"):
            line += (f"; calibrated on {self.check['calibration']}: on them its top-1 class agrees with the float "
                     f"model's for {100 * self.check['top1_agreement']:.1f}%, logit cosine similarity "
                     f"{self.check['cosine']:.4f}")
        elif self.check.get("runtime"):
            line += (f"; reloaded with {self.check['runtime']}: logits match the network (max |diff| "
                     f"{self.check['max_abs_diff']:.2e}, {self.check['relative_diff']:.1e} of the largest logit, "
                     f"batch sizes {', '.join(str(b) for b in self.check['batch_sizes'])})")
        elif self.check.get("note"):
            line += f"; {self.check['note']}"
        return line


def require_onnx():
    """The ``onnx`` module, or one clear error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package, which is not installed: pip install "
                        "'mindcv_mobilenet[onnx]' (or: pip install onnx onnxruntime)") from None
    return onnx
