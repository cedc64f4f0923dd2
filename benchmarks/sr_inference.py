"""CPU inference of the SRResNet/SRGAN generator: the naive way, PIL bicubic and our Upscaler.

    python benchmarks/sr_inference.py                 # LR 64..1024 px, then the app's latency
    python benchmarks/sr_inference.py --quick         # smoke test: two sizes, two repeats, no app
    python benchmarks/sr_inference.py --json          # the same figures as one JSON object
    python benchmarks/sr_inference.py --cases naive naive_cl folded_cl upscaler --sizes 256   # ablation

Cases, all on the same input (a seeded random LR image; speed does not depend on content):
  naive      eager fp32, NCHW, BatchNorm unfused, whole image, torch.no_grad
  bicubic    PIL's bicubic resize of the same image (the baseline an SR model must beat)
  upscaler   srgan_core.upscale.Upscaler.upscale on the same image as an 8-bit PIL image (what
             users call, conversions included): BN folded, channels-last, polyphase tail,
             streamed in row bands, torch.inference_mode. Its float output (upscale_tensor,
             run once more after the timing) is what is compared with the naive output.
  naive_cl, folded_cl, compiled   ablation steps: channels-last; + BN folded; + torch.compile

Each (case, size) runs in its own Python process, so its peak RSS (VmHWM) is its own. The
model is the default GeneratorConfig() (16 blocks, 64 channels, x4) with random weights: the
time does not depend on the values. GFLOP/s counts 2 FLOPs per multiply-add, with the
multiply-adds taken layer by layer from srgan_core.models.generator_macs_per_lr_pixel. The
Upscaler's output must match the naive output within 1e-4 at every size, or the exit status is 1.
"one-off ms" is setup plus the first call minus a warm call of the same size: what a technique
(folding BatchNorm, torch.compile) costs once per process, which the app pays at its start.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere, no install step
from srgan_core.checks import positive_arg, whole_arg  # noqa: E402 - the project's argument checks (no torch)

SIZES = (64, 128, 256, 512, 1024)
CASES = ("naive", "bicubic", "upscaler")
ABLATION = ("naive_cl", "folded_cl", "compiled")
MATCH_TOL = 1e-4
NAIVE_BYTES_PER_LR_PIXEL = 12_000  # measured: a whole 512x512 input needs about 3 GB the naive way
CASE_TIMEOUT_S = 3600
APP_START_TIMEOUT_S = 300
APP_REQUEST_TIMEOUT_S = 300


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process's own address space;
    ru_maxrss would not do: after exec it starts from the parent's peak (fork/vfork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ============================================================================ one case, in a child process


def run_case(case: str, size: int, repeats: int, budget_s: float, out_dir: Path, config: dict, save: bool) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from srgan_core.models import Generator, GeneratorConfig
    from srgan_core.upscale import Upscaler

    rss_import = peak_rss_mb()
    cfg = GeneratorConfig(**config)
    torch.manual_seed(0)
    model = Generator(cfg).eval()
    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    cl = torch.channels_last

    def as_image(t: torch.Tensor) -> Image.Image:
        return Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))

    t0 = time.perf_counter()
    prepare = lambda t: t  # noqa: E731  (the case's input made from the LR tensor)
    first_rows: list[float] = []
    if case == "naive":
        def fn(x):
            with torch.no_grad():
                return model(x)
    elif case == "bicubic":
        prepare = as_image

        def fn(image):
            return image.resize((image.width * cfg.scale, image.height * cfg.scale), Image.Resampling.BICUBIC)
    elif case == "upscaler":
        up = Upscaler(model)  # setup_ms: folding BatchNorm and laying out the weights
        prepare = as_image

        def fn(image):  # also notes when the first finished rows came out (what a page shows first)
            t0, seen = time.perf_counter(), []
            out = up.upscale(image, on_rows=lambda y, x, block: seen or seen.append(time.perf_counter() - t0))
            first_rows.append(seen[0])
            return out
    elif case in ABLATION:
        net = model
        if case != "naive_cl":
            import copy

            from torch.nn.utils.fusion import fuse_conv_bn_eval

            net = copy.deepcopy(model)
            for block in net.body:
                block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), torch.nn.Identity()
                block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), torch.nn.Identity()
            net.body_tail = torch.nn.Sequential(fuse_conv_bn_eval(net.body_tail[0], net.body_tail[1]))
        net = net.to(memory_format=cl)
        if case == "compiled":
            net = torch.compile(net)
        prepare = lambda t: t.contiguous(memory_format=cl)  # noqa: E731

        def fn(x):
            with torch.inference_mode():
                return net(x)
    else:
        raise SystemExit(f"unknown case {case!r}")
    setup_s = time.perf_counter() - t0

    # Warm-up (oneDNN creates its kernels, the allocator grows, torch.compile compiles) on at most
    # 256x256: what it prepares does not depend on the size, and the big naive runs take minutes.
    # torch.compile recompiles for a new shape, so it warms up at the full size.
    warm = size if case == "compiled" else min(size, 256)
    t0 = time.perf_counter()
    fn(prepare(lr[:, :, :warm, :warm]))
    warmup_s = time.perf_counter() - t0
    x = prepare(lr)
    times: list[float] = []
    while not times or (len(times) < repeats and sum(times) < budget_s):
        t0 = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - t0)
    rss = peak_rss_mb()
    # One-off cost = setup + the first call - what the same call costs once warm: the price of a
    # technique (folding, compiling) paid once per process, i.e. at the app's start.
    if warm == size:
        steady_s = statistics.median(times)
    else:
        small = prepare(lr[:, :, :warm, :warm])
        t0 = time.perf_counter()
        fn(small)
        steady_s = time.perf_counter() - t0
    if save:
        if case == "upscaler":  # its float output, for the match check (after the peak RSS is taken)
            out = up.upscale_tensor(lr)
        if isinstance(out, torch.Tensor):
            np.save(out_dir / f"{case}_{size}.npy", out.clamp(0, 1).float().numpy())
    return {
        "case": case, "size": size, "times_ms": [t * 1e3 for t in times], "warmup_ms": warmup_s * 1e3,
        "setup_ms": setup_s * 1e3, "one_off_ms": max(0.0, setup_s + warmup_s - steady_s) * 1e3,
        "peak_rss_mb": rss, "import_rss_mb": rss_import, "threads": torch.get_num_threads(),
        **({"first_rows_ms": statistics.median(first_rows[1:len(times) + 1]) * 1e3} if first_rows else {}),
    }


def probe_case(config: dict) -> dict:
    """What this CPU reaches on a large fp32 matrix product right now (a practical peak), and
    the model's multiply-adds: done in a child so that the parent never imports torch."""
    import torch

    from srgan_core.models import GeneratorConfig, generator_macs_per_lr_pixel

    cfg = GeneratorConfig(**config)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    times = []
    for _ in range(10):  # the best of ten: on a shared machine the median wanders by 2x from run to run
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return {"case": "probe", "gflops": 2 * 2048**3 / min(times) / 1e9, "threads": torch.get_num_threads(),
            "model": cfg.to_dict(), "macs_per_lr_pixel": generator_macs_per_lr_pixel(cfg)}


