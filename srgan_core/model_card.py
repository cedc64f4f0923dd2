"""The model card: what the bundled weights are and how well they do, read from their own files.

Every number comes from a sidecar (read and checksum-verified by the weights loader) or from the
training log NAME.metrics.jsonl shipped beside it, so the card cannot drift from the files. The
words are for visitors, not for the training script: "training steps", not "iterations";
"training crops of 96×96 px", not "patch: 96".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from srgan_core import publish, weights

HEADERS = ["model, test set", "PSNR (dB)", "SSIM", "detail"]  # one name column: the table fits a phone
GRID_HEADER = "grid (1 = as the photo)"
NIQE_HEADER = "NIQE (lower is better)"
OPTIONAL = (("grid", GRID_HEADER, 3), ("niqe", NIQE_HEADER, 2))  # columns shown when some sidecar has them


@dataclass
class ModelCard:
    """Markdown sections (one per model), the benchmark table and validation curves.

    `curves` maps "MODEL on SET" to (training steps, validation PSNR); `tradeoff` is the GAN model's
    perception-distortion points (a sidecar's "perception_distortion" entry), when it has them."""

    sections: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=lambda: list(HEADERS))
    rows: list[list] = field(default_factory=list)
    curves: dict[str, tuple[list, list]] = field(default_factory=dict)
    tradeoff: dict | None = None

    @property
    def markdown(self) -> str:
        return "\n\n".join(self.sections)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


STAGES = {"srresnet": "pixel loss only (SRResNet)", "srgan": "adversarial: pixel loss plus a discriminator (SRGAN)",
          "degrid": "taught its own output with the grid pattern removed"}
LOSSES = {"mse": "mean squared pixel error", "vgg22": "VGG feature distance (2,2)", "vgg54": "VGG feature distance (5,4)"}


def _degradation(v: object) -> str:
    """A training record's degradation in words: the preset's name, or the realistic chain's ranges."""
    if not isinstance(v, dict):
        return "clean bicubic ÷4" if v == "bicubic" else str(v)
    blur, noise, quality = v.get("blur_sigma", [0, 0]), v.get("noise_sigma", [0, 0]), v.get("jpeg_quality", [0, 0])
    return (f"realistic: blur in {v.get('blur_prob', 0):.0%} up to σ {blur[1]:g}, noise in {v.get('noise_prob', 0):.0%} "
            f"up to {noise[1]:g}/255, JPEG in {v.get('jpeg_prob', 0):.0%} at quality {quality[0]}–{quality[1]}")


def _plain(key: str, value: object) -> tuple[str, str] | None:
    """A training record entry as (plain words, value text); None to leave it out."""
    def listed(v: object) -> str:
        return ", ".join(map(str, v)) if isinstance(v, list) else str(v)

    words: dict[str, Callable[[object], tuple[str, str]]] = {
        "stage": lambda v: ("training", STAGES.get(str(v), str(v))),
        "data": lambda v: ("trained on", listed(v)),
        "validation": lambda v: ("checked during training on", listed(v)),
        "iterations": lambda v: ("training steps", f"{v:,}"),
        "epochs": lambda v: ("training steps", f"{v:,}"),
        "batch_size": lambda v: ("images per step", str(v)),
        "patch": lambda v: ("training crops", f"{v}×{v} px"),
        "content_loss": lambda v: ("pixel loss", LOSSES.get(str(v), str(v))),
        "wall_time_s": lambda v: ("training time", _duration(float(v))),
        "hardware": lambda v: ("hardware", str(v)),
        "degradation": lambda v: ("low-resolution inputs", _degradation(v)),
        "total_iterations": lambda v: ("training steps, all stages", f"{v:,}"),
        "total_wall_time_s": lambda v: ("training time, all stages", _duration(float(v))),
        "blend": lambda v: ("made as", f"{1 - v['strength']:g} × {v['a']} + {v['strength']:g} × {v['b']} (network interpolation)"),
        "notes": lambda v: ("notes", str(v)),
        "note": lambda v: ("notes", str(v)),
    }
    if key in words:
        try:
            return words[key](value)
        except (KeyError, TypeError, ValueError, IndexError):
            return None  # a malformed entry (a sidecar from elsewhere) is left out, not a broken card
    if key == "command" or key.startswith("final_") or isinstance(value, dict):
        return None  # the command gets a block of its own; final losses and earlier stages' records mean little to visitors
    return key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else listed(value)


