"""srgan-studio in the browser: bicubic vs SRGAN, a toy GAN training live, and a KS drift check.

This file is layout and event wiring only. Every number on the page comes from `srgan_core`;
here it is turned into widgets and plotly figures. `python app.py` serves it (a Hugging Face
Space runs the same file); `python app.py --help` lists the options.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
from gradio.components.plot import PlotData
from PIL import Image

from srgan_core import anomaly, publish, toygan, weights
from srgan_core.data import downscale, modcrop
from srgan_core.metrics import gradient_magnitude, psnr, ssim
from srgan_core.upscale import MAX_INPUT_PIXELS, MAX_INPUT_SIDE, ImageInputError, Upscaler, bicubic, load_image

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
HUB_REPO = "srgan-studio/srgan-x4"  # where the bundled weights are published; the Space's `models:` entry
HUB_DEFAULT = f"hf://{HUB_REPO}/srgan_x4"
SCALE = 4
SR_CONCURRENCY = 1  # SR jobs at once, all users together: each holds a model and a 16x larger output
MODEL_CACHE = 4  # generators kept in memory, shared by all sessions (inference keeps no state)
CROP = 96  # side of the zoomed comparison crop, in output pixels
ZOOM = 3  # nearest-neighbour magnification of that crop on the page
TOY_UPDATES_PER_S = 4  # plot refreshes per second while the toy GAN trains
TOY_CONCURRENCY = 2  # toy trainings at once; each keeps one core busy
TOY_MAX_EPOCHS = 100_000  # a minute or two of CPU: longer runs belong to the CLI, not a shared demo
TOY_MAX_HIDDEN = 1024
MAX_KS_N = 5_000
CURVE_SIZES = [10, 20, 50, 100, 200, 500, 1000]
CURVE_TRIALS = 200
LABELS = {"srgan_x4": "SRGAN", "srresnet_x4": "SRResNet"}

# ============================================================================ models on disk


def bundled_models() -> list[str]:
    """Generators in the weights folder, SRGAN first (read on every call: weights may arrive later)."""
    return sorted(weights.list_bundled("generator"), key=lambda n: (n not in LABELS, list(LABELS).index(n) if n in LABELS else 0, n))


def label(name: str) -> str:
    return LABELS.get(name, name)


def model_choices() -> list[tuple[str, str]]:
    choices = [(f"{label(n)} ×{SCALE} (bundled)", n) for n in bundled_models()]
    return choices + [(f"{HUB_DEFAULT} (Hugging Face Hub)", HUB_DEFAULT)]


def weights_notice() -> str:
    if bundled_models():
        return ""
    return (
        "⚠️ **No bundled super-resolution weights in `weights/` yet.** The page still works: bicubic is always "
        "there, and a Hub reference (`hf://owner/repo/name`) is downloaded when the network allows. A model "
        "that cannot be loaded is reported, and bicubic is shown in its place."
    )


_models: dict[str, Upscaler] = {}


def load_model(source: str) -> tuple[Upscaler | None, str]:
    """The Upscaler for a model choice, and a note for the page ("" when it is the one asked for).

    Only bundled names and hf:// references are accepted: a visitor must not be able to make
    the server open arbitrary local paths."""
    if source not in bundled_models() and not str(source).startswith("hf://"):
        raise gr.Error(f"Unknown model {source!r}: choose a bundled model or an hf://owner/repo/name reference.")
    if source in _models:
        return _models[source], ""
    try:
        loaded = weights.load_generator(source)
    except (ValueError, OSError) as exc:
        gr.Warning(_public(f"Could not load {source}: {exc}"))
        return None, "No model could be loaded (see the warning), so bicubic is on both sides of the slider."
    up = Upscaler(loaded)
    if loaded.fallback_reason:  # the Hub failed: the bundled default stands in, and is not cached as `source`
        note = f"{source} is unavailable ({loaded.fallback_reason}); the bundled {label(loaded.name)} was used instead."
        gr.Warning(_public(note))
        return up, _public(note)
    if len(_models) >= MODEL_CACHE:
        _models.pop(next(iter(_models)))
    _models[source] = up
    return up, ""


def _public(message: str) -> str:
    """A library message fit for visitors: the server's own folders are not their business."""
    return message.replace(str(weights.weights_dir()), "weights/")


# ============================================================================ super-resolution


def open_upload(payload: dict | str | None) -> tuple[Image.Image, str]:
    """The uploaded image, checked by the library (format, size limits, decompression bombs).

    The SR events skip Gradio's own preprocessing, so every file reaches `load_image` and a bad
    one gets its clear message instead of a generic error."""
    if payload is None:
        raise gr.Error("Upload an image first: drag and drop, paste, or pick an example.")
    path = payload.get("path") if isinstance(payload, dict) else payload
    name = (payload.get("orig_name") if isinstance(payload, dict) else None) or Path(str(path)).name
    try:
        image = load_image(path)
    except ImageInputError as exc:
        raise gr.Error(str(exc).replace(str(path), name)) from None
    return image, Path(name).stem


