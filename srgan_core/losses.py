"""The SRGAN losses: content loss, adversarial loss, and their sum, the perceptual loss.

    l_SR = l_content + 1e-3 * l_adv                                   (Ledig et al., eq. 3)

Content loss is either MSE on pixels (SRResNet, and the paper's "SRGAN-MSE"), L1 on pixels
(ESRGAN's choice: it punishes small errors harder than MSE and so blurs less), or MSE on VGG19
feature maps, phi_2,2 or phi_5,4 (after the ReLU), rescaled by 1/12.75 as in the paper so the
VGG loss lands on the same order of magnitude as the pixel loss.

The adversarial term is the paper's (D tells real from fake: "standard") or ESRGAN's relativistic
average form (D tells whether a real patch looks *more* real than the average fake, and the
generator gets gradients from the real patches too), which trains more steadily at small scale.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ADVERSARIAL_WEIGHT = 1e-3
CONTENT_LOSSES = ("mse", "l1", "vgg22", "vgg54")
GAN_LOSSES = ("standard", "relativistic")
SHIFT_MARGIN = 8  # HR px at the borders the shift loss leaves out: there its two crops saw different surroundings
SPECTRUM_TILE = 16  # px a side of the spectrum loss's tiles; training patches must be at least this big
# index one past the ReLU that ends each named block in torchvision's vgg19().features
VGG_CUTS = {"vgg22": 9, "vgg54": 36}
VGG_SCALE = 1.0 / 12.75
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """Frozen VGG19 truncated after phi_i,j; takes images in [0, 1] and normalises them itself."""

    def __init__(self, layer: str = "vgg54", vgg: nn.Module | None = None) -> None:
        super().__init__()
        if layer not in VGG_CUTS:
            raise ValueError(f"unknown VGG layer {layer!r}; choose one of {sorted(VGG_CUTS)}")
        vgg = vgg if vgg is not None else load_vgg19()
        self.features = nn.Sequential(*list(vgg.features.children())[: VGG_CUTS[layer]]).eval()
        self.features.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always frozen: BN-free VGG, but keep it explicit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)


def load_vgg19() -> nn.Module:
    """torchvision's ImageNet VGG19, from its usual cache or download; fail fast when offline.

    torchvision fetches the file on first use and keeps it in the torch hub cache. Where the
    network is closed that fetch would stall or fail deep inside training, so we look for the
    cached file first and, when it is missing and cannot be fetched, say exactly what to do.
    """
    from torchvision.models import VGG19_Weights, vgg19

    weights = VGG19_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return vgg19(weights=weights)
    except Exception as exc:  # noqa: BLE001 - any download failure has the same remedy
        raise RuntimeError(
            f"VGG19 ImageNet weights are needed for the VGG content loss but could not be loaded ({exc}). "
            f"Download {weights.url} on a machine with network access and place it at {cached} "
            "(or set TORCH_HOME), or use --content-loss mse."
        ) from None


def content_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "mse", vgg: VGGFeatures | None = None) -> torch.Tensor:
    """Pixel MSE or L1, or MSE on rescaled VGG feature maps (`vgg` must then be given)."""
    if kind == "mse":
        return F.mse_loss(sr, hr)
    if kind == "l1":
        return F.l1_loss(sr, hr)
    if vgg is None:
        raise ValueError(f"content loss {kind!r} needs the VGG feature extractor")
    return F.mse_loss(vgg(sr) * VGG_SCALE, vgg(hr).detach() * VGG_SCALE)


def grid_loss(sr: torch.Tensor, hr: torch.Tensor, scale: int, cell: int = 6) -> torch.Tensor:
    """How much the error sr - hr repeats with the period of the output grid (`scale` px).

    PixelShuffle gives each of the scale x scale sub-pixel positions its own filters, so any
    difference between them shows as a faint pattern locked to the grid: peaks at multiples of
    1/scale cycles per pixel in the spectrum, and the dot/checkerboard texture of many SRGANs.
    The error is split into its scale² sub-pixel phases (pixel_unshuffle), the part shared by all
    phases is removed, and what is left is averaged over cells of `cell` x `cell` LR pixels: real
    detail averages out there, a grid-locked pattern does not. The loss is its mean square.
    """
    b, c, h, w = sr.shape
    h, w = h - h % (scale * cell), w - w % (scale * cell)
    phases = F.pixel_unshuffle((sr - hr)[..., :h, :w], scale).view(b, c, scale * scale, h // scale, w // scale)
    phases = phases - phases.mean(dim=2, keepdim=True)
    return F.avg_pool2d(phases.flatten(1, 2), cell).pow(2).mean()


def _luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an RGB batch in [0, 1], the channel every score in `metrics` is taken on."""
    return (0.257 * x[:, 0] + 0.504 * x[:, 1] + 0.098 * x[:, 2]).unsqueeze(1)


