"""`python -m srgan_core ...`: the command-line shell over the library.

Every command prints a one-line error and exits non-zero on bad input; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import sys


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---------------------------------------------------------------- toy GAN and anomaly commands
# (section owned by the toy-GAN work: parsers and handlers for `toygan` and `anomaly`)


def add_toygan_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toygan", help="train the 1-D toy GAN (placeholder)")
    p.set_defaults(func=lambda args: print("not implemented yet") or 1)
    p = sub.add_parser("anomaly", help="KS drift check with the toy generator (placeholder)")
    p.set_defaults(func=lambda args: print("not implemented yet") or 1)


# ---------------------------------------------------------------- end of toy GAN section


# ---------------------------------------------------------------- super-resolution commands


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    from dataclasses import MISSING, fields

    from srgan_core.train import TrainConfig

    help_text = {
        "stage": "srresnet: MSE pre-training; srgan: adversarial training (start it with --init from an SRResNet)",
        "train_data": "training image folders (e.g. T91 BSDS200)",
        "val_data": "validation folders scored with whole images (e.g. Set5 Set14)",
        "out": "run folder: config.json, metrics.jsonl, samples/, checkpoint/, final generator.*",
        "scale": "upscaling factor: 2, 4 or 8",
        "channels": "generator feature maps (paper: 64)",
        "blocks": "generator residual blocks (paper: 16)",
        "d_channels": "discriminator base width (paper: 64)",
        "batch_norm": "BatchNorm in generator and discriminator, as in the paper",
        "patch": "HR crop size in pixels (paper: 96); images smaller than this are skipped",
        "batch_size": "global batch size, split over processes under torchrun",
        "iterations": "total iterations (also sets the cosine learning-rate schedule)",
        "lr": "Adam learning rate at the start (paper: 1e-4)",
        "lr_min": "learning rate reached at the last iteration (cosine decay); set equal to --lr for constant",
        "beta1": "Adam beta1 (paper: 0.9)",
        "content_loss": "mse, vgg22 or vgg54 (VGG losses need torchvision's ImageNet VGG19 weights)",
        "init": "generator weights to start from: a path, a bundled name or hf://owner/repo/file",
        "seed": "seed for the model and the patch order",
        "log_every": "write losses to metrics.jsonl every N iterations",
        "val_every": "validate (PSNR/SSIM, a sample image) every N iterations",
        "val_max_images": "score at most N images per validation set (0 = all)",
        "ckpt_every": "write a checkpoint every N iterations",
        "max_minutes": "stop with a checkpoint after this many minutes (0 = no limit); continue with --resume",
        "threads": "torch CPU threads (0 = torch's default)",
        "device": "auto, cpu or cuda",
    }
    p = sub.add_parser(
        "train",
        help="train SRResNet (MSE) or SRGAN (adversarial)",
        description="Train a super-resolution generator. Every flag maps one to one onto TrainConfig and is "
        "saved in RUN/config.json; `--resume RUN` continues a run exactly where its last checkpoint stopped. "
        "Runs unchanged under `torchrun --nproc_per_node N` (DistributedDataParallel).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its saved config")
    for f in fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, list):
            p.add_argument(flag, nargs="+", default=default, metavar="DIR", help=help_text[f.name])
        elif isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text[f.name])
        else:
            p.add_argument(flag, type=type(default), default=default, help=help_text[f.name])
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from srgan_core.train import TrainConfig, train

    if args.resume:
        config_file = __import__("pathlib").Path(args.resume) / "config.json"
        if not config_file.exists():
            raise CLIError(f"{args.resume} is not a run folder (no config.json)")
        cfg = TrainConfig.from_json(config_file)
        cfg.out = args.resume
    else:
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
        if not cfg.train_data:
            raise CLIError("--train-data is required (one or more image folders)")
    result = train(cfg, resume=bool(args.resume))
    for name, m in result.items():
        print(f"{name}: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srgan_core",
        description="SRGAN super-resolution and a toy 1-D GAN. Run a command with --help for its options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_train_parser(sub)
    add_toygan_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
