"""Read, check and write MindSpore checkpoints.

Loading is strict: every network parameter must be in the checkpoint with the right shape. The one allowed exception
is the classifier when the number of classes differs (ImageNet weights into a 10-class model): it is left at its
fresh initialisation and one log line says so. Writing is atomic.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn

from ..constants import RESOURCES_DIR
from .download import check_hash, default_cache_dir, download_url
from .errors import CheckpointError
from .fileio import atomic_path

_logger = logging.getLogger("mindcv_mobilenet")
PACKAGED_PREFIX = "package:"  # a ModelConfig url naming a file under mindcv_mobilenet/resources/

# Entries that training writes beside the network's own parameters (optimizer slots, schedules, loss scale, EMA).
TRAINING_STATE_PREFIXES = (
    "moments.", "accum.", "adam_m.", "adam_v.", "moment1.", "moment2.", "vhat.", "mean_grad.", "mean_square.",
    "ema.", "global_step", "learning_rate", "momentum", "beta1_power", "beta2_power", "scale_sense", "epoch_num",
    "step_num", "current_iterator_step", "last_overflow_iterator_step", "loss_scale", "train_state.",
)


def read_checkpoint(path: str) -> dict[str, Parameter]:
    """Load a ``.ckpt`` file into a name -> Parameter dict, with one clear error for a missing or unreadable file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} not found; check the path (--ckpt_path)")
    try:
        return ms.load_checkpoint(path)
    except Exception as err:  # MindSpore raises ValueError/RuntimeError with multi-line messages
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path} ({reason[:200]}); expected a MindSpore .ckpt file "
            "(torchvision weights: convert them with `python -m mindcv_mobilenet.convert`)"
        ) from None


def pretrained_checkpoint_path(model_name: str, config) -> str:
    """Path of the published checkpoint of ``model_name`` in the cache, downloading and verifying it if needed."""
    if not config.url:
        raise CheckpointError(
            f"no published weights for {model_name}; train it, or pass a checkpoint with --ckpt_path "
            "(`python -m mindcv_mobilenet.summary` marks the models that have weights)"
        )
    trained_at = config.weights_image_size
    if trained_at and trained_at != config.image_size:
        _logger.info("%s: the published weights were trained at %d px (none are published at %d px)", model_name,
                     trained_at, config.image_size)
    if config.url.startswith(PACKAGED_PREFIX):
        return packaged_checkpoint_path(model_name, config)
    path = os.path.join(default_cache_dir(), "checkpoints", os.path.basename(config.url))
    return download_url(config.url, path, sha256=config.sha256 or None)


def packaged_checkpoint_path(model_name: str, config) -> str:
    """Weights shipped inside the package (``url`` ``package:weights/<file>``), verified by sha256 like a download."""
    path = os.path.join(RESOURCES_DIR, config.url[len(PACKAGED_PREFIX):])
    if not os.path.isfile(path):
        raise CheckpointError(f"the packaged weights of {model_name} ({path}) are missing; reinstall the package")
    if not check_hash(path, config.sha256):
        raise CheckpointError(f"the packaged weights of {model_name} ({path}) do not match their sha256 "
                              f"{config.sha256[:16]}...; the file is damaged: reinstall the package")
    return path


def _is_training_state(name: str) -> bool:
    return name.startswith(TRAINING_STATE_PREFIXES)


