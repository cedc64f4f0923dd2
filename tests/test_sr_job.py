"""sr_job: the app's SR requests without a browser: files, estimates, streamed rows, the buttons."""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_core import sr_job
from srgan_core.models import Generator, GeneratorConfig
from srgan_core.upscale import Upscaler, bicubic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_server import make_weights  # noqa: E402

LABELS = {"srgan_x4": "SRGAN", "srresnet_x4": "SRResNet"}


def noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def tiny_upscaler(band: int | None = None) -> Upscaler:
    torch.manual_seed(0)
    return Upscaler(Generator(GeneratorConfig(channels=8, blocks=1)), band=band)


def test_write_image_gives_every_call_its_own_whole_file(tmp_path):
    image = noise_image(300, 200)
    with ThreadPoolExecutor(12) as pool:
        paths = list(pool.map(lambda _: sr_job.write_image(image, tmp_path, "same.png"), range(12)))
    assert len(set(paths)) == 12
    for p in paths:
        assert Path(p).name == "same.png"
        with Image.open(p) as im:
            assert im.format == "PNG" and np.array_equal(np.asarray(im), np.asarray(image))
    assert not list(tmp_path.glob("*/.*partial"))


def test_old_results_are_swept_and_a_racing_sweep_is_no_error(tmp_path):
    keep = sr_job.write_image(noise_image(8, 8), tmp_path, "new.png")
    stale = [Path(sr_job.write_image(noise_image(8, 8), tmp_path, "old.png")).parent for _ in range(30)]
    hour_ago = time.time() - sr_job.KEEP_S - 60
    for folder in stale:
        os.utime(folder, (hour_ago, hour_ago))
    assert sr_job.sweep(tmp_path) == 0  # swept a moment ago (each write may sweep): not again so soon
    # many sweeps at once, as many requests finishing together: each folder goes once, none raises
    with ThreadPoolExecutor(8) as pool:
        removed = sum(pool.map(lambda _: sr_job.sweep(tmp_path, force=True), range(8)))
    assert removed >= 30 and not any(f.exists() for f in stale) and Path(keep).exists()


def test_views_are_jpeg_close_to_the_pixels(tmp_path):
    """The slider's views are JPEG, cheap to make and send, and close to the pixels (the download
    and the crops, where fine detail is compared, stay PNG)."""
    image = Image.open(Path(__file__).resolve().parent.parent / "examples" / "chelsea.png").convert("RGB")
    jpeg = sr_job.write_image(image, tmp_path, "left.jpg")
    with Image.open(jpeg) as im:
        assert im.format == "JPEG" and im.size == image.size
        assert psnr_rgb(im, image) > 38  # visually lossless
    assert Path(jpeg).stat().st_size < Path(sr_job.write_image(image, tmp_path, "same.png")).stat().st_size / 2


def test_a_view_with_transparency_stays_png(tmp_path):
    """JPEG has no alpha: a transparent background would show whatever colour hides under it."""
    image = noise_image(40, 30).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((40, 30)))
    path = sr_job.write_image(image, tmp_path, "right.jpg")
    with Image.open(path) as im:
        assert Path(path).name == "right.png" and im.format == "PNG" and im.mode == "RGBA"
        assert np.array_equal(np.asarray(im), np.asarray(image))


def psnr_rgb(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a.convert("RGB"), np.float64) - np.asarray(b.convert("RGB"), np.float64)
    return float(10 * np.log10(255**2 / (d**2).mean()))


def test_rate_meter():
    meter = sr_job.RateMeter(weight=0.5)
    big = sr_job.MIN_MEASURED_PIXELS
    assert meter.estimate("m", big) is None
    meter.update("m", 100, 5.0)  # a tiny run is mostly overhead: ignored
    assert meter.estimate("m", big) is None
    meter.update("m", big, 1.0)
    assert meter.estimate("m", 2 * big) == pytest.approx(2.0)
    meter.update("m", big, 3.0)
    assert meter.estimate("m", big) == pytest.approx(2.0)


