"""The app in a real headless Chromium, driven by Playwright: what a visitor does, click by click,
on a desktop screen (1400x900) and on a phone (390x844).

Needs the Debian `chromium` package (or CHROMIUM=/path/to/chrome). Every run saves a screenshot
of every tab at both sizes under test-artifacts/ (desktop-*.png, phone-*.png), so the pages can
be looked at, not only asserted on; a failing step also saves the page as test-artifacts/<step>.png.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from app_server import ROOT, make_weights, running_app

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
DESKTOP, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
WAIT_MS = 90_000  # the slowest step: the first super-resolution on a busy 2-core machine
STOP_SETTLE_S = 30.0
TABS = ["Upscale", "Toy GAN", "Anomaly", "Model card"]
# status trackers that are showing work: gradio draws one per output it is told to
BUSY_TRACKERS = """() => [...document.querySelectorAll('.wrap')].filter(e => e.offsetParent !== null
    && !e.classList.contains('hide') && /translucent|generating|pending/.test(e.className)).length"""
ERROR_LABELS = """() => [...document.querySelectorAll('.error')].filter(e => e.offsetParent !== null
    && e.innerText.trim() === 'Error').length"""


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Chromium not found: install the Debian package `chromium` or set CHROMIUM")
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = make_weights(tmp_path_factory.mktemp("weights"))
    # rows stream every half second, so even tiny test models show a growing result
    with running_app(env={"SRGAN_WEIGHTS_DIR": str(folder), "SRGAN_APP_SLOW_S": "0.1", "SRGAN_APP_PREVIEW_S": "0.5"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url: str, viewport: dict):
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    with step(page, "load the page"):
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("heading", name="srgan-studio").wait_for()
        page.locator("#sr-input").wait_for()
    return page


@pytest.fixture
def desktop(browser, app_url):
    page = open_page(browser, app_url, DESKTOP)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser, app_url):
    page = open_page(browser, app_url, PHONE)
    yield page
    page.context.close()


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


def shoot(page, name: str) -> None:
    """Every run, pass or fail: the whole page as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)  # let plots finish drawing
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def plot_title(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} .gtitle").first.text_content() or ""


def box(page, selector: str) -> dict:
    b = page.locator(selector).first.bounding_box()
    assert b is not None, f"{selector} is not on the page"
    return b


def no_overflow(page, selector: str) -> None:
    """The element's content fits its width (nothing cut off or scrolled sideways)."""
    sizes = page.locator(selector).first.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert sizes[0] <= sizes[1] + 1, f"{selector} overflows: {sizes}"


def fits_width(page, selector: str, width: int) -> None:
    """The element ends inside a screen `width` px wide (a table that scrolls sideways does not)."""
    b = box(page, selector)
    assert b["x"] >= 0 and b["x"] + b["width"] <= width + 1, f"{selector} is wider than the screen: {b}"


def numbers_on_one_line(page, selector: str) -> None:
    """No number in these cells is broken over two lines ("26." above "93")."""
    lines = page.locator(selector).evaluate_all("""cells => cells.filter(c => /^[-+]?[0-9.]+$/.test(c.textContent.trim()))
        .map(c => { const walk = document.createTreeWalker(c, NodeFilter.SHOW_TEXT), tops = new Set();
                    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
                        const r = document.createRange(); r.selectNodeContents(t);
                        for (const q of r.getClientRects()) if (q.width > 0) tops.add(Math.round(q.top)); }
                    return [c.textContent.trim(), tops.size]; })""")
    assert lines, f"no numbers in {selector}"
    broken = [text for text, n in lines if n > 1]
    assert not broken, f"numbers broken over lines in {selector}: {broken}"


def titles_fit(page, elem_ids: list[str]) -> None:
    for elem_id in elem_ids:
        plot, title = box(page, f"#{elem_id}"), box(page, f"#{elem_id} .gtitle")
        assert title["x"] >= plot["x"] - 1 and title["x"] + title["width"] <= plot["x"] + plot["width"] + 1, \
            f"the title of #{elem_id} is cut: {title} in {plot}"


def click_example(page, name: str) -> None:
    page.locator("button, .gallery-item, td, div[role=button]").filter(
        has=page.locator(f"img[src*='{name}']")).first.click()


def upload(page, path: str) -> None:
    """Put a file in the input; returns once the page has it (the status says so)."""
    remove = page.locator("#sr-input button[aria-label='Remove Image']")
    if remove.count():
        remove.click()
    page.locator("#sr-input input[type=file]").set_input_files(path)
    page.locator("#sr-status").get_by_text("Ready").wait_for()


def noise_png(path, w: int, h: int) -> str:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return str(path)


# ----------------------------------------------------------------------------- desktop


