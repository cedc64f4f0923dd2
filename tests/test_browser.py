"""The app in a real headless Chromium, driven by Playwright: what a visitor does, click by click.

Needs the Debian `chromium` package (or CHROMIUM=/path/to/chrome). On failure the page is saved
as a screenshot under test-artifacts/.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager

import pytest

from app_server import ROOT, make_weights, running_app

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
WAIT_MS = 90_000  # the slowest step: the first super-resolution on a busy 2-core machine
STOP_SETTLE_S = 30.0


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Chromium not found: install the Debian package `chromium` or set CHROMIUM")
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = make_weights(tmp_path_factory.mktemp("weights"))
    with running_app(env={"SRGAN_WEIGHTS_DIR": str(folder)}) as url:
        yield url


@pytest.fixture
def page(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            with step(page, "load the page"):
                page.goto(app_url, wait_until="domcontentloaded")
                page.get_by_role("heading", name="srgan-studio").wait_for()
            yield page
        finally:
            context.close()


@contextmanager
def step(page, name: str):
    """On failure: save the page as test-artifacts/<step>.png and say which step failed."""
    t0 = time.monotonic()
    try:
        yield
        print(f"{name}: {time.monotonic() - t0:.1f} s")  # shown by pytest -s, or on a later failure
    except Exception as exc:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / (re.sub(r"\W+", "-", name).strip("-") + ".png")
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception as shot_error:  # a dead page cannot be photographed; the failure still counts
            shot = f"(no screenshot: {shot_error})"
        raise AssertionError(f"step '{name}' failed ({shot}): {exc}") from exc


def plot_title(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} .gtitle").first.text_content() or ""


def test_visitor_walks_through_every_tab(page, tmp_path):
    with step(page, "upload an image and upscale it"):
        page.locator("#sr-input input[type=file]").set_input_files(str(ROOT / "examples" / "rocket.png"))
        page.locator("#upscale-btn").click()
        page.locator("#sr-slider img").nth(1).wait_for(state="visible")
        page.get_by_text(re.compile(r"300×200 → 1200×800")).wait_for()

    with step(page, "train the toy GAN, see the plot change, stop it"):
        page.get_by_role("tab", name="Toy GAN").click()
        epochs = page.locator("#toy-epochs input[type=number]")
        epochs.fill("100000")  # long enough to be still running when Stop is pressed
        epochs.press("Enter")
        page.locator("#train-btn").click()
        page.locator("#toy-dist .gtitle").first.wait_for()
        first = plot_title(page, "toy-dist")
        page.wait_for_function(
            "t => { const e = document.querySelector('#toy-dist .gtitle'); return e && e.textContent !== t; }",
            arg=first, timeout=60_000)
        page.locator("#stop-btn").click()
        page.locator("#toy-line").get_by_text("stopped; this generator is kept").wait_for()
        # a plot request already on its way may still land; then the plot must stay as it is
        stopped, deadline = plot_title(page, "toy-dist"), time.monotonic() + STOP_SETTLE_S
        while True:
            page.wait_for_timeout(3000)
            now = plot_title(page, "toy-dist")
            if now == stopped:
                break
            assert time.monotonic() < deadline, f"the plot still changes {STOP_SETTLE_S:.0f} s after Stop"
            stopped = now
        done, total = (int(v.replace(",", "")) for v in re.search(r"Epoch ([\d,]+) of ([\d,]+)", stopped).groups())
        assert total == 100_000 and 0 < done < total, stopped

    with step(page, "run the anomaly check with the generator just trained"):
        page.get_by_role("tab", name="Anomaly playground").click()
        page.locator("#ks-btn").click()
        verdict = page.locator("#ks-line")
        verdict.get_by_text("trained in this session").wait_for()
        assert re.search(r"p-value [\d.e+-]+", verdict.inner_text())
        assert "QQ plot" in plot_title(page, "ks-qq")


def test_model_card_reads_the_weights_files(page):
    with step(page, "open the model card"):
        page.get_by_role("tab", name="Model card").click()
        card = page.locator("#card-text")
        card.get_by_text("tiny random-init srresnet_x4 (test)").wait_for()
        assert "SRGAN ×4 (weights/srgan_x4)" in card.locator("h3").first.inner_text()
        assert page.locator("#card-table").get_by_text("32.05").count() == 1  # the paper's Set5 PSNR
        assert plot_title(page, "card-plot") == "Validation PSNR during training"


def test_bad_upload_shows_an_error_and_the_page_keeps_working(page, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with step(page, "upload a broken PNG"):
        page.locator("#sr-input input[type=file]").set_input_files(str(bad))
        page.locator("#upscale-btn").click()
        toast = page.locator("[data-testid='toast-text']").filter(has_text="broken.png")
        toast.first.wait_for(state="visible", timeout=30_000)
        assert "not an image" in toast.first.inner_text()
    with step(page, "then a good one"):
        page.locator("#sr-input button[aria-label='Remove Image']").click()
        page.locator("#sr-input input[type=file]").set_input_files(str(ROOT / "examples" / "chelsea.png"))
        page.locator("#simulate-btn").click()
        page.get_by_text("Original 300×200").wait_for()
