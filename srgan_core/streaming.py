"""The streaming engine: a generator's convolutions run over a stream of row bands.

`FoldedGenerator` holds the generator's weights with BatchNorm folded into the convolutions;
its `stream` is one pass over one image. Each convolution keeps the last rows of its input (its
halo) between bands, so every output row is computed exactly once and equals the whole-image
result, and memory depends on the band, not on the image height. `Upscaler` (upscale.py) cuts
images into column strips and bands and feeds them through this.

Why bands instead of independent overlapping tiles: SRResNet sees 40 input pixels in every
direction (16 residual blocks of two 3x3 convs, a 9x9 head, ...). Independent tiles need that
much overlap on every side to be exact: 256-px tiles would recompute 72 % extra work. Streamed
rows recompute nothing; only images wider than the strip width pay for overlapping strips.

Speed (see benchmarks/sr_inference.py): folding BatchNorm saves a pass over every activation;
channels-last lets oneDNN use its fastest convolutions; the 9x9 tail conv, which maps 64 channels
to 3 at the output resolution and vectorises badly, is rewritten as an equivalent conv before the
last PixelShuffle (see _polyphase), which also means the 64-channel full-resolution activation is
never built.
"""
from __future__ import annotations

import ctypes
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srgan_core.models import Generator, GeneratorConfig


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


class FoldedGenerator:
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


def bicubic_rows(lr: torch.Tensor, y0: int, y1: int, scale: int,
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


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the OS once an image is done.

    glibc serves tensors of a few MB from its heap (it raises its mmap threshold after the first
    free) and keeps what they free, so a server would otherwise sit on the last image's band
    buffers (~100-200 MB) between requests.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
