"""Training and validation data for super-resolution: image folders -> (LR, HR) pairs.

The clean degradation is Pillow's bicubic resize with antialiasing; `degrade.py` holds it and the
realistic one (blur, noise, JPEG). The same functions make the training inputs, the evaluation
inputs and the app's "Simulate" mode, so a model is judged on the kind of input it was trained on.
"""
from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srgan_core import degrade
from srgan_core.degrade import DegradationConfig
from srgan_core.degrid import DEGRID_SIGMA, remove_grid, sharpen as sharpen_detail
from srgan_core.metrics import rgb_to_y


def modcrop(image: Image.Image, scale: int) -> Image.Image:
    """Crop the bottom/right edge so both sides are multiples of `scale` (as SR papers do)."""
    w, h = image.size
    return image.crop((0, 0, w - w % scale, h - h % scale))


def downscale(image: Image.Image, scale: int) -> Image.Image:
    """The degradation model: bicubic with antialiasing, sides divided by `scale`."""
    w, h = image.size
    return image.resize((max(1, w // scale), max(1, h // scale)), Image.Resampling.BICUBIC)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 HWC RGB -> float CHW in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


def to_image(tensor: torch.Tensor) -> Image.Image:
    """float CHW (any range) -> uint8 RGB, clamped and rounded."""
    array = tensor.detach().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def list_images(folders: list[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        paths += sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images in {', '.join(map(str, folders))}")
    return paths


def _read_rgb(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped, not fatal
        warnings.warn(f"skipping unreadable image {path}: {exc}", stacklevel=3)
        return None


MAX_TEXTURE_TRIES = 64  # candidate crops per patch; beyond this the choice is the same, only slower


def edge_energy(rgb: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels of the luma: how much texture a crop holds.

    What `--texture-tries` ranks candidate crops by. Cheap on purpose (it runs for every candidate
    crop), and on the BT.601 luma the scores are taken on (`metrics.rgb_to_y`).
    """
    y = rgb_to_y(rgb)
    return float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean())


class PatchDataset:
    """Random (LR, HR) training patches from image folders, held in memory.

    Item `i` of epoch `e` is a deterministic function of (seed, e, i): the crop, flip and rotation
    come from a generator seeded with those three numbers. Resuming a run, or splitting a batch
    over several processes, therefore sees exactly the patches a single straight run would.
    """

    def __init__(self, folders: list[str | Path], scale: int = 4, patch: int = 96, seed: int = 0, repeat: int = 1,
                 degradation: DegradationConfig | None = None, texture_tries: int = 1):
        if patch % scale:
            raise ValueError(f"HR patch size {patch} must be a multiple of the scale {scale}")
        self.scale, self.patch, self.seed, self.repeat = scale, patch, seed, repeat
        self.degradation = degradation  # None: clean bicubic, the papers' convention
        if not 1 <= texture_tries <= MAX_TEXTURE_TRIES:
            raise ValueError(f"texture_tries must be from 1 to {MAX_TEXTURE_TRIES}, got {texture_tries}")
        self.texture_tries = texture_tries
        self.epoch = 0
        self.images: list[np.ndarray] = []
        for path in list_images(folders):
            image = _read_rgb(path)
            if image is None:
                continue
            if min(image.size) < patch:
                warnings.warn(f"skipping {path}: {image.size[0]}x{image.size[1]} is smaller than the {patch} px crop", stacklevel=2)
                continue
            self.images.append(np.asarray(image))
        if not self.images:
            raise ValueError(f"no usable training images (all unreadable or smaller than {patch} px)")

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.item(self.epoch, index)

    def item(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) patch `index` of `epoch`: the same numbers on every machine and after a resume."""
        rng = random.Random(hash((self.seed, epoch, index)))
        hr = self.images[index % len(self.images)]
        h, w, _ = hr.shape
        crops = []
        for _ in range(self.texture_tries):
            y, x = rng.randrange(h - self.patch + 1), rng.randrange(w - self.patch + 1)
            crops.append(hr[y : y + self.patch, x : x + self.patch])
        hr = max(crops, key=edge_energy) if len(crops) > 1 else crops[0]
        if rng.random() < 0.5:
            hr = hr[:, ::-1]
        hr = np.rot90(hr, rng.randrange(4))
        hr = np.ascontiguousarray(hr)
        if self.degradation is None:
            lr = degrade.bicubic(hr, self.scale)
        else:
            lr = degrade.realistic(hr, self.scale, self.degradation,
                                   np.random.default_rng([self.seed, epoch, index]))
        return to_tensor(Image.fromarray(lr)), to_tensor(Image.fromarray(hr))


class TeacherPatchDataset(PatchDataset):
    """(LR, target) training patches whose target is a teacher generator's output for the whole
    image with its grid pattern removed (`degrid.remove_grid`), not the HR photo; with `sharpen`,
    that lightly sharpened too (`degrid.sharpen`).

    The pattern can only be found over a whole image (see `degrid`), so the targets are made once,
    up front: each image is cut to a multiple of the scale, shrunk by bicubic as always, upscaled
    by `teacher` and cleaned. Patches are then cut at multiples of the scale, so each LR patch is
    exactly the part of the LR the teacher saw and the target's grid stays where the teacher put it.
    """

    def __init__(self, folders: list[str | Path], teacher: Callable[[Image.Image], Image.Image], scale: int = 4,
                 patch: int = 96, seed: int = 0, repeat: int = 1, sigma: float = DEGRID_SIGMA, gain: float = 1.0,
                 sharpen: float = 0.0, progress: Callable[[int, int], None] | None = None):
        super().__init__(folders, scale, patch, seed, repeat)
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for i, image in enumerate(self.images):
            h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
            lr = degrade.bicubic(image[:h, :w], scale)
            out = np.asarray(teacher(Image.fromarray(lr)).convert("RGB"), dtype=np.float64)
            if out.shape != (h, w, 3):
                raise ValueError(f"the teacher turned a {lr.shape[1]}x{lr.shape[0]} LR image into "
                                 f"{out.shape[1]}x{out.shape[0]}, not {w}x{h}: it must upscale by {scale}")
            target = sharpen_detail(remove_grid(out, scale, sigma, gain), sharpen)
            target = (target / 255.0).clip(0.0, 1.0).astype(np.float32)
            self.pairs.append((lr, target))
            if progress is not None:
                progress(i + 1, len(self.images))

    def item(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, target) patch `index` of `epoch`, deterministic in (seed, epoch, index) as in PatchDataset."""
        rng = random.Random(hash((self.seed, epoch, index)))
        lr, target = self.pairs[index % len(self.pairs)]
        s, n = self.scale, self.patch // self.scale
        y, x = rng.randrange(lr.shape[0] - n + 1), rng.randrange(lr.shape[1] - n + 1)
        # No flips or turns: G's invented texture is not the mirror image of its texture for the
        # mirrored input, so a turned target would ask for other texture than the teacher's.
        lr, target = lr[y : y + n, x : x + n], target[s * y : s * (y + n), s * x : s * (x + n)]
        return (to_tensor(Image.fromarray(np.ascontiguousarray(lr))),
                torch.from_numpy(np.ascontiguousarray(target)).permute(2, 0, 1))


def load_validation(folder: str | Path, scale: int = 4, preset: str = "bicubic") -> list[tuple[str, Image.Image, Image.Image]]:
    """Whole validation images as (name, LR, HR): HR mod-cropped, grayscale widened to RGB, LR made
    by the named degradation preset (image i seeded with i, so every run sees the same noise)."""
    pairs = []
    for path in list_images([folder]):
        image = _read_rgb(path)
        if image is None:
            continue
        hr = modcrop(image, scale)
        pairs.append((path.stem, degrade.make_lr(hr, scale, preset, seed=len(pairs)), hr))
    return pairs
