"""Score an upscaler on a folder of HR images, the way SR papers do: mod-crop, bicubic /scale,
upscale back, PSNR and SSIM on Y with a `scale`-pixel border ignored."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from srgan_core.data import load_validation
from srgan_core.metrics import gradient_magnitude, psnr, ssim

UpscaleFn = Callable[[Image.Image], Image.Image]


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    gradient: float  # mean gradient magnitude of the output, relative to the HR image's


@dataclass
class Evaluation:
    method: str
    data: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)

    @property
    def psnr(self) -> float:
        return sum(i.psnr for i in self.images) / len(self.images)

    @property
    def ssim(self) -> float:
        return sum(i.ssim for i in self.images) / len(self.images)

    @property
    def gradient(self) -> float:
        return sum(i.gradient for i in self.images) / len(self.images)

    def to_dict(self) -> dict:
        return {"method": self.method, "data": self.data, "scale": self.scale, "psnr": self.psnr,
                "ssim": self.ssim, "gradient_ratio": self.gradient, "images": [asdict(i) for i in self.images]}


def bicubic_upscale(scale: int) -> UpscaleFn:
    return lambda lr: lr.resize((lr.width * scale, lr.height * scale), Image.Resampling.BICUBIC)


def evaluate(folder: str | Path, upscale: UpscaleFn, scale: int = 4, method: str = "",
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    pairs = load_validation(folder, scale)
    result = Evaluation(method=method, data=Path(folder).name, scale=scale)
    for i, (name, lr, hr) in enumerate(pairs):
        sr = upscale(lr).convert("RGB")
        if sr.size != hr.size:
            raise ValueError(f"{name}: upscaler returned {sr.size}, expected {hr.size}")
        result.images.append(ImageScore(name, psnr(sr, hr, scale), ssim(sr, hr, scale),
                                        gradient_magnitude(sr) / max(gradient_magnitude(hr), 1e-9)))
        if progress:
            progress(i + 1, len(pairs))
    return result
