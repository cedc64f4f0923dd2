"""PSNR and SSIM the way super-resolution papers report them.

Papers since SRCNN score only the luma channel (ITU-R BT.601, the 16-235 "studio" range that
MATLAB's rgb2ycbcr produces) and ignore a border of `scale` pixels, where every method has to
guess beyond the image edge. Scores computed any other way are not comparable with the tables
in the SRGAN paper, so these functions fix that convention and nothing else.
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
