"""Training: SRResNet pre-training with a pixel loss, then SRGAN adversarial training from it,
then (optionally) the degrid stage, which teaches the SRGAN its own output without its grid pattern.

One loop serves all three stages. An SRGAN iteration is the paper's four steps:
    1. sample a batch of HR patches,      2. make their LR versions (bicubic /4, or realistic),
    3. update D on real HR vs G(LR),       4. update G with content + 1e-3 * adversarial loss
                                              through the frozen D.
Steps 3 and 4 are `train_step`; the SRResNet stage is step 4 with the content loss alone, the
degrid stage the same with the teacher's cleaned output (`data.TeacherPatchDataset`) for the HR.

A run folder holds everything needed to understand or continue it:
    config.json       the TrainConfig, so `--resume RUN_DIR` needs nothing else
    metrics.jsonl     losses every --log-every iterations, validation PSNR/SSIM every --val-every
    samples/          a validation image upscaled at each validation
    checkpoint        -> ckpt-NNNNNNN/: weights, optimizer and RNG state (see checkpoint.py)
    generator.*       the final weights with a sidecar (what `weights/` ships)

Works unchanged under `torchrun --nproc_per_node N`: DistributedDataParallel, gloo on CPU, NCCL on
GPUs; the global batch is split over the processes and only rank 0 writes. Ctrl-C, SIGTERM and
--max-minutes stop every process at the same iteration with a checkpoint.
"""
from __future__ import annotations

import copy
import gc
import json
import math
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from srgan_core import losses
from srgan_core.checkpoint import latest_checkpoint, load_average, load_checkpoint, save_checkpoint
from srgan_core.data import MAX_TEXTURE_TRIES, PatchDataset, TeacherPatchDataset, load_validation, to_image, to_tensor
from srgan_core.degrade import PRESETS, DegradationConfig
from srgan_core.degrid import DEGRID_MARGIN, DEGRID_MAX_GAIN, DEGRID_MAX_SHARPEN, DEGRID_SIGMA
from srgan_core.distributed import Dist, StopRequest, setup_distributed, should_stop
from srgan_core.metrics import psnr, ssim
from srgan_core.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, icnr_


