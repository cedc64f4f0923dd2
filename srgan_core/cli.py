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


def add_upscale_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale",
        help="upscale an image (or every image in a folder) with a super-resolution model",
        description="Upscale IN to OUT with an SRGAN/SRResNet generator. IN may be a folder: every image in it "
        "is upscaled into the folder OUT, with a progress bar; unreadable files are reported and skipped, and "
        "the exit status is non-zero if any failed. Large images are processed in overlapping tiles.",
    )
    p.add_argument("input", metavar="IN", help="an image file or a folder of images")
    p.add_argument("output", metavar="OUT", help="output image file (format from its suffix) or folder")
    p.add_argument("--weights", default=None, help="a path, a bundled name (srgan_x4, srresnet_x4) or "
                   "hf://owner/repo/NAME[@revision]; default: the best bundled model")
    p.add_argument("--bicubic", action="store_true", help="plain bicubic interpolation instead of a model")
    p.add_argument("--tile", type=int, default=None, help="tile size in input pixels (default: tuned for this CPU)")
    p.set_defaults(func=cmd_upscale)


def _positive_tile(tile: int | None) -> int | None:
    if tile is not None and tile < 1:
        raise CLIError(f"--tile must be a positive number of pixels, got {tile}")
    return tile


def cmd_upscale(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from srgan_core import upscale as up

    tile = _positive_tile(args.tile)
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise CLIError(f"{src}: no such file or folder")
    if args.bicubic:
        run = lambda image: up.bicubic(image, 4)  # noqa: E731
    else:
        upscaler = up.Upscaler(args.weights, **({"tile": tile} if tile else {}))
        run = upscaler.upscale
    if src.is_file():
        files, outputs = [src], [dst]
        if dst.suffix == "":
            raise CLIError(f"{dst}: give the output file a suffix such as .png")
    else:
        files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise CLIError(f"{src}: the folder has no files")
        dst.mkdir(parents=True, exist_ok=True)
        outputs = [dst / (f.stem + ".png") for f in files]
    failures = 0
    bar = tqdm(list(zip(files, outputs)), desc="upscale", unit="img", disable=len(files) == 1, file=sys.stderr)
    for f, out in bar:
        try:
            image = up.load_image(f)
            result = run(image)
            out.parent.mkdir(parents=True, exist_ok=True)
            result.save(out)
        except (ValueError, OSError) as exc:
            failures += 1
            message = str(exc) if str(f) in str(exc) else f"{f}: {exc}"
            bar.write(f"error: {message}", file=sys.stderr)
            continue
        if len(files) == 1:
            print(f"{f} {image.width}x{image.height} -> {out} {result.width}x{result.height}")
    if len(files) > 1:
        print(f"{len(files) - failures} of {len(files)} images upscaled into {dst}; {failures} failed")
    return 1 if failures else 0


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="PSNR/SSIM of a model or bicubic on a folder of HR images",
        description="Score a model the way SR papers do: crop each HR image to a multiple of the scale, "
        "downscale it with bicubic, upscale it back, and compare on the Y channel (BT.601) with a "
        "`scale`-pixel border ignored. Prints a per-image table and the means.",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="folder of HR images, e.g. Set5")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--weights", default=None, help="model to score (path, bundled name or hf:// reference)")
    which.add_argument("--bicubic", action="store_true", help="score plain bicubic interpolation")
    p.add_argument("--scale", type=int, default=4, help="downscaling factor; must match the model's")
    p.add_argument("--json", action="store_true", help='one JSON object {"psnr", "ssim", "images": [...]} on stdout')
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from srgan_core.evaluate import bicubic_upscale, evaluate

    if args.scale not in (2, 4, 8):
        raise CLIError(f"--scale must be 2, 4 or 8, got {args.scale}")
    if args.bicubic:
        fn, method = bicubic_upscale(args.scale), "bicubic"
    else:
        from srgan_core.upscale import Upscaler

        upscaler = Upscaler(args.weights)
        if upscaler.scale != args.scale:
            raise CLIError(f"the model upscales x{upscaler.scale}, but --scale is {args.scale}")
        fn, method = upscaler.upscale, upscaler.name
    result = evaluate(args.data, fn, args.scale, method)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(f"{method} x{args.scale} on {result.data} (Y channel, {args.scale} px border cropped)")
    print(f"{'image':<16}{'PSNR dB':>10}{'SSIM':>9}{'grad/HR':>9}")
    for im in result.images:
        print(f"{im.name:<16}{im.psnr:>10.2f}{im.ssim:>9.4f}{im.gradient:>9.3f}")
    print(f"{'mean':<16}{result.psnr:>10.2f}{result.ssim:>9.4f}{result.gradient:>9.3f}")
    return 0


def add_publish_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="build a Hub-ready model folder (weights, sidecar, model card) and upload it",
        description="Build a folder with the weights, their JSON sidecar and a model card (metrics table and "
        "usage), then upload it to the Hugging Face Hub with huggingface_hub (needs a token: `hf auth login` "
        "or HF_TOKEN). --dry-run only builds the folder.",
    )
    p.add_argument("source", metavar="RUN_OR_WEIGHTS", help="a training run folder, a weights file or a bundled name")
    p.add_argument("--repo", required=True, help="Hub model repository, owner/name")
    p.add_argument("--out", default=None, help="where to build the folder (default: a temporary folder)")
    p.add_argument("--dry-run", action="store_true", help="build the folder, print its path and upload nothing")
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    from srgan_core.publish import build_folder, upload

    folder = build_folder(args.source, args.repo, args.out)
    print(f"built {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
    if args.dry_run:
        return 0
    url = upload(folder, args.repo)
    print(f"uploaded to {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srgan_core",
        description="SRGAN super-resolution and a toy 1-D GAN. Run a command with --help for its options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_upscale_parser(sub)
    add_evaluate_parser(sub)
    add_train_parser(sub)
    add_publish_parser(sub)
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
