"""Publish weights to the Hugging Face Hub: a folder with the safetensors file, its sidecar and a
model card, uploaded with huggingface_hub. The card is generated from the sidecar, so the numbers
on the Hub are the numbers the file itself carries."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from srgan_core.weights import read_weights, save_weights

PAPER = {"Set5": (32.05, 0.9019), "Set14": (28.49, 0.8184)}  # SRResNet, Ledig et al. table 2
BICUBIC = {"Set5": (28.43, 0.8111), "Set14": (26.09, 0.7048)}  # this project's Pillow bicubic


def _resolve(source: str | Path) -> str | Path:
    """A run folder publishes its final generator; anything else is a weights source as is."""
    path = Path(source)
    if path.is_dir() and (path / "generator.safetensors").exists():
        return path / "generator"
    return source


def model_card(meta: dict, repo: str) -> str:
    name, training, metrics = meta.get("name", "model"), meta.get("training", {}), meta.get("metrics", {})
    rows = []
    for data in sorted(set(metrics) | set(PAPER)):
        ours = metrics.get(data, {})
        cells = [f"{ours['psnr']:.2f} / {ours['ssim']:.4f}" if "psnr" in ours else "-"]
        for table in (BICUBIC, PAPER):
            cells.append(f"{table[data][0]:.2f} / {table[data][1]:.4f}" if data in table else "-")
        rows.append(f"| {data} | " + " | ".join(cells) + " |")
    config = meta.get("config", {})
    return f"""---
library_name: safetensors
license: mit
tags: [super-resolution, srgan, srresnet, image-to-image]
---
# {name}

{meta.get("description", "")}: SRResNet generator ({config.get("blocks")} residual blocks,
{config.get("channels")} channels), x{meta.get("scale")} upscaling, from srgan-studio.

## Metrics
PSNR (dB) / SSIM on the Y channel with a {meta.get("scale")}-pixel border ignored; low-resolution inputs
made with Pillow's antialiased bicubic.

| set | this model | bicubic | SRResNet (paper) |
|---|---|---|---|
{chr(10).join(rows)}

## Training
- data: {", ".join(training.get("data", [])) or "-"}; iterations: {training.get("iterations", "-")};
  content loss: {training.get("content_loss", "-")}
- hardware: {training.get("hardware", "-")}; wall time: {training.get("wall_time_s", "-")} s
- reproduce: `{training.get("command", "-")}`

## Use
```python
from srgan_core.upscale import Upscaler
from PIL import Image

upscaler = Upscaler("hf://{repo}/{name}")
upscaler.upscale(Image.open("photo.png")).save("photo_x{meta.get("scale")}.png")
```
The files are `{name}.safetensors` (tensors) and `{name}.json` (architecture, training, metrics, sha256).
"""


def build_folder(source: str | Path, repo: str, out: str | Path | None = None) -> Path:
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"--repo must look like owner/name, got {repo!r}")
    tensors, meta = read_weights(_resolve(source))
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="srgan-publish-"))
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty; choose an empty or new folder")
    folder.mkdir(parents=True, exist_ok=True)
    name = meta.get("name") or "generator"
    save_weights(tensors, folder / name, {k: v for k, v in meta.items() if k != "sha256"})
    (folder / "README.md").write_text(model_card(meta, repo))
    return folder


def upload(folder: Path, repo: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="model", exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                             commit_message="Upload srgan-studio weights")
    shutil.rmtree(folder, ignore_errors=True) if folder.name.startswith("srgan-publish-") else None
    return str(info)
