"""Side-by-side pictures for comparing upscalers: where to look, and how to show it.

Three jobs, all plain PIL:

1. `detail_box`: the square where the picture has the most fine, in-focus detail. Detail is the
   mean absolute Laplacian (the second difference of the grey levels): sharp texture and edges
   give large values; out-of-focus background, sky and skin give small ones, even where their
   brightness varies, because a blur's second difference is small. A plain gradient measure
   would also pick a blurred but contrasty edge. Every position is scored (integral image), not
   a few candidates, so a small sharp subject is found wherever it sits.
2. `crops`: that square cut from every method's output and enlarged with nearest-neighbour, so
   one source pixel is a visible block, in a fixed order (bicubic, the models, the original)
   whichever button produced them.
3. `mark` and `label`: the square drawn on the overview, so the crops can be placed, and a
   name on each side of the before/after slider, so nobody has to guess which side is which.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]
BOX_COLOR = (255, 214, 0)  # bright yellow, with a dark outline so it shows on light and dark pictures


def detail_map(image: Image.Image) -> np.ndarray:
    """|Laplacian| of the grey levels, per pixel (0 on the one-pixel border)."""
    g = np.asarray(image.convert("L"), dtype=np.float32)
    lap = np.zeros_like(g)
    lap[1:-1, 1:-1] = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    return lap


def detail_box(image: Image.Image, side: int, align: int = 1) -> Box:
    """The `side`-pixel square (smaller if the image is) with the most fine detail, as
    (left, top, right, bottom); its corners are multiples of `align`, so the same square can be
    cut from an image `align` times larger or smaller without rounding. Ties go to the top left."""
    w, h = image.size
    s = max(align, min(side, w, h) // align * align)
    s = min(s, w, h)
    lap = detail_map(image)
    integral = np.zeros((h + 1, w + 1), dtype=np.float64)
    integral[1:, 1:] = lap.cumsum(0).cumsum(1)
    ys = np.arange(0, h - s + 1, align)
    xs = np.arange(0, w - s + 1, align)
    total = (integral[ys[:, None] + s, xs[None, :] + s] - integral[ys[:, None], xs[None, :] + s]
             - integral[ys[:, None] + s, xs[None, :]] + integral[ys[:, None], xs[None, :]])
    j, i = np.unravel_index(int(np.argmax(total)), total.shape)
    x, y = int(xs[i]), int(ys[j])
    return x, y, x + s, y + s


def scale_box(box: Box, factor: int) -> Box:
    """The same square in an image `factor` times larger."""
    return tuple(v * factor for v in box)  # type: ignore[return-value]


def order(names: Sequence[str], models: Sequence[str] = ()) -> list[str]:
    """Bicubic first, then the models in the order given (others after, alphabetically), the
    original last: the same order after every button."""
    rank = {name: i for i, name in enumerate(models)}

    def key(name: str) -> tuple:
        if name == "Bicubic":
            return (0, 0, "")
        if name == "Original":
            return (3, 0, "")
        return (1, rank[name], "") if name in rank else (2, 0, name)

    return sorted(names, key=key)


def crops(outputs: dict[str, Image.Image], box: Box, zoom: int, models: Sequence[str] = ()) -> list[tuple[Image.Image, str]]:
    """(crop, name) for every output, in `order`, each `box` enlarged `zoom` times (nearest)."""
    out = []
    for name in order(list(outputs), models):
        patch = outputs[name].crop(box).convert("RGB")
        out.append((patch.resize((patch.width * zoom, patch.height * zoom), Image.Resampling.NEAREST), name))
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def mark(image: Image.Image, box: Box) -> Image.Image:
    """A copy of `image` with `box` outlined (yellow inside a dark line), at least 2 px wide."""
    out = image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    l, t, r, b = box
    draw.rectangle((l - width, t - width, r + width - 1, b + width - 1), outline=(0, 0, 0), width=width)
    draw.rectangle((l, t, r - 1, b - 1), outline=BOX_COLOR, width=width)
    return out


def label(image: Image.Image, text: str, side: str) -> Image.Image:
    """`image` with `text` in a dark tag in its bottom-left (`side="left"`) or bottom-right corner.

    The tag is about 1/25 of the image's width high (at least 12 px), so it reads the same at
    any size the page shows the image; at the bottom, because image viewers put their buttons
    along the top."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    out = image if image.mode in ("RGB", "RGBA") else image.convert("RGB")
    out = out.copy()
    draw = ImageDraw.Draw(out)
    size = max(12, out.width // 25)
    font = _font(size)
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    pad = max(3, size // 4)
    tw, th = r - l + 2 * pad, b - t + 2 * pad
    x = pad if side == "left" else out.width - tw - pad
    y = out.height - th - pad
    draw.rectangle((x, y, x + tw, y + th), fill=(0, 0, 0))
    draw.text((x + pad - l, y + pad - t), text, fill=(255, 255, 255), font=font)
    return out


def sheet(tiles: list[tuple[Image.Image, str]], columns: int = 2, gap: int = 8) -> Image.Image:
    """The crops on one white sheet, `columns` to a row, each with its name written under it.

    One picture rather than a gallery: it is shown at its own size where the page is wide enough
    (so the enlarged pixels stay sharp blocks), shrinks as a whole on a phone, and its names can
    neither be covered by a badge nor cut off."""
    if not tiles:
        raise ValueError("no crops to lay out")
    tw = max(t.width for t, _ in tiles)
    th = max(t.height for t, _ in tiles)
    font = _font(max(12, tw // 14))
    text_h = max(12, tw // 14) + 2 * gap
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    out = Image.new("RGB", (columns * tw + (columns - 1) * gap, rows * (th + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i, (tile, name) in enumerate(tiles):
        x, y = (i % columns) * (tw + gap), (i // columns) * (th + text_h)
        out.paste(tile.convert("RGB"), (x, y))
        l, t, r, b = draw.textbbox((0, 0), name, font=font)
        draw.text((x + (tw - (r - l)) // 2 - l, y + th + gap - t), name, fill=(0, 0, 0), font=font)
    return out
