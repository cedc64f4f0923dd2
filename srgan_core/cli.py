"""`python -m srgan_core ...`: the command-line shell over the library.

Every command prints a one-line error and exits non-zero on bad input; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---------------------------------------------------------------- toy GAN and anomaly commands
# (section owned by the toy-GAN work: parsers and handlers for `toygan` and `anomaly`)


def add_toygan_parsers(sub: argparse._SubParsersAction) -> None:
    from srgan_core.anomaly import NOISE_KINDS, NoiseSpec
    from srgan_core.flags import add_config_flags
    from srgan_core.toygan import ToyGANConfig

    p = sub.add_parser(
        "toygan",
        help="train the 1-D toy GAN (U(0,1) noise -> N(mu, sigma)) and report how well it learned",
        description="Train the toy GAN: G 1-50-1 and D 1-128-128-1, 1000 observed target samples; one epoch is "
        "one mini-batch step (D on 32 real + 32 generated values, then G through D). Prints the time, the "
        "final losses and the KS p-value of 100 generated values against the target; --out saves the generator "
        "for `anomaly --generator`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", metavar="PATH", help="save the generator as PATH.safetensors + PATH.json")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_config_flags(p.add_argument_group("the run (one flag per ToyGANConfig field)"), ToyGANConfig)
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

    from srgan_core.flags import config_from_args, config_to_flags
    from srgan_core.toygan import ToyGANConfig, save_toy_generator, train

    config = config_from_args(ToyGANConfig, args)
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
        import shlex

        command = shlex.join(["python", "-m", "srgan_core", "toygan", *shlex.split(config_to_flags(config)),
                              "--out", args.out])
        saved = save_toy_generator(generator, args.out, training={
            "data": f"{config.n_real} samples of {generator.target}, drawn from the seed",
            "epochs": config.epochs, "wall_time_s": round(snap.elapsed_s, 2), "command": command,
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
    from srgan_core.flags import add_config_flags
    from srgan_core.train import TrainConfig

    p = sub.add_parser(
        "train",
        help="train SRResNet (MSE) or SRGAN (adversarial)",
        description="Train a super-resolution generator. Every flag maps one to one onto TrainConfig and is "
        "saved in RUN/config.json; `--resume RUN` continues a run exactly where its last checkpoint stopped "
        "(flags given with it change the saved settings, e.g. a longer --iterations). "
        "Runs unchanged under `torchrun --nproc_per_node N` (DistributedDataParallel).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its saved config")
    add_config_flags(p.add_argument_group("the run (one flag per TrainConfig field)"), TrainConfig)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from srgan_core.flags import config_from_args
    from srgan_core.train import TrainConfig, train

    if args.resume:
        config_file = Path(args.resume) / "config.json"
        if not config_file.exists():
            raise CLIError(f"{args.resume} is not a run folder (no config.json)")
        if hasattr(args, "out") and Path(args.out) != Path(args.resume):
            raise CLIError("--resume continues the run in its own folder; leave out --out")
        cfg = replace(config_from_args(TrainConfig, args, base=TrainConfig.from_json(config_file)), out=args.resume)
    else:
        cfg = config_from_args(TrainConfig, args)
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
        "the exit status is non-zero if any failed. Large images are processed in overlapping tiles. "
        "The default model is the first bundled one of real_x4, srgan_x4, srresnet_x4: real_x4 is trained on "
        "camera-like degradations (blur, noise, JPEG) and suits photos; srgan_x4 (sharp) and srresnet_x4 "
        "(smooth, highest PSNR) learned clean bicubic downscaling and suit clean renders and screenshots. "
        "--strength S blends srresnet_x4 into srgan_x4 (network interpolation) to pick a point in between.",
    )
    p.add_argument("input", metavar="IN", help="an image file or a folder of images")
    p.add_argument("output", metavar="OUT", help="output image file (format from its suffix) or folder")
    p.add_argument("--weights", default=None, help="a path, a bundled name (real_x4, srgan_x4, srresnet_x4) or "
                   "hf://owner/repo/NAME[@revision]; default: real_x4 if bundled (camera/JPEG photos), else "
                   "srgan_x4, else srresnet_x4 (clean renders)")
    p.add_argument("--strength", type=float, default=None, metavar="S",
                   help="GAN strength from 0 to 1: the weights (1-S)*PSNR model + S*GAN model; 0 gives exactly "
                   "srresnet_x4's output, 1 exactly srgan_x4's (in steps of 0.01)")
    p.add_argument("--weights-psnr", default=None, metavar="A",
                   help="with --strength: the PSNR-trained end (default: srresnet_x4)")
    p.add_argument("--weights-gan", default=None, metavar="B",
                   help="with --strength: the GAN end, fine-tuned from A with the same architecture "
                   "(default: srgan_x4)")
    p.add_argument("--bicubic", action="store_true", help="plain bicubic interpolation instead of a model")
    p.add_argument("--tile", type=int, default=None, help="widest column strip in input pixels (default: 1024, a fixed constant; wider images are cut into strips)")
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
    pair = (args.weights_psnr, args.weights_gan)
    if args.strength is None and any(pair):
        raise CLIError("--weights-psnr and --weights-gan name the two ends of a blend; give --strength too")
    if args.strength is not None and (args.weights or args.bicubic):
        raise CLIError(f"--strength blends two models; it does not go with {'--weights' if args.weights else '--bicubic'}"
                       " (name the ends with --weights-psnr and --weights-gan)")
    if args.bicubic:
        run = lambda image: up.bicubic(image, 4)  # noqa: E731
    elif args.strength is not None:
        from srgan_core.interpolate import INTERPOLATION_PAIR, check_strength

        check_strength(args.strength)  # before any file is loaded
        pair = tuple(given or default for given, default in zip(pair, INTERPOLATION_PAIR))
        upscaler = up.Upscaler(pair, strength=args.strength, **({"tile": tile} if tile else {}))
        run = upscaler.upscale
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
    from srgan_core.degrade import PRESETS

    p = sub.add_parser(
        "evaluate",
        help="PSNR/SSIM, detail, grid artifacts and NIQE of a model or bicubic on a folder of HR images",
        description="Score a model the way SR papers do: crop each HR image to a multiple of the scale, "
        "degrade it (clean bicubic by default), upscale it back, and compare on the Y channel (BT.601) with a "
        "`scale`-pixel border ignored. Besides PSNR and SSIM: detail (edge energy over the HR image's), grid "
        "(periodicity on the upscaler's pixel grid over the HR image's; 1 = as periodic as the photo) and "
        "NIQE (naturalness without a reference; lower is better). Prints a per-image table and the means "
        "(grid: the median).",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="folder of HR images, e.g. Set5")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--weights", default=None, help="model to score (path, bundled name or hf:// reference)")
    which.add_argument("--bicubic", action="store_true", help="score plain bicubic interpolation")
    p.add_argument("--scale", type=int, default=4, help="downscaling factor; must match the model's")
    p.add_argument("--degradation", choices=list(PRESETS), default="bicubic",
                   help="how the LR input is made from each HR image (bicubic: the papers' clean convention)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object {"psnr", "ssim", "detail", "grid", "niqe", "images": [...]} on stdout')
    p.add_argument("--update-sidecar", action="store_true",
                   help="write the scores into the local weights' JSON sidecar under metrics[SET] "
                   "(metrics[SET@DEGRADATION] for other degradations); with --strengths, the points into the "
                   "GAN model's sidecar (its model card plots them)")
    p.add_argument("--strengths", type=float, nargs="+", metavar="S",
                   help="perception-distortion points instead: PSNR and NIQE of bicubic, of the PSNR/GAN blend at "
                   "each strength S (0 = --weights-psnr, 1 = --weights-gan) and NIQE of the HR photos")
    p.add_argument("--weights-psnr", default="srresnet_x4", help="with --strengths: the PSNR model (strength 0)")
    p.add_argument("--weights-gan", default="srgan_x4", help="with --strengths: the GAN model (strength 1)")
    p.set_defaults(func=cmd_evaluate)


def cmd_perception_distortion(args: argparse.Namespace) -> int:
    import json

    from srgan_core.evaluate import blend_points, update_sidecar_points
    from srgan_core.weights import load_generator

    points = blend_points(args.data, args.strengths, args.weights_psnr, args.weights_gan, args.scale, args.degradation)
    if args.update_sidecar:
        gan = load_generator(args.weights_gan)
        if gan.fallback_reason:
            raise CLIError(f"{args.weights_gan}: not a local weights file; its sidecar cannot be updated")
        command = (f"python -m srgan_core evaluate --data DATA/{Path(args.data).name} --strengths "
                   + " ".join(f"{s:g}" for s in args.strengths) + " --update-sidecar")
        written = update_sidecar_points(gan.path, Path(args.data).name, args.degradation, points, command)
        print(f"wrote perception_distortion into {written}", file=sys.stderr)
    if args.json:
        print(json.dumps(points, indent=1))
    else:
        print(f"{'method':<16}{'PSNR dB':>10}{'NIQE':>8}   on {Path(args.data).name} (NIQE: lower = more natural)")
        for pt in points:
            psnr = "-" if pt["psnr"] is None else f"{pt['psnr']:.2f}"
            niqe = "-" if pt["niqe"] is None else f"{pt['niqe']:.2f}"
            print(f"{pt['method']:<16}{psnr:>10}{niqe:>8}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from srgan_core.evaluate import bicubic_upscale, evaluate, metrics_key, update_sidecar

    if args.scale not in (2, 4, 8):
        raise CLIError(f"--scale must be 2, 4 or 8, got {args.scale}")
    if args.strengths:
        if args.bicubic or args.weights:
            raise CLIError("--strengths scores blends of --weights-psnr and --weights-gan; leave out --weights/--bicubic")
        return cmd_perception_distortion(args)
    if args.update_sidecar and (args.bicubic or not args.weights or str(args.weights).startswith("hf://")):
        raise CLIError("--update-sidecar writes into a local model's sidecar: give --weights PATH or a bundled name")
    loaded = None
    if args.bicubic:
        fn, method = bicubic_upscale(args.scale), "bicubic"
    else:
        from srgan_core.upscale import Upscaler

        upscaler = Upscaler(args.weights)
        if upscaler.scale != args.scale:
            raise CLIError(f"the model upscales x{upscaler.scale}, but --scale is {args.scale}")
        fn, method, loaded = upscaler.upscale, upscaler.name, upscaler.loaded
    if args.update_sidecar and (loaded is None or loaded.fallback_reason):
        raise CLIError(f"{args.weights}: not a local weights file; its sidecar cannot be updated")
    result = evaluate(args.data, fn, args.scale, method, degradation=args.degradation)
    written = update_sidecar(loaded.path, result) if args.update_sidecar else None
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        def show(value: float | None, width: int, digits: int) -> str:
            return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

        where = "" if args.degradation == "bicubic" else f", LR by {args.degradation}"
        print(f"{method} x{args.scale} on {result.data} (Y channel, {args.scale} px border cropped{where}; "
              "grid: median over images)")
        print(f"{'image':<16}{'PSNR dB':>10}{'SSIM':>9}{'detail':>9}{'grid':>9}{'NIQE':>8}")
        for im in result.images:
            print(f"{im.name:<16}{im.psnr:>10.2f}{im.ssim:>9.4f}{im.detail:>9.3f}{show(im.grid, 9, 2)}{show(im.niqe, 8, 2)}")
        print(f"{'mean':<16}{result.psnr:>10.2f}{result.ssim:>9.4f}{result.detail:>9.3f}"
              f"{show(result.grid, 9, 2)}{show(result.niqe, 8, 2)}")
    if written:
        print(f"wrote metrics[{metrics_key(result.data, result.degradation)!r}] into {written}", file=sys.stderr)
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


def add_blend_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "blend",
        help="write the network interpolation of two weights files as a new one",
        description="Write theta = (1 - S) * theta_A + S * theta_B as a weights file with a sidecar naming both "
        "sources and S (the GAN strength of `upscale --strength`, kept). With two checkpoints of one basin, "
        "e.g. a model and its own fine-tuning, this is a weight average that keeps what both learnt.",
    )
    p.add_argument("a", metavar="A", help="weights at strength 0 (a path, a bundled name or hf://...)")
    p.add_argument("b", metavar="B", help="weights at strength 1, of the same architecture")
    p.add_argument("--strength", type=float, required=True, metavar="S", help="0 gives A, 1 gives B")
    p.add_argument("--out", required=True, metavar="PATH", help="output weights path (PATH.safetensors + PATH.json)")
    p.set_defaults(func=cmd_blend)


def cmd_blend(args: argparse.Namespace) -> int:
    from srgan_core.interpolate import interpolate_generators
    from srgan_core.weights import load_generator, save_generator

    a, b = load_generator(args.a), load_generator(args.b)
    for side in (a, b):
        if side.fallback_reason:
            raise CLIError(f"{side.source}: {side.fallback_reason}")
    blended = interpolate_generators(a, b, args.strength)
    training = dict(b.meta.get("training", {}))
    training["blend"] = {"a": str(args.a), "b": str(args.b), "strength": args.strength,
                         "command": f"python -m srgan_core blend {args.a} {args.b} --strength {args.strength:g} --out {args.out}"}
    out = save_generator(blended.model, args.out, description=b.meta.get("description", ""), training=training)
    print(f"wrote {out} = {1 - args.strength:g} x {args.a} + {args.strength:g} x {args.b}")
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
    add_blend_parser(sub)
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
