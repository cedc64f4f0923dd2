"""Score an upscaler on a folder of HR images, the way SR papers do, and beyond.

Each HR image is mod-cropped, degraded to LR with a named preset (`srgan_core.degrade`; the
clean bicubic one is the papers' convention), upscaled back and scored on Y with a `scale`-px
border ignored: PSNR and SSIM (fidelity), `detail` (edge energy over the photo's), `grid`
(periodicity on the x`scale` pixel grid over the photo's) and NIQE (naturalness, no reference).
Fidelity and naturalness pull against each other (Blau and Michaeli, 2018), which is why both
are reported, and why `perception_distortion` gives the points of that plot.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from srgan_core.data import load_validation
from srgan_core.degrade import make_lr
from srgan_core.metrics import detail_ratio, grid_ratio, psnr, ssim
from srgan_core.niqe import NIQEError, niqe

UpscaleFn = Callable[[Image.Image], Image.Image]
METRICS = ("psnr", "ssim", "detail", "grid", "niqe")


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    detail: float  # mean Sobel magnitude of the output over the HR image's
    grid: float | None  # periodicity on the scale-px grid over the HR image's; None: image too small
    niqe: float | None  # lower = more natural; None: image too small for 96 px patches


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a perfect PSNR (the HR image itself) is reported as null."""
    return value if value is None or math.isfinite(value) else None


@dataclass
class Evaluation:
    method: str
    data: str
    scale: int
    degradation: str = "bicubic"
    images: list[ImageScore] = field(default_factory=list)

    @property
    def psnr(self) -> float:
        return sum(i.psnr for i in self.images) / len(self.images)

    @property
    def ssim(self) -> float:
        return sum(i.ssim for i in self.images) / len(self.images)

    @property
    def detail(self) -> float:
        return sum(i.detail for i in self.images) / len(self.images)

    @property
    def grid(self) -> float | None:
        """The median, not the mean: one image with a strong pattern of its own must not decide."""
        known = [i.grid for i in self.images if i.grid is not None]
        return statistics.median(known) if known else None

    @property
    def niqe(self) -> float | None:
        return _mean([i.niqe for i in self.images])

    def summary(self) -> dict[str, float | None]:
        """{psnr, ssim, detail, grid, niqe} over the folder."""
        return {name: _finite(getattr(self, name)) for name in METRICS}

    def to_dict(self) -> dict:
        return {"method": self.method, "data": self.data, "scale": self.scale, "degradation": self.degradation,
                **self.summary(),
                "images": [{k: _finite(v) if isinstance(v, float) else v for k, v in asdict(i).items()}
                           for i in self.images]}


def bicubic_upscale(scale: int) -> UpscaleFn:
    return lambda lr: lr.resize((lr.width * scale, lr.height * scale), Image.Resampling.BICUBIC)


def score_image(sr: Image.Image, hr: Image.Image, scale: int = 4, name: str = "") -> ImageScore:
    """Every score of one output against its HR original (same size). The two texture scores
    need some room (grid: 32 px, NIQE: two 96 px patches after the border) and are None below it."""
    sr, hr = sr.convert("RGB"), hr.convert("RGB")
    if sr.size != hr.size:
        raise ValueError(f"{name or 'image'}: output is {sr.size[0]}x{sr.size[1]}, HR is {hr.size[0]}x{hr.size[1]}")
    try:
        grid = grid_ratio(sr, hr, scale)
    except ValueError:
        grid = None
    try:
        naturalness = niqe(sr, border=scale)
    except NIQEError:
        naturalness = None
    return ImageScore(name, psnr(sr, hr, scale), ssim(sr, hr, scale), detail_ratio(sr, hr), grid, naturalness)


def _pairs(folder: str | Path, scale: int, degradation: str):
    """(name, LR, HR) for every image: HR mod-cropped, LR from the preset, seeded by the image's index."""
    for i, (name, _, hr) in enumerate(load_validation(folder, scale)):
        yield name, make_lr(hr, scale, degradation, seed=i), hr


def evaluate(folder: str | Path, upscale: UpscaleFn, scale: int = 4, method: str = "",
             progress: Callable[[int, int], None] | None = None, degradation: str = "bicubic") -> Evaluation:
    """Score `upscale` on every image of `folder` degraded by the preset `degradation`."""
    result = Evaluation(method=method, data=Path(folder).name, scale=scale, degradation=degradation)
    pairs = list(_pairs(folder, scale, degradation))
    for i, (name, lr, hr) in enumerate(pairs):
        sr = upscale(lr).convert("RGB")
        if sr.size != hr.size:
            raise ValueError(f"{name}: upscaler returned {sr.size}, expected {hr.size}")
        result.images.append(score_image(sr, hr, scale, name))
        if progress:
            progress(i + 1, len(pairs))
    return result


