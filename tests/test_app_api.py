"""The app's named endpoints, called with gradio_client against the real server (`python app.py`).

The server runs with a folder of tiny random-init generators (SRGAN_WEIGHTS_DIR), so the tests
check the plumbing (sizes, scores, streaming, errors, sessions) in seconds, not the quality of
the bundled weights.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app_server import ROOT, TINY, make_weights, running_app
from hub_server import HubServer
from srgan_core.data import downscale, modcrop
from srgan_core.metrics import psnr
from srgan_core.models import Generator
from srgan_core.upscale import MAX_INPUT_SIDE, bicubic
from srgan_core.weights import save_generator

EXAMPLE = ROOT / "examples" / "chelsea.png"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = make_weights(tmp_path_factory.mktemp("weights"))
    # a job says how long it will take and streams rows whenever it takes over a tenth of a second
    with running_app(env={"SRGAN_WEIGHTS_DIR": str(folder), "SRGAN_APP_SLOW_S": "0.1", "SRGAN_APP_PREVIEW_S": "0.1"}) as url:
        yield url


def new_client(url: str, tmp_path: Path) -> Client:
    """Each Client is its own session (its own session hash), like a separate browser tab."""
    return Client(url, verbose=False, download_files=str(tmp_path))


@pytest.fixture
def client(app_url, tmp_path) -> Client:
    return new_client(app_url, tmp_path)


def save_png(image: Image.Image, path: Path) -> str:
    image.save(path)
    return str(path)


def noise_image(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    return Image.fromarray(rng.integers(0, 256, (h, w, channels), dtype=np.uint8), mode)


# ----------------------------------------------------------------------------- API surface


def test_named_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/upscale", "/simulate", "/train_toygan", "/ks_check", "/detection_curve"} <= names


def test_help_names_the_environment_variables():
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "GRADIO_SERVER_PORT" in out.stdout and "--port" in out.stdout


# ----------------------------------------------------------------------------- super-resolution


def same_share(a_path: str, b: Image.Image, tolerance: int = 0) -> float:
    """Share of pixels of the file at a_path within `tolerance` of image b in every channel (the
    overview has a box and a tag drawn on it; the slider's views are JPEG, near but not equal)."""
    a = np.asarray(Image.open(a_path).convert("RGB"), np.int16)
    return float((np.abs(a - np.asarray(b.convert("RGB"), np.int16)) <= tolerance).all(2).mean())


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a.convert("RGB"), np.float32) - np.asarray(b.convert("RGB"), np.float32)).mean())


def test_upscale_returns_four_times_the_input(client, tmp_path):
    src = save_png(noise_image(37, 23), tmp_path / "in.png")
    summary, (bic_path, sr_path), table, crops, download = client.predict(
        handle_file(src), "srgan_x4", api_name="/upscale")
    for path, kind in ((bic_path, "JPEG"), (sr_path, "JPEG"), (download, "PNG"), (crops, "PNG")):
        with Image.open(path) as im:
            assert im.format == kind  # views JPEG; the download and the crops, where detail counts, lossless
    for path in (bic_path, sr_path, download):
        assert Image.open(path).size == (148, 92)
    # the slider's left side is the library's bicubic, with the crops' box and its name drawn on it
    expected = bicubic(Image.open(src), 4)
    assert 0.6 < same_share(bic_path, expected, tolerance=24) < 0.99
    assert same_share(sr_path, Image.open(download), tolerance=24) < 0.99  # the download: no drawing
    # no empty score columns: Upscale has nothing to score against
    assert table["headers"] == ["method", "time (s)"] and [r[0] for r in table["data"]] == ["Bicubic", "SRGAN"]
    assert "37×23 → 148×92" in summary and re.search(r"in \d+\.\d\d s", summary)
    assert summary.endswith("the yellow box: Bicubic, SRGAN.")