def test_calibration_leaves_out_the_per_call_overhead():
    """An estimate from small runs must not grow with the overhead of each call: it is close to
    what a larger image really costs (generous margin: the machine may be busy)."""
    up, image = tiny_upscaler(), noise_image(400, 300)
    guesses, runs = [], []
    for _ in range(3):  # a stall on a busy machine can hit any single timing: median and best of three
        meter = sr_job.RateMeter()
        meter.calibrate(up)
        guesses.append(meter.estimate(up.name, 400 * 300))
        t0 = time.perf_counter()
        up.upscale(image)
        runs.append(time.perf_counter() - t0)
    guess, took = sorted(guesses)[1], min(runs)
    assert took / 5 < guess < took * 5, (guesses, runs)


def test_stream_shows_rows_before_the_end_and_ends_with_the_exact_output():
    up = tiny_upscaler(band=4)
    image = noise_image(40, 64)
    base = bicubic(image, 4)
    frames = list(sr_job.stream_upscale(up, image, base, every_s=0.0))
    assert frames[-1].done and not any(f.done for f in frames[:-1])
    assert np.array_equal(np.asarray(frames[-1].image), np.asarray(up.upscale(image)))
    partial = [f for f in frames if not f.done]
    assert partial, "no partial frame"
    fractions = [f.fraction for f in partial]
    assert fractions == sorted(fractions) and 0 < fractions[0] < 1
    f = partial[0]
    rows = round(f.fraction * base.height)
    got = np.asarray(f.image)
    assert np.array_equal(got[rows:], np.asarray(base)[rows:])  # not done yet: bicubic
    assert np.array_equal(got[:rows], np.asarray(frames[-1].image)[:rows])  # done: the model's rows


def test_the_first_rows_are_shown_without_waiting_for_the_period():
    """Progress every `every_s` seconds, but the first finished rows go out at once: they are
    what tells a visitor with a large image that something is happening."""
    class Slow:
        name = "slow"

        def upscale(self, image, on_rows=None):
            on_rows(0, 0, Image.new("RGB", (32, 4), "white"))
            time.sleep(1.0)  # the rest of a long job
            return Image.new("RGB", (32, 32), "white")

    frames = list(sr_job.stream_upscale(Slow(), noise_image(8, 8), Image.new("RGB", (32, 32)), every_s=60))
    assert [f.done for f in frames] == [False, True] and frames[0].fraction == 4 / 32


def test_no_frame_when_the_end_is_nearer_than_the_period():
    """A frame the finished image would replace within `every_s` costs an encode and a transfer
    and shows nothing new for long: after the first rows, none is sent that close to the end."""
    class NearlyDone:
        name = "nearly-done"

        def upscale(self, image, on_rows=None):
            on_rows(0, 0, Image.new("RGB", (32, 8), "white"))  # the first quarter at once
            time.sleep(1.0)
            on_rows(8, 0, Image.new("RGB", (32, 20), "white"))  # most of the rest: the end is near
            time.sleep(1.0)
            return Image.new("RGB", (32, 32), "white")

    frames = list(sr_job.stream_upscale(NearlyDone(), noise_image(8, 8), Image.new("RGB", (32, 32)), every_s=0.5))
    assert [(f.fraction, f.done) for f in frames] == [(8 / 32, False), (1.0, True)]


def test_stream_raises_the_models_error():
    class Broken:
        name = "broken"

        def upscale(self, image, on_rows=None):
            raise ValueError("model says no")

    with pytest.raises(ValueError, match="model says no"):
        list(sr_job.stream_upscale(Broken(), noise_image(8, 8), noise_image(32, 32), every_s=0.01))


def test_about():
    assert sr_job.about(0.2) == "under a second" and sr_job.about(4.6) == "about 5 s" and sr_job.about(600) == "about 10 min"


@pytest.fixture
def studio(tmp_path, monkeypatch):
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(make_weights(tmp_path / "weights")))
    return sr_job.Studio(tmp_path / "out", LABELS, slow_s=0.0, preview_every_s=0.0)


