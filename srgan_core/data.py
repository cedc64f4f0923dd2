"""Training and validation data for super-resolution: image folders -> (LR, HR) pairs.

The degradation is Pillow's bicubic resize with antialiasing. The same function makes the
training inputs, the evaluation inputs and the app's "Simulate" mode, so a model is always
judged on the kind of low-resolution image it was trained on.
"""
from __future__ import annotations

from PIL import Image


def modcrop(image: Image.Image, scale: int) -> Image.Image:
    """Crop the bottom/right edge so both sides are multiples of `scale` (as SR papers do)."""
    w, h = image.size
    return image.crop((0, 0, w - w % scale, h - h % scale))


def downscale(image: Image.Image, scale: int) -> Image.Image:
    """The degradation model: bicubic with antialiasing, sides divided by `scale`."""
    w, h = image.size
    return image.resize((max(1, w // scale), max(1, h // scale)), Image.Resampling.BICUBIC)