def test_upscale_keeps_alpha(client, tmp_path):
    src = save_png(noise_image(16, 12, mode="RGBA"), tmp_path / "rgba.png")
    _, (left, right), _, _, download = client.predict(handle_file(src), "srresnet_x4", api_name="/upscale")
    for path in (download, left, right):  # the slider's views keep the transparency too
        with Image.open(path) as im:
            assert im.size == (64, 48) and im.mode == "RGBA" and im.format == "PNG"


def test_large_job_says_how_long_then_streams_rows(client, tmp_path):
    """The estimate comes first, then the slider's right side with the rows done so far."""
    src = save_png(noise_image(500, 400), tmp_path / "big.png")
    job = client.submit(handle_file(src), "srgan_x4", api_name="/upscale")
    job.result(timeout=300)
    updates = job.outputs()
    assert len(updates) >= 3, [u[0] for u in updates]
    assert re.search(r"(about \d+ (s|min)|under a second)…", updates[0][0])
    partial = [u for u in updates[1:-1] if "% done" in u[0]]
    assert partial, [u[0] for u in updates]
    left, right = partial[0][1]
    final = Image.open(updates[-1][1][1])
    assert final.size == Image.open(updates[-1][-1]).size == (2000, 1600)
    assert Image.open(left).size == Image.open(right).size == (1000, 800)  # previews are sent at most 1280 px
    # the rows done so far are the model's, bicubic below them
    done = round(int(re.search(r"(\d+)% done", partial[0][0]).group(1)) / 100 * 800)
    preview, bic = Image.open(right), bicubic(Image.open(src), 4).reduce(2)
    top, below = (0, 0, 1000, max(1, done - 8)), (0, min(799, done + 8), 1000, 800)
    assert mean_difference(preview.crop(top), final.reduce(2).crop(top)) < mean_difference(preview.crop(top), bic.crop(top))
    assert mean_difference(preview.crop(below), bic.crop(below)) < mean_difference(preview.crop(below), final.reduce(2).crop(below))


def test_simulate_scores_against_the_original(client):
    summary, (bic_path, sr_path), table, crops, download = client.predict(
        handle_file(str(EXAMPLE)), "srresnet_x4", api_name="/simulate")
    hr = modcrop(Image.open(EXAMPLE).convert("RGB"), 4)
    for path in (bic_path, sr_path, download):
        assert Image.open(path).size == hr.size
    assert table["headers"] == ["method", "PSNR (dB)", "SSIM", "time (s)"]
    assert [row[0] for row in table["data"]] == ["Bicubic", "SRGAN", "SRResNet"]  # the same order for any choice
    bic_row = table["data"][0]
    expected = psnr(bicubic(downscale(hr, 4), 4), hr, 4)
    assert bic_row[1] == pytest.approx(expected, abs=0.01)
    assert 20 < bic_row[1] < 40 and 0 < bic_row[2] <= 1  # a plausible bicubic score for a photograph
    assert summary.endswith("the yellow box: Bicubic, SRGAN, SRResNet, Original.")
    assert Image.open(crops).format == "PNG"


