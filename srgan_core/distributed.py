"""torchrun support: the process group, and one stop decision for all processes.

A plain `python` run is world size 1 with no process group. Under `torchrun`, every process
must leave the loop at the same iteration, or the ones still training wait forever in the next
gradient all-reduce: Ctrl-C, SIGTERM and the --max-minutes clock are therefore turned into a
flag that is OR-ed over all ranks once per iteration.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


class StopRequest:
    """SIGINT/SIGTERM set a flag that the loop reads between iterations (instead of dying mid-step)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old = {}

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: keep the default behaviour
                pass
        return self

    def _handle(self, signum: int, frame) -> None:  # noqa: ANN001
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def should_stop(local: bool, env: Dist) -> bool:
    """Every process stops at the same iteration: the decision is the OR over all ranks."""
    if env.world == 1:
        return local
    flag = torch.tensor([1.0 if local else 0.0], device=env.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())