def test_desktop_tour(desktop, tmp_path):
    page = desktop
    with step(page, "a click on an example runs Upscale on the full photo"):
        click_example(page, "rocket")
        page.locator("#sr-status").get_by_text(re.compile(r"640×427 → 2560×1708 in")).wait_for()
        crops = page.locator("#sr-crops img").first
        assert crops.get_attribute("src").split("?")[0].endswith(".png")
        natural, shown = crops.evaluate("e => [e.naturalWidth, e.getBoundingClientRect().width]")
        assert natural == 2 * 288 + 8 and shown >= 0.95 * natural, (natural, shown)  # shown at its own size
        assert [r.inner_text() for r in page.locator("#sr-scores thead th").all()][:2] == ["method", "time (s)"] or \
            "PSNR" not in page.locator("#sr-scores").inner_text()
        assert "the yellow box: Bicubic, SRGAN." in page.locator("#sr-status").inner_text()
    shoot(page, "desktop-upscale")

    with step(page, "a large job: one progress indicator, an estimate, then rows as they finish"):
        upload(page, noise_png(tmp_path / "big.png", 900, 700))
        page.locator("#upscale-btn").click()
        busy, seen = [], []
        deadline = time.monotonic() + 120
        while "in " not in (status := page.locator("#sr-status").inner_text()) or "→" not in status or "%" in status:
            busy.append(page.evaluate(BUSY_TRACKERS))
            seen.append(status)
            assert time.monotonic() < deadline, seen[-5:]
            page.wait_for_timeout(100)
        assert max(busy) == 1, f"progress drawn {max(busy)} times at once"
        assert any(re.search(r"about \d+ (s|min)|under a second", s) for s in seen), seen
        assert any("% done" in s for s in seen), seen
    shoot(page, "desktop-upscale-large")

    with step(page, "the toy GAN's controls are above the fold; after Stop nothing moves"):
        open_tab(page, "Toy GAN")
        for sel in ("#stop-btn", "#train-btn", "#toy-line"):
            b = box(page, sel)
            assert b["y"] + b["height"] <= DESKTOP["height"], f"{sel} is below the fold: {b}"
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
        line = page.locator("#toy-line")
        line.get_by_text("stopped; this generator is kept").wait_for()
        page.wait_for_timeout(1000)
        frozen, title = line.inner_text(), plot_title(page, "toy-dist")
        page.wait_for_timeout(3000)
        assert line.inner_text() == frozen, "the numbers still move after Stop"
        assert plot_title(page, "toy-dist") == title
        done, total = (int(v.replace(",", "")) for v in re.search(r"Epoch ([\d,]+) of ([\d,]+)", title).groups())
        assert total == 100_000 and 0 < done < total, title
    shoot(page, "desktop-toy-gan")

    with step(page, "anomaly: coloured verdict, readable log axis, curve over the n range, false alarms explained"):
        open_tab(page, "Anomaly")
        page.locator("#ks-btn").click()
        verdict = page.locator("#ks-line")
        verdict.get_by_text("trained in this session").wait_for()
        assert re.search(r"p-value [\d.e+-]+", verdict.inner_text())
        heading = verdict.locator("h3")
        assert heading.inner_text().startswith("⚠ Flagged")
        assert heading.evaluate("e => getComputedStyle(e).color") == "rgb(198, 40, 40)"
        assert "QQ plot" in plot_title(page, "ks-qq")
        page.locator("#curve-btn").click()
        page.locator("#ks-curve .xtick").first.wait_for()
        ticks = [t.text_content() for t in page.locator("#ks-curve .xtick text").all()]
        assert ticks == ["10", "20", "50", "100", "200", "500", "1,000", "2,000", "5,000"], ticks
        page.locator("#ks-curve-note").get_by_text("False alarms").wait_for()
        assert "n = 5,000" in page.locator("#ks-curve-note").inner_text()
    shoot(page, "desktop-anomaly")

    with step(page, "the model card: plain words, nothing cut off"):
        open_tab(page, "Model card")
        card = page.locator("#card-text")
        card.get_by_text("tiny random-init srresnet_x4 (test)").wait_for()
        assert "SRGAN ×4 (weights/srgan_x4)" in card.locator("h3").first.inner_text()
        assert page.locator("#card-table").get_by_text("32.05").count() == 1  # the paper's Set5 PSNR
        assert page.locator("#card-table").get_by_text("SRResNet (paper), Set5").count() == 1
        assert plot_title(page, "card-plot") == "Validation PSNR during training"
        assert plot_title(page, "card-tradeoff") == "Perception–distortion trade-off on Set5"
        for pre in card.locator("pre").all():
            sizes = pre.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert sizes[0] <= sizes[1] + 1, f"a command line is cut off: {sizes}"
        text = card.inner_text()
        assert "stage:" not in text and "wall time" not in text and "patch:" not in text
    shoot(page, "desktop-model-card")


