"""Inference: any PIL image in, the super-resolved PIL image out, in bounded memory.

Three pieces, top to bottom:

1. `load_image`: the gate for user files. It refuses what would hurt before decoding it (empty,
   not an image, over the size limits, decompression bombs), decodes fully so truncated files
   fail here rather than half-way through a model run, and applies the EXIF orientation.
2. Colour handling shared by `bicubic` and `Upscaler`: every Pillow mode becomes float RGB plus
   an optional alpha band. The model sees RGB only; alpha is upscaled with bicubic and put back.
3. `Upscaler`: the generator with BatchNorm folded into its convolutions, run as a *stream of row
   bands*. Each convolution keeps the last rows of its input (its halo) between bands, so every
   output row is computed exactly once and equals the whole-image result; memory depends on the
   band, not on the image height. Images wider than `tile` are also cut into column strips that
   overlap by the model's receptive radius, so memory does not grow with width either.

Why bands instead of independent overlapping tiles: SRResNet sees 40 input pixels in every
direction (16 residual blocks of two 3x3 convs, a 9x9 head, ...). Independent tiles need that
much overlap on every side to be exact: 256-px tiles would recompute 72 % extra work. Streamed
rows recompute nothing; only images wider than `tile` pay for overlapping column strips.

Speed (see benchmarks/sr_inference.py): folding BatchNorm saves a pass over every activation;
channels-last lets oneDNN use its fastest convolutions; the 9x9 tail conv, which maps 64 channels
to 3 at the output resolution and vectorises badly, is rewritten as an equivalent conv before the
last PixelShuffle (see _polyphase), which also means the 64-channel full-resolution activation is
never built.
"""
from __future__ import annotations

import ctypes
import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from srgan_core.models import Generator, GeneratorConfig

# Hard limits on the *input* image, so that upscaling any allowed input stays under 1 GB of RAM
# (peak RSS, measured with benchmarks/sr_inference.py). The budget: importing torch (~560 MB
# with the CUDA-enabled wheel), the output image (x4: 16x the input's pixels at 4 bytes each,
# 133 MB for a Full-HD input) and the band buffers (~250 MB at 1024 px wide, glibc's slack
# included). Full HD in, 8K out; the side limit bounds thin strips.
MAX_INPUT_SIDE = 4096
MAX_INPUT_PIXELS = 1920 * 1080
MAX_OUTPUT_PIXELS = MAX_INPUT_PIXELS * 16  # binds only for x8 models: their inputs may be a quarter as big
MIN_INPUT_SIDE = 2  # a 1-px line or dot has no neighbourhood to restore detail from

# Column strips are at most TILE input pixels wide; wider images get strips that overlap by the
# receptive radius (2 x 40 px: 8 % extra work at 2048 px wide, none up to TILE). A strip of up to
# SINGLE_PASS_PIXELS goes through the trunk (64 channels at the input resolution, 256 B per pixel
# per activation) in one step: 16 MB activations for 256x256. Bigger strips advance BAND_PIXELS
# input pixels per step (16 rows at 1024 px wide, 4 MB activations). The upsampler, where each
# input pixel costs 16x more memory at x4, advances UPSAMPLE_PIXELS per step (8 MB per
# 256-channel activation at 2x). Bigger steps fragment glibc's heap (64-row bands at 1024 px
# wide peaked at 1.4 GB); smaller ones add per-call overhead. These sizes cost about 3 % of CPU
# time against the fastest, memory-hungry settings, and keep the largest allowed input at
# 0.85 GB peak RSS.
TILE = 1024
SINGLE_PASS_PIXELS = 256 * 256
BAND_PIXELS = 16 * 1024
UPSAMPLE_PIXELS = 2 * 1024

Progress = Callable[[int, int], None]


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
        raise ImageInputError(f"{name}: not an image, or a format Pillow cannot read") from None
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


def _to_uint8(rgb: np.ndarray, white: float) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(rgb.astype(np.float32) * (255.0 / white) + 0.5, 0, 255).astype(np.uint8)


def _with_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return rgb
    if rgb.mode != "RGBA":
        rgb = rgb.convert("RGBA")
    rgb.putalpha(alpha.resize(rgb.size, Image.Resampling.BICUBIC))
    return rgb


