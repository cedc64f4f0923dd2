"""Toy GAN speed: the plain PyTorch loop against the project's trainer, in one process, on one seed.

    python benchmarks/toygan.py                          # 30,000 epochs of the fast trainer
    python benchmarks/toygan.py --reference-epochs 30000 # the plain loop in full too (minutes)

The plain loop runs with 1 torch thread (its best for tensors this small) and with torch's default.

Both trainers run the same maths from the same seed: same data, initial weights and mini-batches,
same losses, same Adam. The plain loop is timed on --reference-epochs (its speed per epoch does
not change along a run) and its 30,000-epoch time is extrapolated unless you ask for all of it.
One-off warm-up costs (first calls, buffer allocation) are timed apart. Wall and CPU seconds are
both printed: on shared cores the wall clock also counts other people's work.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from srgan_core.checks import whole_arg  # noqa: E402
from srgan_core.toygan import MAX_EPOCHS, ToyGANConfig, reference_train, train  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fast(config: ToyGANConfig, snapshot_every: int | None = None):
    return list(train(config, snapshot_every=snapshot_every))[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=whole_arg(1, MAX_EPOCHS), default=30_000, help="epochs of the fast trainer")
    p.add_argument("--reference-epochs", type=whole_arg(1, MAX_EPOCHS), default=500,
                   help="epochs of the plain PyTorch loop")
    p.add_argument("--seed", type=whole_arg(0), default=0)
    args = p.parse_args()
    default_threads = torch.get_num_threads()
    config = ToyGANConfig(epochs=args.epochs, seed=args.seed)
    ref_config = replace(config, epochs=args.reference_epochs)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPU cores, load average {load}; torch {torch.__version__}, numpy {np.__version__}")

    torch.set_num_threads(1)
    _, warm_fast, _ = timed(lambda: fast(replace(config, epochs=20)))
    _, warm_ref, _ = timed(lambda: reference_train(replace(config, epochs=20)))
    print(f"warm-up, one-off (20 epochs each, first calls): fast trainer {warm_fast:.2f} s, PyTorch loop {warm_ref:.2f} s")

    rows = []
    for threads in sorted({1, default_threads}):  # 1 thread is the plain loop's best on tensors this small
        torch.set_num_threads(threads)
        _, ref_wall, ref_cpu = timed(lambda: reference_train(ref_config))
        rows.append((f"PyTorch loop, {threads} thread{'s' * (threads > 1)}", ref_config.epochs, ref_wall, ref_cpu))
    torch.set_num_threads(1)
    run, wall, cpu = timed(lambda: fast(config))
    _, stream_wall, stream_cpu = timed(lambda: fast(config, snapshot_every=500))
    rows.append(("fast trainer", config.epochs, wall, cpu))

    for name, epochs, w, c in rows:
        more = f"  ({config.epochs:,} epochs: ~{config.epochs * w / epochs:.0f} s)" if epochs != config.epochs else ""
        print(f"{name:24s} {epochs:>7,} epochs  {w:7.2f} s wall  {c:7.2f} s CPU  {epochs / w:7,.0f} epochs/s{more}")
    per_default = 30_000 / config.epochs
    print(f"fast trainer per 30,000 epochs (the default run): {cpu * per_default:.1f} s CPU, "
          f"{wall * per_default:.1f} s wall (target: 10 s)")
    for name, epochs, w, c in rows[:-1]:
        print(f"speed-up over the {name}: {(config.epochs / wall) / (epochs / w):.1f}x wall, "
              f"{(config.epochs / cpu) / (epochs / c):.1f}x CPU")
    print(f"with snapshots every 500 epochs: {stream_wall:.2f} s wall ({stream_wall / wall - 1:+.1%}), "
          f"{stream_cpu:.2f} s CPU ({stream_cpu / cpu - 1:+.1%})")

    # Same maths: identical until float rounding differences (torch and numpy sum in other orders)
    # get amplified by the GAN's dynamics, after some hundreds of epochs; re-rounding a single
    # gradient in either trainer does the same. tests/test_toygan.py checks 300 epochs tightly.
    check = replace(config, epochs=min(300, config.epochs))
    ref, same = reference_train(check), fast(check)
    diff = max(float(np.abs(same.generator.weights[k] - w).max()) for k, w in ref.generator.weights.items())
    print(f"same seed, same maths: after {check.epochs} epochs the trainers' generators differ by at most {diff:.1e}, "
          f"D's decision curves by {np.abs(same.decision - ref.decision).max():.1e}")
    print(f"final: D loss {run.d_loss:.3f}, G loss {run.g_loss:.3f}, KS distance of 1000 samples {run.ks_statistic:.3f}")


if __name__ == "__main__":
    main()
