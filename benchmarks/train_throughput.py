"""Training throughput of one SRGAN iteration, split by stage.

    python benchmarks/train_throughput.py [--channels 64 --blocks 16 --batch-size 16 --patch 96] [--json]

Prints samples/s for the whole iteration and the time of each part: G forward, content loss,
D update (forward + backward + step on real and fake), adversarial term through D, G backward +
step. The default configuration is the paper's (B=16, C=64, batch 16 of 96 px HR patches).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, no install step

from srgan_core import losses
from srgan_core.checks import whole_arg
from srgan_core.models import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=whole_arg(1), default=64)
    p.add_argument("--blocks", type=whole_arg(1), default=16)
    p.add_argument("--d-channels", type=whole_arg(1), default=64)
    p.add_argument("--batch-size", type=whole_arg(1), default=16)
    p.add_argument("--patch", type=whole_arg(1), default=96)
    p.add_argument("--iterations", type=whole_arg(1), default=5, help="timed iterations (after 2 warm-up ones)")
    p.add_argument("--threads", type=whole_arg(0), default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cl = torch.channels_last
    g = Generator(GeneratorConfig(channels=args.channels, blocks=args.blocks)).to(memory_format=cl)
    d = Discriminator(DiscriminatorConfig(base_channels=args.d_channels)).to(memory_format=cl)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-4), torch.optim.Adam(d.parameters(), 1e-4)
    hr = torch.rand(args.batch_size, 3, args.patch, args.patch).contiguous(memory_format=cl)
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True).contiguous(memory_format=cl)

    parts: dict[str, list[float]] = {k: [] for k in ("g_forward", "content_loss", "d_update", "adversarial", "g_backward_step", "total")}
    for i in range(args.iterations + 2):
        t0 = time.perf_counter()
        sr = g(lr)
        t1 = time.perf_counter()
        content = losses.content_loss(sr, hr)
        t2 = time.perf_counter()
        d.requires_grad_(True)
        real_logits, fake_logits = d(torch.cat([hr, sr.detach()])).chunk(2)
        d_loss = losses.discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        t3 = time.perf_counter()
        d.requires_grad_(False)
        adversarial = losses.adversarial_loss(d(sr))
        t4 = time.perf_counter()
        opt_g.zero_grad()
        (content + losses.ADVERSARIAL_WEIGHT * adversarial).backward()  # backward through D and G
        opt_g.step()
        t5 = time.perf_counter()
        if i >= 2:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0)):
                parts[k].append(v)
    median = {k: statistics.median(v) for k, v in parts.items()}
    result = {"config": vars(args), "threads": torch.get_num_threads(),
              "samples_per_s": args.batch_size / median["total"], "seconds": median}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"SRGAN iteration: G {args.blocks} blocks x {args.channels} ch, D base {args.d_channels}, "
          f"batch {args.batch_size} x {args.patch}px, {torch.get_num_threads()} threads")
    for k, v in median.items():
        print(f"  {k:<16}{v * 1000:>9.1f} ms  {100 * v / median['total']:>5.1f} %")
    print(f"  samples/s       {result['samples_per_s']:>9.2f}")


if __name__ == "__main__":
    main()