@pytest.mark.parametrize("kind", ["text", "corrupt", "huge", "tiny"])
def test_bad_images_get_a_clear_message(client, app_url, tmp_path, kind):
    if kind == "text":
        path = tmp_path / "notes.png"
        path.write_text("this is not an image\n")
    elif kind == "corrupt":
        good = tmp_path / "good.png"
        noise_image(64, 64).save(good)
        path = tmp_path / "corrupt.png"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "huge":  # a tiny file that decodes to far more pixels than the app accepts
        path = tmp_path / "huge.png"
        Image.new("1", (5000, 5000)).save(path)
    else:
        path = save_png(noise_image(1, 1), tmp_path / "dot.png")
    job = client.submit(handle_file(str(path)), "srgan_x4", api_name="/upscale")
    with pytest.raises(AppError) as err:
        job.result(timeout=120)
    message = str(err.value)
    assert "Traceback" not in message and "Pillow" not in message and len(message) > 10  # no library names
    # the page shows the message where the results go (not only in a pop-up)
    assert any(isinstance(u[0], dict) and message in u[0]["value"] and "sr-error" in u[0]["elem_classes"]
               for u in job.outputs()), job.outputs()
    if kind == "huge":
        assert "5000x5000" in message and f"{MAX_INPUT_SIDE}" in message and "huge.png" in message
    # the server logs one line for a visitor's mistake, not a traceback
    time.sleep(0.5)
    log = app_url.log_text()
    assert "Traceback" not in log
    assert sum(Path(str(path)).name in line and "refused" in line for line in log.splitlines()) == 1
    # and the server goes on serving
    src = save_png(noise_image(8, 8), tmp_path / "ok.png")
    _, (bic_path, _), *_ = client.predict(handle_file(src), "srgan_x4", api_name="/upscale")
    assert Image.open(bic_path).size == (32, 32)


def test_gan_strength_and_degradation(client, tmp_path):
    """Strength 0 of the bundled pair is the PSNR model exactly; Simulate can shrink like a phone."""
    src = save_png(noise_image(24, 16), tmp_path / "in.png")
    *_, zero = client.predict(handle_file(src), "srgan_x4", 0.0, api_name="/upscale")
    *_, psnr_model = client.predict(handle_file(src), "srresnet_x4", 1.0, api_name="/upscale")
    assert np.array_equal(np.asarray(Image.open(zero)), np.asarray(Image.open(psnr_model)))
    summary, _, table, *_ = client.predict(handle_file(str(EXAMPLE)), "srgan_x4", 1.0, "phone_jpeg", api_name="/simulate")
    assert "Phone JPEG" in summary and [r[0] for r in table["data"]] == ["Bicubic", "SRGAN", "SRResNet"]


def test_unknown_model_refused(client, tmp_path):
    src = save_png(noise_image(8, 8), tmp_path / "in.png")
    with pytest.raises(AppError, match="Unknown model"):
        client.predict(handle_file(src), "/etc/passwd", api_name="/upscale")


def test_no_model_chosen_gets_the_default(client, app_url, tmp_path):
    """An example clicked as the page opens once sent model None ("Unknown model None"): the menu now
    has its choices and value in the page as served, and a job without a model gets the default."""
    with urllib.request.urlopen(app_url + "/config", timeout=30) as r:
        menu = next(c["props"] for c in json.load(r)["components"] if c.get("props", {}).get("label") == "Model")
    assert menu["value"] == "srgan_x4" and [v for _, v in menu["choices"]][:2] == ["srgan_x4", "srresnet_x4"]
    src = save_png(noise_image(12, 10), tmp_path / "in.png")
    *_, chosen = client.predict(handle_file(src), "srgan_x4", api_name="/upscale")
    for missing in (None, ""):
        summary, *_, download = client.predict(handle_file(src), missing, api_name="/upscale")
        assert "SRGAN" in summary and np.array_equal(np.asarray(Image.open(download)), np.asarray(Image.open(chosen)))