def grid_peak_loss(sr: torch.Tensor, hr: torch.Tensor, scale: int, sigma: float = 2.0) -> torch.Tensor:
    """How much more power G's output has at the output grid's frequencies than its HR patch has.

    The grid measure (`metrics.periodicity`) looks for spikes at multiples of 1/scale cycle per
    pixel in the spectrum of the luma's fine texture. Over a patch, the power at those frequencies
    (bar 0) is, by Parseval, proportional to the variance over the scale² sub-pixel phases of the
    Hann-windowed texture summed per phase. That is computed here for G's output and for the HR,
    and only the excess is penalised, in units of the HR's texture energy (for noise-like texture
    the phase power is about that energy, so 1 = "one photo's worth of grid"). Unlike `grid_loss`
    it ignores errors that are not periodic (so it is not a second content loss), and unlike a
    peak-over-neighbours ratio it cannot be lowered by adding noise.
    """
    def texture(x: torch.Tensor) -> torch.Tensor:
        y = _luma(x)
        r = int(3 * sigma + 0.5)
        k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma**2))
        k = k / k.sum()
        blur = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        blur = F.conv2d(F.pad(blur, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        return y - blur

    b, _, h, w = sr.shape
    h, w = h - h % scale, w - w % scale
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=sr.dtype, device=sr.device),
                         torch.hann_window(w, periodic=False, dtype=sr.dtype, device=sr.device))
    t_sr, t_hr = texture(sr)[..., :h, :w] * window, texture(hr)[..., :h, :w] * window
    phase_power = lambda t: F.pixel_unshuffle(t, scale).sum(dim=(2, 3)).var(dim=1, unbiased=False) * scale**2
    # floor: the energy of a texture of one grey level, so a flat patch's tiny energy cannot blow the ratio up
    floor = h * w * (3 / 8) ** 2 * (1 / 255) ** 2  # (3/8)^2: the mean square of a 2-D Hann window
    energy = t_hr.pow(2).sum(dim=(1, 2, 3)).detach() + floor
    return (F.relu(phase_power(t_sr) - phase_power(t_hr).detach()) / energy).mean()


def gradient_loss(sr: torch.Tensor, hr: torch.Tensor, pool: int = 8) -> torch.Tensor:
    """L1 between the local edge strength of G's output and of its HR patch: the Sobel gradient
    magnitude of the luma, averaged over `pool` x `pool` px cells.

    A gradient-space loss after SPSR (Ma et al., 2020), made blind to where exactly the edges of
    a texture lie. A pixel loss punishes texture drawn a pixel off as hard as no texture at all,
    so where the LR leaves a texture's phase open its optimum is the blurred mean: SRResNet's
    look. The mean magnitude over a cell is about the same wherever the texture's edges fall, so
    this term asks for as much texture as the photo has, where the photo has it, and a grid or
    noise in a flat cell still costs. pool=1 is SPSR's per-pixel form.
    """
    def strength(x: torch.Tensor) -> torch.Tensor:
        y = _luma(x)
        k = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=x.dtype, device=x.device)
        g = F.conv2d(y, torch.stack([k, k.t()]).unsqueeze(1))
        magnitude = (g.pow(2).sum(dim=1, keepdim=True) + 1e-6).sqrt()  # eps: finite gradients where flat
        return F.avg_pool2d(magnitude, pool) if pool > 1 else magnitude

    return F.l1_loss(strength(sr), strength(hr).detach())


def feature_matching_loss(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between D's activations on each generated patch and on its own HR patch, over D's layers.

    pix2pixHD's feature matching, used here as a perceptual loss learnt on the spot: with no
    ImageNet VGG19 to hand, D's features are the only ones that know what texture looks like. It
    asks for the HR's texture where the HR has it (paired, unlike the adversarial term, which is
    content with any texture), so detail comes at less cost in PSNR.
    """
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adversarial_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None,
                     kind: str = "standard") -> torch.Tensor:
    """The generator's adversarial loss.

    standard: -log D(G(LR)), the non-saturating form: G wants the critic to call its output real.
    relativistic: G wants fakes to look more real than the average real patch, and reals less
    real than the average fake (`real_logits` come from the same, frozen D).
    """
    if kind == "standard":
        return _bce(fake_logits, 1.0)
    real_logits = real_logits.detach()
    return (_bce(real_logits - fake_logits.mean(), 0.0) + _bce(fake_logits - real_logits.mean(), 1.0)) / 2


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "standard") -> torch.Tensor:
    """standard: BCE with real HR patches labelled 1, generated ones 0.
    relativistic: the same labels on each logit minus the other kind's mean logit."""
    if kind == "standard":
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
    return (_bce(real_logits - fake_logits.mean(), 1.0) + _bce(fake_logits - real_logits.mean(), 0.0)) / 2


