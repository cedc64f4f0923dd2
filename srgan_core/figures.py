"""Plotly figures for the app, written as plain JSON-ready dicts.

Building the same figures with plotly.graph_objects validates and deep-copies every property
(about a tenth of a second per figure here), which would throttle the live toy-GAN plots; a dict
costs nothing and is exactly what the browser's plotly.js reads. Nothing here imports gradio:
the app wraps each dict for its plot widget.

Titles are kept under ~40 characters so they fit a phone screen (390 px) without being cut:
the detail goes into legends and axis titles.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from srgan_core import anomaly, toygan

COLORS = {"real": "#636efa", "fake": "#ef553b", "target": "#222222", "d": "#00a383", "ks": "#ab63fa"}
Figure = dict


def series(values) -> list:
    """Numbers for a plotly trace: a JSON list, 4 decimals (plenty on screen, and a third of the
    bytes), with gaps (null) where a value is not finite."""
    a = np.round(np.asarray(values, dtype=np.float64), 4)
    return [v if math.isfinite(v) else None for v in a.ravel().tolist()]


def figure(traces: list[dict], title: str, x: str, y: str, height: int = 330, **layout) -> Figure:
    """A plotly figure {data, layout}; `layout` entries replace the defaults (axes included)."""
    return {
        "data": traces,
        "layout": {"title": {"text": title, "x": 0.02, "xanchor": "left"}, "height": height, "autosize": True,
                   "margin": {"l": 55, "r": 20, "t": 45, "b": 40},
                   "xaxis": {"title": {"text": x}, "zeroline": False}, "yaxis": {"title": {"text": y}, "zeroline": False},
                   "legend": {"orientation": "h", "y": -0.25}, "uirevision": "keep", "font": {"size": 12}, **layout},
    }


def hline(y: float, text: str) -> tuple[dict, dict]:
    """A dotted horizontal line across the plot and its label: (shape, annotation)."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y,
             "line": {"color": "#888", "dash": "dot", "width": 1.5}}
    note = {"xref": "paper", "x": 1, "y": y, "text": text, "showarrow": False, "xanchor": "right", "yanchor": "bottom"}
    return shape, note


def density_and_quantiles(cdf: Callable[[np.ndarray], np.ndarray], lo: float, hi: float):
    """Plotting curves from a library CDF: the density on a grid (its slope) and a quantile
    function (its inverse, by interpolation). Works for any target, mixtures included.

    Returns (grid, density, quantile) where quantile(p) maps probabilities to x."""
    grid = np.linspace(lo, hi, 2001)
    values = cdf(grid)
    return grid, np.gradient(values, grid), lambda p: np.interp(p, values, grid)


def log_ticks(values: Sequence[float]) -> dict:
    """Tick marks for a log axis at exactly `values`, written in full ("1,000", not "1k" or a
    bare "2" between powers of ten, which plotly's default log ticks show)."""
    return {"type": "log", "tickmode": "array", "tickvals": list(values), "ticktext": [f"{v:,}" for v in values]}


# ============================================================================ toy GAN