def _f(default, help: str, **meta):  # noqa: A002 - a dataclass field with its CLI help text
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    stage: str = _f("srresnet", "srresnet: pixel-loss pre-training; srgan: adversarial training (start it "
                    "with --init from an SRResNet); degrid: teach a generator its own output with the grid "
                    "pattern removed (--teacher, after the SRGAN stage)", choices=("srresnet", "srgan", "degrid"))
    train_data: list[str] = _f([], "training image folders (e.g. T91 BSDS200)", metavar="DIR")
    val_data: list[str] = _f([], "validation folders scored with whole images (e.g. Set5 Set14)", metavar="DIR")
    out: str = _f("runs/srresnet_x4", "run folder: config.json, metrics.jsonl, samples/, checkpoint, final generator.*")
    scale: int = _f(4, "upscaling factor: 2, 4 or 8")
    channels: int = _f(64, "generator feature maps (paper: 64)")
    blocks: int = _f(16, "generator residual blocks (paper: 16)")
    d_channels: int = _f(64, "discriminator base width (paper: 64)")
    batch_norm: bool = _f(True, "BatchNorm in the generator and discriminator, as in the paper")
    spectral_norm: bool = _f(False, "spectral normalisation in the discriminator (then without BatchNorm)")
    bicubic_skip: bool = _f(False, "add a bicubic upsampling of the input to the generator's output (not in "
                            "the paper; the network then learns only the missing detail and converges faster)")
    icnr: bool = _f(False, "ICNR initialisation of the sub-pixel convolutions (no checkerboard at the start)")
    patch: int = _f(96, "HR crop size in pixels (paper: 96); images smaller than this are skipped")
    texture_tries: int = _f(1, "cut N random crops for each patch and train on the one with the most edge energy "
                            "(data.edge_energy): more of each batch where the photos have texture; 1 = uniform crops")
    batch_size: int = _f(16, "global batch size, split over processes under torchrun")
    iterations: int = _f(100_000, "total iterations (also sets the cosine learning-rate schedule)")
    lr: float = _f(1e-4, "Adam learning rate at the start (paper: 1e-4)")
    lr_min: float = _f(1e-6, "learning rate reached at the last iteration (cosine decay); equal to --lr for constant")
    beta1: float = _f(0.9, "Adam beta1 (paper: 0.9)")
    content_loss: str = _f("mse", "mse or l1 on pixels, or vgg22 / vgg54 on VGG19 features (these need "
                           "torchvision's ImageNet VGG19 weights)", choices=losses.CONTENT_LOSSES)
    gan_loss: str = _f("standard", "standard: the paper's D(real) vs D(fake); relativistic: ESRGAN's "
                       "relativistic average form", choices=losses.GAN_LOSSES)
    adv_weight: float = _f(losses.ADVERSARIAL_WEIGHT, "weight of the adversarial term (paper: 1e-3)")
    grid_weight: float = _f(0.0, "weight of the grid loss, which penalises error that repeats with the output "
                            "grid's period (the PixelShuffle checkerboard); 0 = off")
    grid_kind: str = _f("cells", "cells: the grid loss on the error, averaged over cells of 6x6 LR pixels; peaks: "
                        "G's excess power over the HR's at the grid's frequencies (what the grid measure sees)",
                        choices=("cells", "peaks"))
    d_shift: bool = _f(False, "show D real and generated patches cropped at one random offset within the output "
                       "grid per iteration, so the checkerboard of D's strided gradients does not lock onto G's grid")
    freeze_upsampler: bool = _f(False, "train the residual trunk only: the sub-pixel upsampling stages and the "
                                "last conv keep the --init weights (in SRGAN they paint the grid; the trunk "
                                "can still add texture through them)")
    fm_weight: float = _f(0.0, "weight of D feature matching: L1 between D's activations on G(LR) and on its HR, "
                          "a perceptual loss without VGG19; 0 = off")
    gradient_weight: float = _f(0.0, "weight of the gradient loss: L1 between the local edge strength (Sobel "
                                "magnitude of the luma over 8x8 px cells) of G(LR) and of its HR, after SPSR: asks "
                                "for the photo's amount of texture wherever its edges fall; 0 = off")
    spectrum_weight: float = _f(0.0, "weight of the spectrum loss: L1 between the local amplitude spectra (16x16 px "
                                "tiles of the luma) of G(LR) and of its HR: asks for the photo's texture, frequency "
                                "by frequency, wherever its edges fall; a single-period mesh does not fit it (a grid can: pair it "
                                "with --grid-weight); 0 = off")
    shift_weight: float = _f(0.0, "weight of the shift loss: G's output for LR made from the HR moved by 1-3 px "
                             "must be its output for the unmoved LR, moved the same way; a pattern locked to "
                             "the output grid does not move, so it costs (on half the batch); 0 = off")
    teacher: str = _f("", "degrid: the generator whose whole-image output, less its grid pattern "
                      "(degrid.remove_grid), is the target instead of the HR; default: --init")
    degrid_sigma: float = _f(DEGRID_SIGMA, "degrid: px over which the pattern's strength is taken as constant; "
                             "the band removed around each grid frequency is 1/(2 pi sigma) cycles/px wide")
    degrid_gain: float = _f(1.0, "degrid: how much of the found pattern the target takes away: 1 = all of it; "
                            "above 1 the target carries it with its sign turned, so that a student which learns "
                            f"part of the way in one pass goes further (0-{DEGRID_MAX_GAIN:g})")
    degrid_sharpen: float = _f(0.0, "degrid: the target, once its pattern is removed, lightly sharpened: "
                               "target + A (target - its 1 px blur), to give back the edge energy a distillation "
                               f"pass loses; 0 = off (0-{DEGRID_MAX_SHARPEN:g})")
    d_shift_each: bool = _f(False, "with --d-shift: a fresh offset for every patch instead of one per step, so "
                            "each step's push through D's strided convs lands on all sub-pixel phases at once")
    ema: float = _f(0.0, "keep an exponential moving average of the generator's weights with this decay "
                    "(e.g. 0.999) and validate/ship it; 0 = off")
    average_from: int = _f(0, "from this iteration on, also average the shipped weights (the EMA, else G) every "
                           "--average-every iterations, and ship that mean (stochastic weight averaging); 0 = off")
    average_every: int = _f(50, "iterations between the snapshots of --average-from")
    degradation: str = _f("bicubic", "how LR patches are made: bicubic (clean, the papers') or realistic "
                          "(blur, random downscale, noise, JPEG)", choices=("bicubic", "realistic"))
    blur_prob: float = _f(0.8, "realistic: chance of a Gaussian blur (isotropic or anisotropic)")
    blur_sigma_max: float = _f(2.0, "realistic: largest blur sigma in HR pixels")
    noise_prob: float = _f(0.8, "realistic: chance of Gaussian or Poisson noise")
    noise_max: float = _f(10.0, "realistic: largest noise sigma, of 255")
    jpeg_prob: float = _f(0.9, "realistic: chance of JPEG compression")
    jpeg_min: int = _f(30, "realistic: lowest JPEG quality")
    jpeg_max: int = _f(95, "realistic: highest JPEG quality")
    second_order: float = _f(0.0, "realistic: chance of a second, milder round of degradations")
    init: str = _f("", "generator weights to start from: a path, a bundled name or hf://owner/repo/file")
    seed: int = _f(0, "seed for the model and the patch order")
    log_every: int = _f(10, "write losses to metrics.jsonl every N iterations")
    val_every: int = _f(500, "validate (PSNR/SSIM, a sample image) every N iterations")
    val_degradation: str = _f("bicubic", "degradation of the validation LR images: bicubic, phone_jpeg or "
                              "heavy_jpeg", choices=tuple(PRESETS))
    val_max_images: int = _f(0, "score at most N images per validation set (0 = all)")
    ckpt_every: int = _f(250, "write a checkpoint every N iterations")
    max_minutes: float = _f(0.0, "stop with a checkpoint after this many minutes (0 = no limit); continue with --resume")
    threads: int = _f(0, "torch CPU threads (0 = torch's default)")
    device: str = _f("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))

    def __post_init__(self) -> None:
        for name in ("stage", "content_loss", "gan_loss", "grid_kind", "degradation", "val_degradation", "device"):
            choices = TrainConfig.__dataclass_fields__[name].metadata["choices"]
            if getattr(self, name) not in choices:
                raise ValueError(f"{name.replace('_', ' ')} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        for name in ("iterations", "batch_size", "patch", "texture_tries", "log_every", "val_every", "ckpt_every",
                     "average_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.texture_tries > MAX_TEXTURE_TRIES:
            raise ValueError(f"texture_tries must be from 1 to {MAX_TEXTURE_TRIES}, got {self.texture_tries}")
        if not (self.lr > 0 and self.lr_min > 0 and math.isfinite(self.lr) and math.isfinite(self.lr_min)):
            raise ValueError(f"learning rates must be positive and finite, got lr={self.lr}, lr_min={self.lr_min}")
        for name in ("adv_weight", "grid_weight", "fm_weight", "gradient_weight", "spectrum_weight",
                     "shift_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.average_from < 0:
            raise ValueError(f"average_from must be >= 0, got {self.average_from}")
        if self.d_shift_each and not self.d_shift:
            raise ValueError("d_shift_each draws the offsets of --d-shift per patch; give --d-shift with it")
        if self.fm_weight and self.d_shift_each:
            raise ValueError("fm_weight compares each patch with its HR at the same offset; it cannot go with d_shift_each")
        if self.fm_weight and self.stage != "srgan":
            raise ValueError("fm_weight needs the SRGAN stage's discriminator (--stage srgan)")
        if self.stage == "degrid" and not (self.teacher or self.init):
            raise ValueError("the degrid stage learns a teacher's output: give --teacher (or --init)")
        if self.stage == "degrid" and self.patch < 2 * DEGRID_MARGIN + 4 * self.scale:
            raise ValueError(f"the degrid stage scores patches less a {DEGRID_MARGIN} px border; patch {self.patch} "
                             f"is too small (at least {2 * DEGRID_MARGIN + 4 * self.scale})")
        if self.stage == "degrid" and self.degradation != "bicubic":
            raise ValueError("the degrid stage learns the teacher's output for clean bicubic LR; it cannot go with "
                             "--degradation realistic")
        if self.teacher and self.stage != "degrid":
            raise ValueError("--teacher is for the degrid stage (--stage degrid)")
        if not (math.isfinite(self.degrid_sigma) and self.degrid_sigma >= 1):
            raise ValueError(f"degrid_sigma must be at least 1 px, got {self.degrid_sigma}")
        if not (math.isfinite(self.degrid_gain) and 0.0 <= self.degrid_gain <= DEGRID_MAX_GAIN):
            raise ValueError(f"degrid_gain must be between 0 and {DEGRID_MAX_GAIN:g}, got {self.degrid_gain}")
        if self.degrid_gain != 1.0 and self.stage != "degrid":
            raise ValueError("--degrid-gain is for the degrid stage (--stage degrid)")
        if not (math.isfinite(self.degrid_sharpen) and 0.0 <= self.degrid_sharpen <= DEGRID_MAX_SHARPEN):
            raise ValueError(f"degrid_sharpen must be between 0 and {DEGRID_MAX_SHARPEN:g}, got {self.degrid_sharpen}")
        if self.degrid_sharpen and self.stage != "degrid":
            raise ValueError("--degrid-sharpen is for the degrid stage (--stage degrid)")
        if self.freeze_upsampler and not self.init:
            raise ValueError("freeze_upsampler keeps the upsampling stages of the --init weights; give --init")
        if self.spectrum_weight and self.patch < losses.SPECTRUM_TILE:
            t = losses.SPECTRUM_TILE
            raise ValueError(f"spectrum_weight compares {t}x{t} px tiles; patch {self.patch} is smaller")
        if self.shift_weight and self.patch < 2 * self.scale + 2 * losses.SHIFT_MARGIN + 1:
            raise ValueError(f"shift_weight compares patches {self.scale} px smaller than --patch, less a "
                             f"{losses.SHIFT_MARGIN} px margin; patch {self.patch} is too small")
        if self.patch % self.scale:
            raise ValueError(f"patch {self.patch} must be a multiple of the scale {self.scale}")
        self.degradation_config  # noqa: B018 - checks the realistic knobs now, not mid-run

    @property
    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(scale=self.scale, channels=self.channels, blocks=self.blocks,
                               batch_norm=self.batch_norm, bicubic_skip=self.bicubic_skip)

    @property
    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(base_channels=self.d_channels, spectral_norm=self.spectral_norm,
                                   batch_norm=self.batch_norm and not self.spectral_norm)

    @property
    def degradation_config(self) -> DegradationConfig | None:
        if self.degradation == "bicubic":
            return None
        return DegradationConfig(blur_prob=self.blur_prob, blur_sigma=(min(0.2, self.blur_sigma_max), self.blur_sigma_max),
                                 noise_prob=self.noise_prob, noise_sigma=(min(1.0, self.noise_max), self.noise_max),
                                 jpeg_prob=self.jpeg_prob, jpeg_quality=(self.jpeg_min, self.jpeg_max),
                                 second_order_prob=self.second_order)

    @classmethod
    def from_json(cls, path: Path) -> "TrainConfig":
        """Read a run's config.json; unknown keys are refused by name, as for every config file."""
        from srgan_core.flags import config_from_dict

        return config_from_dict(cls, json.loads(Path(path).read_text()))


def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    """Cosine decay from lr to lr_min: a function of the iteration alone, so resuming is exact."""
    t = min(iteration / max(cfg.iterations - 1, 1), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------- one iteration


@dataclass
class Models:
    """What one iteration touches. `g_step`/`d_step` are the DDP wrappers (the modules themselves
    in a single process); `ema` is the moving average of G's weights, when enabled."""

    g: nn.Module
    d: nn.Module | None
    opts: dict[str, torch.optim.Optimizer]
    g_step: nn.Module
    d_step: nn.Module | None
    ema: nn.Module | None = None
    vgg: nn.Module | None = None


def train_step(m: Models, lr: torch.Tensor, hr: torch.Tensor, cfg: TrainConfig, amp=nullcontext()) -> dict[str, float]:
    """Steps 3 and 4 of an SRGAN iteration on one batch (the SRResNet stage: step 4 alone)."""
    log = {}
    with amp:
        if cfg.shift_weight:
            # the shift loss's pairs go through G in the same pass as the batch (one forward per
            # backward, for DDP), padded by one LR pixel to its size; what the pad touches is cropped
            k = max(1, lr.shape[0] // 2)
            dy, dx = divmod(int(torch.randint(1, cfg.scale**2, ())), cfg.scale)
            pair = losses.shift_pair(hr[:k], cfg.scale, dy, dx)
            pad = (0, lr.shape[-1] - pair.shape[-1], 0, lr.shape[-2] - pair.shape[-2])
            out = m.g_step(torch.cat([lr, F.pad(pair, pad, mode="replicate")]))
            sr, sr_pair = out[: lr.shape[0]], out[lr.shape[0] :]
            n_y, n_x = hr.shape[-2] - cfg.scale, hr.shape[-1] - cfg.scale
            shift = losses.shift_loss(sr_pair[..., :n_y, :n_x].float(), dy, dx)
            log["shift_loss"] = shift.item()
        else:
            sr = m.g_step(lr)
    judged = grid_shift(cfg.scale, cfg.d_shift_each) if cfg.d_shift else (lambda x: x)  # what D sees of each patch

    # (1) Update D: real HR patches vs G(LR), with G fixed (its output detached). Real and fake
    #     go through D as one batch: one forward per backward, as DDP requires.
    if m.d is not None:
        m.d.requires_grad_(True)
        with amp:
            real, fake = m.d_step(judged(torch.cat([hr, sr.detach()]))).float().chunk(2)
            d_loss = losses.discriminator_loss(real, fake, cfg.gan_loss)
        m.opts["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        m.opts["d"].step()
        log["d_loss"] = d_loss.item()

    # (2) Update G: content loss + adv_weight (1e-3) x adversarial loss through the frozen D
    #     (+ grid_weight x the grid loss, gradient_weight x the gradient loss, spectrum_weight x the
    #     spectrum loss, shift_weight x the shift loss and fm_weight x D feature matching, when enabled).
    with amp:
        if cfg.stage == "degrid":  # the teacher saw the whole image; a patch's border cannot know what lay beyond
            b = DEGRID_MARGIN
            content = losses.content_loss(sr[..., b:-b, b:-b].float(), hr[..., b:-b, b:-b], cfg.content_loss, m.vgg)
        else:
            content = losses.content_loss(sr.float(), hr, cfg.content_loss, m.vgg)
        g_loss = content
        if cfg.grid_weight:
            grid_fn = losses.grid_loss if cfg.grid_kind == "cells" else losses.grid_peak_loss
            grid = grid_fn(sr.float(), hr, cfg.scale)
            g_loss = g_loss + cfg.grid_weight * grid
            log["grid_loss"] = grid.item()
        if cfg.gradient_weight:
            gradient = losses.gradient_loss(sr.float(), hr)
            g_loss = g_loss + cfg.gradient_weight * gradient
            log["gradient_loss"] = gradient.item()
        if cfg.shift_weight:
            g_loss = g_loss + cfg.shift_weight * shift
        if cfg.spectrum_weight:
            spectrum = losses.spectrum_loss(sr.float(), hr)
            g_loss = g_loss + cfg.spectrum_weight * spectrum
            log["spectrum_loss"] = spectrum.item()
        if m.d is not None:
            m.d.requires_grad_(False)
            if cfg.gan_loss == "relativistic" or cfg.fm_weight:
                logits, feats = m.d.forward_with_features(judged(torch.cat([hr, sr])))
                real, fake = logits.float().chunk(2)
                real = real if cfg.gan_loss == "relativistic" else None
            else:
                real, fake = None, m.d(judged(sr)).float()
            adversarial = losses.adversarial_loss(fake, real, cfg.gan_loss)
            g_loss = g_loss + cfg.adv_weight * adversarial
            log["adv_loss"] = adversarial.item()
            if cfg.fm_weight:
                pairs = [f.float().chunk(2) for f in feats]
                fm = losses.feature_matching_loss([f for _, f in pairs], [r for r, _ in pairs])
                g_loss = g_loss + cfg.fm_weight * fm
                log["fm_loss"] = fm.item()
    m.opts["g"].zero_grad(set_to_none=True)
    g_loss.backward()
    m.opts["g"].step()
    if m.ema is not None:
        update_ema(m.ema, m.g, cfg.ema)
    log["content_loss"], log["g_loss"] = content.item(), g_loss.item()
    return log


def grid_shift(scale: int, each: bool = False):
    """A crop at a random offset (0..scale-1 px in y and x): the same for every patch of a step, or
    (`each`) drawn afresh for every patch at every call.

    D's stride-2 convolutions send back gradients with a checkerboard of their own; at a fixed
    alignment it adds up, step after step, on the same sub-pixel phases of G's output and becomes
    the grid pattern of many SRGANs. A fresh offset each step spreads it over all phases, across
    steps; a fresh offset for each patch spreads it within every step as well.
    """
    if each:
        def crop(x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2] - scale, x.shape[-1] - scale
            offsets = torch.randint(0, scale, (x.shape[0], 2)).tolist()
            return torch.stack([p[:, dy : dy + h, dx : dx + w] for p, (dy, dx) in zip(x, offsets)]).contiguous(
                memory_format=torch.channels_last)
        return crop
    dy, dx = (int(v) for v in torch.randint(0, scale, (2,)))
    return lambda x: x[..., dy : x.shape[-2] - scale + dy, dx : x.shape[-1] - scale + dx]


class WeightAverage:
    """An equal-weight mean of snapshots of a model's state (SWA, Izmailov et al. 2018).

    A GAN's generator never settles: from one checkpoint to the next its texture, and the faint
    grid that comes with it, wander. The mean of snapshots over the last part of a run keeps what
    they share and cancels what wanders. Sums are kept in float64 in snapshot order, so a resumed
    run, or the same snapshots averaged by hand, give the same bits.
    """

    def __init__(self, sums: dict[str, torch.Tensor] | None = None) -> None:
        self.sums = dict(sums or {})

    @property
    def count(self) -> int:
        return int(self.sums.get("_count", torch.tensor(0)))

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            v = v.detach().cpu()
            if v.is_floating_point():
                self.sums[k] = self.sums[k] + v.double() if k in self.sums else v.double().clone()
            else:
                self.sums[k] = v.clone()  # e.g. BatchNorm's batch counter: the last one
        self.sums["_count"] = torch.tensor(self.count + 1)

    def mean_state(self, like: nn.Module) -> dict[str, torch.Tensor]:
        n, ref = self.count, like.state_dict()
        return {k: (self.sums[k] / n).to(ref[k].dtype) if ref[k].is_floating_point() else self.sums[k].to(ref[k].dtype)
                for k in ref}


@torch.no_grad()
def update_ema(ema: nn.Module, g: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * g for weights; BatchNorm statistics are copied."""
    for e, p in zip(ema.parameters(), g.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), g.buffers()):
        e.copy_(b)


# ----------------------------------------------------------------------------- set-up


def build_models(cfg: TrainConfig, env: Dist, resume: bool) -> Models:
    """G (from --init, or fresh with optional ICNR), D for the SRGAN stage, optimizers, EMA, DDP."""
    g = Generator(cfg.generator_config)
    if cfg.icnr:
        for stage in g.upsample:
            icnr_(stage.conv)
    if cfg.init and not resume:
        from srgan_core.weights import load_generator

        init = load_generator(cfg.init).model
        if init.config != g.config:
            raise ValueError(f"--init weights have config {init.config}, this run needs {g.config}")
        g.load_state_dict(init.state_dict())
    # channels_last is faster for these convs on both CPU (oneDNN) and GPU (tensor cores)
    g = g.to(env.device, memory_format=torch.channels_last)
    d = Discriminator(cfg.discriminator_config).to(env.device, memory_format=torch.channels_last) if cfg.stage == "srgan" else None
    if cfg.freeze_upsampler:
        g.upsample.requires_grad_(False)
        g.tail.requires_grad_(False)
    trainable = [p for p in g.parameters() if p.requires_grad]
    opts = {"g": torch.optim.Adam(trainable, lr=cfg.lr, betas=(cfg.beta1, 0.999))}
    if d is not None:
        opts["d"] = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    ema = copy.deepcopy(g).requires_grad_(False) if cfg.ema else None
    vgg = losses.VGGFeatures(cfg.content_loss).to(env.device) if cfg.content_loss.startswith("vgg") else None
    if env.world > 1 and env.device.type == "cuda":
        # BatchNorm statistics over the global batch, as one process would see them. torch's
        # SyncBatchNorm runs on GPUs only: CPU (gloo) runs keep per-process statistics, so for
        # them exact single-process equivalence holds with --no-batch-norm.
        g = nn.SyncBatchNorm.convert_sync_batchnorm(g)
        d = nn.SyncBatchNorm.convert_sync_batchnorm(d) if d is not None else None
    g_step = DistributedDataParallel(g) if env.world > 1 else g
    d_step = DistributedDataParallel(d) if env.world > 1 and d is not None else d
    return Models(g, d, opts, g_step, d_step, ema, vgg)


def make_batches(cfg: TrainConfig, data: PatchDataset, env: Dist):
    """batch(iteration) -> (LR, HR) on the device: a function of the iteration alone.

    The training images are one endless stream of epochs, each a fixed permutation seeded by
    (seed, epoch), cut into global batches; a batch may span two epochs, so folders with fewer
    images than the batch work too. Rank r takes every world-th sample, as DistributedSampler would.
    """
    n, orders = len(data), {}

    def order(epoch: int) -> torch.Tensor:
        if epoch not in orders:
            if len(orders) > 4:  # a batch touches at most a few epochs: keep the cache small
                orders.clear()
            orders[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        return orders[epoch]

    def batch(iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        ks = range(iteration * cfg.batch_size, (iteration + 1) * cfg.batch_size)[env.rank :: env.world]
        pairs = [data.item(k // n, int(order(k // n)[k % n])) for k in ks]
        lr, hr = (torch.stack(t).to(env.device).contiguous(memory_format=torch.channels_last) for t in zip(*pairs))
        return lr, hr

    return batch


# ----------------------------------------------------------------------------- validation


@torch.inference_mode()
def validate(g: nn.Module, sets: dict[str, list], scale: int, device: torch.device, sample_dir: Path | None, tag: str) -> dict:
    """Mean PSNR/SSIM (Y channel, border `scale`) over each validation set, whole images."""
    was_training = g.training
    g.eval()
    results = {}
    for set_name, pairs in sets.items():
        p, s = [], []
        for i, (name, lr, hr) in enumerate(pairs):
            sr = to_image(g(to_tensor(lr).unsqueeze(0).to(device))[0])
            p.append(psnr(sr, hr, scale))
            s.append(ssim(sr, hr, scale))
            if sample_dir is not None and i == 0:
                sample_dir.mkdir(parents=True, exist_ok=True)
                sr.save(sample_dir / f"{tag}_{set_name}_{name}.png")
        results[set_name] = {"psnr": sum(p) / len(p), "ssim": sum(s) / len(s)}
    g.train(was_training)
    return results


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


# ----------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run (or continue) a training run; returns the last validation metrics."""
    from tqdm import tqdm

    env = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.out)
    ckpt = latest_checkpoint(run) if resume else None
    if resume and ckpt is None:
        raise FileNotFoundError(f"{run} has no complete checkpoint to resume from; start it again without --resume")
    if ckpt is not None and ckpt.iteration >= cfg.iterations and (run / "generator.json").exists():
        print(f"{run} finished at iteration {ckpt.iteration}; nothing to do", file=sys.stderr)
        return json.loads((run / "generator.json").read_text()).get("metrics", {})
    if env.main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    m = build_models(cfg, env, resume)
    start = load_checkpoint(ckpt, m.g, m.d, m.ema, m.opts) if ckpt is not None else 0
    average = WeightAverage(load_average(ckpt) if ckpt is not None else None) if cfg.average_from else None
    if cfg.stage == "degrid":
        from srgan_core.upscale import Upscaler

        teacher = Upscaler(cfg.teacher or cfg.init)
        with tqdm(desc="teacher targets", unit="image", disable=not env.main, file=sys.stderr) as targets_bar:
            def shown(done: int, total: int) -> None:
                targets_bar.total = total
                targets_bar.update(done - targets_bar.n)
            data = TeacherPatchDataset(cfg.train_data, teacher.upscale, cfg.scale, cfg.patch, cfg.seed,
                                       sigma=cfg.degrid_sigma, gain=cfg.degrid_gain,
                                       sharpen=cfg.degrid_sharpen, progress=shown)
        del teacher
    else:
        data = PatchDataset(cfg.train_data, cfg.scale, cfg.patch, cfg.seed, degradation=cfg.degradation_config,
                            texture_tries=cfg.texture_tries)
    if cfg.batch_size % env.world:
        raise ValueError(f"batch size {cfg.batch_size} must divide evenly over {env.world} processes")
    batch = make_batches(cfg, data, env)
    val_sets = {Path(f).name: load_validation(f, cfg.scale, cfg.val_degradation)[: cfg.val_max_images or None] for f in cfg.val_data} if env.main else {}
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if env.device.type == "cuda" else nullcontext()
    shipped = m.ema if m.ema is not None else m.g  # what is validated and saved

    metrics_file = (run / "metrics.jsonl").open("a") if env.main else None
    t0, last_val, done = time.time(), {}, start
    bar = tqdm(total=cfg.iterations, initial=start, disable=not env.main, desc=cfg.stage, dynamic_ncols=True, file=sys.stderr)
    m.g.train()
    with StopRequest() as stop:
        for it in range(start, cfg.iterations):
            for opt in m.opts.values():
                for group in opt.param_groups:
                    group["lr"] = learning_rate(cfg, it)
            lr, hr = batch(it)  # steps 1-2: HR patches and their LR versions
            log = {"iteration": it + 1, "lr": learning_rate(cfg, it), **train_step(m, lr, hr, cfg, amp)}
            done = it + 1
            bar.update(1)
            if average is not None and done >= cfg.average_from and done % cfg.average_every == 0:
                average.add(shipped)
            if env.main and (done % cfg.log_every == 0 or done == cfg.iterations):
                log["elapsed_s"] = round(time.time() - t0, 2)
                metrics_file.write(json.dumps(log) + "\n")
                metrics_file.flush()
                bar.set_postfix({k: f"{v:.4g}" for k, v in log.items() if k.endswith("loss")})
            if env.main and val_sets and (done % cfg.val_every == 0 or done == cfg.iterations):
                last_val = validate(shipped, val_sets, cfg.scale, env.device, run / "samples", f"{done:07d}")
                metrics_file.write(json.dumps({"iteration": done, "validation": last_val}) + "\n")
                metrics_file.flush()
                bar.write(f"[{done}] " + "  ".join(f"{k}: {v['psnr']:.2f} dB / {v['ssim']:.4f}" for k, v in last_val.items()))
            out_of_time = bool(cfg.max_minutes) and time.time() - t0 > cfg.max_minutes * 60
            halt = done < cfg.iterations and should_stop(out_of_time or stop.signal is not None, env)
            if env.main and (halt or done % cfg.ckpt_every == 0 or done == cfg.iterations):
                save_checkpoint(run, done, m.g, m.d, m.ema, m.opts, average.sums if average is not None else None)
            if halt:
                why = "time limit reached" if out_of_time else "stopped by a signal" if stop.signal else "another process stopped"
                print(f"{why} at iteration {done} (rank {env.rank}); continue with --resume {run}", file=sys.stderr)
                break
    bar.close()
    if metrics_file:
        metrics_file.close()
    if env.main and done == cfg.iterations:
        if average is not None and average.count:
            shipped = copy.deepcopy(shipped)
            shipped.load_state_dict(average.mean_state(shipped))
            if val_sets:
                last_val = validate(shipped, val_sets, cfg.scale, env.device, run / "samples", f"{done:07d}_average")
                print("weight average: " + "  ".join(f"{k}: {v['psnr']:.2f} dB" for k, v in last_val.items()), file=sys.stderr)
        save_final(cfg, run, shipped, env, last_val)
    if env.world > 1:
        # Tear the group down together, once rank 0 has written its files, and free the DDP
        # wrappers' hold on it first: a gloo group whose peer is still busy, or one left to be
        # freed at interpreter exit, can end the process with SIGABRT after a finished run.
        dist.barrier()
        del m
        gc.collect()
        dist.destroy_process_group()
    return last_val


def save_final(cfg: TrainConfig, run: Path, g: nn.Module, env: Dist, metrics: dict) -> None:
    """The run's generator as a weights file whose sidecar says how to make it again."""
    from srgan_core.flags import config_to_flags
    from srgan_core.weights import save_generator

    # The recipe as others can run it: data folders as DATA/NAME, wherever they live here.
    recipe = replace(cfg, train_data=[f"DATA/{Path(p).name}" for p in cfg.train_data],
                     val_data=[f"DATA/{Path(p).name}" for p in cfg.val_data], out=f"runs/{run.name}")
    final = Generator(cfg.generator_config)
    final.load_state_dict({k: v.float().cpu() for k, v in g.state_dict().items()})
    description = {"srresnet": "SRResNet trained with a pixel loss",
                   "degrid": f"{Path(cfg.teacher or cfg.init).name} taught its own output without its grid pattern",
                   }.get(cfg.stage, f"SRGAN: {cfg.content_loss} content + {cfg.adv_weight:g} x {cfg.gan_loss} adversarial")
    if cfg.degradation == "realistic":
        description += ", on realistic degradations (blur, noise, JPEG): for camera and web photos"
    training = {
        "stage": cfg.stage,
        "data": [Path(p).name for p in cfg.train_data],
        "validation": [Path(p).name for p in cfg.val_data],
        "degradation": cfg.degradation if cfg.degradation == "bicubic" else asdict(cfg.degradation_config),
        "iterations": cfg.iterations,
        "batch_size": cfg.batch_size,
        "patch": cfg.patch,
        "content_loss": cfg.content_loss,
        "config": asdict(recipe),
        "wall_time_s": round(sum_wall_time(run), 1),
        "hardware": f"{hardware()} x {env.world} process(es)",
        "command": "python -m srgan_core train " + config_to_flags(recipe),
    }
    if cfg.stage == "degrid":  # what it learnt from: the teacher's own record, so the chain can be re-run
        from srgan_core.weights import load_generator

        taught_by = load_generator(cfg.teacher or cfg.init).meta.get("training") or {}
        training["teacher"] = {k: taught_by[k] for k in ("stage", "iterations", "wall_time_s", "command", "teacher")
                               if k in taught_by}
    save_generator(final, run / "generator", name=run.name, description=description, training=training, metrics=metrics)


def sum_wall_time(run: Path) -> float:
    """Wall time over all sessions of a run: the largest elapsed_s of each resumed segment, added."""
    total, last = 0.0, 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        elapsed = json.loads(line).get("elapsed_s")
        if elapsed is None:
            continue
        if elapsed < last:  # a new segment started
            total += last
        last = elapsed
    return total + last
