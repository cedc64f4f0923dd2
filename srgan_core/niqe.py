"""NIQE: a no-reference naturalness score (Mittal, Soundararajan and Bovik, 2013), lower = more natural.

PSNR and SSIM need the real photo and reward a blurry average; NIQE needs only the output. It
asks how far an image's local statistics are from those of undistorted photos:

1. MSCN coefficients: luma minus its local mean, divided by its local contrast (7x7 Gaussian,
   sigma 7/6). In a natural photo these are close to Gaussian; blur, noise and artifacts bend
   their distribution in characteristic ways.
2. Per 96x96 patch, 18 numbers: a generalized Gaussian fit (shape, variance) of the MSCN values,
   and an asymmetric generalized Gaussian fit (shape, mean, left and right variance) of the
   products of neighbouring MSCN values in 4 directions (horizontal, vertical, two diagonals).
   The same again on the image halved (48x48 patches): 36 features per patch.
3. A multivariate Gaussian (mean, covariance) of those features: fitted once on sharp patches of
   pristine photos (the "pristine model", shipped in `niqe_pristine.json`), and on all patches of
   the image being scored. The score is the distance between the two:
       sqrt((mu1 - mu2)^T ((cov1 + cov2) / 2)^+ (mu1 - mu2)).

Our pristine model is fitted by `scripts/fit_niqe.py` on the project's own training HR images
(T91 + BSDS200; never the Set5/Set14 test images), not the authors' 125 photos, so absolute
values differ from papers that use the authors' MATLAB parameters; rankings are what to compare.
Everything is vectorised over patches, so a 512x512 image scores in a few tens of milliseconds.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.special import gamma

from srgan_core.metrics import rgb_to_y

PATCH = 96  # px at full scale, as in the paper
SHARPNESS_THRESHOLD = 0.75  # pristine fit keeps patches at least this sharp relative to the image's sharpest
FEATURES = 36
PRISTINE_PATH = Path(__file__).resolve().parent / "niqe_pristine.json"
MSCN_SIGMA = 7 / 6  # the reference 7x7 Gaussian window: sigma 7/6, cut at radius 3 (2.5 sigma)
# The products of neighbouring MSCN values: (row, column) shifts, as in the reference code.
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


class NIQEError(ValueError):
    """An image NIQE cannot score (too small, or with no texture at all); the message says why."""


# ----------------------------------------------------------------------------- distribution fits

# Both fits are moment matching: a ratio of moments depends on the shape parameter alone, and the
# shape is read off a fine grid of that ratio (0.2 to 10 in steps of 0.001, as public NIQE code does).
_SHAPES = np.arange(0.2, 10.001, 0.001)
# GGD: E[x^2] / E[|x|]^2 = G(1/a) G(3/a) / G(2/a)^2, decreasing in a.
_GGD_RATIO = gamma(1 / _SHAPES) * gamma(3 / _SHAPES) / gamma(2 / _SHAPES) ** 2
# AGGD: the same ratio, inverted, after correcting for the asymmetry; increasing in a.
_AGGD_RATIO = gamma(2 / _SHAPES) ** 2 / (gamma(1 / _SHAPES) * gamma(3 / _SHAPES))


def _nearest_shape(ratio: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The shape whose tabulated ratio is nearest to each `ratio` (table must be monotonic)."""
    increasing = table[-1] > table[0]
    t = table if increasing else table[::-1]
    shapes = _SHAPES if increasing else _SHAPES[::-1]
    i = np.clip(np.searchsorted(t, ratio), 1, len(t) - 1)
    nearer_left = np.abs(ratio - t[i - 1]) <= np.abs(t[i] - ratio)
    out = np.where(nearer_left, shapes[i - 1], shapes[i])
    return np.where(np.isfinite(ratio), out, np.nan)


def ggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalized Gaussian (zero mean) per row of x: (shape, variance)."""
    var = np.mean(x**2, axis=1)
    mean_abs = np.mean(np.abs(x), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = var / mean_abs**2
    return _nearest_shape(ratio, _GGD_RATIO), var


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalized Gaussian per row of x: (shape, mean, left variance, right variance).

    The left and right spreads are the RMS of the negative and of the positive values; the
    shape comes from E[|x|]^2 / E[x^2] corrected for their ratio (Lasmar et al., 2009).
    """
    neg, pos = x < 0, x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        left_var = np.sum(np.where(neg, x**2, 0.0), axis=1) / np.sum(neg, axis=1)
        right_var = np.sum(np.where(pos, x**2, 0.0), axis=1) / np.sum(pos, axis=1)
        g = np.sqrt(left_var / right_var)
        r = np.mean(np.abs(x), axis=1) ** 2 / np.mean(x**2, axis=1)
        r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        shape = _nearest_shape(r_norm, _AGGD_RATIO)
        to_beta = np.sqrt(gamma(1 / shape) / gamma(3 / shape))  # std -> the distribution's scale
        mean = (np.sqrt(right_var) - np.sqrt(left_var)) * to_beta * gamma(2 / shape) / gamma(1 / shape)
    return shape, mean, left_var, right_var


# ----------------------------------------------------------------------------- features