def toy_distribution(snap: toygan.Snapshot, config: toygan.ToyGANConfig, title: str | None = None) -> Figure:
    """Real data and generated samples over the target density, with the discriminator's
    decision curve D(x) on the right-hand axis: the picture of Goodfellow et al. (2014), fig. 1.
    One figure rather than two, because every figure costs the browser a redraw per update.
    `title` replaces "Epoch n of N" (the step mode counts updates instead). The axes depend only on
    the config, so they stay put from frame to frame."""
    lo, hi = float(snap.grid[0]), float(snap.grid[-1])
    grid, density, _ = density_and_quantiles(toygan.target_cdf(config), lo, hi)
    bins = {"start": lo, "end": hi, "size": (hi - lo) / 60}
    traces = [
        {"type": "histogram", "x": series(snap.real), "name": "real data", "histnorm": "probability density",
         "opacity": 0.5, "marker": {"color": COLORS["real"]}, "xbins": bins},
        {"type": "histogram", "x": series(snap.samples), "name": "generated", "histnorm": "probability density",
         "opacity": 0.6, "marker": {"color": COLORS["fake"]}, "xbins": bins},
        {"type": "scatter", "mode": "lines", "x": series(grid[::10]), "y": series(density[::10]),
         "name": f"target {toygan.describe_target(config)}", "line": {"color": COLORS["target"], "width": 2}},
        {"type": "scatter", "mode": "lines", "x": series(snap.grid[::2]), "y": series(snap.decision[::2]),
         "yaxis": "y2", "name": "D(x): P(real | x)", "line": {"color": COLORS["d"], "width": 3, "dash": "dash"}},
    ]
    half = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y2", "y0": 0.5, "y1": 0.5,
            "line": {"color": COLORS["d"], "dash": "dot", "width": 1}}
    return figure(traces, title or f"Epoch {snap.epoch:,} of {snap.epochs:,}", "x", "density", height=380,
                  barmode="overlay", shapes=[half],
                  xaxis={"range": [lo, hi], "title": {"text": "x"}},
                  yaxis={"range": [0, 1.6 * float(density.max())], "title": {"text": "density"}},
                  yaxis2={"range": [0, 1], "overlaying": "y", "side": "right", "showgrid": False,
                          "title": {"text": "D(x)"}, "tickvals": [0, 0.5, 1]},
                  margin={"l": 55, "r": 60, "t": 45, "b": 40})


def toy_curves(history: dict[str, list], epochs: int) -> Figure:
    """D and G losses (left axis) and the KS distance to the target (right axis) per epoch."""
    traces = [
        {"type": "scatter", "x": history["epoch"], "y": series(history["d_loss"]), "name": "D loss",
         "line": {"color": COLORS["real"]}},
        {"type": "scatter", "x": history["epoch"], "y": series(history["g_loss"]), "name": "G loss",
         "line": {"color": COLORS["fake"]}},
        {"type": "scatter", "x": history["epoch"], "y": series(history["ks"]), "name": "KS distance", "yaxis": "y2",
         "line": {"color": COLORS["ks"], "dash": "dot"}},
    ]
    return figure(traces, "Losses and KS distance", "epoch", "loss (BCE)",
                  xaxis={"range": [0, epochs], "title": {"text": "epoch"}},
                  yaxis2={"title": {"text": "KS distance"}, "range": [0, 1], "overlaying": "y", "side": "right",
                          "showgrid": False}, margin={"l": 55, "r": 60, "t": 45, "b": 40})


# ============================================================================ anomaly playground


def ks_inputs(r: anomaly.KSResult) -> Figure:
    trace = {"type": "histogram", "x": series(r.inputs), "histnorm": "probability density", "nbinsx": 30,
             "marker": {"color": COLORS["real"]}, "name": "inputs"}
    uniform = {"type": "scatter", "mode": "lines", "x": [0, 0, 1, 1], "y": [0, 1, 1, 0], "name": "U(0, 1)",
               "line": {"color": COLORS["target"], "dash": "dot", "width": 2}}
    return figure([trace, uniform], f"Input: {r.source}", "z", "density")


def ks_outputs(r: anomaly.KSResult, target_cdf: Callable[[np.ndarray], np.ndarray]) -> tuple[Figure, Figure]:
    """The outputs' histogram over the target density, and their QQ plot against the target."""
    out = np.sort(r.outputs)
    spread = float(out[-1] - out[0]) + 1.0
    grid, density, quantile = density_and_quantiles(target_cdf, float(out[0]) - 2 * spread, float(out[-1]) + 2 * spread)
    hist = figure(
        [{"type": "histogram", "x": series(out), "histnorm": "probability density", "nbinsx": 30, "name": "outputs",
          "marker": {"color": COLORS["fake"]}, "opacity": 0.7},
         {"type": "scatter", "mode": "lines", "x": series(grid[::4]), "y": series(density[::4]),
          "name": f"target {r.target}", "line": {"color": COLORS["target"], "width": 2}}],
        f"Output vs {r.target}", "G(z)", "density",
        xaxis={"range": [float(out[0]) - 0.5, float(out[-1]) + 0.5], "title": {"text": "G(z)"}})
    theory = quantile((np.arange(len(out)) + 0.5) / len(out))
    lo, hi = float(min(theory[0], out[0])), float(max(theory[-1], out[-1]))
    qq = figure(
        [{"type": "scatter", "mode": "markers", "x": series(theory), "y": series(out), "name": "outputs",
          "marker": {"size": 5, "color": COLORS["fake"]}},
         {"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "name": "y = x",
          "line": {"color": "#888", "dash": "dot"}}],
        f"QQ plot against {r.target}", f"{r.target} quantile", "output quantile", showlegend=False)
    return hist, qq


