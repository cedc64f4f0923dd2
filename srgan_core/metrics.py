"""How good is an upscaled image: PSNR and SSIM the way SR papers report them, plus two scores
that see what those two miss.

Papers since SRCNN score only the luma channel (ITU-R BT.601, the 16-235 "studio" range that
MATLAB's rgb2ycbcr produces) and ignore a border of `scale` pixels, where every method has to
guess beyond the image edge. Scores computed any other way are not comparable with the tables
in the SRGAN paper, so `psnr` and `ssim` fix that convention and nothing else.

PSNR rewards a blurry average, so SR is also judged on texture: `detail_ratio` (how much edge
energy the output has compared with the real photo), `grid_ratio` (how periodic the output is
on the upscaler's own pixel grid: the checkerboard a sub-pixel convolution can leave) and a
no-reference naturalness score, NIQE, in `srgan_core.niqe`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity


def rgb_to_y(image: Image.Image | np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] as float64, from an 8-bit RGB image (grayscale is widened first)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _y_pair(sr: Image.Image | np.ndarray, hr: Image.Image | np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = rgb_to_y(sr), rgb_to_y(hr)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape[::-1]} vs {b.shape[::-1]}")
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if a.size == 0:
        raise ValueError(f"image too small for a border crop of {crop} px")
    return a, b


def psnr(sr: Image.Image | np.ndarray, hr: Image.Image | np.ndarray, scale: int = 4) -> float:
    """Peak signal-to-noise ratio in dB on Y, `scale` px border cropped."""
    a, b = _y_pair(sr, hr, scale)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim(sr: Image.Image | np.ndarray, hr: Image.Image | np.ndarray, scale: int = 4) -> float:
    """SSIM of Wang et al. (2004) on Y: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255.

    scikit-image's implementation with these settings reproduces the reference MATLAB code
    (`ssim_index.m`), which is what SR tables use; truncate=3.5 makes its window 11 px wide.
    """
    a, b = _y_pair(sr, hr, scale)
    return float(
        structural_similarity(
            a, b, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, truncate=3.5
        )
    )


def gradient_magnitude(image: Image.Image | np.ndarray) -> float:
    """Mean Sobel gradient magnitude of Y: a simple measure of high-frequency detail.

    GAN-trained models score higher than MSE-trained ones on this even when their PSNR is lower,
    which is exactly the trade the SRGAN paper describes.
    """
    from scipy import ndimage

    y = rgb_to_y(image)
    return float(np.mean(np.hypot(ndimage.sobel(y, axis=0), ndimage.sobel(y, axis=1))))


def detail_ratio(sr: Image.Image | np.ndarray, hr: Image.Image | np.ndarray) -> float:
    """Mean Sobel magnitude of the output over the real photo's: below 1 is smoother than the
    photo (what an MSE-trained model does), above 1 has more edges than it (noise, halos)."""
    return gradient_magnitude(sr) / max(gradient_magnitude(hr), 1e-9)


GRID_SIGMA = 2.0  # px: the Gaussian blur subtracted first, so only fine texture is left
GRID_RING = (3.0, 8.0)  # frequency bins: the ring around each grid frequency that is its background
GRID_MIN_SIDE = 32  # px after the border crop: below this a ring of radius 8 bins means little


def periodicity(image: Image.Image | np.ndarray, scale: int = 4, border: int | None = None) -> float:
    """How strongly an image repeats with period `scale` px: a no-reference grid-artifact score.

    A generator that upsamples by pixel shuffle writes each output pixel from one of scale x scale
    filter phases; when those phases disagree the output carries a faint pattern that repeats
    every `scale` pixels, which PSNR barely notices and the eye sees as a checkerboard. It shows as
    spikes in the power spectrum at multiples of 1/scale cycle per pixel. So: take the luma,
    subtract a Gaussian blur (sigma 2 px) to keep only fine texture, apply a Hann window (no edge
    leakage), and compute the power spectrum; at each of the scale^2 - 1 grid frequencies
    (kx/scale, ky/scale), k in 0..scale-1, not both 0, divide the peak power (the largest of the
    3x3 bins there) by the median power of a ring 3-8 bins around it; return the median over those
    frequencies. Taking the peak from 3x3 bins rather than the one bin makes a photo's score the
    maximum of nine noise-like values, so the measure answers "does a spike stand out of the
    noise", not "is this one bin high"; it is what reproduces the reference figures.

    A photo scores a few units (nothing special happens at those frequencies); a visible grid
    scores tens to hundreds. The image is cropped by `border` px (default `scale`) and then to a
    multiple of `scale`, so each grid frequency falls exactly on an FFT bin. A flat image scores 1.
    """
    from scipy import ndimage

    border = scale if border is None else border
    if scale < 2:
        raise ValueError(f"periodicity needs a scale of 2 or more, got {scale}")
    y = rgb_to_y(image)
    if border:
        y = y[border:-border, border:-border]
    h, w = (d - d % scale for d in y.shape)
    if min(h, w) < GRID_MIN_SIDE:
        raise ValueError(f"image too small for the grid measure: needs at least {GRID_MIN_SIDE} px per side "
                         f"after a {border} px border, got {max(w, 0)}x{max(h, 0)}")
    y = y[:h, :w]
    residual = y - ndimage.gaussian_filter(y, GRID_SIGMA, mode="reflect")
    if not np.abs(residual).max() > 1e-9:  # flat: only rounding is left, whose spectrum varies by CPU
        return 1.0
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(residual * window)) ** 2
    lo, hi = GRID_RING
    r = int(hi)
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    in_ring = (np.hypot(dy, dx) >= lo) & (np.hypot(dy, dx) <= hi)
    dy, dx = dy[in_ring], dx[in_ring]
    near = np.arange(-1, 2)  # the peak is the largest of the 3x3 bins at the grid frequency
    eps = 1e-12 * float(power.mean()) + 1e-30  # a flat image: 0 / 0 becomes 1
    ratios = []
    for ky in range(scale):
        for kx in range(scale):
            if kx == ky == 0:
                continue
            py, px = ky * h // scale, kx * w // scale
            ring = power[(py + dy) % h, (px + dx) % w]
            peak = power[np.ix_((py + near) % h, (px + near) % w)].max()
            ratios.append((peak + eps) / (float(np.median(ring)) + eps))
    return float(np.median(ratios))


def grid_ratio(sr: Image.Image | np.ndarray, hr: Image.Image | np.ndarray, scale: int = 4) -> float:
    """`periodicity` of the output over the real photo's: 1 means "as periodic as the photo".

    Dividing by the photo's own score cancels what the content contributes (a brick wall or a
    striped shirt is periodic on its own), leaving what the upscaler added.
    """
    return periodicity(sr, scale) / periodicity(hr, scale)
