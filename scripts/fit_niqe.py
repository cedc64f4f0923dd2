"""Fit NIQE's pristine model on the training HR images and write it, with its provenance.

    python scripts/fit_niqe.py DATA/T91 DATA/BSDS200            # -> srgan_core/niqe_pristine.json

Only training images belong here: fitting on Set5/Set14 would let NIQE learn the very photos it
later judges outputs against. The file records the image count, a hash of the image list (names
and file hashes), the patch size, the sharpness rule, the date and this command.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from srgan_core.data import list_images  # noqa: E402
from srgan_core.niqe import PATCH, PRISTINE_PATH, SHARPNESS_THRESHOLD, fit_pristine  # noqa: E402

TEST_SETS = {"set5", "set14"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", metavar="DIR", help="folders of pristine (training) HR images")
    p.add_argument("--out", default=str(PRISTINE_PATH), help="where to write the model (default: the shipped file)")
    p.add_argument("--patch", type=int, default=PATCH, help="patch size in px (the paper's 96)")
    p.add_argument("--threshold", type=float, default=SHARPNESS_THRESHOLD,
                   help="keep patches at least this sharp relative to the image's sharpest (the paper's 0.75)")
    args = p.parse_args(argv)
    folders = [Path(f) for f in args.folders]
    if any(f.name.lower() in TEST_SETS for f in folders):
        p.error("Set5/Set14 are test images: fit the pristine model on training images only")
    paths = list_images(folders)
    start = time.time()
    model = fit_pristine(paths, args.patch, args.threshold,
                         progress=lambda i, n: print(f"{i}/{n} images", file=sys.stderr) if i % 50 == 0 else None)
    model.provenance.update({
        "method": "BT.601 luma; per 96x96 patch (and its half-size 48x48 copy) a GGD fit of the MSCN "
                  "coefficients and AGGD fits of their products with 4 neighbours: 36 features; patches kept "
                  "when their mean local contrast exceeds the threshold x the image's sharpest; mean and "
                  "covariance over the kept patches",
        "sets": [f.name for f in folders],
        "date": datetime.date.today().isoformat(),
        "command": "python scripts/fit_niqe.py " + " ".join(f"DATA/{f.name}" for f in folders)
        + (f" --patch {args.patch}" if args.patch != PATCH else "")
        + (f" --threshold {args.threshold}" if args.threshold != SHARPNESS_THRESHOLD else ""),
        "wall_time_s": round(time.time() - start, 1),
    })
    Path(args.out).write_text(model.dumps(), encoding="utf-8")
    pv = model.provenance
    print(f"wrote {args.out}: {pv['patches']} patches from {pv['images']} images "
          f"({pv['images_skipped_too_small']} smaller than {args.patch} px skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
