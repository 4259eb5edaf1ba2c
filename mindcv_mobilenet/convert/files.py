"""Reading weight files: ``.npz`` and PyTorch ``.pth`` state dicts, and the optional packages readers need."""

from __future__ import annotations

import os

import numpy as np

from ..utils.errors import UserError

CONVERT_EXTRA = "pip install 'mindcv_mobilenet[convert]'"


def load_state_file(path: str) -> dict[str, np.ndarray]:
    """Read a ``.npz`` or a PyTorch ``.pth``/``.pt`` state dict into name -> float32 array (torch only for .pth)."""
    if not os.path.isfile(path):
        raise UserError(f"input {path} not found; pass a .npz or a PyTorch .pth/.pt state dict with --input")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: np.asarray(data[k]) for k in data.files}
        except Exception as err:  # zipfile.BadZipFile, ValueError, OSError: all mean "not a readable npz"
            raise UserError(f"cannot read {path} as a .npz file ({type(err).__name__}: {str(err)[:120]})") from None
    elif ext in (".pth", ".pt", ".bin"):
        state = _load_torch_file(path)
    else:
        raise UserError(f"input {path}: unknown extension {ext or '(none)'}; expected .npz, .pth or .pt")
    if not state:
        raise UserError(f"input {path} holds no tensors")
    return state


def _load_torch_file(path: str) -> dict[str, np.ndarray]:
    """``torch.load`` a state dict (or a checkpoint dict wrapping one) and turn its tensors into NumPy arrays."""
    try:
        import torch  # lazy: only .pth input needs PyTorch, and it is no dependency of this package
    except ImportError:
        raise UserError(
            f"reading {path} needs PyTorch, which is not installed here; `pip install torch`, or save the state "
            "dict as .npz where torch is: np.savez('w.npz', **{k: v.numpy() for k, v in sd.items()})"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read {path} with torch.load ({reason[:160]})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # common training-checkpoint wrappers
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict; save model.state_dict()")
    state = {}
    for name, value in obj.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu()
            state[name] = (value.float() if value.is_floating_point() else value).numpy()
    return state


def require(module: str, path: str):
    """Import an optional package a reader needs, or one line saying how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"reading {path} needs the '{module}' package, which is not installed here; "
                        f"{CONVERT_EXTRA} (or pip install {module})") from None
