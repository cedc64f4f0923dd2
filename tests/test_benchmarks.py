"""benchmarks/sr_inference.py run end to end on a tiny generator, so the script that backs the
README's Performance table cannot rot: every case in its own process, the output match, the JSON
keys the README and the issue name, and the app started and timed through gradio_client.

The figures themselves are not asserted (speed belongs to the benchmark, not to a unit test);
what is asserted is that each one was measured and is a finite number in the right order.
benchmarks/toygan.py, the other script behind a README figure, is run the same way, briefly.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

from app_server import ROOT

SIZES = (16, 32)
CASES = ("naive", "bicubic", "upscaler")


def test_sr_inference_benchmark_measures_every_case_and_the_app():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sr_inference.py"), "--json", "--sizes", *map(str, SIZES),
           "--channels", "8", "--blocks", "2", "--repeats", "2", "--rounds", "1", "--budget", "5", "--app-requests", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)

    by = {(r["case"], r["size"]): r for r in summary["cases"]}
    assert set(by) == {(c, s) for c in CASES for s in SIZES}
    for (case, size), r in by.items():
        assert r["runs"] >= 2 and 0 < r["min_ms"] <= r["ms"], (case, size, r)
        assert r["one_off_ms"] >= 0 and math.isfinite(r["one_off_ms"]), (case, size, r)
        assert 100 < r["peak_rss_mb"] < 4096 and r["import_rss_mb"] <= r["peak_rss_mb"], (case, size, r)
        if case == "bicubic":
            assert r["gflops"] is None
        else:
            assert r["gflops"] > 0 and math.isfinite(r["gflops"])
        assert r["speedup"] == by[("naive", size)]["ms"] / r["ms"]
        # the Upscaler notes when its first finished rows came out: before it was done
        assert ("first_rows_ms" in r) == (case == "upscaler"), (case, size)
        if case == "upscaler":
            assert 0 < r["first_rows_ms"] <= r["ms"]  # each call's first rows come before its end

    # the Upscaler's float output was compared with the naive output at every size
    assert summary["match_ok"] is True
    assert set(summary["max_abs_diff_vs_naive"]) == {f"upscaler_{s}" for s in SIZES}
    assert all(d <= summary["match_tolerance"] for d in summary["max_abs_diff_vs_naive"].values())

    # the keys the issue names; 256 and 1024 were not run, so they are null, not invented
    assert summary["speedup_256"] is None and summary["gflops_256"] is None
    assert summary["time_per_pixel_1024_over_256"] is None
    assert summary["model"]["channels"] == 8 and summary["model"]["blocks"] == 2
    assert summary["model"]["macs_per_lr_pixel"] > 0 and summary["sgemm_gflops"] > 0
    assert summary["cpu"]["cores"] >= 1

    app = summary["app"]
    assert "skipped" not in app, app
    assert app["requests"] == 2
    assert 0 < app["start_to_serving_s"] <= app["cold_start_to_first_answer_s"]
    assert app["request_256_ms"] > 0 and math.isfinite(app["request_256_ms"])
    # the model's share comes from the app's own table, and the rest is what the page costs
    assert 0 < app["model_in_request_256_ms"] < app["request_256_ms"]
    assert app["beyond_model_256_ms"] > 0 and app["gradio_client_256_ms"] > 0
    assert "beyond_upscaler_256_ms" not in app  # the Upscaler did not run at 256 here: nothing to subtract


def test_sr_inference_refuses_nonsense_counts_at_once():
    for args, words in ((["--sizes", "0"], "--sizes: must be a whole number, 1 or more, got 0"),
                        (["--rounds", "0"], "--rounds: must be a whole number, 1 or more"),
                        (["--repeats", "x"], "'x' is not a whole number"),
                        (["--app-requests", "-1"], "--app-requests: must be a whole number, 1 or more"),
                        (["--budget", "nan"], "--budget: must be a finite number greater than 0")):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sr_inference.py"), *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_toygan_benchmark_runs_and_reports_both_trainers():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toygan.py"), "--epochs", "600",
                           "--reference-epochs", "40"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for words in ("PyTorch loop, 1 thread", "fast trainer", "speed-up over the PyTorch loop", "with snapshots every 500",
                  "same seed, same maths", "per 30,000 epochs"):
        assert words in out, out
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "toygan.py"), "--epochs", "0"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "--epochs: must be between 1" in bad.stderr and "Traceback" not in bad.stderr


def test_sr_inference_table_prints_without_the_naive_case():
    """Without the naive baseline there is no speed-up to print, but the table and GFLOP/s still are."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "sr_inference.py"), "--sizes", "256", "--cases", "upscaler",
           "--channels", "8", "--blocks", "1", "--repeats", "1", "--rounds", "1", "--budget", "5", "--no-app"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Upscaler at 256^2: " in done.stdout and "the naive path" not in done.stdout
