"""figures: plotly figures as plain dicts, readable on a phone."""
from __future__ import annotations

import json
import math

import numpy as np

from srgan_core import anomaly, figures, toygan

MAX_TITLE = 40  # characters that fit a 390-px phone screen at the figures' font size


def title(fig: dict) -> str:
    return fig["layout"]["title"]["text"]


def test_series_rounds_and_turns_non_finite_into_gaps():
    assert figures.series([1.234567, float("nan"), math.inf, 2]) == [1.2346, None, None, 2.0]


def test_log_ticks_are_the_values_written_in_full():
    ticks = figures.log_ticks([10, 100, 1000, 5000])
    assert ticks["type"] == "log" and ticks["tickvals"] == [10, 100, 1000, 5000]
    assert ticks["ticktext"] == ["10", "100", "1,000", "5,000"]


def test_detection_figure_covers_every_size_with_readable_ticks():
    g = toygan.load_toy_generator(None)
    sizes = [10, 100, 1000, 5000]
    power = anomaly.detection_curve(g, "beta", sizes=sizes, trials=5, seed=0)
    null = anomaly.detection_curve(g, "uniform", sizes=sizes, trials=5, seed=0)
    fig = figures.detection(power, null)
    json.dumps(fig)  # plain JSON for the browser
    assert [t["x"] for t in fig["data"]] == [sizes, sizes]
    assert fig["layout"]["xaxis"]["tickvals"] == sizes and "5,000" in fig["layout"]["xaxis"]["ticktext"]
    assert len(title(fig)) <= MAX_TITLE


def test_toy_figures_have_short_titles_and_all_traces():
    config = toygan.ToyGANConfig(epochs=200, seed=0)
    snap = list(toygan.train(config, snapshot_every=100))[-1]
    dist = figures.toy_distribution(snap, config)
    json.dumps(dist)
    assert title(dist) == "Epoch 200 of 200"
    assert [t["name"] for t in dist["data"]] == ["real data", "generated", "target N(0, 1)", "D(x): P(real | x)"]
    history = {"epoch": [100, 200], "d_loss": [0.7, 0.69], "g_loss": [0.7, np.nan], "ks": [0.3, 0.2]}
    curves = figures.toy_curves(history, 200)
    assert curves["data"][1]["y"] == [0.7, None]
    for fig in (dist, curves):
        assert len(title(fig)) <= MAX_TITLE


def test_ks_figures():
    g = toygan.load_toy_generator(None)
    r = anomaly.ks_check(g, "beta", n=200, seed=0)
    hist, qq = figures.ks_outputs(r, g.target_cdf)
    inputs = figures.ks_inputs(r)
    for fig in (inputs, hist, qq):
        json.dumps(fig)
        assert len(title(fig)) <= MAX_TITLE
    xs, ys = qq["data"][0]["x"], qq["data"][0]["y"]
    assert len(xs) == len(ys) == 200 and ys == sorted(ys)


def test_validation_curves():
    assert figures.validation_curves({}) is None
    fig = figures.validation_curves({"SRGAN on Set5": ([100, 200], [30.1, 30.2])})
    assert fig["data"][0]["name"] == "SRGAN on Set5" and fig["data"][0]["x"] == [100, 200]
    assert len(title(fig)) <= MAX_TITLE