def test_sr_jobs_run_one_at_a_time(app_url, tmp_path):
    """The SR events share a concurrency limit of 1: a second user's job waits in the queue."""
    running = {"PROCESSING", "PROGRESS", "ITERATING"}  # a job that has left the queue
    # big enough that the first job is still running when the second arrives, even on a quiet machine
    src = save_png(noise_image(500, 400), tmp_path / "big.png")
    # no downloads: a client fetching the first job's large outputs would hear of its end later still
    a, b = (Client(app_url, verbose=False, download_files=False) for _ in "ab")
    first = a.submit(handle_file(src), "srgan_x4", api_name="/upscale")
    deadline = time.monotonic() + 120
    while first.status().code.name not in running:
        assert not first.done() and time.monotonic() < deadline, "the first job never showed progress"
        time.sleep(0.02)
    submitted = time.monotonic()
    second = b.submit(handle_file(src), "srgan_x4", api_name="/simulate")
    seen, started, first_done = [], None, None  # states as the server reports them; when each thing was seen
    while not second.done():
        assert time.monotonic() < deadline + 120
        pair = (first.status().code.name, second.status().code.name)
        if not seen or seen[-1] != pair:
            seen.append(pair)
        if started is None and pair[1] in running:
            started = time.monotonic()
        if first_done is None and pair[0] == "FINISHED":
            first_done = time.monotonic()
        time.sleep(0.02)
    # Each client hears of its job's states a little late, so a state pair can show both running for
    # a moment around the hand-over. What tells one queue from two is how long the second job waited:
    # nearly all of the first job's remaining run with a limit of 1, next to nothing without it.
    first.result(timeout=120)
    first_done = first_done or time.monotonic()  # the second finished first: they overlapped, and this says so
    assert started is not None and started - submitted > 0.7 * (first_done - submitted), \
        f"both jobs ran at once: waited {(started or submitted) - submitted:.2f} s of {first_done - submitted:.2f} s; {seen}"
    assert any(p[1] == "IN_QUEUE" for p in seen), f"the second job never waited: {seen}"
    second.result(timeout=120)


# ----------------------------------------------------------------------------- toy GAN


def collect(job, timeout: float = 120) -> list:
    job.result(timeout=timeout)
    return job.outputs()


def test_train_toygan_streams_updates(client):
    job = client.submit("normal", 6000, 1e-3, 50, 0, api_name="/train_toygan")
    arrivals: list[float] = []  # when each streamed update reached the client
    deadline = time.monotonic() + 120
    while not job.done():
        assert time.monotonic() < deadline, "training did not finish"
        arrivals += [time.monotonic()] * (len(job.outputs()) - len(arrivals))
        time.sleep(0.02)
    statuses = outputs = job.outputs()
    epochs = [s["epoch"] for s in statuses]
    assert len(outputs) >= 3
    assert epochs == sorted(epochs) and epochs[-1] == 6000
    assert statuses[-1]["done"] and not statuses[0]["done"]
    assert all(0 <= s["ks_statistic"] <= 1 for s in statuses)
    if len(arrivals) >= 4:  # several updates a second while it trains
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        assert rate >= 2, f"{rate:.1f} updates/s"

    # the plots of this session's last snapshot
    dist, curves, line = client.predict(api_name="/toy_plots")
    assert line.startswith("**Epoch 6,000 / 6,000** (done)")
    figure = json.loads(dist["plot"])
    names = [trace.get("name", "") for trace in figure["data"]]
    assert names == ["real data", "generated", "target N(0, 1)", "D(x): P(real | x)"]
    assert figure["layout"]["title"]["text"].startswith("Epoch 6,000 of 6,000")
    assert all(0 <= d <= 1 for d in figure["data"][3]["y"])
    assert len(figure["data"][1]["x"]) == 1000  # generated samples
    lines = json.loads(curves["plot"])["data"]
    assert [t["name"] for t in lines] == ["D loss", "G loss", "KS distance"]
    assert lines[0]["x"][-1] == 6000 and len(lines[0]["x"]) == len(lines[2]["y"]) > 100


