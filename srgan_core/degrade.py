"""Degradations: how a high-resolution photo becomes the low-resolution input a model sees.

A model learns to undo exactly the degradation it was trained on. Pillow's clean bicubic ÷4
(`bicubic`) is the SR papers' convention, but a phone photo or a web image has also been
blurred by its lens, sensor noise and JPEG: a model trained on clean bicubic sharpens the noise
and the JPEG blocks instead of removing them. The `realistic` pipeline below draws those
effects at random for every training patch, after Real-ESRGAN (Wang et al., 2021):

    blur (isotropic or anisotropic Gaussian, random size)
    -> downscale by a random method (bicubic / bilinear / area)
    -> noise (Gaussian or Poisson, colour or grey, up to about 10 of 255)
    -> JPEG at a random quality
    [-> a second, milder round of the same: the "second-order" model]

Every sample is a function of its random generator alone, and the generators are seeded from
(seed, index), so the same seed gives the same LR image on any machine and after a resume.

`PRESETS` are fixed, named degradations for evaluation and the app's Simulate mode: the clean
convention and two kinds of camera/web JPEG, each deterministic for a given seed.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

DOWNSCALE_METHODS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
}


@dataclass
class DegradationConfig:
    """Knobs of the realistic pipeline; a probability of 0 switches its stage off."""

    blur_prob: float = 0.8  # chance of a blur before downscaling
    blur_sigma: tuple[float, float] = (0.2, 2.0)  # Gaussian sigma range, in HR pixels
    aniso_prob: float = 0.5  # share of blurs that are anisotropic (two sigmas, a rotation)
    methods: tuple[str, ...] = ("bicubic", "bilinear", "area")  # downscale methods, drawn uniformly
    noise_prob: float = 0.8  # chance of noise after downscaling
    noise_sigma: tuple[float, float] = (1.0, 10.0)  # Gaussian noise sigma, of 255
    poisson_prob: float = 0.3  # share of noisy samples with Poisson (shot) noise instead
    gray_noise_prob: float = 0.4  # share of noisy samples with the same noise on all channels
    jpeg_prob: float = 0.9  # chance of JPEG compression at the end
    jpeg_quality: tuple[int, int] = (30, 95)
    second_order_prob: float = 0.0  # chance of a second, milder round (Real-ESRGAN's model)

    def __post_init__(self) -> None:
        for name in ("blur_prob", "aniso_prob", "noise_prob", "poisson_prob", "gray_noise_prob", "jpeg_prob",
                     "second_order_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
        lo, hi = self.blur_sigma
        if not (0 < lo <= hi <= 10):
            raise ValueError(f"blur sigma range must satisfy 0 < low <= high <= 10, got {self.blur_sigma}")
        lo, hi = self.noise_sigma
        if not (0 <= lo <= hi <= 50):
            raise ValueError(f"noise sigma range must satisfy 0 <= low <= high <= 50, got {self.noise_sigma}")
        lo, hi = self.jpeg_quality
        if not (1 <= lo <= hi <= 100):
            raise ValueError(f"JPEG quality range must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        unknown = [m for m in self.methods if m not in DOWNSCALE_METHODS]
        if not self.methods or unknown:
            raise ValueError(f"downscale methods must be among {sorted(DOWNSCALE_METHODS)}, got {list(self.methods)}")


# ----------------------------------------------------------------------------- the stages


def gaussian_kernel(sigma_x: float, sigma_y: float, theta: float, size: int) -> np.ndarray:
    """A normalised 2-D Gaussian, stretched along x/y and rotated by theta (radians)."""
    r = size // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * x + s * y, -s * x + c * y
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def blur(image: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """A lens/motion-like blur: a random Gaussian kernel of a random odd size (7-21 px)."""
    lo, hi = cfg.blur_sigma
    sx = rng.uniform(lo, hi)
    if rng.random() < cfg.aniso_prob:
        sy, theta = rng.uniform(lo, hi), rng.uniform(0, math.pi)
    else:
        sy, theta = sx, 0.0
    size = int(rng.choice([7, 9, 11, 13, 15, 17, 19, 21]))
    kernel = gaussian_kernel(sx, sy, theta, size)[..., None]
    return ndimage.convolve(image, kernel, mode="reflect")


def downscale(image: np.ndarray, factor: int, method: str) -> np.ndarray:
    """Shrink by an integer factor with Pillow (antialiased) and one of DOWNSCALE_METHODS."""
    h, w = image.shape[:2]
    pil = Image.fromarray(to_uint8(image))
    return np.asarray(pil.resize((max(1, w // factor), max(1, h // factor)), DOWNSCALE_METHODS[method]),
                      dtype=np.float64)


def add_noise(image: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise: Gaussian (read noise) or Poisson (shot noise), per channel or shared."""
    gray = rng.random() < cfg.gray_noise_prob
    shape = image.shape[:2] + ((1,) if gray else (image.shape[2],))
    if rng.random() < cfg.poisson_prob:
        # Shot noise: photon counts at a random exposure; the strength is tied to noise_sigma's
        # top so that mid-grey gets about that standard deviation at the strongest.
        peak = (127.5 / max(cfg.noise_sigma[1], 1e-6) ** 2) * 10 ** rng.uniform(0, 1.5)
        base = image.mean(axis=2, keepdims=True) if gray else image
        noisy = rng.poisson(np.clip(base, 0, 255) * peak / 255.0) * 255.0 / peak
        return image + (noisy - base)
    sigma = rng.uniform(*cfg.noise_sigma)
    return image + rng.normal(0.0, sigma, shape)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through Pillow's JPEG encoder (4:2:0 chroma, as cameras and the web use)."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the pipelines


