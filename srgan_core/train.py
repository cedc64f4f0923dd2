"""Training: SRResNet pre-training with MSE, then SRGAN adversarial training from it.

One loop serves both stages. An SRGAN iteration is the paper's four steps:
    1. sample a batch of HR patches,      2. make their LR versions (bicubic /4),
    3. update D on real HR vs G(LR),       4. update G with content + 1e-3 * adversarial loss
                                              through the frozen D.
The SRResNet stage is steps 1, 2 and 4 with the content loss alone.

A run folder holds everything needed to understand or continue it:
    config.json       the TrainConfig, so `--resume RUN_DIR` needs nothing else
    metrics.jsonl     losses every --log-every iterations, validation PSNR/SSIM every --val-every
    samples/          a validation image upscaled at each validation
    checkpoint/       generator (+ discriminator) weights, optimizer and RNG state, iteration
    generator.*       the final weights with a sidecar (what `weights/` ships)

Works unchanged under `torchrun --nproc_per_node N`: DistributedDataParallel, gloo on CPU, NCCL on
GPUs; the global batch is split over the processes and only rank 0 writes.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from srgan_core import losses
from srgan_core.data import PatchDataset, load_validation, to_image, to_tensor
from srgan_core.metrics import psnr, ssim
from srgan_core.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig


@dataclass
class TrainConfig:
    stage: str = "srresnet"  # "srresnet" (content loss only) or "srgan" (adds D and the adversarial term)
    train_data: list[str] = field(default_factory=list)  # image folders, e.g. T91 BSDS200
    val_data: list[str] = field(default_factory=list)  # whole-image validation folders, e.g. Set5 Set14
    out: str = "runs/srresnet_x4"
    scale: int = 4
    channels: int = 64
    blocks: int = 16
    d_channels: int = 64  # discriminator base width (paper: 64)
    batch_norm: bool = True  # BatchNorm in G and D as in the paper (SyncBatchNorm on multi-GPU runs)
    bicubic_skip: bool = False  # add bicubic(LR) to G's output (not in the paper; faster convergence)
    patch: int = 96  # HR crop size (paper: 96)
    batch_size: int = 16  # global batch, split over processes
    iterations: int = 100_000
    lr: float = 1e-4  # Adam learning rate at the start (paper: 1e-4)
    lr_min: float = 1e-6  # cosine decay ends here; equal to lr for a constant rate
    beta1: float = 0.9
    content_loss: str = "mse"  # mse | vgg22 | vgg54
    init: str = ""  # generator weights to start from (SRGAN: the SRResNet run)
    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    val_max_images: int = 0  # 0 = all images of each validation set
    ckpt_every: int = 250
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time; 0 = no limit
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        if self.stage not in ("srresnet", "srgan"):
            raise ValueError(f"stage must be srresnet or srgan, got {self.stage!r}")
        if self.content_loss not in losses.CONTENT_LOSSES:
            raise ValueError(f"content loss must be one of {losses.CONTENT_LOSSES}, got {self.content_loss!r}")
        for name in ("iterations", "batch_size", "patch", "log_every", "val_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.lr_min > 0 and math.isfinite(self.lr) and math.isfinite(self.lr_min)):
            raise ValueError(f"learning rates must be positive and finite, got lr={self.lr}, lr_min={self.lr_min}")
        if self.patch % self.scale:
            raise ValueError(f"patch {self.patch} must be a multiple of the scale {self.scale}")

    @property
    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(scale=self.scale, channels=self.channels, blocks=self.blocks, batch_norm=self.batch_norm,
                               bicubic_skip=self.bicubic_skip)

    @classmethod
    def from_json(cls, path: Path) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})


def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    """Cosine decay from lr to lr_min: a function of the iteration alone, so resuming is exact."""
    t = min(iteration / max(cfg.iterations - 1, 1), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * t))


# ----------------------------------------------------------------------------- distributed set-up


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Read torchrun's environment; a plain `python` run is world size 1 with no process group."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=torch.device("cuda" if use_cuda else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(rank=rank, world=world, device=torch.device(f"cuda:{local}" if use_cuda else "cpu"))


# ----------------------------------------------------------------------------- checkpoints


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (safetensors) and plain values (JSON): no pickle."""
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


