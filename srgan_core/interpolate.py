"""Perception-distortion control: network interpolation between a PSNR model and a GAN model.

    theta(s) = (1 - s) * theta_PSNR + s * theta_GAN,   0 <= s <= 1

s = 0 is the smooth, high-PSNR SRResNet; s = 1 the sharp SRGAN; in between, one knob trades
fidelity for detail with no retraining. Why blending weights works: the GAN stage is fine-tuned
from the PSNR model, so both sit in one basin and the straight line between them passes through
working models (Wang et al., ESRGAN, 2018, "network interpolation"). Blending outputs instead
would only cross-fade two images.

`interpolate_generators` does the arithmetic; `load_interpolated` is what a slider calls: the
two end models are loaded once and each blend is made once, both kept in a small LRU cache.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

from . import weights
from .models import Generator
from .weights import FORMAT, HUB_PREFIX, LoadedGenerator, WeightsError

INTERPOLATION_PAIR = ("srresnet_x4", "srgan_x4")  # the bundled (PSNR model, GAN model)
STRENGTH_STEP = 0.01  # load_interpolated makes and caches one blend per step of strength
CACHE_SIZE = 16  # models kept (end points and blends); a bundled 12 x 48 generator is ~3 MB

_cache: OrderedDict[tuple, LoadedGenerator] = OrderedDict()
_cache_lock = threading.Lock()


def check_strength(strength: object) -> float:
    """`strength` as a float in [0, 1]; anything else (NaN, infinities, text) is a ValueError."""
    try:
        s = float(strength)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        s = math.nan
    if not 0.0 <= s <= 1.0:  # NaN fails this too
        raise ValueError(f"strength must be a number from 0 (the PSNR model) to 1 (the GAN model), got {strength!r}")
    return s


def interpolate_generators(psnr: LoadedGenerator, gan: LoadedGenerator, strength: float) -> LoadedGenerator:
    """The blend of two loaded generators of one architecture, for every float tensor (BatchNorm's
    running statistics included; integer counters are taken from `psnr`).

    0 and 1 give the end models' tensors bit for bit. Models of different configs are refused
    with a WeightsError naming the differences. The inputs are only read.
    """
    s = check_strength(strength)
    a, b = psnr.model.config.to_dict(), gan.model.config.to_dict()
    if a != b:
        diff = ", ".join(f"{k} {a[k]!r} vs {b[k]!r}" for k in a if a[k] != b[k])
        raise WeightsError(f"cannot blend {psnr.name} with {gan.name}: different architectures ({diff}); "
                           "network interpolation needs two models of one config, the GAN fine-tuned from the other")
    ta, tb = psnr.model.state_dict(), gan.model.state_dict()
    if s in (0.0, 1.0):  # exact end points, not 1.0 * a + 0.0 * b
        blended = {k: v.clone() for k, v in (ta if s == 0.0 else tb).items()}
    else:
        blended = {k: (1 - s) * v + s * tb[k] if v.is_floating_point() else v.clone() for k, v in ta.items()}
    with torch.device("meta"):  # shapes only: random initial weights would be overwritten anyway
        model = Generator(psnr.model.config)
    model.load_state_dict(blended, strict=True, assign=True)
    meta = {
        "format": FORMAT, "kind": "generator", "architecture": "srresnet",
        "name": f"{psnr.name}->{gan.name}@{s:.2f}", "config": model.config.to_dict(), "scale": model.scale,
        "interpolation": {"psnr": psnr.source, "gan": gan.source, "strength": s},
    }
    reasons = [r for r in (psnr.fallback_reason, gan.fallback_reason) if r]
    return LoadedGenerator(model.eval(), meta, gan.path, f"{psnr.source}->{gan.source}@{s:g}",
                           "; ".join(reasons) or None)


def load_interpolated(psnr_source: str | Path = INTERPOLATION_PAIR[0], gan_source: str | Path = INTERPOLATION_PAIR[1],
                      strength: float = 1.0) -> LoadedGenerator:
    """The blend of two weights sources (paths, bundled names or hf:// references) at `strength`
    rounded to STRENGTH_STEP, cached.

    Moving a slider therefore never reloads a file, and costs one blend the first time a value is
    seen. The cache is keyed by the files (path and modification time), so a replaced file is
    reloaded. The result is shared between callers: treat its model as read-only (the Upscaler
    only reads it). A Hub source that fell back to the bundled default is not cached, so the
    next call tries the Hub again.
    """
    s = round(round(check_strength(strength) / STRENGTH_STEP) * STRENGTH_STEP, 6)
    psnr_key, gan_key = _identity(psnr_source), _identity(gan_source)

    def blend() -> LoadedGenerator:
        psnr = _cached(("load", psnr_key), lambda: weights.load_generator(psnr_source))
        gan = _cached(("load", gan_key), lambda: weights.load_generator(gan_source))
        return interpolate_generators(psnr, gan, s)

    return _cached(("blend", psnr_key, gan_key, s), blend)


def _identity(source: str | Path) -> tuple:
    """A cache key: the Hub reference as written, or a local file's path and modification time."""
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        return (source,)
    st_path, _ = weights.find_local(source)
    return (str(st_path.resolve()), st_path.stat().st_mtime_ns)


def _cached(key: tuple, make: Callable[[], LoadedGenerator]) -> LoadedGenerator:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = make()
    if value.fallback_reason is None:
        with _cache_lock:
            _cache[key] = value
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return value
