"""Inference: any PIL image in, the super-resolved PIL image out, in bounded memory.

`Upscaler` runs an SRResNet/SRGAN generator on the CPU: it cuts the image into column strips
(only when it is wider than `tile`; they overlap by the model's receptive radius, so seams are
exact) and streams each strip through the folded network in row bands (streaming.py), so memory
depends on the band and the strip, not on the image. `bicubic` is the baseline every result is
compared with, with the same colour and alpha handling. The input gate (`load_image`, the size
limits, colour modes) lives in images.py; its names are re-exported here, where callers have
always found them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from srgan_core.images import (  # noqa: F401 - re-exported: the gate's names, where callers import them
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    MAX_OUTPUT_PIXELS,
    MIN_INPUT_SIDE,
    ImageInputError,
    check_size,
    load_image,
    pixels,
    to_uint8,
    upright,
    with_alpha,
)
from srgan_core.models import Generator
from srgan_core.streaming import FoldedGenerator as _FoldedGenerator  # the name Upscaler.__init__ uses
from srgan_core.streaming import bicubic_rows, give_back_freed_memory, receptive_radius

# Column strips are at most TILE input pixels wide; wider images get strips that overlap by the
# receptive radius (2 x 40 px: 8 % extra work at 2048 px wide, none up to TILE). A strip of up to
# SINGLE_PASS_PIXELS goes through the trunk (64 channels at the input resolution, 256 B per pixel
# per activation) in one step: 4 MB activations for 128x128, a job of a fraction of a second.
# Bigger strips advance BAND_PIXELS input pixels per step (16 rows at 1024 px wide, 4 MB activations). The upsampler, where each
# input pixel costs 16x more memory at x4, advances UPSAMPLE_PIXELS per step (8 MB per
# 256-channel activation at 2x). Bigger steps fragment glibc's heap (64-row bands at 1024 px
# wide peaked at 1.4 GB); smaller ones add per-call overhead. These sizes cost about 3 % of CPU
# time against the fastest, memory-hungry settings, and keep the largest allowed input at
# 0.85 GB peak RSS. Bands also let the first rows out early: at 256x256, 64-row bands show the
# first rows after ~15 % of the job (a single pass: only at the end) for ~3 % more time.
TILE = 1024
SINGLE_PASS_PIXELS = 128 * 128
BAND_PIXELS = 16 * 1024
UPSAMPLE_PIXELS = 2 * 1024

Progress = Callable[[int, int], None]


def bicubic(image: Image.Image, scale: int = 4) -> Image.Image:
    """Plain bicubic upscaling, the baseline every SR result is compared with.

    Same output as `Upscaler.upscale` in size and mode: RGB, or RGBA when the input has alpha,
    with colour and alpha resized separately exactly as the model path does.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    rgb, white, alpha = pixels(image)
    h, w = rgb.shape[:2]
    out = Image.fromarray(to_uint8(rgb, white), "RGB").resize((w * scale, h * scale), Image.Resampling.BICUBIC)
    return with_alpha(out, alpha)


def _generator_of(source: object, strength: float | None = None) -> tuple[Generator, object | None]:
    if strength is not None:  # a blend of a (PSNR model, GAN model) pair; None = the bundled pair
        from srgan_core.interpolate import INTERPOLATION_PAIR, load_interpolated

        pair = INTERPOLATION_PAIR if source is None else source
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"with strength, the source is a (PSNR model, GAN model) pair or None; got {source!r}")
        loaded = load_interpolated(pair[0], pair[1], strength)
        return loaded.model, loaded
    if isinstance(source, Generator):
        return source, None
    if isinstance(getattr(source, "model", None), Generator):  # a weights.LoadedGenerator
        return source.model, source
    if source is None or isinstance(source, (str, Path)):
        from srgan_core.weights import load_generator  # lazily: weights pulls in the Hub client

        loaded = load_generator(source)
        return loaded.model, loaded
    raise TypeError(f"Upscaler needs a Generator, a LoadedGenerator, a weights path or name; got {type(source).__name__}")