def save_checkpoint(run: Path, iteration: int, g: Generator, d: Discriminator | None, opts: dict) -> None:
    tmp, final = run / "checkpoint.tmp", run / "checkpoint"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(tmp / "generator.safetensors"))
    if d is not None:
        save_file({k: v.contiguous() for k, v in d.state_dict().items()}, str(tmp / "discriminator.safetensors"))
    tensors, meta = {"rng.torch": torch.get_rng_state()}, {"iteration": iteration, "optimizers": {}}
    for name, opt in opts.items():
        t, m = _optimizer_tensors(opt, name)
        tensors.update(t)
        meta["optimizers"][name] = m
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    if final.exists():  # swap in the new checkpoint only once it is complete
        final.rename(run / "checkpoint.old")
    tmp.rename(final)
    old = run / "checkpoint.old"
    if old.exists():
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def load_checkpoint(run: Path, g: Generator, d: Discriminator | None, opts: dict) -> int:
    ckpt = run / "checkpoint"
    g.load_state_dict(load_file(str(ckpt / "generator.safetensors")))
    if d is not None:
        d.load_state_dict(load_file(str(ckpt / "discriminator.safetensors")))
    tensors = load_file(str(ckpt / "state.safetensors"))
    meta = json.loads((ckpt / "state.json").read_text())
    for name, opt in opts.items():
        _restore_optimizer(opt, name, tensors, meta["optimizers"][name])
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["iteration"])


# ----------------------------------------------------------------------------- validation


@torch.inference_mode()
def validate(g: Generator, sets: dict[str, list], scale: int, device: torch.device, sample_dir: Path | None, tag: str) -> dict:
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