def detection(power: anomaly.DetectionCurve, null: anomaly.DetectionCurve) -> Figure:
    """Share of checks flagged against n: on the chosen input (power) and on uniform input
    (false alarms), with alpha drawn as the line false alarms ought to stay on."""
    shape, note = hline(power.alpha, f"α = {power.alpha:g}")
    return figure(
        [{"type": "scatter", "mode": "lines+markers", "x": list(power.sizes), "y": series(power.flag_rate),
          "name": f"power: {power.source} input", "line": {"color": COLORS["fake"]}},
         {"type": "scatter", "mode": "lines+markers", "x": list(null.sizes), "y": series(null.flag_rate),
          "name": "false alarms: U(0, 1) input", "line": {"color": COLORS["real"]}}],
        f"Share of {power.trials} checks flagged", "n (values per check)", "share flagged", shapes=[shape],
        annotations=[note], xaxis={**log_ticks(power.sizes), "title": {"text": "n (values per check)"}},
        yaxis={"range": [0, 1.05], "title": {"text": "share flagged"}})


# ============================================================================ model card


def validation_curves(curves: dict[str, tuple[list, list]]) -> Figure | None:
    """Validation PSNR against training iteration, one line per (model, test set); None if empty."""
    if not curves:
        return None
    traces = [{"type": "scatter", "mode": "lines+markers", "x": list(xs), "y": series(ys), "name": name}
              for name, (xs, ys) in curves.items()]
    return figure(traces, "Validation PSNR during training", "training step", "PSNR (dB)", height=380)


def perception_distortion(points: dict | None) -> Figure | None:
    """PSNR (distortion: up is more faithful) against NIQE (perception: left is more natural) for
    bicubic and the PSNR->GAN blends, with the photos' own NIQE as the line no upscaler crosses
    (Blau & Michaeli, 2018). `points` is a sidecar's "perception_distortion" entry; None if absent."""
    if not points or not points.get("points"):
        return None
    rows = [p for p in points["points"] if p.get("niqe") is not None]
    blends = [p for p in rows if p["method"].startswith("strength") and p.get("psnr") is not None]
    others = [p for p in rows if p not in blends and p.get("psnr") is not None]
    traces = [{"type": "scatter", "mode": "lines+markers+text", "name": "GAN strength 0 → 1",
               "x": [p["niqe"] for p in blends], "y": [p["psnr"] for p in blends],
               "text": [p["method"].replace("strength ", "") for p in blends], "textposition": "top center"},
              {"type": "scatter", "mode": "markers+text", "name": "bicubic", "x": [p["niqe"] for p in others],
               "y": [p["psnr"] for p in others], "text": [p["method"] for p in others], "textposition": "bottom center"}]
    shapes, notes = [], []
    for p in rows:
        if p["method"] == "HR":
            shapes.append({"type": "line", "x0": p["niqe"], "x1": p["niqe"], "yref": "paper", "y0": 0, "y1": 1,
                           "line": {"dash": "dot", "color": "#2e7d32"}})
            notes.append({"x": p["niqe"], "yref": "paper", "y": 1, "text": "the photos", "showarrow": False,
                          "xanchor": "left", "font": {"color": "#2e7d32"}})
    data = points.get("data", "")
    return figure(traces, f"Perception–distortion trade-off on {data}", "NIQE (lower = more natural)",
                  "PSNR (dB, higher = more faithful)", height=380, shapes=shapes, annotations=notes)