class Upscaler:
    """Super-resolve PIL images with an SRResNet/SRGAN generator on the CPU.

    `source`: a Generator, a weights.LoadedGenerator, or anything `weights.load_generator`
    accepts (path, bundled name, hf:// reference; None = the bundled default).
    `strength` (0..1): run `interpolate.load_interpolated` of the pair `source` (PSNR model, GAN
    model; None = interpolate.INTERPOLATION_PAIR) instead: 0 is the PSNR model, 1 the GAN.
    `tile`: widest column strip, in input pixels; wider images are cut into strips that overlap
    by `overlap` (default: the receptive radius, which makes the seams exact).
    `band`: input rows per step (default: the whole strip when it has at most SINGLE_PASS_PIXELS,
    else BAND_PIXELS // strip width). Neither `tile` nor `band` changes the result beyond float
    rounding; they trade memory against per-call overhead.
    The model passed in is only read: BatchNorm is folded into copies of the conv weights.
    """

    def __init__(
        self,
        source: str | Path | Generator | object | None = None,
        tile: int = TILE,
        overlap: int | None = None,
        *,
        band: int | None = None,
        strength: float | None = None,
    ) -> None:
        model, self.loaded = _generator_of(source, strength)
        if model.config.in_channels != 3:
            raise ValueError(f"the Upscaler runs RGB models; this one has {model.config.in_channels} input channels")
        self.config = model.config
        self.radius = receptive_radius(model.config)
        if tile < 1:
            raise ValueError(f"tile must be a positive number of pixels, got {tile}")
        if overlap is not None and overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        if band is not None and band < 1:
            raise ValueError(f"band must be a positive number of rows, got {band}")
        self.tile, self.band = tile, band
        self.overlap = self.radius if overlap is None else overlap
        with torch.no_grad():
            self._net = _FoldedGenerator(model)

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def name(self) -> str:
        if self.loaded is not None:
            return str(self.loaded.name)
        c = self.config
        return f"srresnet_x{c.scale} ({c.channels} channels, {c.blocks} blocks)"

    # ------------------------------------------------------------------ the plan: strips and bands

    def _strips(self, width: int) -> list[tuple[int, int, int, int]]:
        """(read_from, read_to, keep_from, keep_to) in input columns, for each column strip."""
        if width <= self.tile:
            return [(0, width, 0, width)]
        strips = []
        for x0 in range(0, width, self.tile):
            x1 = min(width, x0 + self.tile)
            strips.append((max(0, x0 - self.overlap), min(width, x1 + self.overlap), x0, x1))
        return strips

    def _band_rows(self, strip_width: int, height: int) -> int:
        if self.band:
            return self.band
        if strip_width * height <= SINGLE_PASS_PIXELS:
            return height
        return max(1, BAND_PIXELS // strip_width)

    def _up_rows(self, strip_width: int, height: int) -> int:
        return min(self._band_rows(strip_width, height), max(1, UPSAMPLE_PIXELS // strip_width))

    def plan(self, width: int, height: int) -> int:
        """Number of steps (tiles) `upscale` reports through its progress callback."""
        return sum(math.ceil(height / self._band_rows(r1 - r0, height)) for r0, r1, _, _ in self._strips(width))

    def _run(self, lr: torch.Tensor, sink: Callable[[int, int, torch.Tensor], None], progress: Progress | None,
             white: float = 1.0) -> None:
        """Stream `lr` (1x3xHxW, channels-last, any dtype with `white` as full scale) through the
        model; `sink(y, x, rows)` gets each block of finished output rows at output coordinates."""

        def as_float(t: torch.Tensor) -> torch.Tensor:
            if t.dtype == torch.float32 and white == 1.0:
                return t
            return t.to(torch.float32, copy=True).div_(white)  # integer pixels: one band at a time

        s = self.scale
        height, width = lr.shape[2], lr.shape[3]
        total, done = self.plan(width, height), 0
        if progress is not None:
            progress(0, total)
        with torch.inference_mode():
            for r0, r1, k0, k1 in self._strips(width):
                rows = self._band_rows(r1 - r0, height)
                push, y = self._net.stream(rows, self._up_rows(r1 - r0, height)), 0
                for top in range(0, height, rows):
                    band = as_float(lr[:, :, top:top + rows, r0:r1])
                    for out in push(band, last=top + rows >= height):
                        if self.config.bicubic_skip:
                            out = out.add_(bicubic_rows(lr[:, :, :, r0:r1], y, y + out.shape[2], s, as_float))
                        sink(y, k0 * s, out[:, :, :, (k0 - r0) * s:(k1 - r0) * s])
                        y += out.shape[2]
                    done += 1
                    if progress is not None:
                        progress(done, total)
                assert y == height * s, "the row stream lost rows"
        give_back_freed_memory()

    # ------------------------------------------------------------------ public entry points

    def upscale_tensor(self, lr: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        """Float NCHW in [0, 1] -> float NCHW, clamped to [0, 1]: the model's output exactly as a
        whole-image forward pass gives it (up to float rounding), but in bounded memory."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W tensor, got shape {tuple(lr.shape)}")
        s = self.scale
        n, _, h, w = lr.shape
        out = torch.empty(n, 3, h * s, w * s)
        for i in range(n):
            x = lr[i:i + 1].float().contiguous(memory_format=torch.channels_last)

            def sink(y: int, x0: int, rows: torch.Tensor, i: int = i) -> None:
                out[i:i + 1, :, y:y + rows.shape[2], x0:x0 + rows.shape[3]] = rows.clamp(0, 1)

            self._run(x, sink, progress)
        return out

    def upscale(self, image: Image.Image, progress: Progress | None = None,
                on_rows: Callable[[int, int, Image.Image], None] | None = None) -> Image.Image:
        """The image `scale` times larger: RGB, or RGBA when it had alpha (alpha by bicubic).

        Any Pillow mode and EXIF orientation are handled (see `pixels`). `progress(done,
        total)` is called once before the first step and after every step. `on_rows(y, x, block)`
        gets each block of finished RGB output rows as soon as it is computed (at output
        coordinates), so a caller can show the result growing while the rest is computed.
        Images over the size limits raise ImageInputError.
        """
        check_size(image.width, image.height, "image", self.scale)
        rgb, white, alpha = pixels(image)
        h, w = rgb.shape[:2]
        s = self.scale
        out = Image.new("RGBA" if alpha is not None else "RGB", (w * s, h * s))
        # HxWx3 -> 1x3xHxW is already channels-last in memory: no copy
        lr = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)

        def sink(y: int, x0: int, rows: torch.Tensor) -> None:
            rgb8 = rows[0].permute(1, 2, 0).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
            block = Image.fromarray(rgb8.numpy(), "RGB")
            out.paste(block, (x0, y))
            if on_rows is not None:
                on_rows(y, x0, block)

        self._run(lr, sink, progress, white)
        return with_alpha(out, alpha)