def mscn(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted, contrast-normalised coefficients of a luma image, and the local contrast."""
    mu = ndimage.gaussian_filter(y, MSCN_SIGMA, mode="nearest", truncate=2.5)
    var = ndimage.gaussian_filter(y * y, MSCN_SIGMA, mode="nearest", truncate=2.5) - mu * mu
    sigma = np.sqrt(np.abs(var))
    return (y - mu) / (sigma + 1.0), sigma


def _patches(image: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size) non-overlapping patches, row by row; the image must be a whole number of them."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    return image.reshape(rows, size, cols, size).swapaxes(1, 2).reshape(rows * cols, size, size)


def _patch_features(coeffs: np.ndarray) -> np.ndarray:
    """(n, 18): the GGD of each patch's MSCN values, then the AGGD of each neighbour product.

    Neighbours wrap around within the patch (as the reference code's circshift does), so every
    patch contributes the same number of products.
    """
    n = len(coeffs)
    flat = coeffs.reshape(n, -1)
    columns = list(ggd_fit(flat))
    for shift in SHIFTS:
        product = coeffs * np.roll(coeffs, shift, axis=(1, 2))
        columns += aggd_fit(product.reshape(n, -1))
    return np.stack(columns, axis=1)


def _halve(y: np.ndarray) -> np.ndarray:
    """Half size, bicubic with antialiasing (what MATLAB's imresize(im, 0.5) does)."""
    h, w = y.shape
    image = Image.fromarray(y.astype(np.float32))  # mode "F"
    return np.asarray(image.resize((w // 2, h // 2), Image.Resampling.BICUBIC), dtype=np.float64)


def features(y: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """(n, 36) features of each whole `patch`-px patch of a luma image, and each patch's sharpness
    (its mean local contrast, used to pick the sharp patches of a pristine image).

    The image is cropped to whole patches first; a patch with no texture yields NaN features.
    """
    if patch % 2:
        raise ValueError(f"the NIQE patch size must be even (it is halved for the second scale), got {patch}")
    rows, cols = y.shape[0] // patch, y.shape[1] // patch
    y = np.asarray(y, dtype=np.float64)[: rows * patch, : cols * patch]
    coeffs, sigma = mscn(y)
    sharpness = _patches(sigma, patch).mean(axis=(1, 2))
    fine = _patch_features(_patches(coeffs, patch))
    coarse = _patch_features(_patches(mscn(_halve(y))[0], patch // 2))
    return np.concatenate([fine, coarse], axis=1), sharpness


def _gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance over the patches whose features are all finite."""
    ok = feats[np.isfinite(feats).all(axis=1)]
    return ok.mean(axis=0), np.cov(ok, rowvar=False)


# ----------------------------------------------------------------------------- the pristine model


@dataclass
class PristineModel:
    """The multivariate Gaussian of pristine patch features, with where it came from."""

    mu: np.ndarray
    cov: np.ndarray
    patch: int = PATCH
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": "srgan-studio-niqe/1", "features": int(self.mu.size), "patch": self.patch,
                **self.provenance, "mu": [float(f"{v:.9g}") for v in self.mu],  # 9 digits: exact enough
                "cov": [[float(f"{v:.9g}") for v in row] for row in self.cov]}

    def dumps(self) -> str:
        """The JSON text: provenance first, then the means on one line and one line per covariance row."""
        data = self.to_json()
        mu, cov = data.pop("mu"), data.pop("cov")
        head = json.dumps(data, indent=1)[:-2]  # without the closing brace
        rows = ",\n  ".join(json.dumps(row) for row in cov)
        return f'{head},\n "mu": {json.dumps(mu)},\n "cov": [\n  {rows}\n ]\n}}\n'

    @classmethod
    def from_json(cls, data: dict) -> "PristineModel":
        mu, cov = np.asarray(data["mu"], dtype=np.float64), np.asarray(data["cov"], dtype=np.float64)
        if mu.shape != (FEATURES,) or cov.shape != (FEATURES, FEATURES):
            raise ValueError(f"a NIQE model has {FEATURES} means and a {FEATURES}x{FEATURES} covariance, "
                             f"got {mu.shape} and {cov.shape}")
        provenance = {k: v for k, v in data.items() if k not in ("mu", "cov", "patch", "features", "format")}
        return cls(mu, cov, int(data["patch"]), provenance)


def image_list_sha256(paths: list[Path]) -> str:
    """One hash for a list of images: each line is `folder/name sha256-of-the-file`, sorted.

    It pins the exact training images without naming where they were stored.
    """
    lines = sorted(f"{p.parent.name}/{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}" for p in paths)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def fit_pristine(paths: list[Path], patch: int = PATCH, threshold: float = SHARPNESS_THRESHOLD,
                 progress: Callable[[int, int], None] | None = None) -> PristineModel:
    """Fit the pristine model on photos: for each image, the patches whose sharpness is above
    `threshold` x the image's sharpest (the paper's rule: in-focus regions only, so a shallow
    depth of field does not teach the model that blur is natural).

    Images smaller than one patch are skipped; their count goes into the provenance.
    """
    kept, skipped = [], 0
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            y = rgb_to_y(im.convert("RGB"))
        if min(y.shape) < patch:
            skipped += 1
        else:
            feats, sharpness = features(y, patch)
            kept.append(feats[sharpness > threshold * sharpness.max()])
        if progress:
            progress(i + 1, len(paths))
    if not kept:
        raise NIQEError(f"no image of at least {patch}x{patch} px to fit a NIQE model on")
    feats = np.concatenate(kept)
    mu, cov = _gaussian(feats)
    return PristineModel(mu, cov, patch, {
        "images": len(kept), "images_skipped_too_small": skipped, "patches": int(len(feats)),
        "sharpness_threshold": threshold, "image_list_sha256": image_list_sha256(paths)})


@functools.lru_cache(maxsize=4)
def load_pristine(path: str | Path = PRISTINE_PATH) -> PristineModel:
    """The shipped pristine model (or another file written by `scripts/fit_niqe.py`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NIQEError(f"NIQE pristine model not found: {path}") from None
    except json.JSONDecodeError as e:
        raise NIQEError(f"{path}: not valid JSON ({e})") from None
    try:
        return PristineModel.from_json(data)
    except (KeyError, TypeError, ValueError) as e:
        raise NIQEError(f"{path}: not a NIQE pristine model ({e})") from None


# ----------------------------------------------------------------------------- the score


def niqe(image: Image.Image | np.ndarray, border: int = 0, model: PristineModel | None = None) -> float:
    """NIQE of an RGB image (or a 2-D luma array in [16, 235]), `border` px ignored; lower = more natural.

    Needs at least two whole patches (96x96 px by default) after the border, because a covariance
    of one patch is undefined; smaller images raise NIQEError.
    """
    model = model or load_pristine()
    y = np.asarray(image, dtype=np.float64) if isinstance(image, np.ndarray) and image.ndim == 2 else rgb_to_y(image)
    if border:
        y = y[border:-border, border:-border]
    h, w = y.shape
    p = model.patch
    if (h // p) * (w // p) < 2:
        raise NIQEError(f"image too small for NIQE: needs at least two whole {p}x{p} patches "
                        f"(e.g. {2 * p}x{p} px) after a {border} px border, got {max(w, 0)}x{max(h, 0)}")
    feats, _ = features(y, p)
    if np.isfinite(feats).all(axis=1).sum() < 2:
        raise NIQEError("image has too little texture for NIQE (fewer than two patches with any detail)")
    mu, cov = _gaussian(feats)
    d = model.mu - mu
    return float(np.sqrt(max(d @ np.linalg.pinv((model.cov + cov) / 2) @ d, 0.0)))