def realistic(hr: np.ndarray, scale: int, cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """One draw of the realistic pipeline: uint8 HWC HR -> uint8 HWC LR, sides divided by `scale`.

    With a second round, the first round shrinks by 2 and the second by scale / 2, so the result
    always has the clean pipeline's size.
    """
    image = hr.astype(np.float64)
    rounds = [scale]
    if scale % 2 == 0 and scale > 2 and rng.random() < cfg.second_order_prob:
        rounds = [2, scale // 2]
    for i, factor in enumerate(rounds):
        if rng.random() < cfg.blur_prob * (0.5 if i else 1.0):
            image = blur(image, cfg, rng)
        image = downscale(image, factor, str(rng.choice(cfg.methods)))
        if rng.random() < cfg.noise_prob * (0.5 if i else 1.0):
            image = add_noise(image, cfg, rng)
        if rng.random() < cfg.jpeg_prob:
            image = jpeg(image, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return to_uint8(image)


def bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """The clean convention: Pillow bicubic with antialiasing, sides divided by `scale`."""
    return to_uint8(downscale(hr.astype(np.float64), scale, "bicubic"))


# Fixed degradations for evaluation and the app: (noise sigma of 255, JPEG quality); None = off.
PRESETS: dict[str, tuple[float | None, int | None]] = {
    "bicubic": (None, None),  # clean bicubic ÷scale, the papers' convention
    "phone_jpeg": (3.0, 60),  # a phone photo: a little sensor noise, JPEG quality 60
    "heavy_jpeg": (None, 30),  # a heavily compressed web image: JPEG quality 30
}
PRESET_LABELS = {
    "bicubic": "Clean (bicubic ÷4)",
    "phone_jpeg": "Phone JPEG (noise + JPEG 60)",
    "heavy_jpeg": "Heavy JPEG (JPEG 30)",
}


def make_lr(hr: Image.Image, scale: int = 4, preset: str = "bicubic", seed: int = 0) -> Image.Image:
    """The LR version of an RGB image under a named preset; the noise depends on `seed` only."""
    if preset not in PRESETS:
        raise ValueError(f"unknown degradation {preset!r}; choose one of {', '.join(PRESETS)}")
    sigma, quality = PRESETS[preset]
    image = bicubic(np.asarray(hr.convert("RGB")), scale).astype(np.float64)
    if sigma:
        image = image + np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    if quality:
        image = jpeg(image, quality)
    return Image.fromarray(to_uint8(image))