def _short_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_model_weights(
    model: nn.Cell, checkpoint: str | dict, ema: bool = False, source: str | None = None,
    new_classifier: bool = True, hint: str = "",
) -> list[str]:
    """Load a checkpoint (path or dict) into ``model`` strictly; return the names left at initialisation.

    Only the final classifier may be skipped, when its shape differs (another number of classes), and only where
    the caller asks for a new head (``new_classifier``: fine-tuning, ``create_model(..., num_classes=N)``): one log
    line says so. Where the weights must be complete (evaluation, resuming, checking a conversion) it is one
    :class:`CheckpointError` (ending with ``hint``), raised before anything is loaded or logged: the one place this
    is decided. Mindcv's V1 weights with 1001 outputs are cut to the model's 1000. A one-channel model sums the first
    convolution over RGB. Anything else that does not fit raises :class:`CheckpointError` listing the parameter names.
    ``source`` names a dict's file in messages (a path names itself), so a caller that already read the file need not
    read it again.
    """
    source = source or (checkpoint if isinstance(checkpoint, str) else "checkpoint")
    params = read_checkpoint(checkpoint) if isinstance(checkpoint, str) else dict(checkpoint)
    if ema:
        ema_params = {k[len("ema."):]: v for k, v in params.items() if k.startswith("ema.")}
        if not ema_params:
            raise CheckpointError(f"{source} has no EMA weights (no 'ema.' entries); load it without --ema")
        params = ema_params
    model_params = {p.name: p for p in model.get_parameters()}
    model_name = getattr(model, "model_name", type(model).__name__)
    arrays = {k: v.asnumpy() for k, v in params.items() if not _is_training_state(k)}

    classifier = getattr(model, "classifier_name", "classifier")
    head_names = [f"{classifier}.weight", f"{classifier}.bias"]
    first_conv = f"{getattr(getattr(model, 'default_cfg', None), 'first_conv', 'features.0')}.weight"
    _adapt_first_conv(arrays, model_params, first_conv)
    _adapt_1001_classes(arrays, model_params, head_names, source)

    missing = [n for n in model_params if n not in arrays]
    unexpected = [n for n in arrays if n not in model_params]
    mismatched = [n for n in model_params if n in arrays and tuple(arrays[n].shape) != tuple(model_params[n].shape)]
    skipped = [n for n in head_names if n in mismatched]
    mismatched = [n for n in mismatched if n not in skipped]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_short_list(missing)})")
        if mismatched:
            shapes = [f"{n} {tuple(arrays[n].shape)} vs {tuple(model_params[n].shape)}" for n in mismatched]
            parts.append(f"{len(mismatched)} with another shape ({_short_list(shapes, 3)})")
        if unexpected:
            parts.append(f"{len(unexpected)} not in the model ({_short_list(unexpected)})")
        raise CheckpointError(
            f"{source} does not fit {model_name}: {'; '.join(parts)}. Is it a checkpoint of another model?"
        )
    if skipped and not new_classifier:
        raise CheckpointError(f"{source}: its classifier has {arrays[head_names[0]].shape[0]} classes but {model_name} "
                              f"has {model_params[head_names[0]].shape[0]}{f'; {hint}' if hint else ''}")
    if skipped:
        ckpt_classes = arrays[head_names[0]].shape[0]
        _logger.warning(
            "%s: classifier (%s) not loaded: the checkpoint has %d classes, the model %d; it starts from scratch",
            source, classifier, ckpt_classes, model_params[head_names[0]].shape[0],
        )
    to_load = {n: Parameter(ms.Tensor(a), name=n) for n, a in arrays.items() if n not in skipped}
    to_load.update({n: Parameter(model_params[n].value(), name=n) for n in skipped})  # keep their fresh init
    not_loaded, _ = ms.load_param_into_net(model, to_load, strict_load=True)
    if not_loaded:
        raise CheckpointError(f"{source}: MindSpore did not load {_short_list(list(not_loaded))}")
    return skipped


def _adapt_first_conv(arrays: dict, model_params: dict, name: str) -> None:
    """RGB weights into a one-channel model: sum the first convolution over its input channels (as mindcv does)."""
    if name in arrays and name in model_params:
        want, have = model_params[name].shape, arrays[name].shape
        if want[1] == 1 and have[1] == 3 and tuple(want[:1] + want[2:]) == tuple(have[:1] + have[2:]):
            arrays[name] = arrays[name].sum(axis=1, keepdims=True)
            _logger.info("first convolution %s summed over RGB for a one-channel model", name)


def _adapt_1001_classes(arrays: dict, model_params: dict, head_names: list[str], source: str) -> None:
    """Mindcv's V1 weights have 1001 outputs (the last never trained on): keep the first 1000 for a 1000-class model."""
    weight, bias = head_names
    if weight in arrays and weight in model_params:
        if arrays[weight].shape[0] == 1001 and model_params[weight].shape[0] == 1000:
            arrays[weight] = arrays[weight][:1000]
            if bias in arrays:
                arrays[bias] = arrays[bias][:1000]
            _logger.info("%s: 1001-class classifier cut to the model's 1000 classes", source)


def save_checkpoint(
    model_or_params: nn.Cell | list | dict,
    path: str,
    extra: dict | None = None,
) -> str:
    """Write a checkpoint atomically: a crash mid-write never leaves a half file under ``path``.

    ``model_or_params`` is a Cell, a list of ``{"name", "data"}`` dicts, or a name -> array/Parameter dict.
    ``extra`` entries (epoch, step, ...) are stored beside the parameters, as MindSpore's ``append_dict``.
    """
    if isinstance(model_or_params, dict):
        save_obj = [{"name": k, "data": v if isinstance(v, ms.Tensor) else ms.Tensor(np.asarray(v))}
                    for k, v in model_or_params.items()]
    else:
        save_obj = model_or_params
    with atomic_path(path) as tmp_path, _without_mindspore_save_failure_line():
        ms.save_checkpoint(save_obj, tmp_path, append_dict=extra)
    return path


class _SaveFailureLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to save the checkpoint file")


@contextlib.contextmanager
def _without_mindspore_save_failure_line() -> Iterator[None]:
    """MindSpore logs a CRITICAL line naming the temporary file before it raises a failed write; the WriteError of
    :func:`~.fileio.atomic_path` says it once, with the checkpoint's own path and the cause."""
    get_logger = getattr(getattr(ms, "log", None), "_get_logger", None)  # private: without it, the line stays
    if get_logger is None:
        yield
        return
    logger, line_filter = get_logger(), _SaveFailureLine()
    logger.addFilter(line_filter)
    try:
        yield
    finally:
        logger.removeFilter(line_filter)