def test_stop_keeps_the_generator_and_sessions_stay_apart(app_url, tmp_path):
    a, b = new_client(app_url, tmp_path / "a"), new_client(app_url, tmp_path / "b")
    job = a.submit("normal", 100_000, 1e-3, 50, 1, api_name="/train_toygan")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 2:
        assert time.monotonic() < deadline, "no streamed updates"
        time.sleep(0.1)
    job.cancel()
    time.sleep(0.5)
    stopped_at = job.outputs()[-1]["epoch"]
    assert stopped_at < 100_000

    def epoch_in_use(client: Client) -> int:
        *_, result = client.predict("beta", 1, 5, 0.5, 200, 0, api_name="/ks_check")
        assert result["generator"].startswith("trained in this session")
        return int(re.search(r"epoch ([\d,]+)", result["generator"]).group(1).replace(",", ""))

    used = epoch_in_use(a)
    assert used >= stopped_at
    time.sleep(1.0)
    assert epoch_in_use(a) == used, "training went on after Stop"

    assert b.predict(api_name="/toy_plots") == (None, None, "Press **Train** to start.")  # B trained nothing
    try:
        *_, theirs = b.predict("beta", 1, 5, 0.5, 200, 0, api_name="/ks_check")
        assert theirs["generator"].startswith("bundled")
    except AppError as exc:  # no bundled toy generator: B is told to train its own
        assert "train one" in str(exc)


def test_absurd_toy_settings_refused(client):
    with pytest.raises(AppError, match="epochs"):
        client.predict("normal", 10**12, 1e-3, 50, 0, api_name="/train_toygan")
    with pytest.raises(AppError, match="lr"):
        client.predict("normal", 1000, -1, 50, 0, api_name="/train_toygan")
    with pytest.raises(AppError, match="n must be"):
        client.predict("beta", 1, 5, 0.5, 10**9, 0, api_name="/ks_check")


