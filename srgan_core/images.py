"""The input gate: every user image passes `load_image` before any model sees it, and
`pixels` turns any Pillow mode into what the models take.

`load_image` refuses what would hurt before decoding it (empty files, non-images, inputs over
the size limits, decompression bombs), decodes fully so a truncated file fails here rather than
half-way through a model run, and applies the EXIF orientation. Every refusal is one
ImageInputError whose message starts with the file name and says what to do; callers (the CLI,
the app) print it as it is and never show a Pillow traceback.

`pixels` maps every Pillow mode (16-bit and float grey, palette, LA/RGBA, CMYK, ...) to an RGB
array plus an optional alpha band: the models see RGB only, and alpha is upscaled with bicubic
and put back (`with_alpha`).

Needs numpy and Pillow only, so checking a file costs no torch import.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Hard limits on the *input* image, so that upscaling any allowed input stays under 1 GB of RAM
# (peak RSS, measured with benchmarks/sr_inference.py). The budget: importing torch (~560 MB
# with the CUDA-enabled wheel), the output image (x4: 16x the input's pixels at 4 bytes each,
# 133 MB for a Full-HD input) and the band buffers (~250 MB at 1024 px wide, glibc's slack
# included). Full HD in, 8K out; the side limit bounds thin strips.
MAX_INPUT_SIDE = 4096
MAX_INPUT_PIXELS = 1920 * 1080
MAX_OUTPUT_PIXELS = MAX_INPUT_PIXELS * 16  # binds only for x8 models: their inputs may be a quarter as big
MIN_INPUT_SIDE = 2  # a 1-px line or dot has no neighbourhood to restore detail from


class ImageInputError(ValueError):
    """An input image we will not process; the message names the file and the problem."""


# ============================================================================ loading files


def _source_name(src: str | Path | bytes | BinaryIO) -> str:
    if isinstance(src, (str, Path)):
        return str(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "image data"
    return str(getattr(src, "name", None) or "image data")


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP"


def check_size(width: int, height: int, name: str = "image", scale: int = 1) -> None:
    """Raise ImageInputError if a `width` x `height` input (for a x`scale` model) is over the limits."""
    if width > MAX_INPUT_SIDE or height > MAX_INPUT_SIDE or width * height > MAX_INPUT_PIXELS:
        raise ImageInputError(
            f"{name}: {width}x{height} px is too large; the limit is {MAX_INPUT_SIDE} px a side and "
            f"{MAX_INPUT_PIXELS:,} pixels in all ({_megapixels(MAX_INPUT_PIXELS)}, e.g. 1920x1080). "
            "Downscale or crop it first."
        )
    if width * height * scale * scale > MAX_OUTPUT_PIXELS:
        limit = MAX_OUTPUT_PIXELS // (scale * scale)
        raise ImageInputError(
            f"{name}: {width}x{height} px is too large for a x{scale} model; its output would exceed "
            f"{_megapixels(MAX_OUTPUT_PIXELS)}, so inputs may have at most {_megapixels(limit)}."
        )


def load_image(src: str | Path | bytes | BinaryIO) -> Image.Image:
    """Open, check and fully decode an image file, upright (EXIF orientation applied).

    The size check runs on the header, before any pixel is decoded, so a small file that claims
    to be enormous costs nothing. Pillow's own decompression-bomb check is made an error too (it
    is only a warning below twice its limit). Any failure is one ImageInputError whose message
    starts with the file name; the caller never sees a Pillow traceback.
    """
    name = _source_name(src)
    try:
        if isinstance(src, (str, Path)):
            if Path(src).is_dir():
                raise ImageInputError(f"{name}: is a folder, not an image file")
            if not Path(src).exists():
                raise ImageInputError(f"{name}: no such file")
            empty = os.path.getsize(src) == 0
            fp: str | Path | BinaryIO = src
        elif isinstance(src, (bytes, bytearray, memoryview)):
            empty = len(src) == 0
            fp = io.BytesIO(bytes(src))
        else:
            fp, empty = src, False
        if empty:
            raise ImageInputError(f"{name}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as image:
                width, height = image.size
                check_size(width, height, name)
                if min(width, height) < MIN_INPUT_SIDE:
                    raise ImageInputError(
                        f"{name}: {width}x{height} px is too small to super-resolve; each side needs at "
                        f"least {MIN_INPUT_SIDE} px"
                    )
                image.load()
                result = upright(image)
                return result.copy() if result is image else result  # detached from the file
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow names its own pixel limit; ours is lower and is the one the user can act on.
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"its header claims {int(claimed.group(1)):,} pixels" if claimed else "its header claims too many pixels"
        raise ImageInputError(
            f"{name}: refused, possible decompression bomb: {what}; inputs may have at most "
            f"{MAX_INPUT_PIXELS:,} ({_megapixels(MAX_INPUT_PIXELS)}). Nothing was decoded."
        ) from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{name}: not an image, or in a format this program cannot read "
                              "(PNG, JPEG, WebP, BMP, TIFF and GIF work)") from None
    except FileNotFoundError:
        raise ImageInputError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageInputError(f"{name}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # Pillow reports damaged data with any of these, depending on the format and where it breaks.
        raise ImageInputError(f"{name}: truncated or corrupt image data ({exc})") from None


def upright(image: Image.Image) -> Image.Image:
    """The image as it should be displayed: EXIF orientation applied (and its tag dropped)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block says nothing reliable; the pixels are still fine
        return image
    if orientation in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


# ============================================================================ colour modes

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


def pixels(image: Image.Image) -> tuple[np.ndarray, float, Image.Image | None]:
    """Any Pillow image as (RGB array HxWx3, the value of white in it, alpha band or None).

    The array keeps the image's own integer type (uint8, or uint16 for 16-bit grey), so a large
    input costs 3 bytes a pixel here rather than 12; the model converts it to float a band at a
    time. 16-bit grey ("I;16", or "I" as older Pillow opens 16-bit PNGs) keeps all 16 bits:
    Pillow's own convert() would clip it at 255. 16-bit RGB PNGs arrive as 8-bit RGB already
    (Pillow keeps the high byte). Float images ("F") are taken as [0, 1]. Palette and
    colour-key transparency become a real alpha band ("L").
    """
    image = upright(image)
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        grey = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        return np.repeat(grey[:, :, None], 3, axis=2), 65535.0, None
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2), 1.0, None
    alpha = None
    if mode in _WITH_ALPHA or image.has_transparency_data:
        image = image.convert("RGBA")
        alpha = image.getchannel("A")
    return np.array(image.convert("RGB")), 255.0, alpha  # a writable copy, as torch.from_numpy wants


def to_uint8(rgb: np.ndarray, white: float) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(rgb.astype(np.float32) * (255.0 / white) + 0.5, 0, 255).astype(np.uint8)


def with_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return rgb
    if rgb.mode != "RGBA":
        rgb = rgb.convert("RGBA")
    rgb.putalpha(alpha.resize(rgb.size, Image.Resampling.BICUBIC))
    return rgb
