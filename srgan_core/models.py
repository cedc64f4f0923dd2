"""SRResNet generator and VGG-style discriminator from Ledig et al., "Photo-Realistic Single
Image Super-Resolution Using a Generative Adversarial Network" (CVPR 2017), figure 4.

Both networks are built from a small config dataclass. The same dataclass is written into the
JSON sidecar of every weights file, so a file alone is enough to rebuild its network.

Images travel as float tensors in [0, 1], NCHW. The generator has no output activation; callers
clamp at inference time (training on an unclamped output keeps gradients alive near 0 and 1).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GeneratorConfig:
    scale: int = 4  # 2, 4 or 8: one PixelShuffle(2) stage per factor of two
    channels: int = 64  # feature maps in the residual trunk
    blocks: int = 16  # residual blocks B
    in_channels: int = 3
    batch_norm: bool = True  # the paper's BN; False drops it (as EDSR/ESRGAN later did)
    # Add bicubic(LR) to the output so the network learns only what bicubic misses (VDSR's global
    # residual). Not in the paper; it makes short CPU training runs converge much faster.
    bicubic_skip: bool = False

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {self.scale}")
        if self.channels < 1 or self.blocks < 0 or self.in_channels < 1:
            raise ValueError(f"invalid generator config: {self}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DiscriminatorConfig:
    in_channels: int = 3
    base_channels: int = 64  # the paper's 64 -> 512; smaller values make a cheaper critic
    dense: int = 1024
    batch_norm: bool = True
    # Spectral normalisation (Miyato et al., 2018) bounds each layer's Lipschitz constant, so the
    # critic cannot become sharp enough to reward tiny periodic patterns; used without BN.
    spectral_norm: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def norm(channels: int, enabled: bool = True) -> nn.Module:
    return nn.BatchNorm2d(channels) if enabled else nn.Identity()


class ResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the identity skip."""

    def __init__(self, channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = norm(channels, batch_norm)
        self.act = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = norm(channels, batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class UpsampleStage(nn.Module):
    """conv3x3 to 4C channels, PixelShuffle(2) back to C channels at twice the size, PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class Generator(nn.Module):
    """SRResNet: the generator of SRGAN, and on its own the MSE-trained SRResNet."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        c = config.channels
        self.head = nn.Sequential(nn.Conv2d(config.in_channels, c, 9, padding=4), nn.PReLU(c))
        self.body = nn.Sequential(*[ResidualBlock(c, config.batch_norm) for _ in range(config.blocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), norm(c, config.batch_norm))
        self.upsample = nn.Sequential(*[UpsampleStage(c) for _ in range(int(math.log2(config.scale)))])
        self.tail = nn.Conv2d(c, config.in_channels, 9, padding=4)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.head(lr)
        x = x + self.body_tail(self.body(x))  # the long skip over all residual blocks
        sr = self.tail(self.upsample(x))
        if self.config.bicubic_skip:
            sr = sr + F.interpolate(lr, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return sr


class Discriminator(nn.Module):
    """VGG-style critic: 8 convs (64 -> 512 for base 64), stride 2 on every second one, BN after
    all but the first, LeakyReLU(0.2), then dense 1024 and dense 1 (a logit: real > 0).

    The paper feeds fixed 96x96 crops; adaptive average pooling to 6x6 before the dense layers
    lets the same weights judge any input of at least 32 px.
    """

    min_size = 32

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        b = config.base_channels
        widths = [b, b, 2 * b, 2 * b, 4 * b, 4 * b, 8 * b, 8 * b]
        sn = nn.utils.parametrizations.spectral_norm if config.spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        in_ch = config.in_channels
        for i, out_ch in enumerate(widths):
            stride = 2 if i % 2 == 1 else 1
            layers.append(sn(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)))
            if i > 0 and config.batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            sn(nn.Linear(in_ch * 36, config.dense)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Linear(config.dense, 1)),
        )

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(hr)[0]

    def forward_with_features(self, hr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and the activation after each of the 8 convs (for feature matching)."""
        if min(hr.shape[-2:]) < self.min_size:
            raise ValueError(f"discriminator needs inputs of at least {self.min_size} px, got {tuple(hr.shape[-2:])}")
        x, feats = hr, []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        return self.classifier(self.pool(x)).squeeze(1), feats


def icnr_(conv: nn.Conv2d, upscale: int = 2) -> None:
    """ICNR initialisation (Aitken et al., 2017) of a conv that feeds PixelShuffle(upscale).

    With plain random init the upscale² sub-pixel filters of each output channel differ, so the
    shuffled output starts with a checkerboard locked to the pixel grid, which training (and a
    discriminator) may keep. ICNR gives all sub-pixels the same random filter: at init the stage
    equals a conv followed by nearest-neighbour upsampling, free of that pattern.
    """
    out_ch, in_ch, kh, kw = conv.weight.shape
    base = torch.empty(out_ch // upscale**2, in_ch, kh, kw)
    nn.init.kaiming_normal_(base)
    with torch.no_grad():
        conv.weight.copy_(base.repeat_interleave(upscale**2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias.view(-1, upscale**2)[:, :1].expand(-1, upscale**2).reshape(-1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def generator_macs_per_lr_pixel(config: GeneratorConfig) -> int:
    """Multiply-adds per *input* pixel, counted layer by layer. Used for GFLOP/s figures."""
    c, k = config.channels, config.in_channels
    macs = 81 * k * c  # head 9x9
    macs += config.blocks * 2 * 9 * c * c  # residual blocks
    macs += 9 * c * c  # body tail
    area = 1
    for _ in range(int(math.log2(config.scale))):
        macs += area * 9 * c * 4 * c  # conv before each shuffle, at the current size
        area *= 4
    macs += area * 81 * c * k  # 9x9 tail at the output size
    return macs