def test_step_endpoints_move_one_network_at_a_time_in_each_session(app_url, tmp_path):
    """/step_d and /step_g make one update each and say what changed; /step_run plays whole epochs.
    The stepper lives in the client's session, starts again when a setting changes, and is the
    library's: the first D step's numbers are those of a Stepper built here."""
    from srgan_core.toygan_steps import Stepper, preset_config

    a, b = new_client(app_url, tmp_path / "a"), new_client(app_url, tmp_path / "b")
    names = set(a.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/step_d", "/step_g", "/step_run"} <= names
    settings = ("skewed", "lognormal", 1e-3, 50, 3)
    dist, curves, caption, first = a.predict(*settings, 10, api_name="/step_d")
    assert caption.startswith("D update 1 (steps 1–2): D(real) ") and (first["d_steps"], first["g_steps"]) == (1, 0)
    figure = json.loads(dist["plot"])
    assert figure["layout"]["title"]["text"] == "After 1 D and 0 G updates"
    assert "target LogN(mean 0, sd 1)" in [t.get("name") for t in figure["data"]]
    here = Stepper(*preset_config("skewed", target="lognormal", lr=1e-3, hidden=50, seed=3))
    here.step_d()
    assert {k: first[k] for k in ("d_real", "d_fake", "ks_statistic")} == \
        {k: here.status()[k] for k in ("d_real", "d_fake", "ks_statistic")}

    _, _, caption, after_g = a.predict(*settings, 10, api_name="/step_g")
    assert caption.startswith("G update 1 (steps 3–4): D(fake) ") and (after_g["d_steps"], after_g["g_steps"]) == (1, 1)
    assert after_g["d_real"] == first["d_real"]  # a G update leaves D, and so its verdict on the real data, alone
    assert after_g["ks_statistic"] != first["ks_statistic"]  # but moves G
    _, curves, caption, played = a.predict(*settings, 100, api_name="/step_run")
    assert caption.startswith("100 epochs") and (played["d_steps"], played["g_steps"]) == (101, 101)
    assert json.loads(curves["plot"])["data"][0]["x"][-1] == 101

    _, _, _, theirs = b.predict(*settings, 10, api_name="/step_d")  # another session: its own stepper
    assert (theirs["d_steps"], theirs["g_steps"]) == (1, 0) and theirs["d_real"] == first["d_real"]
    _, _, _, restarted = a.predict("skewed", "lognormal", 1e-3, 50, 4, 10, api_name="/step_d")  # a new seed
    assert (restarted["d_steps"], restarted["g_steps"]) == (1, 0)
    _, _, _, trained = a.predict("trained", "normal", 1e-3, 50, 1, 10, api_name="/step_d")
    assert trained["preset"] == "trained" and trained["ks_statistic"] < 0.1  # G is the bundled generator

    with pytest.raises(AppError, match="preset must be one of normal, mode-collapse, skewed, trained"):
        a.predict("bimodal", "normal", 1e-3, 50, 1, 10, api_name="/step_d")
    with pytest.raises(AppError, match="speed must be between 1 and 1,000"):
        a.predict(*settings, 10**6, api_name="/step_run")
    with pytest.raises(AppError, match="hidden units"):
        a.predict("normal", "normal", 1e-3, 10**6, 1, 10, api_name="/step_g")


# ----------------------------------------------------------------------------- anomaly check


def test_ks_check_flags_drift_and_passes_clean_noise(client):
    client.predict("normal", 4000, 1e-3, 50, 0, api_name="/train_toygan")
    *_, clean = client.predict("uniform", 1, 5, 0.5, 300, 0, api_name="/ks_check")
    *_, drift = client.predict("beta", 1, 5, 0.5, 300, 0, api_name="/ks_check")
    for r in (clean, drift):
        assert 0 <= r["statistic"] <= 1 and 0 <= r["p_value"] <= 1 and r["n"] == 300
        assert r["flagged"] == (r["p_value"] < 0.05)
    assert drift["flagged"] and drift["statistic"] > clean["statistic"]
    *_, verdict, _ = client.predict("beta", 1, 5, 0.5, 300, 0, api_name="/ks_check")
    assert "flagged" in verdict["elem_classes"] and verdict["value"].startswith("### ⚠ Flagged")  # coloured by CSS


def test_detection_curve_covers_the_n_slider_and_explains_false_alarms(client):
    _, note, data = client.predict("beta", 1, 5, 0.5, 0, api_name="/detection_curve")
    assert data["sizes"][0] == 10 and data["sizes"][-1] == 5000  # the n slider's whole range
    assert len(data["false_alarm"]) == len(data["power"]) == len(data["sizes"])
    assert f"n = 5,000" in note and "False alarms" in note


# ----------------------------------------------------------------------------- Hub references


def test_hub_reference_then_fallback_when_the_hub_is_down(tmp_path):
    """A Hub reference is downloaded through huggingface_hub (from a loopback Hub); when the
    Hub is down, the bundled default stands in and the page says so."""
    torch.manual_seed(7)
    save_generator(Generator(TINY), tmp_path / "upload" / "hub_tiny", description="tiny Hub test model")
    hub = HubServer()
    hub.add_weights(tmp_path / "upload" / "hub_tiny")
    folder = make_weights(tmp_path / "weights")
    src = save_png(noise_image(12, 10), tmp_path / "in.png")
    with hub:
        env = {"SRGAN_WEIGHTS_DIR": str(folder), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "",
               "HF_HUB_CACHE": str(tmp_path / "hub-cache")}
        with running_app(env=env) as url:
            client = new_client(url, tmp_path / "downloads")
            ref = f"hf://{hub.repo_id}/hub_tiny"
            summary, (_, sr_path), table, *_ = client.predict(handle_file(src), ref, api_name="/upscale")
            assert summary.startswith("**hub_tiny**") and Image.open(sr_path).size == (48, 40)
            assert any(method == "hub_tiny" for method, *_ in table["data"])
            assert any("hub_tiny.safetensors" in path for _, path in hub.requests)

            hub.stop()
            other = f"hf://{hub.repo_id}/not_cached"
            summary, (_, sr_path), *_ = client.predict(handle_file(src), other, api_name="/upscale")
            assert summary.startswith("**SRGAN**") and "unavailable" in summary and "SRGAN was used instead" in summary
            assert Image.open(sr_path).size == (48, 40)