def perception_distortion(folder: str | Path, methods: dict[str, UpscaleFn], scale: int = 4,
                          degradation: str = "bicubic") -> list[dict]:
    """Points of the perception-distortion plot: mean PSNR (distortion, higher is better) against
    mean NIQE (perception, lower is better) per method, and the HR photos themselves as the
    target corner (their PSNR is infinite: reported as None)."""
    pairs = list(_pairs(folder, scale, degradation))

    def niqe_or_none(image: Image.Image) -> float | None:
        try:
            return niqe(image, border=scale)
        except NIQEError:
            return None

    points = [{"method": "HR", "psnr": None, "niqe": _mean([niqe_or_none(hr) for _, _, hr in pairs])}]
    for method, upscale in methods.items():
        outputs = [(upscale(lr).convert("RGB"), hr) for _, lr, hr in pairs]
        points.append({"method": method, "psnr": _mean([psnr(sr, hr, scale) for sr, hr in outputs]),
                       "niqe": _mean([niqe_or_none(sr) for sr, _ in outputs])})
    return points


# ----------------------------------------------------------------------------- the weights' sidecar

METRICS_NOTE = (
    "python -m srgan_core evaluate --data DATA/SET --weights weights/NAME [--degradation PRESET] --update-sidecar. "
    "Key SET for the clean bicubic degradation, SET@PRESET for others. Y channel (BT.601), a border of `scale` px "
    "ignored; psnr, ssim, detail and niqe are means over the images, grid a median. detail: mean Sobel magnitude "
    "over the HR image's (gradient_ratio in older entries is the same measure); grid: periodicity on the "
    "x`scale` pixel grid over the HR image's (1 = as periodic as the photo); niqe: NIQE with the pristine model "
    "fitted on T91 + BSDS200 (srgan_core/niqe_pristine.json), lower = more natural."
)
DIGITS = {"psnr": 3, "ssim": 4, "detail": 4, "grid": 3, "niqe": 3}


def metrics_key(data: str, degradation: str = "bicubic") -> str:
    """Where a result goes in the sidecar's "metrics": the set's name, plus @preset unless clean."""
    return data if degradation == "bicubic" else f"{data}@{degradation}"


def blend_points(folder: str | Path, strengths: list[float], psnr_source: str = "srresnet_x4",
                 gan_source: str = "srgan_x4", scale: int = 4, degradation: str = "bicubic") -> list[dict]:
    """Perception-distortion points of bicubic and the PSNR/GAN blend at each strength.

    Strength 0 is the PSNR model and 1 the GAN model (network interpolation, interpolate.py):
    walking the strength walks the trade-off curve of Blau & Michaeli (2018) with one model pair.
    """
    from srgan_core.interpolate import check_strength, load_interpolated
    from srgan_core.upscale import Upscaler

    methods: dict[str, UpscaleFn] = {"bicubic": bicubic_upscale(scale)}
    for s in strengths:
        methods[f"strength {check_strength(s):g}"] = Upscaler(load_interpolated(psnr_source, gan_source, s)).upscale
    return perception_distortion(folder, methods, scale, degradation)


def _local_sidecar(weights_path: str | Path) -> tuple[Path, dict]:
    """A local weights file's sidecar, after checking that it still describes those tensors."""
    from srgan_core.weights import read_sidecar, sha256_file

    stem = Path(weights_path)
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    st_path, json_path = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    if not (st_path.is_file() and json_path.is_file()):
        raise ValueError(f"{stem}: --update-sidecar needs a local NAME.safetensors and NAME.json")
    meta = read_sidecar(json_path)
    if sha256_file(st_path) != meta["sha256"].lower():
        raise ValueError(f"{json_path}: its sha256 does not match {st_path.name}; not writing metrics into it")
    return json_path, meta


def _write_json(json_path: Path, meta: dict) -> Path:
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, json_path)
    return json_path


def update_sidecar_points(weights_path: str | Path, data: str, degradation: str, points: list[dict],
                          command: str) -> Path:
    """Store perception-distortion points in a GAN model's sidecar, for its model card's plot."""
    json_path, meta = _local_sidecar(weights_path)
    rounded = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in p.items()} for p in points]
    meta["perception_distortion"] = {"data": data, "degradation": degradation, "points": rounded, "command": command}
    return _write_json(json_path, meta)


def update_sidecar(weights_path: str | Path, result: Evaluation) -> Path:
    """Write `result`'s summary into the sidecar of a local weights file, under metrics_key().

    Only the "metrics" entry (and the note that explains it) change: the tensor file is untouched,
    so its sha256 stays valid, and it is checked first, so metrics are never attached to a
    sidecar that does not describe those exact tensors. Written to a temporary file and renamed.
    """
    json_path, meta = _local_sidecar(weights_path)
    scores = {k: (None if v is None else round(v, DIGITS[k])) for k, v in result.summary().items()}
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    metrics[metrics_key(result.data, result.degradation)] = scores
    meta["metrics"], meta["metrics_note"] = metrics, METRICS_NOTE
    return _write_json(json_path, meta)
