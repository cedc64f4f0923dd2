"""Training checkpoints that survive a crash at any moment.

A checkpoint is a folder `RUN/ckpt-NNNNNNN/` (NNNNNNN = iterations done) holding safetensors files
for the generator, the discriminator, the EMA generator and the optimizer/RNG tensors, plus
`state.json` with the plain values. `state.json` is written last, after every other file is on
disk, so a folder with it is complete. `RUN/checkpoint` is a symbolic link to the newest complete
folder, replaced with one atomic rename; older folders are deleted only after that. Whatever the
moment of a crash, the link (or, failing it, the newest complete folder) names a usable
checkpoint, and `--resume` never silently starts over.

Nothing here is pickled: optimizer state is split into tensors (safetensors) and JSON.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

LINK = "checkpoint"
PREFIX = "ckpt-"


@dataclass
class Checkpoint:
    path: Path
    iteration: int


def _complete(folder: Path) -> Checkpoint | None:
    try:
        return Checkpoint(folder, int(json.loads((folder / "state.json").read_text())["iteration"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def latest_checkpoint(run: str | Path) -> Checkpoint | None:
    """The checkpoint `RUN/checkpoint` points to, else the newest complete `ckpt-*` folder."""
    run = Path(run)
    found = _complete(run / LINK)
    if found is not None:
        return Checkpoint(found.path.resolve(), found.iteration)
    complete = [c for c in map(_complete, run.glob(PREFIX + "*")) if c is not None]
    return max(complete, key=lambda c: c.iteration, default=None)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (safetensors) and plain values (JSON)."""
    state = opt.state_dict()
    tensors = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            tensors[f"{prefix}.{pid}.{key}"] = value.contiguous() if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def _restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run: str | Path, iteration: int, g: nn.Module, d: nn.Module | None, ema: nn.Module | None,
                    opts: dict[str, torch.optim.Optimizer], average: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a complete new checkpoint folder, then point `RUN/checkpoint` at it atomically.
    `average`: the running sums of a weight average (train.WeightAverage), saved as they are."""
    run = Path(run)
    folder = run / f"{PREFIX}{iteration:07d}"
    if folder.exists():  # a leftover of a crash at this very iteration: rewrite it from scratch
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = {"generator": g, "discriminator": d, "ema": ema}
    for name, module in files.items():
        if module is not None:
            save_file(_state_dict(module), str(folder / f"{name}.safetensors"))
    if average:
        save_file({k: v.contiguous() for k, v in average.items()}, str(folder / "average.safetensors"))
    tensors, meta = {"rng.torch": torch.get_rng_state()}, {"iteration": iteration, "optimizers": {}}
    for name, opt in opts.items():
        t, m = _optimizer_tensors(opt, name)
        tensors.update(t)
        meta["optimizers"][name] = m
    save_file(tensors, str(folder / "state.safetensors"))
    for f in folder.iterdir():
        _fsync(f)
    (folder / "state.json.tmp").write_text(json.dumps(meta, indent=1))
    _fsync(folder / "state.json.tmp")
    os.replace(folder / "state.json.tmp", folder / "state.json")  # now the folder is complete

    link, tmp_link = run / LINK, run / (LINK + ".new")
    if link.is_dir() and not link.is_symlink():  # a run from before checkpoint folders had names
        old = _complete(link)
        os.replace(link, run / f"{PREFIX}{old.iteration if old else 0:07d}-old")
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(folder.name)
    os.replace(tmp_link, link)  # the atomic swap
    for other in run.glob(PREFIX + "*"):
        if other != folder:
            shutil.rmtree(other, ignore_errors=True)
    return folder


def load_average(ckpt: Checkpoint) -> dict[str, torch.Tensor]:
    """The weight average's running sums saved with `ckpt` ({} when it had none)."""
    path = ckpt.path / "average.safetensors"
    return load_file(str(path)) if path.exists() else {}


def load_checkpoint(ckpt: Checkpoint, g: nn.Module, d: nn.Module | None, ema: nn.Module | None,
                    opts: dict[str, torch.optim.Optimizer]) -> int:
    """Restore weights, optimizers and the RNG from `ckpt`; returns the iterations done."""
    g.load_state_dict(load_file(str(ckpt.path / "generator.safetensors")))
    for name, module in (("discriminator", d), ("ema", ema)):
        if module is not None:
            path = ckpt.path / f"{name}.safetensors"
            # a run that turned EMA on later starts its average from the current generator
            module.load_state_dict(load_file(str(path)) if path.exists() else g.state_dict())
    tensors = load_file(str(ckpt.path / "state.safetensors"))
    meta = json.loads((ckpt.path / "state.json").read_text())
    for name, opt in opts.items():
        _restore_optimizer(opt, name, tensors, meta["optimizers"][name])
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["iteration"])