# ----------------------------------------------------------------------------- the loop


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run (or continue) a training run; returns the last validation metrics."""
    from tqdm import tqdm

    env = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.out)
    if env.main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    g = Generator(cfg.generator_config).to(env.device)
    if cfg.init and not resume:
        from srgan_core.weights import load_generator

        init = load_generator(cfg.init).model
        if init.config != g.config:
            raise ValueError(f"--init weights have config {init.config}, this run needs {g.config}")
        g.load_state_dict(init.state_dict())
    d = Discriminator(DiscriminatorConfig(base_channels=cfg.d_channels, batch_norm=cfg.batch_norm)).to(env.device) if cfg.stage == "srgan" else None
    vgg = losses.VGGFeatures(cfg.content_loss).to(env.device) if cfg.content_loss != "mse" else None
    opts = {"g": torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))}
    if d is not None:
        opts["d"] = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    start = load_checkpoint(run, g, d, opts) if resume and (run / "checkpoint").exists() else 0
    # channels_last is faster for these convs on both CPU (oneDNN) and GPU (tensor cores)
    g = g.to(memory_format=torch.channels_last)
    d = d.to(memory_format=torch.channels_last) if d is not None else None
    if env.world > 1 and env.device.type == "cuda":
        # BatchNorm statistics over the global batch, as one process would see them. torch's
        # SyncBatchNorm runs on GPUs only: CPU (gloo) runs keep per-process statistics, so for
        # them exact single-process equivalence holds with --no-batch-norm.
        g = torch.nn.SyncBatchNorm.convert_sync_batchnorm(g)
        d = torch.nn.SyncBatchNorm.convert_sync_batchnorm(d) if d is not None else None
    g_step = DistributedDataParallel(g) if env.world > 1 else g
    d_step = DistributedDataParallel(d) if env.world > 1 and d is not None else d
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=env.device.type == "cuda")

    data = PatchDataset(cfg.train_data, cfg.scale, cfg.patch, cfg.seed)
    if cfg.batch_size % env.world:
        raise ValueError(f"batch size {cfg.batch_size} must divide evenly over {env.world} processes")
    per_rank = cfg.batch_size // env.world
    per_epoch = len(data) // cfg.batch_size
    val_sets = {}
    if env.main:
        for folder in cfg.val_data:
            pairs = load_validation(folder, cfg.scale)
            val_sets[Path(folder).name] = pairs[: cfg.val_max_images] if cfg.val_max_images else pairs

    def batch(iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        # A fixed permutation per epoch (seeded by seed and epoch), cut into global batches;
        # rank r takes every world-th sample of its batch, as DistributedSampler would.
        epoch, offset = divmod(iteration, per_epoch)
        data.set_epoch(epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        idx = order[offset * cfg.batch_size : (offset + 1) * cfg.batch_size][env.rank :: env.world]
        lr, hr = zip(*(data[int(i)] for i in idx))
        lr, hr = torch.stack(lr).to(env.device), torch.stack(hr).to(env.device)
        return lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)

    metrics_file = (run / "metrics.jsonl").open("a") if env.main else None
    t0, last_val = time.time(), {}
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, disable=not env.main,
               desc=cfg.stage, dynamic_ncols=True, file=sys.stderr)
    g.train()
    stopped_early = False
    try:
        for it in bar:
            for opt in opts.values():
                for group in opt.param_groups:
                    group["lr"] = learning_rate(cfg, it)
            # 1-2. sample HR patches and their bicubic LR versions
            lr, hr = batch(it)
            with amp:
                sr = g_step(lr)
            log = {"iteration": it + 1, "lr": learning_rate(cfg, it)}
            # 3. update D on real HR vs G(LR), with G fixed (its output detached). Real and fake
            #    go through D as one batch: one forward per backward, as DDP requires.
            if d is not None:
                d.requires_grad_(True)
                with amp:
                    real_logits, fake_logits = d_step(torch.cat([hr, sr.detach()])).float().chunk(2)
                    d_loss = losses.discriminator_loss(real_logits, fake_logits)
                opts["d"].zero_grad(set_to_none=True)
                d_loss.backward()
                opts["d"].step()
                log["d_loss"] = d_loss.item()
            # 4. update G: content loss (+ 1e-3 * adversarial through the frozen D)
            with amp:
                if d is not None:
                    d.requires_grad_(False)
                    g_loss, content, adversarial = losses.generator_loss(sr.float(), hr, d(sr).float(), vgg)
                    log["adv_loss"] = adversarial.item()
                else:
                    g_loss = content = losses.content_loss(sr.float(), hr, vgg)
            opts["g"].zero_grad(set_to_none=True)
            g_loss.backward()
            opts["g"].step()
            log["content_loss"] = content.item()
            log["g_loss"] = g_loss.item()

            done = it + 1
            if env.main and (done % cfg.log_every == 0 or done == cfg.iterations):
                log["elapsed_s"] = round(time.time() - t0, 2)
                metrics_file.write(json.dumps(log) + "\n")
                metrics_file.flush()
                bar.set_postfix({k: f"{v:.4g}" for k, v in log.items() if k.endswith("loss")})
            if env.main and val_sets and (done % cfg.val_every == 0 or done == cfg.iterations):
                last_val = validate(g, val_sets, cfg.scale, env.device, run / "samples", f"{done:07d}")
                metrics_file.write(json.dumps({"iteration": done, "validation": last_val}) + "\n")
                metrics_file.flush()
                bar.write(f"[{done}] " + "  ".join(f"{k}: {v['psnr']:.2f} dB / {v['ssim']:.4f}" for k, v in last_val.items()))
            if env.main and (done % cfg.ckpt_every == 0 or done == cfg.iterations):
                save_checkpoint(run, done, g, d, opts)
            if cfg.max_minutes and time.time() - t0 > cfg.max_minutes * 60 and done < cfg.iterations:
                if env.main:
                    save_checkpoint(run, done, g, d, opts)
                    bar.write(f"time limit reached at iteration {done}; continue with --resume {run}")
                stopped_early = True
                break
    except KeyboardInterrupt:
        if env.main:
            bar.write(f"interrupted; the last checkpoint is kept; continue with --resume {run}")
        stopped_early = True
    finally:
        bar.close()
        if metrics_file:
            metrics_file.close()

    if env.main and not stopped_early:
        from srgan_core.weights import save_weights

        wall = sum_wall_time(run)
        save_weights(
            {k: v.contiguous() for k, v in g.state_dict().items()},
            run / "generator",
            {
                "kind": "generator",
                "name": f"{cfg.stage}_x{cfg.scale}",
                "architecture": "srresnet",
                "config": cfg.generator_config.to_dict(),
                "scale": cfg.scale,
                "description": "SRResNet trained with MSE" if cfg.stage == "srresnet"
                else f"SRGAN: {cfg.content_loss} content loss + 1e-3 adversarial",
                "training": {
                    "stage": cfg.stage,
                    "data": [Path(p).name for p in cfg.train_data],
                    "validation": [Path(p).name for p in cfg.val_data],
                    "iterations": cfg.iterations,
                    "batch_size": cfg.batch_size,
                    "patch": cfg.patch,
                    "content_loss": cfg.content_loss,
                    "wall_time_s": round(wall, 1),
                    "hardware": f"{hardware()} x {env.world} process(es)",
                    "command": "python -m srgan_core train " + config_to_flags(cfg),
                },
                "metrics": last_val,
            },
        )
    if env.world > 1:
        dist.destroy_process_group()
    return last_val


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


def config_to_flags(cfg: TrainConfig) -> str:
    """The CLI flags that rebuild `cfg` (defaults left out), data paths as given."""
    default = TrainConfig()
    parts = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return shlex.join(parts)