def test_upscale_streams_then_finishes(studio):
    image = noise_image(120, 90)
    updates = list(studio.upscale(image, "pic", "srgan_x4"))
    first, last = updates[0], updates[-1]
    assert "about" in first.status or "under a second" in first.status  # the estimate comes first
    assert last.table == {"headers": ["method", "time (s)"], "data": [["Bicubic", last.table["data"][0][1]],
                                                                       ["SRGAN", last.table["data"][1][1]]]}
    with Image.open(last.download) as out:
        assert out.size == (480, 360) and Path(last.download).name == "pic_x4_srgan.png"
    with Image.open(last.crops) as crops:
        assert crops.format == "PNG" and crops.width == 2 * 288 + 8
    left, right = (Image.open(p) for p in last.pair)
    assert left.size == right.size == (480, 360) and left.format == right.format == "JPEG"  # views
    assert "Bicubic, SRGAN" in last.status
    previews = [u.pair for u in updates[:-1] if u.pair]
    assert previews and all(Path(p).suffix == ".jpg" for pair in previews for p in pair)


def test_simulate_scores_in_a_fixed_order(studio):
    image = noise_image(96, 64)
    for model in ("srgan_x4", "srresnet_x4"):
        last = list(studio.simulate(image, "pic", model))[-1]
        assert last.table["headers"] == ["method", "PSNR (dB)", "SSIM", "time (s)"]
        assert [r[0] for r in last.table["data"]] == ["Bicubic", "SRGAN", "SRResNet"]
        assert last.status.endswith("Bicubic, SRGAN, SRResNet, Original.")


def test_unknown_model_refused(studio):
    with pytest.raises(ValueError, match="Unknown model"):
        list(studio.upscale(noise_image(8, 8), "x", "/etc/passwd"))


def test_no_model_chosen_means_the_default(studio, tmp_path, monkeypatch):
    """A page may send its model menu's value before the menu is filled in: None or "" is the first
    bundled model, not an unknown one; with no bundled model the job is bicubic only, and says so."""
    image = noise_image(12, 10)
    chosen = np.asarray(Image.open(list(studio.upscale(image, "pic", "srgan_x4"))[-1].download))
    for missing in (None, ""):
        last = list(studio.upscale(image, "pic", missing))[-1]
        assert "SRGAN" in last.status and np.array_equal(np.asarray(Image.open(last.download)), chosen)
    assert [r[0] for r in list(studio.simulate(noise_image(32, 32), "pic", None))[-1].table["data"]] == \
        ["Bicubic", "SRGAN", "SRResNet"]
    monkeypatch.setenv("SRGAN_WEIGHTS_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    assert studio.default() is None
    assert "bicubic is on both sides" in list(studio.upscale(image, "pic", None))[-1].status


def test_gan_strength_blends_between_the_bundled_pair(studio):
    image = noise_image(40, 30)
    ends = {}
    for model, strength in (("srgan_x4", 0.0), ("srresnet_x4", None), ("srgan_x4", 1.0), ("srgan_x4", None)):
        last = list(studio.upscale(image, "pic", model, strength))[-1]
        ends[(model, strength)] = np.asarray(Image.open(last.download))
    assert np.array_equal(ends[("srgan_x4", 0.0)], ends[("srresnet_x4", None)])  # 0: the PSNR model
    assert np.array_equal(ends[("srgan_x4", 1.0)], ends[("srgan_x4", None)])  # 1: the GAN as it is
    half = list(studio.upscale(image, "pic", "srgan_x4", 0.5))[-1]
    assert "SRGAN at strength 0.50" in half.status and Path(half.download).name == "pic_x4_srgan_at_strength_0_50.png"
    with pytest.raises(ValueError, match="strength"):
        list(studio.upscale(image, "pic", "srgan_x4", 1.5))


def test_simulate_with_a_degradation_preset(studio):
    smooth = Image.fromarray(np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))).convert("RGB")
    clean = list(studio.simulate(smooth, "pic", "srgan_x4"))[-1]
    phone = list(studio.simulate(smooth, "pic", "srgan_x4", None, "phone_jpeg"))[-1]
    assert "Phone JPEG" in phone.status and "Phone JPEG" not in clean.status
    assert phone.table["data"][0][1] < clean.table["data"][0][1]  # bicubic from a noisy JPEG scores lower
    with pytest.raises(ValueError, match="Unknown degradation"):
        list(studio.simulate(smooth, "pic", "srgan_x4", None, "fog"))


def test_column_widths_add_up():
    widths = sr_job.column_widths(4)
    assert widths[0] == "34%" and sum(float(w[:-1]) for w in widths) == pytest.approx(100)