def facts(training: dict) -> str:
    """A sidecar's training record as a Markdown list, and the command that made it."""
    lines = [f"- {k}: {v}" for k, v in filter(None, (_plain(k, v) for k, v in training.items()))]
    # a distilled model (the degrid stage) is only reproducible with its teachers' commands too,
    # oldest first: a second degrid pass was taught by a first, which was taught by the SRGAN stage
    teachers, teacher = [], training.get("teacher")
    while isinstance(teacher, dict):  # a sidecar is JSON, so the chain ends
        if teacher.get("command"):
            teachers.append(teacher)
        teacher = teacher.get("teacher")
    for i, t in enumerate(reversed(teachers)):
        who = "Its teacher" if len(teachers) == 1 else f"Teacher {i + 1} of {len(teachers)}"
        lines.append(f"\n{who} ({t.get('stage', 'an earlier')} stage) was made with:\n\n```\n{t['command']}\n```")
    if training.get("command"):
        lines.append(f"\nMade with:\n\n```\n{training['command']}\n```")
    return "\n".join(lines)


def _number(m: dict, key: str, digits: int) -> float | None:
    v = m.get(key)
    return None if not isinstance(v, (int, float)) else round(float(v), digits)


def validation_points(log: Path) -> dict[str, tuple[list, list]]:
    """Validation PSNR per test set from a training log (train.py's metrics.jsonl)."""
    points: dict[str, tuple[list, list]] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        for data, m in (record.get("validation") or {}).items():
            xs, ys = points.setdefault(data, ([], []))
            xs.append(record["iteration"])
            ys.append(m["psnr"])
    return points


def read_card(models: list[str], label: Callable[[str], str] = str, toy: str | None = "toygan_default") -> ModelCard:
    """The card for bundled generators `models` (named on the page by `label`), the toy generator
    `toy` when it is bundled, and the reference rows (bicubic, the SRGAN paper's SRResNet)."""
    card = ModelCard()
    folder = weights.weights_dir()
    for name in models:
        _, meta = weights.read_weights(name)
        cfg = meta.get("config", {})
        card.sections.append(
            f"### {label(name)} ×{meta.get('scale', cfg.get('scale', '?'))} (`weights/{name}`)\n"
            f"{str(meta.get('description', '')).rstrip('.')}: {cfg.get('blocks', '?')} residual blocks, "
            f"{cfg.get('channels', '?')} channels.\n\n{facts(meta.get('training') or {})}")
        for data, m in sorted((meta.get("metrics") or {}).items()):
            if isinstance(m, dict) and "psnr" in m:
                detail = _number(m, "detail", 3)
                card.rows.append([f"{label(name)}, {data.replace('@', ', ')}", _number(m, "psnr", 2), _number(m, "ssim", 4),
                                  detail if detail is not None else _number(m, "gradient_ratio", 3),
                                  *(_number(m, key, digits) for key, _, digits in OPTIONAL)])
        if isinstance(meta.get("perception_distortion"), dict):
            card.tradeoff = meta["perception_distortion"]
        log = folder / f"{name}.metrics.jsonl"
        if log.is_file():
            for data, xy in validation_points(log).items():
                card.curves[f"{label(name)} on {data}"] = xy
    if not card.sections:
        card.sections.append("No bundled super-resolution weights in `weights/` yet: this card fills in when they arrive.")
    if toy and toy in weights.list_bundled("toygan"):
        _, meta = weights.read_weights(toy)
        card.sections.append(f"### Toy generator (`weights/{toy}`)\n{meta.get('description', '')}\n\n"
                             f"{facts(meta.get('training') or {})}")
    for reference, table in (("Bicubic", publish.BICUBIC), ("SRResNet (paper)", publish.PAPER)):
        card.rows += [[f"{reference}, {data}", p, s, None, *(None for _ in OPTIONAL)] for data, (p, s) in sorted(table.items())]
    card.rows.sort(key=lambda row: row[0].split(", ")[1])  # by test set; models before the references (stable sort)
    keep = [i for i, (_, header, _) in enumerate(OPTIONAL) if any(r[len(HEADERS) + i] is not None for r in card.rows)]
    card.headers += [OPTIONAL[i][1] for i in keep]
    card.rows = [r[:len(HEADERS)] + [r[len(HEADERS) + i] for i in keep] for r in card.rows]
    return card