def test_errors_stay_in_the_page_until_the_next_action(desktop, tmp_path):
    page = desktop
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with step(page, "upload a broken PNG"):
        upload(page, str(bad))
        page.locator("#upscale-btn").click()
        status = page.locator("#sr-status")
        status.get_by_text("broken.png").wait_for(timeout=30_000)
        assert "not an image" in status.inner_text()
        page.wait_for_timeout(12_000)  # longer than a pop-up stays
        assert "broken.png" in status.inner_text(), "the message vanished"
        # no output panel carries a bare "Error" label instead of the message
        assert page.evaluate(ERROR_LABELS) == 0, "bare 'Error' labels on the outputs"
    shoot(page, "desktop-upscale-error")
    with step(page, "then a good one: the message goes, no stale labels"):
        upload(page, str(ROOT / "examples" / "chelsea.png"))
        assert "broken.png" not in page.locator("#sr-status").inner_text()
        assert page.evaluate(ERROR_LABELS) == 0
        page.locator("#simulate-btn").click()
        page.locator("#sr-status").get_by_text("Original 448×300").wait_for()
        assert "the yellow box: Bicubic, SRGAN, SRResNet, Original." in page.locator("#sr-status").inner_text()


def open_link(browser, url: str):
    """A page opened from a shared link with toy settings: it opens on the Toy GAN tab."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    with step(page, "open the link"):
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#toy-caption").wait_for()
    return page


def test_toy_step_mode_and_settings_in_the_link(browser, app_url):
    """A link carries the toy GAN's settings and opens the tab with them applied; Step D and Step G
    each update the caption and the picture; Play runs at the chosen speed until Pause; a changed
    setting is written back into the address, so the address is always a link to this page."""
    page = open_link(browser, app_url + "/?preset=skewed&lr=0.002&hidden=40&seed=3&speed=100")
    caption = page.locator("#toy-caption")
    try:
        with step(page, "the link's settings are applied"):
            caption.get_by_text("Skewed (log-normal).").wait_for()
            assert page.get_by_role("tab", name="Toy GAN", exact=True).get_attribute("aria-selected") == "true"
            assert page.locator("#toy-preset input").input_value() == "Skewed (log-normal)"
            assert page.locator("#toy-target").get_by_label("lognormal", exact=True).is_checked()
            assert page.locator("#toy-speed").get_by_label("100", exact=True).is_checked()
            assert page.locator("#toy-hidden input[type=number]").input_value() == "40"
            assert float(page.locator("#toy-lr input").input_value()) == 0.002
            assert page.locator("#toy-seed input").input_value() == "3"
        with step(page, "Step D, then Step G: each caption says what changed"):
            page.locator("#step-d-btn").click()
            caption.get_by_text(re.compile(r"D update 1 \(steps 1–2\): D\(real\) [\d.]+→[\d.]+, D\(fake\)")).wait_for()
            page.wait_for_function("() => document.querySelector('#toy-dist .gtitle')?.textContent === 'After 1 D and 0 G updates'")
            page.locator("#step-g-btn").click()
            caption.get_by_text(re.compile(r"G update 1 \(steps 3–4\): D\(fake\) [\d.]+→[\d.]+, KS distance")).wait_for()
            page.wait_for_function("() => document.querySelector('#toy-dist .gtitle')?.textContent === 'After 1 D and 1 G updates'")
            assert page.locator("#toy-dist").get_by_text("target LogN(mean 0, sd 1)").count() == 1
            assert page.locator("#toy-steps-help li").count() == 5
        shoot(page, "desktop-toy-steps")
        with step(page, "Play runs 100 epochs a frame until Pause"):
            page.locator("#play-btn").click()
            page.wait_for_function("() => /After [1-9]\\d*01 D/.test(document.querySelector('#toy-dist .gtitle')?.textContent)")
            page.locator("#play-btn").get_by_text("Pause").click()
            page.locator("#play-btn").get_by_text("Play").wait_for()
            page.wait_for_timeout(1500)  # a frame already asked for may still land
            frozen = plot_title(page, "toy-dist")
            page.wait_for_timeout(2000)
            assert plot_title(page, "toy-dist") == frozen, "frames still come after Pause"
            d, g = (int(v.replace(",", "")) for v in re.search(r"After ([\d,]+) D and ([\d,]+) G", frozen).groups())
            assert d == g and d % 100 == 1, frozen
        with step(page, "a changed setting goes into the address and starts the steps again"):
            seed = page.locator("#toy-seed input")
            seed.fill("7")
            seed.press("Enter")
            page.wait_for_function("() => new URL(location.href).searchParams.get('seed') === '7'")
            query = dict(re.findall(r"[?&](\w+)=([^&]*)", page.url))
            assert {k: query.get(k) for k in ("preset", "target", "hidden", "speed")} == \
                {"preset": "skewed", "target": "lognormal", "hidden": "40", "speed": "100"}, page.url
            page.locator("#step-d-btn").click()
            caption.get_by_text("D update 1 ").wait_for()
        shared = page.url
    finally:
        page.context.close()
    page = open_link(browser, shared)
    try:
        with step(page, "the address, opened elsewhere, sets up the same page"):
            page.locator("#toy-caption").get_by_text("Skewed (log-normal).").wait_for()
            page.wait_for_function("() => document.querySelector('#toy-seed input')?.value === '7'")
            assert page.locator("#toy-hidden input[type=number]").input_value() == "40"
    finally:
        page.context.close()
    page = open_link(browser, app_url + "/?hidden=lots&seed=5&preset=bimodal")
    try:
        with step(page, "bad settings in a link are named; the good ones are applied"):
            page.locator("#toy-caption").get_by_text("hidden must be a number, got 'lots'").wait_for()
            page.locator("#toy-caption").get_by_text("preset must be one of normal, mode-collapse, skewed, trained").wait_for()
            page.wait_for_function("() => document.querySelector('#toy-seed input')?.value === '5'")
            assert page.locator("#toy-hidden input[type=number]").input_value() == "50"
    finally:
        page.context.close()


# ----------------------------------------------------------------------------- phone


def test_phone_tour(phone):
    page = phone
    with step(page, "every tab is reachable on a phone"):
        for name in TABS:
            b = box(page, f"role=tab[name='{name}']")
            assert b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"], f"tab {name} is off screen: {b}"
    with step(page, "results land next to the buttons"):
        click_example(page, "coffee")
        page.locator("#sr-status").get_by_text(re.compile(r"600×400 → 2400×1600 in")).wait_for()
        buttons, slider = box(page, "#simulate-btn"), box(page, "#sr-slider")
        assert slider["y"] - (buttons["y"] + buttons["height"]) < 250, (buttons, slider)
        no_overflow(page, "#sr-scores table")
        fits_width(page, "#sr-scores table", PHONE["width"])
        crops = box(page, "#sr-crops img")
        assert crops["x"] >= 0 and crops["x"] + crops["width"] <= PHONE["width"] + 1, crops
    shoot(page, "phone-upscale")
    with step(page, "toy GAN on a phone"):
        open_tab(page, "Toy GAN")
        page.locator("#train-btn").click()
        page.locator("#toy-line").get_by_text("(done)").wait_for()
        titles_fit(page, ["toy-dist", "toy-curves"])
    shoot(page, "phone-toy-gan")
    with step(page, "anomaly on a phone"):
        open_tab(page, "Anomaly")
        page.locator("#ks-btn").click()
        page.locator("#ks-line h3").wait_for()
        page.locator("#ks-qq .gtitle").wait_for()
        titles_fit(page, ["ks-inputs", "ks-outputs", "ks-qq"])
    shoot(page, "phone-anomaly")
    with step(page, "model card on a phone"):
        open_tab(page, "Model card")
        page.locator("#card-text h3").first.wait_for()
        for pre in page.locator("#card-text pre").all():
            sizes = pre.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert sizes[0] <= sizes[1] + 1, f"a command line is cut off: {sizes}"
        titles_fit(page, ["card-plot", "card-tradeoff"])
        # seven columns do not fit 390 px: the table scrolls sideways inside the page, numbers whole
        fits_width(page, "#card-table .virtual-table-viewport", PHONE["width"])
        numbers_on_one_line(page, "#card-table .body-cell")
    shoot(page, "phone-model-card")


def test_a_waiting_visitor_sees_the_queue_place(browser, app_url, tmp_path):
    """SR jobs run one at a time: while one runs, a second visitor's page says where they are in
    the queue, in the one status line (not in every panel)."""
    first, second = open_page(browser, app_url, DESKTOP), open_page(browser, app_url, DESKTOP)
    try:
        with step(second, "a second visitor waits behind a large job"):
            upload(first, noise_png(tmp_path / "big.png", 900, 700))
            upload(second, str(ROOT / "examples" / "chelsea.png"))
            first.locator("#upscale-btn").click()
            first.locator("#sr-status").get_by_text(re.compile(r"about|% done")).wait_for()
            second.locator("#upscale-btn").click()
            second.locator("#sr-status").get_by_text(re.compile(r"queue", re.I)).wait_for(timeout=30_000)
            assert second.evaluate(BUSY_TRACKERS) == 1
            shoot(second, "desktop-upscale-queued")
            second.locator("#sr-status").get_by_text(re.compile(r"451×300 → 1804×1200 in")).wait_for()
    finally:
        first.context.close()
        second.context.close()
