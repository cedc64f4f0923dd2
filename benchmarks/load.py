"""A burst of users against the running app: concurrent SR requests and toy-GAN trainings.

    python benchmarks/load.py --url http://127.0.0.1:7860      # a server you started (scripts/app.sh)
    python benchmarks/load.py                                  # starts `python app.py` itself
    python benchmarks/load.py --sr 20 --identical 12 --toy 5 --sr-size 256 --toy-epochs 2000 --json

Every request comes from its own gradio_client session, all submitted at the same moment, the
way a Space sees a burst of traffic. It reports, per request, whether it was answered, queued
(and how deep) or refused; latency percentiles (submit to final answer; for trainings also to
the first streamed update); how long the page itself (GET /config) took to answer meanwhile;
and the server's resident memory (the process and its children) before and at its peak.
Nothing runs longer than --deadline: requests still open then are cancelled and counted as
unanswered.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, no install step
from srgan_core.checks import positive_arg, whole_arg  # noqa: E402 - the project's argument checks

MB = 1024 * 1024


@dataclass
class Outcome:
    """One request. status: answered | refused (a message for the user) | error (anything
    else) | unanswered (still open at the deadline)."""

    kind: str  # "sr" or "toy"
    endpoint: str
    status: str = "unanswered"
    latency_s: float | None = None  # submit -> final answer
    started_s: float | None = None  # submit -> seen running (left the queue)
    first_update_s: float | None = None  # toy trainings: submit -> first streamed update
    max_rank: int | None = None  # deepest place in the queue seen (0 = next to run)
    check: str = ""  # what the answer held (sizes, final epoch) or the message
    ok: bool = False  # the answer is what was asked for
    digest: str = ""  # SR: hash of the output's pixels


@dataclass
class LoadReport:
    outcomes: list[Outcome]
    wall_s: float
    rss_baseline_mb: float | None = None
    rss_peak_mb: float | None = None
    page_latency_max_s: float | None = None  # GET /config while the burst ran
    page_failures: int = 0
    settings: dict = field(default_factory=dict)

    def latencies(self, kind: str) -> list[float]:
        return sorted(o.latency_s for o in self.outcomes if o.kind == kind and o.latency_s is not None)

    def percentiles(self, kind: str, which: str = "latency_s") -> dict[str, float]:
        values = sorted(getattr(o, which) for o in self.outcomes if o.kind == kind and getattr(o, which) is not None)
        if not values:
            return {}
        return {f"p{q}": round(percentile(values, q), 2) for q in (50, 90, 95, 99)} | {"max": round(values[-1], 2)}

    def lines(self) -> list[str]:
        counts = {}
        for o in self.outcomes:
            counts[(o.kind, o.status)] = counts.get((o.kind, o.status), 0) + 1
        queued = {k: sum(1 for o in self.outcomes if o.kind == k and (o.max_rank or 0) > 0) for k in ("sr", "toy")}
        out = [f"burst of {len(self.outcomes)} requests, {self.wall_s:.1f} s wall: "
               + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(counts.items()))]
        for kind, label in (("sr", "SR requests"), ("toy", "toy trainings")):
            p = self.percentiles(kind)
            if p:
                out.append(f"{label:<14} latency s  " + "  ".join(f"{k} {v:.2f}" for k, v in p.items())
                           + f"  (queued behind others: {queued[kind]})")
        for kind, label in (("sr", "SR requests"), ("toy", "toy trainings")):
            started = self.percentiles(kind, "started_s")
            if started:
                out.append(f"{label:<14} started s  " + "  ".join(f"{k} {v:.2f}" for k, v in started.items()))
        first = self.percentiles("toy", "first_update_s")
        if first:
            out.append(f"{'toy trainings':<14} first update s  " + "  ".join(f"{k} {v:.2f}" for k, v in first.items()))
        if self.page_latency_max_s is not None:
            out.append(f"page (GET /config) while loaded: max {self.page_latency_max_s:.2f} s, "
                       f"{self.page_failures} failures")
        if self.rss_peak_mb is not None:
            out.append(f"server RSS: {self.rss_baseline_mb:.0f} MB before, {self.rss_peak_mb:.0f} MB peak "
                       f"(+{self.rss_peak_mb - self.rss_baseline_mb:.0f} MB)")
        return out

    def request_lines(self) -> list[str]:
        """One line per request, in submission order."""
        def cell(value: float | None, width: int) -> str:
            return f"{value:{width}.2f}" if value is not None else f"{'-':>{width}}"

        lines = [f"{'#':>3} {'endpoint':<14} {'status':<10} {'started s':>9} {'first s':>8} {'latency s':>9} "
                 f"{'queue':>5}  answer"]
        for i, o in enumerate(self.outcomes):
            lines.append(f"{i:>3} {o.endpoint:<14} {o.status:<10} {cell(o.started_s, 9)} {cell(o.first_update_s, 8)} "
                         f"{cell(o.latency_s, 9)} {o.max_rank or 0:>5}  {o.check}")
        return lines

    def to_dict(self) -> dict:
        return {**asdict(self), "percentiles": {k: self.percentiles(k) for k in ("sr", "toy")},
                "first_update": self.percentiles("toy", "first_update_s")}


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted list."""
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# ----------------------------------------------------------------------------- watching the server


