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
    from srgan_core.anomaly import NOISE_KINDS, NoiseSpec
    from srgan_core.toygan import TARGETS, ToyGANConfig

    d = ToyGANConfig()
    p = sub.add_parser(
        "toygan",
        help="train the 1-D toy GAN (U(0,1) noise -> N(mu, sigma)) and report how well it learned",
        description="Train the toy GAN: G 1-50-1 and D 1-128-128-1, 1000 observed target samples; one epoch is "
        "one mini-batch step (D on 32 real + 32 generated values, then G through D). Prints the time, the "
        "final losses and the KS p-value of 100 generated values against the target; --out saves the generator "
        "for `anomaly --generator`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="mini-batch steps (the original used 30,000)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the data, initial weights and batches")
    p.add_argument("--out", metavar="PATH", help="save the generator as PATH.safetensors + PATH.json")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--target", choices=TARGETS, default=d.target,
                   help=f"normal: N(mu, sigma); mixture: adds N({d.mu2:g}, {d.sigma2:g}) with weight {d.weight2:g} "
                   "(watch for mode collapse)")
    p.add_argument("--mu", type=float, default=d.mu, help="mean of the target")
    p.add_argument("--sigma", type=float, default=d.sigma, help="standard deviation of the target (> 0)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate of both networks")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="real values per step (as many generated); 1000 = full batch")
    p.add_argument("--hidden", type=int, default=d.hidden, help="hidden units of the generator")
    p.set_defaults(func=cmd_toygan)

    s = NoiseSpec()
    p = sub.add_parser(
        "anomaly",
        help="drift check: run a noise source through a toy generator and KS-test the outputs",
        description="Feed values from a noise source to a trained toy generator and test its outputs against "
        "the generator's target (N(0, 1) for the bundled one) with a Kolmogorov-Smirnov test. A uniform "
        "source should pass; a changed one (beta, normal, drift) should be flagged. One trial prints the "
        "p-value; --trials T prints the share of T independent trials flagged (the false-alarm rate or the "
        "power).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--generator", metavar="PATH", default=None,
                   help="toy generator weights: a path, a bundled name or hf://owner/repo/NAME[@revision] "
                   "(default: the bundled toygan_default)")
    p.add_argument("--noise", choices=NOISE_KINDS, required=True,
                   help="uniform: U(0,1), healthy; beta: Beta(a, b); normal: N(0.5, 0.289), uniform's mean and sd; "
                   "drift: U(0,1) with a share --fraction of Beta(a, b) values")
    p.add_argument("--a", type=float, default=s.a, help="Beta a (> 0), for beta and drift")
    p.add_argument("--b", type=float, default=s.b, help="Beta b (> 0), for beta and drift")
    p.add_argument("--fraction", type=float, default=s.fraction, help="share of Beta values in drift, in [0, 1]")
    p.add_argument("--n", type=int, default=100, help="values per trial (>= 2)")
    p.add_argument("--trials", type=int, default=1, help="independent trials; more than 1 reports the flagged share")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level: flagged when p <= alpha")
    p.add_argument("--seed", type=int, default=None, help="seed for the noise (default: fresh randomness)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_anomaly)


def cmd_toygan(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    from scipy import stats

    from srgan_core.toygan import ToyGANConfig, save_toy_generator, train

    config = ToyGANConfig(target=args.target, mu=args.mu, sigma=args.sigma, lr=args.lr, batch_size=args.batch_size,
                          hidden=args.hidden, epochs=args.epochs, seed=args.seed)
    if args.out:  # refuse a bad name before training, not after
        from pathlib import Path

        from srgan_core.weights import PICKLE_SUFFIXES

        if Path(args.out).suffix.lower() in PICKLE_SUFFIXES:
            raise CLIError(f"--out {args.out}: toy generators are saved as safetensors + JSON, not "
                           f"{Path(args.out).suffix}; give a name such as {Path(args.out).with_suffix('')}")
    every = max(1, config.epochs // 6)
    for snap in train(config, snapshot_every=every):
        if not args.json:
            rate = snap.epoch / snap.elapsed_s
            left = (config.epochs - snap.epoch) / rate
            print(f"epoch {snap.epoch:>7,}/{config.epochs:,}  D loss {snap.d_loss:.3f}  G loss {snap.g_loss:.3f}  "
                  f"KS {snap.ks_statistic:.3f}  {rate:,.0f} epochs/s  {left:.0f} s left", file=sys.stderr)
    generator = snap.generator
    outputs = generator.draw(100, np.random.default_rng(config.seed))
    ks = stats.kstest(outputs, generator.target_cdf)
    saved = None
    if args.out:
        flags = {"--epochs": args.epochs, "--seed": args.seed, "--target": args.target, "--mu": args.mu,
                 "--sigma": args.sigma, "--lr": args.lr, "--batch-size": args.batch_size, "--hidden": args.hidden}
        defaults = ToyGANConfig()
        command = ["python -m srgan_core toygan"] + [
            f"{flag} {value}" for flag, value in flags.items()
            if flag in ("--epochs", "--seed") or value != getattr(defaults, flag[2:].replace("-", "_"))
        ] + [f"--out {args.out}"]
        saved = save_toy_generator(generator, args.out, training={
            "data": f"{config.n_real} samples of {generator.target}, drawn from the seed",
            "epochs": config.epochs, "wall_time_s": round(snap.elapsed_s, 2), "command": " ".join(command),
            "final_d_loss": snap.d_loss, "final_g_loss": snap.g_loss,
        }, metrics={"ks_statistic_1000": snap.ks_statistic, "ks_p_value_100": float(ks.pvalue)})
    result = {
        "epochs": config.epochs, "seed": config.seed, "seconds": round(snap.elapsed_s, 3),
        "epochs_per_s": round(config.epochs / snap.elapsed_s, 1), "d_loss": snap.d_loss, "g_loss": snap.g_loss,
        "target": generator.target, "n": len(outputs), "ks_statistic": float(ks.statistic),
        "p_value": float(ks.pvalue), "out": str(saved) if saved else None,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"trained {config.epochs:,} epochs in {snap.elapsed_s:.1f} s ({result['epochs_per_s']:,.0f} epochs/s)")
    print(f"final losses: D {snap.d_loss:.3f}, G {snap.g_loss:.3f} (ln 2 = 0.693 at equilibrium)")
    verdict = "consistent with" if ks.pvalue > 0.05 else "NOT consistent with"
    print(f"KS test of 100 outputs against {generator.target}: p = {ks.pvalue:.3g} ({verdict} the target at 0.05)")
    if saved:
        print(f"saved {saved}")
    return 0


def cmd_anomaly(args: argparse.Namespace) -> int:
    import json

    from srgan_core.anomaly import NoiseSpec, detection_curve, ks_check
    from srgan_core.toygan import load_toy_generator

    spec = NoiseSpec(kind=args.noise, a=args.a, b=args.b, fraction=args.fraction)
    generator = load_toy_generator(args.generator)
    about = {"generator": args.generator or "toygan_default", "source": spec.describe(), "target": generator.target,
             "n": args.n, "alpha": args.alpha}
    if args.trials == 1:
        r = ks_check(generator, spec, n=args.n, alpha=args.alpha, seed=args.seed)
        if args.json:
            print(json.dumps({**about, "trials": 1, "p_value": r.p_value, "statistic": r.statistic,
                              "flagged": r.flagged, "verdict": r.verdict}))
        else:
            print(f"source {r.source}, n = {r.n}: KS statistic {r.statistic:.4f}, p-value {r.p_value:.4g}")
            print(r.verdict)
        return 0
    curve = detection_curve(generator, spec, sizes=[args.n], trials=args.trials, alpha=args.alpha, seed=args.seed)
    rate = curve.flag_rate[0]
    flagged = round(rate * args.trials)
    if args.json:
        print(json.dumps({**about, "trials": args.trials, "flag_rate": rate, "flagged": flagged}))
    else:
        print(f"source {curve.source}, n = {args.n}: flagged {flagged} of {args.trials} trials "
              f"({rate:.1%}) at alpha {args.alpha:g} against {curve.target}")
    return 0


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
        "bicubic_skip": "add a bicubic upsampling of the input to the generator's output (not in the paper; "
        "the network then learns only the missing detail and converges much faster)",
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


def _output_name(path: "Path", files: list) -> str:
    """NAME.png, or NAME_EXT.png when another input shares the stem (a.jpg and a.png both exist)."""
    if sum(f.stem == path.stem for f in files) > 1:
        return f"{path.stem}_{path.suffix.lstrip('.')}.png"
    return path.stem + ".png"


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
        outputs = [dst / _output_name(f, files) for f in files]
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
