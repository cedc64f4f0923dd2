"""How much detail sharpening a GAN model's output after the fact buys, and for how much PSNR.

    python scripts/sharpening_frontier.py DATA/Set14                 # the bundled srresnet_x4 / srgan_x4

A question the SRGAN ablation kept asking: is a model's missing edge energy ("detail") a matter of
a little more sharpening, which any model could be taught, or does it need texture that agrees
better with the photo? This prints, for clean bicubic LR, PSNR / detail / grid of the GAN model's
output as it is and post-processed three ways: pushed further from the PSNR model in output space
(r + s (g - r), s > 1, as a GAN strength above 1 would), an unsharp mask (g + a (g - blur_1px g)),
and back-projection (the output corrected until its bicubic shrink is the LR again, which raises
PSNR). Each is a point on the PSNR-detail plane; a goal beyond all of them is beyond sharpening.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srgan_core.data import load_validation  # noqa: E402
from srgan_core.degrade import downscale  # noqa: E402
from srgan_core.degrid import sharpen  # noqa: E402
from srgan_core.metrics import detail_ratio, grid_ratio, psnr  # noqa: E402
from srgan_core.upscale import Upscaler  # noqa: E402

Post = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (LR, PSNR model's SR, GAN's SR) -> SR


def extrapolate(r: np.ndarray, g: np.ndarray, s: float) -> np.ndarray:
    return r + s * (g - r)


def back_project(sr: np.ndarray, lr: np.ndarray, steps: int = 5) -> np.ndarray:
    """Add the bicubic-upscaled error of the output's own shrink, `steps` times (Irani and Peleg's
    iterative back-projection): the output then agrees with the LR it came from."""
    h, w = sr.shape[:2]
    scale = h // lr.shape[0]
    for _ in range(steps):
        error = lr - downscale(sr, scale, "bicubic")
        sr = sr + np.stack([np.asarray(Image.fromarray(error[..., c].astype(np.float32), "F")
                                       .resize((w, h), Image.Resampling.BICUBIC)) for c in range(3)], axis=-1)
    return sr


VARIANTS: dict[str, Post] = {
    "as it is": lambda lr, r, g: g,
    "output-space strength 1.1": lambda lr, r, g: extrapolate(r, g, 1.1),
    "output-space strength 1.2": lambda lr, r, g: extrapolate(r, g, 1.2),
    "unsharp mask, 1 px, amount 0.1": lambda lr, r, g: sharpen(g, 0.1),
    "unsharp mask, 1 px, amount 0.2": lambda lr, r, g: sharpen(g, 0.2),
    "back-projection, 5 steps": lambda lr, r, g: back_project(g, lr),
}


def frontier(folder: str | Path, psnr_model: str = "srresnet_x4", gan_model: str = "srgan_x4",
             variants: dict[str, Post] = VARIANTS) -> list[dict]:
    """One row per variant: mean PSNR and detail, median grid, over the folder's images (Y, a
    border of `scale` px). ValueError for a pair of models of different scales."""
    r_up, g_up = Upscaler(psnr_model), Upscaler(gan_model)
    scale = g_up.scale
    if r_up.scale != scale:
        raise ValueError(f"{psnr_model} upscales x{r_up.scale} and {gan_model} x{scale}: they must match")
    outputs = []
    for _, lr, hr in load_validation(folder, scale):  # raises for a missing folder or one without images
        as_float = lambda im: np.asarray(im.convert("RGB"), dtype=np.float64)
        outputs.append((as_float(lr), as_float(r_up.upscale(lr)), as_float(g_up.upscale(lr)), hr))
    rows = []
    for name, post in variants.items():
        p, d, grid = [], [], []
        for lr, r, g, hr in outputs:
            sr = Image.fromarray(np.clip(np.round(post(lr, r, g)), 0, 255).astype(np.uint8))
            p.append(psnr(sr, hr, scale))
            d.append(detail_ratio(sr, hr))
            try:
                grid.append(grid_ratio(sr, hr, scale))
            except ValueError:  # too small for the grid measure
                pass
        rows.append({"variant": name, "psnr": float(np.mean(p)), "detail": float(np.mean(d)),
                     "grid": statistics.median(grid) if grid else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a folder of HR images (LR made by clean bicubic, as in evaluate)")
    p.add_argument("--psnr-model", default="srresnet_x4", help="the PSNR model (weights name or path)")
    p.add_argument("--gan-model", default="srgan_x4", help="the GAN model (weights name or path)")
    args = p.parse_args(argv)
    try:
        rows = frontier(args.data, args.psnr_model, args.gan_model)
    except (OSError, ValueError) as e:  # a missing folder, unknown or broken weights, mismatched models
        p.exit(2, f"error: {e}\n")
    print(f"| {Path(args.data).name}: {args.gan_model} | PSNR | detail | grid |\n|---|---|---|---|")
    for row in rows:
        grid = "—" if row["grid"] is None else f"{row['grid']:.2f}"
        print(f"| {row['variant']} | {row['psnr']:.2f} | {row['detail']:.3f} | {grid} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
