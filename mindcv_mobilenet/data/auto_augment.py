"""mindcv/timm auto-augment policy strings ("randaug-m9-mstd0.5", "autoaug", "trivialaugwide") on MindSpore's ops.

MindSpore's RandAugment uses torchvision's magnitude scale; timm's scale 0..10 maps to ``num_magnitude_bins=11``. Its
ops are the "increasing" variants (stronger with magnitude), so ``inc1`` is what it does anyway. ``mstd`` (magnitude
noise) is applied per image by picking one of the pre-built fixed-magnitude ops.
"""

from __future__ import annotations

import random
from typing import Callable, Dict, Sequence

from mindspore.dataset import vision

from ..utils.errors import ConfigError

MAX_LEVEL = 10  # timm's magnitude scale is 0..10


def _parse(config: str, allowed: Sequence[str]) -> Dict[str, float]:
    """``"randaug-m9-n2-mstd0.5"`` -> {"m": 9, "n": 2, "mstd": 0.5}; unknown keys are a ConfigError."""
    params: Dict[str, float] = {}
    for part in config.split("-")[1:]:
        key = next((k for k in sorted(allowed, key=len, reverse=True) if part.startswith(k)), None)
        try:
            if key is None:
                raise ValueError
            params[key] = float(part[len(key):])
        except ValueError:
            supported = ", ".join(k + "<number>" for k in allowed) or "no options"
            raise ConfigError(f"auto_augment '{config}': cannot use '{part}' (supported: {supported})") from None
    return params


class RandomMagnitude:
    """Apply RandAugment with a magnitude drawn per image from N(m, mstd) clipped to [0, mmax] (timm's ``mstd``)."""

    def __init__(self, ops: Dict[int, Callable], magnitude: float, std: float, max_level: int) -> None:
        self.ops, self.magnitude, self.std, self.max_level = ops, magnitude, std, max_level

    def __call__(self, image):
        if self.std > 100:  # timm: mstd > 100 means uniform in [0, m]
            level = random.uniform(0, self.magnitude)
        else:
            level = random.gauss(self.magnitude, self.std)
        return self.ops[int(round(min(max(level, 0.0), self.max_level)))](image)


def auto_augment_ops(config: str, interpolation: vision.Inter, fill_value: tuple) -> list:
    """The augmentation op list for a mindcv auto_augment string; a ConfigError names the supported forms."""
    name = config.split("-")[0].lower()
    if name == "randaug":
        p = _parse(config, ("m", "n", "mstd", "mmax", "inc"))
        mmax = int(p.get("mmax", MAX_LEVEL))
        magnitude, num_ops, std = p.get("m", 9), int(p.get("n", 2)), p.get("mstd", 0.0)
        if not 0 <= magnitude <= mmax:
            raise ConfigError(f"auto_augment '{config}': magnitude m must be within 0..{mmax}")

        def make(level: int):
            return vision.RandAugment(num_ops=num_ops, magnitude=level, num_magnitude_bins=mmax + 1,
                                      interpolation=interpolation, fill_value=fill_value)

        if std > 0:
            return [RandomMagnitude({lvl: make(lvl) for lvl in range(mmax + 1)}, magnitude, std, mmax)]
        return [make(int(round(magnitude)))]
    if name == "autoaug":
        _parse(config, ())
        return [vision.AutoAugment(vision.AutoAugmentPolicy.IMAGENET, interpolation=interpolation,
                                   fill_value=fill_value)]
    if name == "trivialaugwide":
        _parse(config, ())
        return [vision.TrivialAugmentWide(interpolation=interpolation, fill_value=fill_value)]
    raise ConfigError(
        f"unknown auto_augment '{config}': use 'randaug-m<M>[-n<N>][-mstd<S>]', 'autoaug' or 'trivialaugwide'"
    )