# ============================================================================ the machine


def cpu_info() -> dict:
    """Model, cores, clock and the fp32 peak they imply.

    Peak = cores x FMA pipes (2 on every x86 server core of the last decade) x fp32 lanes per FMA
    x 2 FLOPs x clock. Lanes come from the flags: 16 with avx512f, 8 with avx2/fma, 4 otherwise;
    but AMD Zen 2-4 (family 23/25) execute 512-bit instructions on 256-bit pipes, so they get 8.
    The clock is /proc/cpuinfo's current MHz, which in a VM is usually the base clock; cores boost
    above it, so a measured matrix product (see sgemm) can exceed this figure.
    """
    info: dict = {"machine": platform.machine(), "cores": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = (s.strip() for s in line.split(":", 1))
            fields.setdefault(key, value)
    flags = set(fields.get("flags", "").split())
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    mhz = float(fields.get("cpu MHz", "0") or 0)
    lanes = 16 if "avx512f" in flags else 8 if {"avx2", "fma"} <= flags else 4
    amd_256 = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") in ("23", "25")
    if amd_256 and lanes == 16:
        lanes = 8
    info.update(
        model=fields.get("model name", "?"), vendor=fields.get("vendor_id", "?"), family=fields.get("cpu family"),
        cores=affinity, mhz=mhz, avx512f="avx512f" in flags, avx512_bf16="avx512_bf16" in flags,
        amx="amx_tile" in flags, fp32_lanes_per_fma=lanes,
        fp32_peak_gflops=affinity * 2 * lanes * 2 * mhz / 1e3,
        peak_formula=f"{affinity} cores x 2 FMA pipes x {lanes} fp32 lanes x 2 FLOP x {mhz / 1e3:.2f} GHz"
        + (" (AMD Zen: 512-bit ops run on 256-bit pipes)" if amd_256 else ""),
    )
    return info


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


# ============================================================================ app latency


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_latency(config: dict, requests: int, base_env: dict[str, str]) -> dict:
    """Start `python app.py` on a free port and time /upscale of a 256x256 PNG through gradio_client.

    The app serves a default-size generator (random weights, saved as srgan_x4 in a temporary
    weights folder), so the figure is the same model as above plus upload, decoding, PNG
    encoding and download of every output file (fetched as a page does, over one connection). The
    picture is a 256x256 crop of an example photo (random noise when there is none: the worst case
    for PNG). "Beyond the model" is each request's time less the model's own time in it, as the
    app's table reports it. Requests that let gradio_client download the files itself are timed
    apart: it opens a new HTTP client per file. Cold start = launch of the process to the first
    answer received.
    """
    if not (ROOT / "app.py").exists():
        return {"skipped": "app.py not found"}
    try:
        import httpx
        import numpy as np
        import torch
        from gradio_client import Client, handle_file
        from PIL import Image

        from srgan_core.models import Generator, GeneratorConfig
        from srgan_core.weights import save_generator
    except ImportError as exc:
        return {"skipped": f"cannot import what the app check needs ({exc})"}

    with tempfile.TemporaryDirectory(prefix="sr-bench-app-") as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        save_generator(Generator(GeneratorConfig(**config)), tmp / "weights" / "srgan_x4",
                       description="random-init generator for the latency benchmark")
        src = tmp / "lr256.png"
        photos = sorted((ROOT / "examples").glob("*.png"))
        if photos:
            with Image.open(photos[0]) as photo:
                x, y = (photo.width - 256) // 2, (photo.height - 256) // 2
                photo.convert("RGB").crop((x, y, x + 256, y + 256)).save(src)
        else:
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(src)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(base_env, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
                   GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", SRGAN_WEIGHTS_DIR=str(tmp / "weights"))
        log = open(tmp / "app.log", "wb")
        t_launch = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    tail = (tmp / "app.log").read_text(errors="replace")[-400:].strip().splitlines()
                    return {"skipped": f"app.py exited with status {proc.returncode}: {tail[-1] if tail else ''}"}
                if time.perf_counter() - t_launch > APP_START_TIMEOUT_S:
                    return {"skipped": f"app.py did not serve within {APP_START_TIMEOUT_S} s"}
                try:
                    with urllib.request.urlopen(url + "/config", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.5)
            t_ready = time.perf_counter()
            # Two clients: one that downloads like a page (the answer, then every file it names over
            # one kept-alive connection), and gradio_client's own downloading, which opens a new
            # HTTP client per file (~0.1 s each here, whatever the server does).
            client = Client(url, verbose=False, download_files=False)
            endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
            if "/upscale" not in endpoints:
                return {"skipped": f"the app has no /upscale endpoint (it has {sorted(endpoints)})"}
            downloader = Client(url, verbose=False, download_files=str(tmp / "downloads"))
            latencies, model_s, gc_latencies = [], [], []
            with httpx.Client(timeout=APP_REQUEST_TIMEOUT_S) as http:
                for i in range(2 * requests + 1):
                    by_gradio_client = i > 0 and i % 2 == 0
                    t0 = time.perf_counter()
                    job = (downloader if by_gradio_client else client).submit(
                        handle_file(str(src)), "srgan_x4", api_name="/upscale")
                    outputs = job.result(timeout=APP_REQUEST_TIMEOUT_S)
                    if by_gradio_client:
                        gc_latencies.append(time.perf_counter() - t0)
                        continue
                    _, (left, right), table, crops, download = outputs
                    for f in (left, right, crops, download):  # what the page shows, and the file to save
                        http.get(f["url"]).raise_for_status()
                    latencies.append(time.perf_counter() - t0)
                    # the table's last row is the model, with its time in this request
                    model_s.append(float(table["data"][-1][table["headers"].index("time (s)")]))
                    if len(latencies) == 1:
                        cold = time.perf_counter() - t_launch
            beyond = [t - m for t, m in zip(latencies[1:], model_s[1:])]
            return {
                "start_to_serving_s": t_ready - t_launch, "cold_start_to_first_answer_s": cold,
                "first_request_s": latencies[0], "request_256_ms": statistics.median(latencies[1:]) * 1e3,
                "model_in_request_256_ms": statistics.median(model_s[1:]) * 1e3,
                "beyond_model_256_ms": statistics.median(beyond) * 1e3, "requests": len(latencies) - 1,
                "gradio_client_256_ms": statistics.median(gc_latencies) * 1e3,
            }
        except Exception as exc:  # a benchmark reports what went wrong and carries on
            return {"skipped": f"{type(exc).__name__}: {exc}"}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
            log.close()


# ============================================================================ the parent: run, compare, print


def spawn(args: list[str], env: dict[str, str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, cwd=ROOT, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        return {"error": tail[-1] if tail else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def max_abs_diff(a_path: Path, b_path: Path) -> float:
    import numpy as np

    a, b = np.load(a_path, mmap_mode="r"), np.load(b_path, mmap_mode="r")
    if a.shape != b.shape:
        return float("inf")
    step = max(1, a.shape[2] // 16)
    return max(float(np.abs(a[:, :, i:i + step] - b[:, :, i:i + step]).max()) for i in range(0, a.shape[2], step))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=whole_arg(1), nargs="+", default=None, help=f"LR sides (default {' '.join(map(str, SIZES))})")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES + ABLATION)
    p.add_argument("--repeats", type=whole_arg(1), default=3, help="timed runs per case and round, after a warm-up (default 3)")
    p.add_argument("--budget", type=positive_arg, default=30.0, help="seconds of timed runs per case and round, at least one run")
    p.add_argument("--rounds", type=whole_arg(1), default=2, help="the cases of each size run in turn this many times, each "
                   "in a fresh process; the median pools every run, so a burst of load on the machine hits all "
                   "cases alike (default 2)")
    p.add_argument("--quick", action="store_true", help="smoke test: LR 64 and 256, 2 repeats, no app")
    p.add_argument("--no-app", action="store_true", help="skip starting app.py for its latency")
    p.add_argument("--app-requests", type=whole_arg(1), default=3)
    p.add_argument("--threads", type=whole_arg(0), default=0, help="torch threads in every case (default: torch's choice)")
    p.add_argument("--omp-wait-policy", choices=["inherit", "passive", "active"], default="inherit",
                   help="OMP_WAIT_POLICY for every case and the app (default: this environment's). On a "
                   "machine busy with other work, 'passive' stops idle OpenMP threads spinning at each barrier")
    p.add_argument("--channels", type=whole_arg(1), default=64)
    p.add_argument("--blocks", type=whole_arg(1), default=16)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    p.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    config = {"channels": args.channels, "blocks": args.blocks}

    if args.case:  # child process
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        result = probe_case(config) if args.case == "probe" else run_case(
            args.case, args.size, args.repeats, args.budget, Path(args.out_dir), config, args.save)
        print(json.dumps(result))
        return 0

    sizes = args.sizes or ([64, 256] if args.quick else list(SIZES))
    repeats, rounds = (2, 1) if args.quick else (args.repeats, args.rounds)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    cpu = cpu_info()
    log(f"CPU: {cpu.get('model')}, {cpu.get('cores')} cores, {cpu.get('mhz', 0):.0f} MHz; load average {load_average()}")
    env = dict(os.environ)
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    log(f"OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(unset: spin, then sleep)')}, threads={args.threads or 'default'}")
    common = ["--repeats", str(repeats), "--budget", str(args.budget), "--channels", str(args.channels),
              "--blocks", str(args.blocks)] + (["--threads", str(args.threads)] if args.threads else [])
    sgemm = spawn(["--case", "probe", *common], env)
    if "error" in sgemm:
        raise SystemExit(f"the probe process failed: {sgemm['error']}")
    macs = sgemm["macs_per_lr_pixel"]
    log(f"fp32 peak from flags: {cpu.get('fp32_peak_gflops', 0):.0f} GFLOP/s = {cpu.get('peak_formula', '?')}; "
        f"sgemm 2048^3 now, best of 10: {sgemm.get('gflops', 0):.0f} GFLOP/s")
    if cpu.get("fp32_peak_gflops") and sgemm.get("gflops", 0) > cpu["fp32_peak_gflops"]:
        per_ghz = cpu["fp32_peak_gflops"] / (cpu["mhz"] / 1e3)
        cpu["sgemm_implied_ghz"] = sgemm["gflops"] / per_ghz
        log(f"  sgemm beats that peak: the cores run at >= {cpu['sgemm_implied_ghz']:.2f} GHz (boost), "
            f"not the {cpu['mhz'] / 1e3:.2f} GHz /proc/cpuinfo reports")

    results, matches, failed = [], {}, False
    with tempfile.TemporaryDirectory(prefix="sr-bench-") as tmp:
        for size in sizes:
            runs: dict[str, list[dict]] = {case: [] for case in args.cases}
            for rnd in range(rounds):
                for case in args.cases:
                    if case == "naive" and size * size * NAIVE_BYTES_PER_LR_PIXEL > available_memory():
                        runs[case].append({"skipped": f"needs ~{size * size * NAIVE_BYTES_PER_LR_PIXEL / 1e9:.0f} GB of RAM"})
                        continue
                    save = ["--save"] if rnd == 0 else []
                    r = spawn(["--case", case, "--size", str(size), "--out-dir", tmp, *save, *common], env)
                    runs[case].append(r)
                    if "times_ms" in r:
                        log(f"  {case:10s} {size:5d}^2  round {rnd + 1}: {', '.join(f'{t:.0f}' for t in r['times_ms'])} ms, "
                            f"peak RSS {r['peak_rss_mb']:.0f} MB, load {load_average().split()[0]}")
                    else:
                        log(f"  {case:10s} {size:5d}^2  {r.get('error')}")
            for case, rs in runs.items():
                ok = [r for r in rs if "times_ms" in r]
                if not ok:
                    results.append({"case": case, "size": size, "skipped": rs[0].get("skipped") or rs[0].get("error")})
                    continue
                times = [t for r in ok for t in r["times_ms"]]
                median = statistics.median(times)
                results.append({
                    "case": case, "size": size, "ms": median, "min_ms": min(times), "runs": len(times),
                    "gflops": None if case == "bicubic" else 2 * macs * size * size / (median / 1e3) / 1e9,
                    "warmup_ms": ok[0]["warmup_ms"], "setup_ms": ok[0]["setup_ms"],
                    "one_off_ms": statistics.median(r["one_off_ms"] for r in ok),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "import_rss_mb": ok[0]["import_rss_mb"],
                    "threads": ok[0]["threads"],
                    **({"first_rows_ms": statistics.median(r["first_rows_ms"] for r in ok)} if "first_rows_ms" in ok[0] else {}),
                })
            ref = Path(tmp) / f"naive_{size}.npy"
            for case in args.cases:
                mine = Path(tmp) / f"{case}_{size}.npy"
                if case not in ("naive", "bicubic") and ref.exists() and mine.exists():
                    diff = max_abs_diff(mine, ref)
                    matches[f"{case}_{size}"] = diff
                    failed |= diff > MATCH_TOL
            for f in Path(tmp).glob(f"*_{size}.npy"):
                f.unlink()

    by = {(r["case"], r["size"]): r for r in results}
    for r in results:
        naive = by.get(("naive", r["size"]), {})
        if "ms" in r and "ms" in naive:
            r["speedup"] = naive["ms"] / r["ms"]
            r["speedup_min"] = naive["min_ms"] / r["min_ms"]
        if "ms" in r:
            r["us_per_lr_pixel"] = r["ms"] * 1e3 / r["size"] ** 2

    def get(case: str, size: int, key: str):
        return by.get((case, size), {}).get(key)

    flat = None
    if get("upscaler", 256, "ms") and get("upscaler", 1024, "ms"):
        flat = get("upscaler", 1024, "us_per_lr_pixel") / get("upscaler", 256, "us_per_lr_pixel")
    app = {"skipped": "--quick or --no-app"} if (args.quick or args.no_app) else app_latency(config, args.app_requests, env)
    if "request_256_ms" in app and get("upscaler", 256, "ms"):  # against the model alone, measured above
        app["beyond_upscaler_256_ms"] = app["request_256_ms"] - get("upscaler", 256, "ms")
    summary = {
        "cpu": cpu, "sgemm_gflops": sgemm.get("gflops"), "load_average": load_average(),
        "omp_wait_policy": env.get("OMP_WAIT_POLICY"), "threads": sgemm.get("threads"),
        "model": {**sgemm["model"], "macs_per_lr_pixel": macs},
        "cases": results, "max_abs_diff_vs_naive": matches, "match_tolerance": MATCH_TOL, "match_ok": not failed,
        "speedup_256": get("upscaler", 256, "speedup"), "gflops_256": get("upscaler", 256, "gflops"),
        "time_per_pixel_1024_over_256": flat,
        "upscaler_peak_rss_mb": max((r["peak_rss_mb"] for r in results if r["case"] == "upscaler" and "peak_rss_mb" in r), default=None),
        "app": app,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_table(summary, sizes, args.cases)
    return 1 if failed else 0


def print_table(summary: dict, sizes: list[int], cases: list[str]) -> None:
    by = {(r["case"], r["size"]): r for r in summary["cases"]}
    print()
    print(f"{'LR size':>9} {'method':>10} {'median ms':>11} {'min ms':>10} {'runs':>4} {'GFLOP/s':>7} {'speed-up':>8} "
          f"{'(min)':>6} {'peak RSS':>9} {'us/LR px':>9} {'max |diff|':>10} {'one-off ms':>10}")
    for size in sizes:
        for case in cases:
            r = by.get((case, size), {})
            if "ms" not in r:
                print(f"{size:>7}^2 {case:>10}   {r.get('skipped') or r.get('error', '-')}")
                continue
            g = f"{r['gflops']:.0f}" if r.get("gflops") else "-"
            sp = f"{r['speedup']:.2f}x" if r.get("speedup") else "-"
            spm = f"{r['speedup_min']:.2f}x" if r.get("speedup_min") else "-"
            d = summary["max_abs_diff_vs_naive"].get(f"{case}_{size}")
            print(f"{size:>7}^2 {case:>10} {r['ms']:>11.1f} {r['min_ms']:>10.1f} {r['runs']:>4} {g:>7} {sp:>8} {spm:>6} "
                  f"{r['peak_rss_mb']:>6.0f} MB {r['us_per_lr_pixel']:>9.2f} {'-' if d is None else f'{d:.1e}':>10} "
                  f"{r['one_off_ms']:>10.0f}")
    first = [(size, by[("upscaler", size)]["first_rows_ms"]) for size in sizes if "first_rows_ms" in by.get(("upscaler", size), {})]
    if first:
        print("Upscaler's first finished rows after: " + ", ".join(f"{ms:.0f} ms at {size}^2" for size, ms in first))
    print()
    cpu = summary["cpu"]
    if summary.get("gflops_256"):
        peak = cpu.get("fp32_peak_gflops") or 0
        vs_naive = f"{summary['speedup_256']:.2f}x the naive path, " if summary.get("speedup_256") else ""
        vs_peak = (f"= {100 * summary['gflops_256'] / peak:.0f} % of the {peak:.0f} GFLOP/s flag peak, "
                   f"{100 * summary['gflops_256'] / summary['sgemm_gflops']:.0f} % of sgemm measured now"
                   if peak and summary.get("sgemm_gflops") else "")
        print(f"Upscaler at 256^2: {vs_naive}{summary['gflops_256']:.0f} GFLOP/s {vs_peak}")
    if summary.get("time_per_pixel_1024_over_256"):
        print(f"Upscaler time per pixel, 1024^2 / 256^2: {summary['time_per_pixel_1024_over_256']:.2f}")
    if summary.get("upscaler_peak_rss_mb"):
        print(f"Upscaler peak RSS, largest case: {summary['upscaler_peak_rss_mb']:.0f} MB "
              f"(of which {max(r['import_rss_mb'] for r in summary['cases'] if r['case'] == 'upscaler' and 'import_rss_mb' in r):.0f} MB is importing torch)")
    print(f"Output match vs naive within {summary['match_tolerance']}: {'yes' if summary['match_ok'] else 'NO'}")
    app = summary["app"]
    if "skipped" in app:
        print(f"App latency: skipped ({app['skipped']})")
    else:
        print(f"App: serving {app['start_to_serving_s']:.1f} s after launch; cold start to first answer "
              f"{app['cold_start_to_first_answer_s']:.1f} s; /upscale of a 256x256 PNG {app['request_256_ms']:.0f} ms "
              f"(median of {app['requests']}): the model {app['model_in_request_256_ms']:.0f} ms of it, "
              f"{app['beyond_model_256_ms']:.0f} ms beyond the model (target: at most 500); with gradio_client "
              f"downloading the files itself {app['gradio_client_256_ms']:.0f} ms")
        if "beyond_upscaler_256_ms" in app:
            print(f"App /upscale at 256^2 beyond the Upscaler's own median above: {app['beyond_upscaler_256_ms']:.0f} ms")
    print(f"Load average at the end: {summary['load_average']} on {cpu.get('cores')} cores")


if __name__ == "__main__":
    sys.exit(main())
