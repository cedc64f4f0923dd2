"""compare: which region the crops show, and how the overview and the crops are drawn."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from srgan_core import compare


def scene(seed: int = 0) -> Image.Image:
    """A 240x160 photo-like test card: a blurred background with a strong out-of-focus edge on
    the left, and a small sharp textured patch at (160, 96)-(200, 136)."""
    rng = np.random.default_rng(seed)
    a = np.full((160, 240), 90.0)
    a[:, :80] = 230.0  # a big step: high contrast, but blurred below
    a += rng.normal(0, 40, a.shape)
    img = Image.fromarray(a.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(4))
    sharp = rng.integers(60, 200, (40, 40)).astype(np.uint8)
    img.paste(Image.fromarray(sharp), (160, 96))
    return img.convert("RGB")


def test_detail_box_finds_the_sharp_patch_not_the_blurred_edge():
    l, t, r, b = compare.detail_box(scene(), 32, align=4)
    assert (r - l, b - t) == (32, 32)
    assert 160 <= l and r <= 200 and 96 <= t and b <= 136, (l, t, r, b)


def test_detail_box_is_aligned_and_inside_small_images():
    box = compare.detail_box(scene(), 32, align=4)
    assert all(v % 4 == 0 for v in box)
    small = Image.new("RGB", (10, 7))
    l, t, r, b = compare.detail_box(small, 32, align=1)
    assert (l, t) == (0, 0) and r <= 10 and b <= 7 and r - l == b - t == 7


def test_scale_box():
    assert compare.scale_box((1, 2, 3, 4), 4) == (4, 8, 12, 16)


def test_crops_come_in_one_order_whatever_the_input_order():
    im = {n: Image.new("RGB", (20, 20), c) for n, c in
          [("Original", "white"), ("SRGAN", "red"), ("Bicubic", "blue"), ("SRResNet", "green")]}
    tiles = compare.crops(im, (0, 0, 8, 8), 3, models=["SRResNet", "SRGAN"])
    assert [n for _, n in tiles] == ["Bicubic", "SRResNet", "SRGAN", "Original"]
    assert all(t.size == (24, 24) for t, _ in tiles)
    again = compare.crops(dict(reversed(list(im.items()))), (0, 0, 8, 8), 3, models=["SRResNet", "SRGAN"])
    assert [n for _, n in again] == [n for _, n in tiles]


def test_crops_are_nearest_neighbour_blocks():
    a = np.zeros((4, 4, 3), np.uint8)
    a[0, 0] = 255
    (tile, _), = compare.crops({"Bicubic": Image.fromarray(a)}, (0, 0, 2, 2), 3)
    t = np.asarray(tile)
    assert (t[:3, :3] == 255).all() and (t[3:, :] == 0).all() and (t[:, 3:] == 0).all()


def test_mark_outlines_the_box_only():
    img = Image.new("RGB", (100, 80), (40, 40, 40))
    out = np.asarray(compare.mark(img, (20, 20, 60, 50)))
    assert tuple(out[20, 40]) == compare.BOX_COLOR and tuple(out[35, 20]) == compare.BOX_COLOR
    assert tuple(out[35, 40]) == (40, 40, 40)  # inside untouched
    assert tuple(out[5, 5]) == (40, 40, 40)  # far outside untouched
    assert np.asarray(img).max() == 40  # the input is not drawn on


@pytest.mark.parametrize("side", ["left", "right"])
def test_label_tags_the_named_corner(side):
    img = Image.new("RGB", (400, 300), (200, 200, 200))
    out = np.asarray(compare.label(img, "SRGAN", side)).astype(int)
    changed = np.abs(out - 200).sum(2) > 0
    ys, xs = np.nonzero(changed)
    assert ys.min() > 240  # a tag at the bottom, clear of a viewer's buttons
    if side == "left":
        assert xs.min() < 10 and xs.max() < 200
    else:
        assert xs.max() > 390 and xs.min() > 200
    with pytest.raises(ValueError, match="side"):
        compare.label(img, "x", "middle")


def test_sheet_lays_out_tiles_with_names():
    tiles = [(Image.new("RGB", (288, 288), c), n) for c, n in [("red", "Bicubic"), ("blue", "SRGAN"), ("green", "Original")]]
    out = compare.sheet(tiles, columns=2, gap=8)
    assert out.format is None and out.mode == "RGB"
    assert out.width == 2 * 288 + 8 and out.height > 2 * 288
    a = np.asarray(out)
    assert tuple(a[10, 10]) == (255, 0, 0) and tuple(a[10, 288 + 8 + 10]) == (0, 0, 255)
    below = a[288:288 + 30, :288]
    assert (below.sum(2) < 200).any()  # the name is written under the first tile