def server_pid(url: str) -> int | None:
    """The process listening on the URL's port (needs psutil; None if it cannot be found)."""
    try:
        import psutil
    except ImportError:
        return None
    port = urlparse(url).port
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    return next((c.pid for c in conns if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN), None)


class RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        import psutil

        self.process, self.every = psutil.Process(pid), every
        self.stop_event = threading.Event()
        self.peak = self.now()

    def now(self) -> float:
        import psutil

        total = 0
        for p in [self.process, *self.process.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:  # a child that just ended
                pass
        return total / MB

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            try:
                self.peak = max(self.peak, self.now())
            except Exception:  # the server went away; the caller finds out separately
                return

    def stop(self) -> float:
        self.stop_event.set()
        self.join(timeout=5)
        return self.peak


class PageProber(threading.Thread):
    """GET /config twice a second: does the page still answer while the queue is busy?"""

    def __init__(self, url: str, every: float = 0.5, timeout: float = 10.0):
        super().__init__(daemon=True)
        self.url, self.every, self.timeout = url, every, timeout
        self.stop_event = threading.Event()
        self.worst, self.failures = 0.0, 0

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(self.url + "/config", timeout=self.timeout) as r:
                    r.read()
            except OSError:
                self.failures += 1
            self.worst = max(self.worst, time.monotonic() - t0)

    def stop(self) -> tuple[float, int]:
        self.stop_event.set()
        self.join(timeout=self.timeout + 2)
        return self.worst, self.failures


# ----------------------------------------------------------------------------- the burst


def make_images(folder: Path, n: int, size: int) -> list[Path]:
    """n noise images, sides between size/2 and size, so requests differ a little."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(size // 2, size + 1, 2))
        path = folder / f"burst_{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _check_sr(result, source: Path, endpoint: str, scale: int = 4) -> tuple[bool, str]:
    """Upscale returns the input `scale` times larger; Simulate returns the original size, cropped
    to a multiple of `scale` (it downscales first, then upscales back). Every file returned (the
    slider's two sides, the crops, the download) must be whole: each is decoded to the last pixel,
    so a file another request was still writing would fail here."""
    _, (bic_path, sr_path), _, crops_path, download = result
    with Image.open(source) as a:
        if endpoint == "/simulate":
            want = (a.width // scale * scale, a.height // scale * scale)
        else:
            want = (a.width * scale, a.height * scale)
        size = f"{a.width}x{a.height}"
    sizes = []
    for path in (bic_path, sr_path, crops_path, download):
        try:
            with Image.open(path) as im:
                im.load()
                sizes.append(im.size)
        except (OSError, SyntaxError, ValueError) as exc:
            return False, f"{Path(path).name} does not decode: {exc}"
    ok = sizes[0] == sizes[1] == sizes[3] == want
    return ok, f"{size} -> {sizes[3][0]}x{sizes[3][1]}, all files decode"


def _pixels_digest(result) -> str:
    """A hash of the downloaded output's pixels: identical requests must get identical images."""
    import hashlib

    with Image.open(result[-1]) as im:
        return hashlib.sha256(im.tobytes()).hexdigest()


def _check_toy(outputs: list, epochs: int) -> tuple[bool, str]:
    if not outputs:
        return False, "no updates"
    last = outputs[-1]
    # /train_toygan streams one status dict per update; a tuple of outputs is searched for one
    candidates = [last] if isinstance(last, dict) else list(last)
    status = next((v for v in candidates if isinstance(v, dict) and "epoch" in v), {})
    return bool(status.get("done")) and status.get("epoch") == epochs, \
        f"{len(outputs)} updates, epoch {status.get('epoch')} of {epochs}"


def run_load(
    url: str,
    *,
    sr: int = 20,
    toy: int = 5,
    sr_size: int = 256,
    toy_epochs: int = 2000,
    model: str = "srgan_x4",
    deadline_s: float = 150.0,
    pid: int | None = None,
    warmup: bool = True,
    identical: int = 0,
) -> LoadReport:
    """Submit `sr` SR requests (every fourth one /simulate, the rest /upscale) and `toy` toy-GAN
    trainings at once, each from its own session, and watch them to the end or the deadline.

    `warmup` first sends one small request of each kind and waits for it, so one-off costs of a
    fresh server (reading the weights, plotly's first figure) count neither in the latencies nor
    in the memory growth; the idle RSS is measured after it. `identical` more /upscale requests
    send the very same image at the same moment: each must get a whole, decodable result, and
    all of them the same pixels (a server that writes results to one shared path per content
    would hand some of them a file another request is rewriting)."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    RUNNING = (Status.PROCESSING, Status.ITERATING, Status.PROGRESS)
    pid = pid or server_pid(url)
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        tmp_path = Path(tmp)
        images = make_images(tmp_path, sr, sr_size)
        images += make_images(tmp_path / "same", 1, sr_size) * identical if identical else []
        sr += identical
        n = sr + toy
        with ThreadPoolExecutor(8) as pool:  # a session per request, like separate browser tabs
            clients = list(pool.map(lambda i: Client(url, verbose=False, download_files=str(tmp_path / f"c{i}")),
                                    range(n)))
        if warmup:
            (tmp_path / "warmup").mkdir()
            small = make_images(tmp_path / "warmup", 1, 64)[0]
            clients[0].submit(handle_file(str(small)), model, api_name="/simulate").result(timeout=deadline_s)
            clients[-1].submit("normal", 100, 1e-3, 32, 0, api_name="/train_toygan").result(timeout=deadline_s)
        sampler = RssSampler(pid) if pid else None
        baseline = sampler.peak if sampler else None
        prober = PageProber(url)
        if sampler:
            sampler.start()
        prober.start()

        outcomes: list[Outcome] = []
        try:
            jobs = []
            t0 = time.monotonic()
            for i in range(n):
                if i < sr:
                    endpoint = "/simulate" if i % 4 == 3 and i < sr - identical else "/upscale"
                    outcome = Outcome("sr", endpoint)
                    job = clients[i].submit(handle_file(str(images[i])), model, api_name=endpoint)
                else:
                    outcome = Outcome("toy", "/train_toygan")
                    job = clients[i].submit("normal", toy_epochs, 1e-3, 32, i, api_name="/train_toygan")
                outcomes.append(outcome)
                jobs.append(job)

            open_jobs = set(range(n))
            while open_jobs and time.monotonic() - t0 < deadline_s:
                for i in list(open_jobs):
                    job, o = jobs[i], outcomes[i]
                    status = job.status()
                    if status.code == Status.IN_QUEUE and status.rank is not None:
                        o.max_rank = max(o.max_rank or 0, status.rank)
                    if o.started_s is None and status.code in RUNNING:
                        o.started_s = time.monotonic() - t0
                    if o.kind == "toy" and o.first_update_s is None and job.outputs():
                        o.first_update_s = time.monotonic() - t0
                    if not job.done():
                        continue
                    open_jobs.discard(i)
                    o.latency_s = time.monotonic() - t0
                    _settle(job, o, images[i] if o.kind == "sr" else None, toy_epochs)
                time.sleep(0.1)
            for i in open_jobs:
                jobs[i].cancel()
                outcomes[i].check = f"no answer within {deadline_s:.0f} s"
            wall = time.monotonic() - t0
        finally:  # the watchers stop and the sessions close even if the burst itself failed
            peak = sampler.stop() if sampler else None
            worst_page, page_failures = prober.stop()
            for c in clients:
                c.close()
    same = [o for o in outcomes[sr - identical:sr] if o.status == "answered"] if identical else []
    if len({o.digest for o in same}) > 1:
        for o in same:
            o.ok, o.check = False, o.check + "; identical requests got different images"
    settings = dict(sr=sr, identical=identical, toy=toy, sr_size=sr_size, toy_epochs=toy_epochs, model=model, deadline_s=deadline_s)
    return LoadReport(outcomes, wall, baseline, peak, worst_page, page_failures, settings)


def _settle(job, o: Outcome, source: Path | None, toy_epochs: int) -> None:
    try:
        result = job.result(timeout=0)
    except Exception as exc:  # the message is the finding: a polite refusal or an error
        text = str(exc)
        polite = "queue" in text.lower() or "busy" in text.lower() or "try again" in text.lower()
        o.status, o.check = ("refused" if polite else "error"), f"{type(exc).__name__}: {text[:200]}"
        return
    o.status = "answered"
    if o.kind == "sr":
        o.ok, o.check = _check_sr(result, source, o.endpoint)
        if o.ok:
            o.digest = _pixels_digest(result)
    else:
        if o.first_update_s is None:
            o.first_update_s = o.latency_s
        if o.started_s is None:  # ran between two looks at its status
            o.started_s = o.first_update_s
        o.ok, o.check = _check_toy(job.outputs(), toy_epochs)


def tiny_weights(folder: Path) -> str:
    """srgan_x4 and srresnet_x4 as tiny random-init generators, plus the bundled toy generator."""
    import shutil

    import torch

    from srgan_core.models import Generator, GeneratorConfig
    from srgan_core.weights import WEIGHTS_DIR, save_generator

    for seed, name in enumerate(("srgan_x4", "srresnet_x4")):
        torch.manual_seed(seed)
        save_generator(Generator(GeneratorConfig(channels=8, blocks=1)), folder / name,
                       description=f"tiny random-init {name} (load benchmark)")
    for f in WEIGHTS_DIR.glob("toygan_default.*"):
        shutil.copy(f, folder / f.name)
    return str(folder)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running app; default: start `python app.py` on a free port")
    p.add_argument("--sr", type=whole_arg(0), default=20, help="concurrent SR requests")
    p.add_argument("--identical", type=whole_arg(0), default=12,
                   help="more /upscale requests, all with the same image: each must get a whole, identical result")
    p.add_argument("--toy", type=whole_arg(0), default=5, help="concurrent toy-GAN trainings")
    p.add_argument("--sr-size", type=whole_arg(2), default=256, help="largest side of the SR inputs, px")
    p.add_argument("--toy-epochs", type=whole_arg(1), default=2000)
    p.add_argument("--model", default="srgan_x4", help="model choice sent with each SR request")
    p.add_argument("--deadline", type=positive_arg, default=300.0, help="seconds before open requests are cancelled")
    p.add_argument("--tiny", action="store_true", help="when starting the app: serve tiny random-init generators "
                   "(8 channels, 1 block) instead of weights/, to measure the serving path, not the model")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args()
    kwargs = dict(sr=args.sr, identical=args.identical, toy=args.toy, sr_size=args.sr_size, toy_epochs=args.toy_epochs, model=args.model,
                  deadline_s=args.deadline)
    if args.url:
        report = run_load(args.url.rstrip("/"), **kwargs)
    else:
        sys.path.insert(0, str(ROOT / "tests"))  # the same server helper the tests use
        from app_server import running_app

        with tempfile.TemporaryDirectory(prefix="load-weights-") as weights:
            env = {"SRGAN_WEIGHTS_DIR": tiny_weights(Path(weights))} if args.tiny else {}
            with running_app(env=env) as url:
                report = run_load(url, **kwargs)
    print(json.dumps(report.to_dict(), indent=1) if args.json else "\n".join(report.request_lines() + report.lines()))
    return 0 if all(o.status in ("answered", "refused") for o in report.outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