def _tiles(progress: gr.Progress, what: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        progress((done, total), desc=f"{what}: tile {done}/{total}", unit="tiles")

    return report


def _run(up: Upscaler, image: Image.Image, progress: gr.Progress) -> tuple[Image.Image, float]:
    t0 = time.perf_counter()
    try:
        out = up.upscale(image, progress=_tiles(progress, label(up.name)))
    except ImageInputError as exc:
        raise gr.Error(str(exc)) from None
    return out, time.perf_counter() - t0


_downloads = Path(tempfile.mkdtemp(prefix="srgan-studio-"))


def _save_png(image: Image.Image, stem: str) -> str:
    """The file behind the download link. Gradio serves a copy from its own cache, so ours are
    kept for an hour only: a long-running Space must not fill its disk."""
    for old in _downloads.glob("*/*.png"):
        if time.time() - old.stat().st_mtime > 3600:
            shutil.rmtree(old.parent, ignore_errors=True)
    out = Path(tempfile.mkdtemp(dir=_downloads)) / f"{stem}.png"
    image.save(out)
    return str(out)


def _crop_box(reference: Image.Image) -> tuple[int, int, int, int]:
    """A CROP-pixel square (or smaller) on the LR pixel grid: of a 3x3 grid of candidates, the one
    where `reference` (the bicubic output) has the most detail, so the crops show texture."""
    w, h = reference.size
    s = min(CROP, w, h) // SCALE * SCALE
    boxes = [(x, y, x + s, y + s) for x in {(w - s) * i // 2 // SCALE * SCALE for i in range(3)}
             for y in {(h - s) * j // 2 // SCALE * SCALE for j in range(3)}]
    return max(sorted(boxes), key=lambda box: gradient_magnitude(reference.crop(box)))


def _zoom(image: Image.Image) -> Image.Image:
    return image.convert("RGB").resize((image.width * ZOOM, image.height * ZOOM), Image.Resampling.NEAREST)


def crops(lr: Image.Image, outputs: dict[str, Image.Image], original: Image.Image | None) -> list:
    """The same detailed region, zoomed, from bicubic, every bundled model, the chosen model and (when
    known) the original. Models not run on the whole image run on that region plus a margin
    wider than their receptive field, which gives the same pixels as a whole-image run."""
    box = _crop_box(outputs["Bicubic"].convert("RGB"))
    gallery = [(_zoom(outputs["Bicubic"].crop(box)), "Bicubic")]
    for name in bundled_models():
        if label(name) in outputs:
            continue
        up, _ = load_model(name)
        if up is None:
            continue
        m = up.radius + 1
        l, t, r, b = (v // SCALE for v in box)
        ml, mt = max(0, l - m), max(0, t - m)
        patch = lr.crop((ml, mt, min(lr.width, r + m), min(lr.height, b + m)))
        inner = ((l - ml) * SCALE, (t - mt) * SCALE, (r - ml) * SCALE, (b - mt) * SCALE)
        gallery.append((_zoom(up.upscale(patch).crop(inner)), label(name)))
    gallery += [(_zoom(im.crop(box)), name) for name, im in outputs.items() if name != "Bicubic"]
    if original is not None:
        gallery.append((_zoom(original.crop(box)), "Original"))
    return gallery


def upscale(image: dict | None, model: str, progress: gr.Progress = gr.Progress()):
    """Upscale the image 4x with bicubic and with the chosen model.

    Returns: the (bicubic, model) pair for the slider, the model's output as a PNG file, zoomed
    crops of one region from each method, a summary line, and the table [method, PSNR, SSIM,
    seconds] with the scores left empty (there is no original to compare with)."""
    img, stem = open_upload(image)
    up, note = load_model(model)
    progress(0, desc="Bicubic")
    t0 = time.perf_counter()
    bic = bicubic(img, SCALE)
    table = [["Bicubic", None, None, round(time.perf_counter() - t0, 2)]]
    outputs = {"Bicubic": bic}
    if up is None:
        sr, took, name = bic, 0.0, "Bicubic"
    else:
        sr, took = _run(up, img, progress)
        name = label(up.name)
        outputs[name] = sr
        table.append([name, None, None, round(took, 2)])
    summary = (f"**{name}**: {img.width}×{img.height} → {sr.width}×{sr.height} in {took:.2f} s. "
               + (note or f"Slider: bicubic on the left, {name} on the right."))
    return (bic, sr), _save_png(sr, f"{stem}_x{SCALE}_{name.lower()}"), crops(img, outputs, None), summary, table


def simulate(image: dict | None, model: str, progress: gr.Progress = gr.Progress()):
    """Downscale the image 4x (the degradation used in training), upscale it back with bicubic and
    each model, and score each against the original: PSNR and SSIM on Y, 4 px border ignored.

    Returns: the (bicubic, model) pair for the slider, the model's output as a PNG file, zoomed
    crops including the original, a summary line, and the table [method, PSNR, SSIM, seconds]."""
    img, stem = open_upload(image)
    hr = modcrop(img.convert("RGB"), SCALE)
    if min(hr.size) < 4 * SCALE:
        raise gr.Error(f"Simulate needs at least {4 * SCALE}×{4 * SCALE} px; this image is {img.width}×{img.height}.")
    lr = downscale(hr, SCALE)
    t0 = time.perf_counter()
    bic = bicubic(lr, SCALE)
    rows = [["Bicubic", psnr(bic, hr, SCALE), ssim(bic, hr, SCALE), time.perf_counter() - t0]]
    outputs = {"Bicubic": bic}
    chosen, note = load_model(model)
    others = [load_model(n)[0] for n in bundled_models() if n != model]
    for up in [chosen, *others]:
        if up is None or label(up.name) in outputs:
            continue
        sr, took = _run(up, lr, progress)
        outputs[label(up.name)] = sr
        rows.append([label(up.name), psnr(sr, hr, SCALE), ssim(sr, hr, SCALE), took])
    name = label(chosen.name) if chosen is not None else "Bicubic"
    table = [[m, round(float(p), 2), round(float(s), 4), round(t, 2)] for m, p, s, t in rows]
    summary = (f"Original {hr.width}×{hr.height} → shrunk to {lr.width}×{lr.height} → upscaled back. "
               "Higher PSNR / SSIM is closer to the original; SRGAN gives up a little PSNR for sharper texture. "
               + (note or f"Slider: bicubic on the left, {name} on the right."))
    return ((bic, outputs[name]), _save_png(outputs[name], f"{stem}_simulated_{name.lower()}"),
            crops(lr, outputs, hr), summary, table)


# ============================================================================ plotting helpers


def series(values) -> list:
    """Numbers for a plotly trace: a JSON list, 4 decimals (plenty on screen, and a third of the
    bytes), with gaps (null) where a value is not finite."""
    a = np.round(np.asarray(values, dtype=np.float64), 4)
    return [v if math.isfinite(v) else None for v in a.tolist()]


def figure(traces: list[dict], title: str, x: str, y: str, height: int = 330, **layout) -> PlotData:
    """A plotly figure written as plain JSON for gr.Plot.

    Building the same figure with plotly.graph_objects validates and deep-copies every property
    (about a tenth of a second per figure here), which would throttle the live toy-GAN plots."""
    spec = {
        "data": traces,
        "layout": {"title": {"text": title}, "height": height, "margin": {"l": 55, "r": 20, "t": 50, "b": 40},
                   "xaxis": {"title": {"text": x}, "zeroline": False}, "yaxis": {"title": {"text": y}, "zeroline": False},
                   "legend": {"orientation": "h", "y": -0.25}, "uirevision": "keep", "font": {"size": 12}, **layout},
    }
    return PlotData(type="plotly", plot=json.dumps(spec))


def hline(y: float, text: str) -> tuple[dict, dict]:
    """A dotted horizontal line across the plot and its label: (shape, annotation)."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y,
             "line": {"color": "#888", "dash": "dot", "width": 1.5}}
    note = {"xref": "paper", "x": 1, "y": y, "text": text, "showarrow": False, "xanchor": "right", "yanchor": "bottom"}
    return shape, note


def _density_and_quantiles(cdf: Callable[[np.ndarray], np.ndarray], lo: float, hi: float):
    """Plotting curves from a library CDF: the density on a grid (its slope) and a quantile
    function (its inverse, by interpolation). Works for any target, mixtures included."""
    grid = np.linspace(lo, hi, 2001)
    values = cdf(grid)
    return grid, np.gradient(values, grid), lambda p: np.interp(p, values, grid)


COLORS = {"real": "#636efa", "fake": "#ef553b", "target": "#222222", "d": "#00a383", "ks": "#ab63fa"}

# ============================================================================ toy GAN

TARGET_INFO = " · ".join(f"{t}: {toygan.describe_target(toygan.ToyGANConfig(target=t))}" for t in toygan.TARGETS)


def fig_distribution(snap: toygan.Snapshot, config: toygan.ToyGANConfig) -> PlotData:
    """Real data and generated samples over the target density, with the discriminator's
    decision curve D(x) on the right-hand axis: the picture of Goodfellow et al. (2014), fig. 1.
    One figure rather than two, because every figure costs the browser a redraw per update."""
    lo, hi = float(snap.grid[0]), float(snap.grid[-1])
    grid, density, _ = _density_and_quantiles(toygan.target_cdf(config), lo, hi)
    bins = {"start": lo, "end": hi, "size": (hi - lo) / 60}
    traces = [
        {"type": "histogram", "x": series(snap.real), "name": "real data", "histnorm": "probability density",
         "opacity": 0.5, "marker": {"color": COLORS["real"]}, "xbins": bins},
        {"type": "histogram", "x": series(snap.samples), "name": "generated", "histnorm": "probability density",
         "opacity": 0.6, "marker": {"color": COLORS["fake"]}, "xbins": bins},
        {"type": "scatter", "mode": "lines", "x": series(grid[::10]), "y": series(density[::10]),
         "name": f"target {toygan.describe_target(config)}", "line": {"color": COLORS["target"], "width": 2}},
        {"type": "scatter", "mode": "lines", "x": series(snap.grid[::2]), "y": series(snap.decision[::2]), "yaxis": "y2",
         "name": "D(x): P(real | x)", "line": {"color": COLORS["d"], "width": 3, "dash": "dash"}},
    ]
    half = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y2", "y0": 0.5, "y1": 0.5,
            "line": {"color": COLORS["d"], "dash": "dot", "width": 1}}
    return figure(traces, f"Epoch {snap.epoch:,} of {snap.epochs:,}: generated vs real, and the discriminator",
                  "x", "density", height=380, barmode="overlay", shapes=[half],
                  xaxis={"range": [lo, hi], "title": {"text": "x"}},
                  yaxis={"range": [0, 1.6 * float(density.max())], "title": {"text": "density"}},
                  yaxis2={"range": [0, 1], "overlaying": "y", "side": "right", "showgrid": False,
                          "title": {"text": "D(x)"}, "tickvals": [0, 0.5, 1]},
                  margin={"l": 55, "r": 60, "t": 50, "b": 40})


def fig_curves(history: dict[str, list], epochs: int) -> PlotData:
    traces = [
        {"type": "scatter", "x": history["epoch"], "y": series(history["d_loss"]), "name": "D loss",
         "line": {"color": COLORS["real"]}},
        {"type": "scatter", "x": history["epoch"], "y": series(history["g_loss"]), "name": "G loss",
         "line": {"color": COLORS["fake"]}},
        {"type": "scatter", "x": history["epoch"], "y": series(history["ks"]), "name": "KS distance", "yaxis": "y2",
         "line": {"color": COLORS["ks"], "dash": "dot"}},
    ]
    return figure(traces, "Losses and KS distance to the target", "epoch", "loss (BCE)",
                  xaxis={"range": [0, epochs], "title": {"text": "epoch"}},
                  yaxis2={"title": {"text": "KS distance"}, "range": [0, 1], "overlaying": "y", "side": "right",
                          "showgrid": False}, margin={"l": 55, "r": 60, "t": 50, "b": 40})


def whole(name: str, value: object, lo: int, hi: int) -> int:
    """A whole number from a widget or an API call, or a gr.Error that names the parameter.

    The toy and KS events skip Gradio's preprocessing (whose messages do not say which field
    was wrong), so every number is checked here or in the library."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise gr.Error(f"{name} must be a whole number, got {value!r}")
    if value != int(value) or not lo <= value <= hi:
        raise gr.Error(f"{name} must be a whole number between {lo:,} and {hi:,}, got {value:,}")
    return int(value)


def number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise gr.Error(f"{name} must be a number, got {value!r}")
    return float(value)  # ranges (finite, positive, ...) are the library's to check and explain


def _toy_config(target, epochs, lr, hidden, seed) -> toygan.ToyGANConfig:
    epochs = whole("epochs", epochs, 1, TOY_MAX_EPOCHS)
    hidden = whole("hidden units", hidden, 1, TOY_MAX_HIDDEN)
    seed, lr = whole("seed", seed, 0, 2**32 - 1), number("lr", lr)
    try:
        return toygan.ToyGANConfig(target=target, epochs=epochs, lr=lr, hidden=hidden, seed=seed)
    except (TypeError, ValueError) as exc:
        raise gr.Error(f"Invalid toy GAN settings: {exc}") from None


def train_toygan(target: str, epochs: float, lr: float, hidden: float, seed: float, session: dict | None):
    """Train the 1-D GAN, streaming its progress several times a second.

    Yields a status dict {epoch, epochs, d_loss, g_loss, ks_statistic, target, done}. The latest
    snapshot goes into the session, where `toy_view` draws it: the page asks for it on a timer,
    so a slow browser skips frames instead of queueing them."""
    config = _toy_config(target, epochs, lr, hidden, seed)
    session = dict(session or {})
    session["toy_stopped"] = False
    history: dict[str, list] = {"epoch": [], "d_loss": [], "g_loss": [], "ks": []}
    last_yield = 0.0
    for snap in toygan.train(config, snapshot_every=max(1, config.epochs // 400)):
        for key, value in (("epoch", snap.epoch), ("d_loss", snap.d_loss), ("g_loss", snap.g_loss),
                           ("ks", snap.ks_statistic)):
            history[key].append(value)
        # stored at every snapshot, so Stop leaves this session a usable generator; the per-epoch
        # loss arrays are dropped, the plots use the history above
        lite = dataclasses.replace(snap, d_losses=np.empty(0), g_losses=np.empty(0))
        session["toy"] = {"generator": snap.generator, "epoch": snap.epoch, "snapshot": lite, "config": config,
                          "history": {k: list(v) for k, v in history.items()}}
        done = snap.epoch >= config.epochs
        if done or time.monotonic() - last_yield >= 1 / TOY_UPDATES_PER_S:
            last_yield = time.monotonic()
            yield {"epoch": snap.epoch, "epochs": config.epochs, "d_loss": round(snap.d_loss, 4),
                   "g_loss": round(snap.g_loss, 4), "ks_statistic": round(snap.ks_statistic, 4),
                   "target": toygan.describe_target(config), "done": done}, session


def toy_view(session: dict | None):
    """This session's latest toy-GAN snapshot: samples against the data with D(x), the loss and
    KS-distance curves, and a status line. Returns (figure, figure, text); None for each figure
    before any training."""
    toy = (session or {}).get("toy")
    if toy is None:
        return None, None, "Press **Train** to start."
    snap, config = toy["snapshot"], toy["config"]
    state = ("stopped; this generator is kept for the Anomaly playground" if session.get("toy_stopped")
             else "done" if snap.epoch >= snap.epochs else "training…")
    line = (f"**Epoch {snap.epoch:,} / {snap.epochs:,}** ({state}) · D loss {snap.d_loss:.3f} · "
            f"G loss {snap.g_loss:.3f} · KS distance {snap.ks_statistic:.3f}")
    return fig_distribution(snap, config), fig_curves(toy["history"], config.epochs), line


def stop_toygan(session: dict | None):
    # The session dict is the one the training generator fills; marking it here is seen by the
    # final redraw that follows Stop.
    if session is not None:
        session["toy_stopped"] = True
    return gr.Timer(active=False)


# ============================================================================ anomaly playground


def toy_generator(session: dict | None) -> tuple[toygan.ToyGenerator, str]:
    """This session's trained generator if there is one, else the bundled default."""
    toy = (session or {}).get("toy")
    if toy is not None:
        return toy["generator"], f"trained in this session (epoch {toy['epoch']:,}, target {toy['generator'].target})"
    try:
        return toygan.load_toy_generator(None), "bundled default"
    except (ValueError, OSError) as exc:
        raise gr.Error(f"No toy generator yet: train one in the Toy GAN tab first. ({exc})") from None


def _noise_spec(source: str, a: float, b: float, fraction: float) -> anomaly.NoiseSpec:
    a, b, fraction = number("a", a), number("b", b), number("fraction", fraction)
    try:
        return anomaly.NoiseSpec(kind=source, a=a, b=b, fraction=fraction)
    except (TypeError, ValueError) as exc:
        raise gr.Error(f"Invalid input source: {exc}") from None


def ks_check(source: str, a: float, b: float, fraction: float, n: float, seed: float, session: dict | None):
    """Feed n draws of the chosen noise through the toy generator and KS-test the outputs
    against the generator's target (N(0, 1) for the bundled one).

    Returns: input histogram, output histogram over the target density, QQ plot, a verdict line,
    and a dict {statistic, p_value, alpha, flagged, verdict, n, source, target, generator}."""
    n, seed = whole("n", n, 2, MAX_KS_N), whole("seed", seed, 0, 2**32 - 1)
    spec = _noise_spec(source, a, b, fraction)
    generator, which = toy_generator(session)
    r = anomaly.ks_check(generator, spec, n=n, seed=seed)
    result = {"statistic": round(r.statistic, 4), "p_value": r.p_value, "alpha": r.alpha, "flagged": r.flagged,
              "verdict": r.verdict, "n": r.n, "source": r.source, "target": r.target, "generator": which}
    line = (f"### {'Flagged: the input has drifted' if r.flagged else 'Passes: no drift detected'}\nKS statistic **{r.statistic:.3f}**, p-value "
            f"**{r.p_value:.3g}** (α = {r.alpha:g}), n = {r.n}, input {r.source}, generator: {which}.")
    return (fig_inputs(r), *figs_outputs(r, generator), line, result)


def fig_inputs(r: anomaly.KSResult) -> PlotData:
    trace = {"type": "histogram", "x": series(r.inputs), "histnorm": "probability density", "nbinsx": 30,
             "marker": {"color": COLORS["real"]}, "name": "inputs"}
    uniform = {"type": "scatter", "mode": "lines", "x": [0, 0, 1, 1], "y": [0, 1, 1, 0], "name": "U(0, 1)",
               "line": {"color": COLORS["target"], "dash": "dot", "width": 2}}
    return figure([trace, uniform], f"Generator input: {r.source}", "z", "density")


def figs_outputs(r: anomaly.KSResult, generator: toygan.ToyGenerator) -> tuple[PlotData, PlotData]:
    """The outputs' histogram over the target density, and their QQ plot against the target."""
    out = np.sort(r.outputs)
    spread = float(out[-1] - out[0]) + 1.0
    grid, density, quantile = _density_and_quantiles(generator.target_cdf, float(out[0]) - 2 * spread,
                                                     float(out[-1]) + 2 * spread)
    hist = figure(
        [{"type": "histogram", "x": series(out), "histnorm": "probability density", "nbinsx": 30, "name": "outputs",
          "marker": {"color": COLORS["fake"]}, "opacity": 0.7},
         {"type": "scatter", "mode": "lines", "x": series(grid[::4]), "y": series(density[::4]),
          "name": f"target {r.target}", "line": {"color": COLORS["target"], "width": 2}}],
        f"Generator output vs {r.target}", "G(z)", "density",
        xaxis={"range": [float(out[0]) - 0.5, float(out[-1]) + 0.5], "title": {"text": "G(z)"}})
    theory = quantile((np.arange(len(out)) + 0.5) / len(out))
    lo, hi = float(min(theory[0], out[0])), float(max(theory[-1], out[-1]))
    qq = figure(
        [{"type": "scatter", "mode": "markers", "x": series(theory), "y": series(out), "name": "outputs",
          "marker": {"size": 5, "color": COLORS["fake"]}},
         {"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "name": "y = x",
          "line": {"color": "#888", "dash": "dot"}}],
        f"QQ plot against {r.target}", f"{r.target} quantile",
        "output quantile", showlegend=False)
    return hist, qq


def detection_curve(source: str, a: float, b: float, fraction: float, seed: float, session: dict | None):
    """How often the KS check fires as n grows: on uniform input, what the generator was trained
    on (false alarms, about alpha), and on the chosen source (the power to detect it).

    Returns: a figure and a dict {sizes, trials, alpha, false_alarm, power, source}."""
    seed = whole("seed", seed, 0, 2**32 - 1)
    spec = _noise_spec(source, a, b, fraction)
    generator, which = toy_generator(session)
    power = anomaly.detection_curve(generator, spec, sizes=CURVE_SIZES, trials=CURVE_TRIALS, seed=seed)
    null = anomaly.detection_curve(generator, anomaly.NoiseSpec("uniform"), sizes=CURVE_SIZES, trials=CURVE_TRIALS, seed=seed)
    shape, note = hline(power.alpha, f"α = {power.alpha:g}")
    fig = figure(
        [{"type": "scatter", "mode": "lines+markers", "x": power.sizes, "y": series(power.flag_rate),
          "name": f"power: {power.source} input", "line": {"color": COLORS["fake"]}},
         {"type": "scatter", "mode": "lines+markers", "x": null.sizes, "y": series(null.flag_rate),
          "name": "false alarms: U(0, 1) input", "line": {"color": COLORS["real"]}}],
        f"Share of {power.trials} checks flagged", "n (values per check)", "flagged", shapes=[shape],
        annotations=[note], xaxis={"type": "log", "title": {"text": "n (values per check)"}},
        yaxis={"range": [0, 1.05], "title": {"text": "share flagged"}})
    return fig, {"sizes": power.sizes, "trials": power.trials, "alpha": power.alpha,
                         "false_alarm": null.flag_rate, "power": power.flag_rate, "source": power.source,
                         "generator": which}


# ============================================================================ model card


def model_card() -> tuple[str, list[list], PlotData | None]:
    """The bundled weights, described by their own files: each sidecar JSON, and a training log
    NAME.metrics.jsonl beside it when one is shipped. Bicubic and the paper's SRResNet are
    listed for reference."""
    text, rows, curves = [], [], []
    folder = weights.weights_dir()
    for name in bundled_models():
        meta = json.loads((folder / f"{name}.json").read_text())
        train, cfg = meta.get("training", {}), meta.get("config", {})
        text.append(f"### {label(name)} ×{meta.get('scale', SCALE)} (`weights/{name}`)\n"
                    f"{meta.get('description', '').rstrip('.')}: {cfg.get('blocks', '?')} residual blocks, "
                    f"{cfg.get('channels', '?')} channels.\n\n{_facts(train)}")
        for data, m in sorted((meta.get("metrics") or {}).items()):
            if isinstance(m, dict) and "psnr" in m:
                ratio = m.get("gradient_ratio")
                rows.append([label(name), data, round(float(m["psnr"]), 2), round(float(m.get("ssim", "nan")), 4),
                             None if ratio is None else round(float(ratio), 3)])
        log = folder / f"{name}.metrics.jsonl"
        if log.is_file():
            curves += [{"type": "scatter", "mode": "lines+markers", "x": xs, "y": series(ys),
                        "name": f"{label(name)} on {data}"} for data, (xs, ys) in _validation_points(log).items()]
    if not text:
        text = ["No bundled super-resolution weights in `weights/` yet: this card fills in when they arrive."]
    if "toygan_default" in weights.list_bundled("toygan"):
        toy = json.loads((folder / "toygan_default.json").read_text())
        text.append(f"### Toy generator (`weights/toygan_default`)\n{toy.get('description', '')}\n\n"
                    f"{_facts(toy.get('training') or {})}")
    for reference, table in (("Bicubic (reference)", publish.BICUBIC), ("SRResNet, paper (reference)", publish.PAPER)):
        rows += [[reference, data, p, s, None] for data, (p, s) in sorted(table.items())]
    rows.sort(key=lambda row: row[1])  # by test set; models before the references
    fig = figure(curves, "Validation PSNR during training", "iteration", "PSNR (dB)", height=380) if curves else None
    return "\n\n".join(text), rows, fig


def _facts(training: dict) -> str:
    """A sidecar's free-form "training" record as a Markdown list, the command as a code block."""
    def show(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return ", ".join(map(str, v)) if isinstance(v, list) else str(v)

    lines = [f"- {k.replace('_', ' ')}: {show(v)}" for k, v in training.items() if k != "command"]
    if training.get("command"):
        lines.append(f"\n```\n{training['command']}\n```")
    return "\n".join(lines)


def _validation_points(log: Path) -> dict[str, tuple[list, list]]:
    points: dict[str, tuple[list, list]] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        for data, m in (record.get("validation") or {}).items():
            xs, ys = points.setdefault(data, ([], []))
            xs.append(record["iteration"])
            ys.append(m["psnr"])
    return points


# ============================================================================ layout

INTRO = """
# srgan-studio
Super-resolution with SRGAN ([Ledig et al., 2017](https://arxiv.org/abs/1609.04802)), a one-dimensional GAN you can
watch learn, and a drift detector built from it. Everything runs on the CPU.
"""

SR_HELP = f"""
**Upscale ×4** makes your image four times larger. **Simulate ×4** shrinks it four times first, upscales it back and
scores each method against the original (PSNR / SSIM). Drag the slider to compare bicubic with the model; below it,
the same region from every model, zoomed. Inputs up to {MAX_INPUT_SIDE:,} px a side and {MAX_INPUT_PIXELS / 1e6:.1f} MP.
"""

TOY_HELP = """
A GAN is two small networks playing a game. The **generator** turns random noise into numbers; the
**discriminator** sees the real data and the generated numbers and learns to tell them apart: its decision curve
D(x) (green, dashed) is the probability it gives x of being real. Each epoch, D takes one step at telling them apart,
then the generator takes one step at fooling D. When the red histogram covers the blue one, D(x) flattens towards ½
(it can no longer tell) and the KS distance, the largest gap between the two distributions, drops. Press **Train**;
**Stop** keeps the generator as it is, for the Anomaly playground.
"""

KS_HELP = """
The toy generator turns U(0, 1) noise into numbers that follow its target (N(0, 1) for the bundled one). Feed it
other noise and its outputs drift. The Kolmogorov-Smirnov test measures the largest gap between the outputs'
distribution and the target: the **KS statistic**. The **p-value** is how often a gap at least that large would
happen by chance if the input were still U(0, 1). Below α = 0.05 the batch is **flagged**. On the QQ plot, points
on the diagonal mean "same distribution". Small batches miss small drifts: the detection curve shows how often the
check fires as n grows, on uniform input (false alarms, ideally α) and on the chosen input (the power). False
alarms that climb with n mean the generator itself is not quite its target: large batches see that too.
"""

CSS = """
#sr-summary, #toy-line, #ks-line { min-height: 2.5em; }
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="srgan-studio", delete_cache=(1800, 3600)) as demo:
        session = gr.State(None)  # per browser tab / client: this session's trained toy generator
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Super-resolution", id="sr"):
                notice = gr.Markdown(weights_notice(), elem_id="weights-notice")
                gr.Markdown(SR_HELP)
                with gr.Row():
                    with gr.Column(scale=2):
                        image_in = gr.Image(label="Input image", type="filepath", image_mode=None, height=300,
                                            sources=["upload", "clipboard"], elem_id="sr-input")
                        choices = model_choices()
                        model = gr.Dropdown(choices, value=choices[0][1], label="Model", allow_custom_value=True,
                                            info="bundled weights, or a Hub reference hf://owner/repo/name")
                        with gr.Row():
                            upscale_btn = gr.Button("Upscale ×4", variant="primary", elem_id="upscale-btn")
                            simulate_btn = gr.Button("Simulate ×4", variant="secondary", elem_id="simulate-btn")
                        examples = gr.Examples([[str(p)] for p in sorted(EXAMPLES.glob("*.png"))], inputs=[image_in],
                                               label="Examples (public domain / CC0): a click runs Simulate")
                    with gr.Column(scale=3):
                        slider = gr.ImageSlider(label="Bicubic ↔ model", type="pil", format="png", max_height=560,
                                                elem_id="sr-slider")
                        summary = gr.Markdown(elem_id="sr-summary")
                        scores = gr.Dataframe(headers=["method", "PSNR (dB)", "SSIM", "time (s)"],
                                              datatype=["str", "number", "number", "number"], interactive=False,
                                              label="Time taken, and scores against the original (Simulate)",
                                              elem_id="sr-scores")
                        gallery = gr.Gallery(label="Same region, zoomed ×3", columns=4, height=240,
                                             object_fit="contain", elem_id="sr-crops")
                        download = gr.File(label="The model's output (PNG)", height=80)
                sr_io = dict(inputs=[image_in, model], outputs=[slider, download, gallery, summary, scores],
                             preprocess=False, concurrency_limit=SR_CONCURRENCY, concurrency_id="sr")
                upscale_btn.click(upscale, api_name="upscale", **sr_io)
                simulate_btn.click(simulate, api_name="simulate", **sr_io)
                examples.load_input_event.then(simulate, api_visibility="private", **sr_io)

            with gr.Tab("Toy GAN", id="toy"):
                gr.Markdown(TOY_HELP)
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        target = gr.Radio(list(toygan.TARGETS), value="normal", label="Real data", info=TARGET_INFO)
                        epochs = gr.Slider(100, TOY_MAX_EPOCHS, value=20_000, step=100, label="Epochs",
                                           info="one epoch = one update of D, then one of G", elem_id="toy-epochs")
                        lr = gr.Number(1e-3, label="Learning rate (Adam)", minimum=1e-6, maximum=1.0)
                        hidden = gr.Slider(2, 256, value=50, step=1, label="Generator hidden units")
                        seed = gr.Number(1, label="Seed", precision=0, minimum=0,
                                         info="seed 1 matches the bundled generator")
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                        toy_line = gr.Markdown("Press **Train** to start.", elem_id="toy-line")
                        toy_status = gr.JSON(visible=False)
                    with gr.Column(scale=3):
                        dist_plot = gr.Plot(show_label=False, elem_id="toy-dist")
                        curves_plot = gr.Plot(show_label=False, elem_id="toy-curves")
                # The page pulls the plots on a timer instead of having them pushed with every update:
                # a tick is skipped while the previous one is pending, so a slow browser never falls
                # behind a backlog of frames.
                plot_timer = gr.Timer(1 / TOY_UPDATES_PER_S, active=False)
                view = [dist_plot, curves_plot, toy_line]
                plot_timer.tick(toy_view, session, view, api_name="toy_plots", show_progress="hidden",
                                concurrency_limit=None)
                train_event = train_btn.click(lambda: gr.Timer(active=True), None, plot_timer, queue=False,
                                              api_visibility="private").then(
                    train_toygan, [target, epochs, lr, hidden, seed, session], [toy_status, session],
                    api_name="train_toygan", concurrency_limit=TOY_CONCURRENCY, concurrency_id="toy",
                    show_progress="hidden", preprocess=False)
                # after the last update (or an error), and after Stop: stop asking, draw the final state
                train_event.then(lambda: gr.Timer(active=False), None, plot_timer, api_visibility="private").then(
                    toy_view, session, view, api_visibility="private", show_progress="hidden")
                stop_btn.click(stop_toygan, session, plot_timer, cancels=[train_event], api_visibility="private",
                               queue=False).then(toy_view, session, view, api_visibility="private",
                                                 show_progress="hidden")

            with gr.Tab("Anomaly playground", id="anomaly"):
                gr.Markdown(KS_HELP)
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        source = gr.Radio(list(anomaly.NOISE_KINDS), value="beta", label="Input noise",
                                          info="uniform: what the generator expects · drift: uniform with a share of Beta")
                        a = gr.Slider(0.1, 10, value=1, step=0.1, label="Beta a")
                        b = gr.Slider(0.1, 10, value=5, step=0.1, label="Beta b")
                        fraction = gr.Slider(0, 1, value=0.2, step=0.05, label="Drift: share of Beta values",
                                             visible=False)
                        n = gr.Slider(10, MAX_KS_N, value=100, step=10, label="n: values per check")
                        ks_seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                        with gr.Row():
                            ks_btn = gr.Button("Run KS check", variant="primary", elem_id="ks-btn")
                            curve_btn = gr.Button("Detection curve", elem_id="curve-btn")
                        ks_line = gr.Markdown(elem_id="ks-line")
                        ks_result = gr.JSON(visible=False, elem_id="ks-result")
                    with gr.Column(scale=3):
                        with gr.Row():
                            in_plot = gr.Plot(show_label=False, elem_id="ks-inputs")
                            out_plot = gr.Plot(show_label=False, elem_id="ks-outputs")
                        with gr.Row():
                            qq_plot = gr.Plot(show_label=False, elem_id="ks-qq")
                            curve_plot = gr.Plot(show_label=False, elem_id="ks-curve")
                        curve_data = gr.JSON(visible=False)
                source.change(lambda s: (gr.Slider(visible=s in ("beta", "drift")), gr.Slider(visible=s in ("beta", "drift")),
                                         gr.Slider(visible=s == "drift")),
                              source, [a, b, fraction], api_visibility="private", queue=False)
                ks_btn.click(ks_check, [source, a, b, fraction, n, ks_seed, session],
                             [in_plot, out_plot, qq_plot, ks_line, ks_result], api_name="ks_check", preprocess=False)
                curve_btn.click(detection_curve, [source, a, b, fraction, ks_seed, session], [curve_plot, curve_data],
                                api_name="detection_curve", preprocess=False)

            with gr.Tab("Model card", id="card"):
                card_table = gr.Dataframe(headers=["model", "test set", "PSNR (dB)", "SSIM", "detail (gradient ratio)"],
                                          interactive=False, label="Benchmarks: PSNR / SSIM on Y, 4 px border ignored, "
                                          "as in the SRGAN paper; detail: output's mean gradient / the original's",
                                          elem_id="card-table")
                card_plot = gr.Plot(show_label=False, visible=False, elem_id="card-plot")
                card_text = gr.Markdown(elem_id="card-text")

        def refresh():
            # weights may be added while the server runs: every page load reads the folder again
            choices = model_choices()
            text, rows, fig = model_card()
            return (gr.Markdown(weights_notice()), gr.Dropdown(choices=choices, value=choices[0][1]), text, rows,
                    gr.Plot(value=fig, visible=fig is not None))

        demo.load(refresh, outputs=[notice, model, card_text, card_table, card_plot], api_visibility="private")
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve the srgan-studio web app. Host and port come from GRADIO_SERVER_NAME and "
        "GRADIO_SERVER_PORT when set, else 127.0.0.1:7860. Weights are read from weights/ "
        "(or SRGAN_WEIGHTS_DIR).")
    parser.add_argument("--host", default=None, help="interface to listen on, e.g. 0.0.0.0 for all")
    parser.add_argument("--port", type=int, default=None, help="port to listen on")
    args = parser.parse_args(argv)
    demo = build_app()
    demo.queue(max_size=64, default_concurrency_limit=2)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size="50mb", theme=gr.themes.Soft(), css=CSS)


if __name__ == "__main__":
    main()