def bicubic(image: Image.Image, scale: int = 4) -> Image.Image:
    """Plain bicubic upscaling, the baseline every SR result is compared with.

    Same output as `Upscaler.upscale` in size and mode: RGB, or RGBA when the input has alpha,
    with colour and alpha resized separately exactly as the model path does.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    rgb, white, alpha = pixels(image)
    h, w = rgb.shape[:2]
    out = Image.fromarray(_to_uint8(rgb, white), "RGB").resize((w * scale, h * scale), Image.Resampling.BICUBIC)
    return _with_alpha(out, alpha)


# ============================================================================ the model, for inference


def receptive_radius(config: GeneratorConfig) -> int:
    """How many input pixels, in every direction, one output pixel depends on (rounded up).

    Walk the generator: the 9x9 head (4), two 3x3 convs per residual block (2 each), the 3x3
    body tail (1), then each upsampling conv (1 pixel at 2^k times the input resolution) and the
    9x9 tail at the output resolution (4 / scale). Default x4: 4 + 32 + 1 + 1 + 0.5 + 1 = 39.5.
    Column strips that overlap by this much give the same pixels as the whole image.
    """
    radius = 4 + 2 * config.blocks + 1
    stages = int(math.log2(config.scale))
    radius += sum(1 / 2**k for k in range(stages)) + 4 / config.scale
    return math.ceil(radius)


def _fold(conv: nn.Conv2d, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight and bias with an eval-mode BatchNorm folded in (computed in float64).

    BN in eval mode is y = (x - mean) / sqrt(var + eps) * gamma + beta per channel: a scale and
    a shift that the conv before it can absorb, saving one pass over every activation.
    """
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if isinstance(norm, nn.BatchNorm2d):
        gamma = norm.weight.detach().double() if norm.affine else torch.ones_like(b)
        beta = norm.bias.detach().double() if norm.affine else torch.zeros_like(b)
        k = gamma / torch.sqrt(norm.running_var.detach().double() + norm.eps)
        w = w * k[:, None, None, None]
        b = (b - norm.running_mean.detach().double()) * k + beta
    elif not isinstance(norm, nn.Identity):
        raise TypeError(f"cannot fold {type(norm).__name__} into a convolution")
    return w.float().contiguous(memory_format=torch.channels_last), b.float()


def _slopes(act: nn.PReLU, channels: int) -> torch.Tensor:
    return act.weight.detach().float().expand(channels).clone()


def _keep(rows: torch.Tensor, buffer: torch.Tensor | None) -> torch.Tensor:
    """A copy of `rows` that outlives the band, written into `buffer` when it has the same shape.

    Every band leaves the same few rows behind in each conv and skip queue; reusing one buffer
    for them, rather than a fresh small tensor each band, keeps long-lived small blocks from
    landing between the big short-lived ones, which is what fragments glibc's heap.
    """
    if buffer is not None and buffer.shape == rows.shape and buffer.data_ptr() != rows.data_ptr():
        return buffer.copy_(rows)
    return rows.clone(memory_format=torch.channels_last)


class _RowConv:
    """A zero-padded conv applied to a stream of row bands, top to bottom.

    It keeps the last 2r input rows between calls, so band k's output rows are exactly the rows
    a whole-image conv would give, each computed once. Zero padding is added only where the real
    image edge is: r rows before the first band, r after the last, r columns on either side.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight, bias
        self.r = weight.shape[-1] // 2
        self.pending: torch.Tensor | None = None  # input rows kept for the next band
        self.at_top = True

    def __call__(self, x: torch.Tensor | None, last: bool) -> torch.Tensor | None:
        r = self.r
        if x is None and (not last or self.pending is None):
            return None
        if self.at_top and last and x is not None:  # the whole strip in one band: a plain conv
            self.at_top = False
            return F.conv2d(x, self.weight, self.bias, padding=r)
        parts = [t for t in (self.pending, x) if t is not None]
        if self.at_top or last:  # zero rows only at the real top and bottom, in the same copy
            n, c, _, w = parts[0].shape
            zeros = torch.empty(n, c, r, w, memory_format=torch.channels_last).zero_()
            parts = ([zeros] if self.at_top else []) + parts + ([zeros] if last else [])
        x = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        self.at_top = False
        if x.shape[2] < 2 * r + 1:  # not one full output row yet (the pipeline is still filling)
            self.pending = x.clone()
            return None
        self.pending = None if last else _keep(x[:, :, x.shape[2] - 2 * r:], self.pending)
        return F.conv2d(x, self.weight, self.bias, padding=(0, r))


class _RowQueue:
    """Rows of a skip connection, held until the longer branch has produced the same rows."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None
        self.spare: torch.Tensor | None = None  # holds the rows left over after each pop

    def push(self, x: torch.Tensor | None) -> None:
        if x is not None:
            self.rows = x if self.rows is None else torch.cat([self.rows, x], dim=2)

    def pop(self, n: int) -> torch.Tensor:
        assert self.rows is not None and self.rows.shape[2] >= n
        # copy the few rows left over: a view would keep the whole band's storage alive
        out = self.rows[:, :, :n]
        self.rows = self.spare = _keep(self.rows[:, :, n:], self.spare)
        return out


