"""Removing the faint pattern a pixel-shuffle upscaler locks to its output grid, from an image.

A GAN generator's grid pattern is far too faint to see in one training patch: about half a grey
level, under texture a hundred times stronger. The grid measure (`metrics.periodicity`) finds it
only because over a whole photo it adds up at exactly the multiples of 1/scale cycle per pixel
while texture does not. So the losses that look for it patch by patch (`losses.grid_peak_loss`)
see mostly the photo's own texture. This module takes the other way round: it finds the pattern
where it can be found, in a generator's output for a whole image, and removes it; `train
--stage degrid` then teaches the generator its own output without it, patch by patch.
"""
from __future__ import annotations

import math

import numpy as np

DEGRID_MARGIN = 16  # px of each training patch's border left out of the degrid stage's loss: the
# teacher saw the whole image, and there the patch's output depends on what lay beyond it
DEGRID_MAX_GAIN = 4.0  # remove_grid's largest gain (the target then carries the pattern turned, 3 times as
# strong): a guard against a slip of the keyboard, not a tuned limit
DEGRID_MAX_SHARPEN = 1.0  # sharpen's largest amount: a guard, as DEGRID_MAX_GAIN is
DEGRID_SIGMA = 48.0  # px: how far the pattern's strength may be taken as constant; the band is 1/(2 pi sigma) wide


def grid_band(height: int, width: int, scale: int = 4, sigma: float = DEGRID_SIGMA) -> np.ndarray:
    """The FFT-domain filter that keeps what lies near the grid frequencies (k/scale cycles/px in
    y and x, not both 0): a Gaussian bump of width 1/(2 pi sigma) around each, at most 1.

    Each bump is the frequency response of demodulating at that grid frequency, averaging with a
    Gaussian of `sigma` px, and modulating back: so a pattern whose strength changes slowly over
    the image (it follows the content: strong in fur, absent in sky) is kept whole, while only a
    band about sigma times narrower than the spectrum of the photo's own texture goes with it.
    """
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    band = np.zeros((height, width))
    for ky in range(scale):
        for kx in range(scale):
            if kx == ky == 0:
                continue
            dy = (fy - ky / scale + 0.5) % 1.0 - 0.5  # distance to the grid frequency, wrapping round
            dx = (fx - kx / scale + 0.5) % 1.0 - 0.5
            band += np.exp(-2.0 * np.pi**2 * sigma**2 * (dy**2 + dx**2))
    return np.minimum(band, 1.0)


def remove_grid(image: np.ndarray, scale: int = 4, sigma: float = DEGRID_SIGMA, gain: float = 1.0) -> np.ndarray:
    """`image` (H x W x C, any range) without its fine texture's components at the output grid's
    frequencies: float64, the same size.

    `gain` above 1 takes away more than the pattern, so that it comes back with its sign turned:
    a target for a student that starts from the teacher and, in one pass, learns only part of the
    way to it. 1 is the plain removal; 0 leaves the image as it is.

    The fine texture is the image less a Gaussian blur of 2 px, as in the grid measure, so that
    the edges of the image, which a periodic FFT would see as a jump, stay out of it. The photo's
    own texture in those narrow bands goes too; it is a few parts in a thousand of its energy
    (detail and PSNR move in the fourth digit).
    """
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"remove_grid needs an H x W x C image, got shape {image.shape}")
    h, w = image.shape[:2]
    if not (math.isfinite(gain) and 0.0 <= gain <= DEGRID_MAX_GAIN):
        raise ValueError(f"gain must be between 0 and {DEGRID_MAX_GAIN:g}, got {gain}")
    if h % scale or w % scale:
        raise ValueError(f"image of {w}x{h} px: both sides must be multiples of the scale {scale}, "
                         "so that the grid frequencies fall on FFT bins")
    band = grid_band(h, w, scale, sigma)
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        x = image[..., c]
        texture = x - ndimage.gaussian_filter(x, 2.0, mode="reflect")
        out[..., c] = x - gain * np.real(np.fft.ifft2(np.fft.fft2(texture) * band))
    return out


def sharpen(image: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """`image` (H x W x C) with its finest detail raised: image + amount (image - its Gaussian blur
    of `sigma` px), the unsharp mask; float64, not clipped.

    Each distillation pass (the degrid stage) loses a little of the teacher's edge energy, about
    0.004-0.012 of the detail ratio, and a model that falls just short of the HR's edge energy
    gains more of it from a light unsharp mask than it gives up in PSNR
    (`scripts/sharpening_frontier.py`). Run on a target whose grid is already removed, it has no
    pattern to raise; 0 leaves the image as it is.
    """
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3:
        raise ValueError(f"sharpen needs an H x W x C image, got shape {image.shape}")
    if not (math.isfinite(amount) and 0.0 <= amount <= DEGRID_MAX_SHARPEN):
        raise ValueError(f"amount must be between 0 and {DEGRID_MAX_SHARPEN:g}, got {amount}")
    if amount == 0.0:
        return image.copy()
    return image + amount * (image - ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="reflect"))