def spectrum_loss(sr: torch.Tensor, hr: torch.Tensor, tile: int = SPECTRUM_TILE) -> torch.Tensor:
    """L1 between the local amplitude spectra of G's output and of its HR patch: the luma cut into
    Hann-windowed `tile` x `tile` px tiles (half overlapping), the magnitude of each tile's 2-D
    Fourier transform, mean brightness left out.

    Like `gradient_loss` it does not care where within a tile a texture's edges fall (the
    magnitude drops the phase), so it asks for texture where the photo has it without the blur a
    pixel loss settles on. Unlike it, it says *which* texture: how much energy at each frequency
    and orientation. A cell's edge strength can be met by any pattern G finds easiest, a mesh of
    one period included (and that is what a strong gradient loss paints: a regular cross-hatch
    that NIQE calls unnatural); a spectrum that has the photo's spread over frequencies cannot be
    met by one. It does not stop a grid: a tile's magnitude cannot tell a grid-locked pattern from
    the photo's own energy at the grid's frequencies (its weight raised the grid in the README's
    fifth round), so pair it with `grid_peak_loss`.
    The amplitudes are orthonormal (Parseval: their mean square is the windowed tile's), so the
    loss is in luma units, of the order of the gradient loss.
    """
    def amplitudes(x: torch.Tensor) -> torch.Tensor:
        y = _luma(x)
        tiles = F.unfold(y, tile, stride=tile // 2).transpose(1, 2).reshape(-1, tile, tile)
        window = torch.hann_window(tile, periodic=True, dtype=x.dtype, device=x.device)
        window = torch.outer(window, window)
        tiles = (tiles - tiles.mean(dim=(1, 2), keepdim=True)) * window
        return torch.fft.rfft2(tiles, norm="ortho").abs()

    return F.l1_loss(amplitudes(sr), amplitudes(hr).detach())


def shift_pair(hr: torch.Tensor, scale: int, dy: int, dx: int) -> torch.Tensor:
    """Two LR versions of each HR patch: of its top-left crop, and of the crop `dy`, `dx` HR px
    further on; both `scale` px smaller than the patch, made by antialiased bicubic (Pillow's kernel).

    Returned as one batch (first the unshifted, then the shifted ones), so G sees them in one pass.
    """
    n_y, n_x = hr.shape[-2] - scale, hr.shape[-1] - scale
    crops = torch.cat([hr[..., :n_y, :n_x], hr[..., dy : dy + n_y, dx : dx + n_x]])
    lr = F.interpolate(crops, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return lr.clamp(0, 1)


def shift_loss(sr_pair: torch.Tensor, dy: int, dx: int, margin: int = SHIFT_MARGIN) -> torch.Tensor:
    """L1 between G's output for a patch moved by `dy`, `dx` HR px and its output for the patch, moved.

    An upscaler that knows the photo draws the same detail wherever the photo's content falls on
    the LR pixel grid; a grid pattern is drawn at the same place in every 4 x 4 output block,
    whatever the content, and so it is exactly the part of G's output that does not move with a
    sub-pixel shift. Unlike the grid losses this needs no estimate of a faint spectral peak from a
    small patch, where the photo's own texture drowns it: a pattern that stays put while the
    texture moves costs at once. Texture G invents is free as long as it moves with the content.
    `sr_pair` is G's output for `shift_pair`'s batch; `margin` HR px at the borders, where the two
    crops saw different surroundings, are left out.
    """
    a, b = sr_pair.chunk(2)
    h, w = a.shape[-2] - dy - 2 * margin, a.shape[-1] - dx - 2 * margin
    if min(h, w) < 1:
        raise ValueError(f"patch of {tuple(a.shape[-2:])} px too small for a shift of {dy}, {dx} and a margin of {margin}")
    moved = a[..., dy + margin : dy + margin + h, dx + margin : dx + margin + w]
    return F.l1_loss(b[..., margin : margin + h, margin : margin + w], moved)