def _prelu(x: torch.Tensor | None, slopes: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else F.prelu(x, slopes)


def _shuffle(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else F.pixel_shuffle(x, 2)


def _polyphase(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite "PixelShuffle(2), then a KxK conv" as "a conv on the unshuffled tensor, then a
    PixelShuffle(2) of its (4x fewer-pixel) output".

    Output pixel (2y+i, 2x+j) of the conv reads input pixels (2y+i+p, 2x+j+q), |p|, |q| <= r,
    which sit at (y+dy, x+dx) in shuffle phase (i', j') with 2dy+i' = i+p. So one conv at half
    the resolution, with the four input phases as channels and the four output phases as
    channels, gives the same numbers (zero padding included). For the 9x9 tail of SRResNet
    this replaces a 64 -> 3 conv at the output size, which vectorises badly, by a 256 -> 12 5x5
    conv at half that size (23 % more multiply-adds, about 3x faster), and the 64-channel
    full-size activation is never built.
    """
    out_ch, in_ch, k, _ = weight.shape
    r = k // 2
    lo, hi = (0 - r) // 2, (1 + r) // 2  # range of dy over both phases i
    R = max(-lo, hi)
    w = torch.zeros(out_ch * 4, in_ch * 4, 2 * R + 1, 2 * R + 1, dtype=weight.dtype)
    for i, j, i2, j2 in np.ndindex(2, 2, 2, 2):
        for dy, dx in np.ndindex(2 * R + 1, 2 * R + 1):
            p, q = 2 * (dy - R) + i2 - i, 2 * (dx - R) + j2 - j
            if abs(p) <= r and abs(q) <= r:
                # PixelShuffle order: channel c*4 + i*2 + j holds phase (i, j) of channel c
                w[i * 2 + j::4, i2 * 2 + j2::4, dy, dx] = weight[:, :, p + r, q + r]
    return w.contiguous(memory_format=torch.channels_last), bias.repeat_interleave(4)


class _FoldedGenerator:
    """The generator's weights, folded and laid out for fast CPU inference; read-only once built.

    Built from a copy of the tensors: the model passed in is neither modified nor kept.
    """

    def __init__(self, model: Generator) -> None:
        c = model.config.channels
        self.config = model.config
        self.head = _fold(model.head[0], nn.Identity())
        self.head_slopes = _slopes(model.head[1], c)
        self.blocks = [
            (_fold(b.conv1, b.bn1), _slopes(b.act, c), _fold(b.conv2, b.bn2)) for b in model.body
        ]
        self.body_tail = _fold(model.body_tail[0], model.body_tail[1])
        # PReLU after PixelShuffle = PReLU before it with each slope repeated for the 4 phases
        self.upsample = [
            (_fold(stage.conv, nn.Identity()), _slopes(stage.act, c).repeat_interleave(4)) for stage in model.upsample
        ]
        self.tail = _polyphase(*_fold(model.tail, nn.Identity()))

    def stream(self, band_rows: int, up_rows: int) -> Callable[[torch.Tensor | None, bool], list[torch.Tensor]]:
        """A fresh pass over one image (its own halos and queues): call it with each band of input
        rows, top to bottom, `last=True` on the final one; it returns the output rows completed.

        The network is a chain of stages, and every stage is fed at most `band_rows` rows (trunk)
        or `up_rows` input rows' worth (upsampler, where each row costs 16x more memory at x4),
        depth first, so one chunk per stage is alive at a time.
        Without that cap the last band would hand each stage a little more than the one before it
        (each stage releases the rows it was holding back), and glibc's heap would grow at each step.
        """
        head = _RowConv(*self.head)
        blocks = [(_RowConv(*w1), a, _RowConv(*w2), _RowQueue()) for w1, a, w2 in self.blocks]
        body_tail, long_skip = _RowConv(*self.body_tail), _RowQueue()
        upsample = [(_RowConv(*w), a) for w, a in self.upsample]
        tail = _RowConv(*self.tail)
        Stage = Callable[[torch.Tensor | None, bool], torch.Tensor | None]

        def head_stage(x: torch.Tensor | None, last: bool) -> torch.Tensor | None:
            h = _prelu(head(x, last), self.head_slopes)
            long_skip.push(h)
            return h

        def block_stage(conv1: _RowConv, slopes: torch.Tensor, conv2: _RowConv, skip: _RowQueue) -> Stage:
            def run(x: torch.Tensor | None, last: bool) -> torch.Tensor | None:
                skip.push(x)
                h = conv2(_prelu(conv1(x, last), slopes), last)
                return None if h is None else h.add_(skip.pop(h.shape[2]))
            return run

        def body_tail_stage(x: torch.Tensor | None, last: bool) -> torch.Tensor | None:
            h = body_tail(x, last)
            return None if h is None else h.add_(long_skip.pop(h.shape[2]))

        def upsample_stage(conv: _RowConv, slopes: torch.Tensor) -> Stage:
            return lambda x, last: _shuffle(_prelu(conv(x, last), slopes))

        def tail_stage(x: torch.Tensor | None, last: bool) -> torch.Tensor | None:
            # the last upsampling stage: conv and PReLU, then the tail with its shuffle folded in
            conv, slopes = upsample[-1]
            return _shuffle(tail(_prelu(conv(x, last), slopes), last))

        stages: list[tuple[Stage, int]] = [(head_stage, band_rows)]
        stages += [(block_stage(*b), band_rows) for b in blocks]
        stages += [(body_tail_stage, band_rows)]
        stages += [(upsample_stage(*u), up_rows * 2**k) for k, u in enumerate(upsample[:-1])]
        stages += [(tail_stage, up_rows * 2 ** (len(upsample) - 1))]

        def feed(k: int, box: list[torch.Tensor | None], last: bool, out: list[torch.Tensor]) -> None:
            """Stage k and everything after it, depth first, so one chunk per stage is alive at a
            time. The input comes in a one-item list that is emptied here: no caller's frame keeps
            a reference, so each activation is freed as soon as the next stage has read it."""
            x = box.pop()
            if k == len(stages):
                if x is not None:
                    out.append(x)
                return
            stage, cap = stages[k]
            chunks = [None] if x is None else [x[:, :, a:a + cap] for a in range(0, x.shape[2], cap)]
            del x
            for i in range(len(chunks)):
                chunk, chunks[i] = chunks[i], None
                final = last and i == len(chunks) - 1
                box = [stage(chunk, final)]
                del chunk
                if box[0] is not None or final:
                    feed(k + 1, box, final, out)

        def push(x: torch.Tensor | None, last: bool) -> list[torch.Tensor]:
            out: list[torch.Tensor] = []
            feed(0, [x], last, out)
            return out

        return push


def _bicubic_rows(lr: torch.Tensor, y0: int, y1: int, scale: int,
                  as_float: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Output rows [y0, y1) of F.interpolate(lr, scale, "bicubic"), from a window of input rows.

    Bicubic reads two input rows either side of an output row's source position; the window
    keeps that margin (or starts at the true edge, where interpolate clamps just as it does on
    the whole image), so the rows equal the whole-image result. Used by generators trained with
    `bicubic_skip`, which add this to their output.
    """
    a, b = max(0, y0 // scale - 2), min(lr.shape[2], -(-y1 // scale) + 2)
    up = F.interpolate(as_float(lr[:, :, a:b]), scale_factor=scale, mode="bicubic", align_corners=False)
    return up[:, :, y0 - a * scale:y1 - a * scale]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _malloc_trim()


def _give_back_freed_memory() -> None:
    """Return the heap's free pages to the OS once an image is done.

    glibc serves tensors of a few MB from its heap (it raises its mmap threshold after the first
    free) and keeps what they free, so a server would otherwise sit on the last image's band
    buffers (~100-200 MB) between requests.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _generator_of(source: object) -> tuple[Generator, object | None]:
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
    ) -> None:
        model, self.loaded = _generator_of(source)
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
                            out = out.add_(_bicubic_rows(lr[:, :, :, r0:r1], y, y + out.shape[2], s, as_float))
                        sink(y, k0 * s, out[:, :, :, (k0 - r0) * s:(k1 - r0) * s])
                        y += out.shape[2]
                    done += 1
                    if progress is not None:
                        progress(done, total)
                assert y == height * s, "the row stream lost rows"
        _give_back_freed_memory()

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
        return _with_alpha(out, alpha)
