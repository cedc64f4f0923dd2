"""playground: what the Toy GAN and Anomaly tabs say, and a Stop that stops."""
from __future__ import annotations

import threading

import pytest

from srgan_core import anomaly, playground, toygan


def test_stop_ends_the_stream_at_once():
    stop = threading.Event()
    seen = []
    for status, toy in playground.train_stream(toygan.ToyGANConfig(epochs=100_000, seed=0), stop, updates_per_s=1000):
        seen.append(status["epoch"])
        if len(seen) == 3:
            stop.set()
    assert len(seen) == 3 and seen[-1] < 100_000
    assert toy["epoch"] == seen[-1]


def test_stream_ends_done_with_history():
    updates = list(playground.train_stream(toygan.ToyGANConfig(epochs=400, seed=0), threading.Event(), updates_per_s=0.001))
    status, toy = updates[-1]
    assert status["done"] and status["epoch"] == 400
    assert toy["history"]["epoch"][-1] == 400 and len(toy["snapshot"].d_losses) == 0
    assert playground.status_line(toy, stopped=False).startswith("**Epoch 400 / 400** (done)")
    assert "(stopped; this generator is kept" in playground.status_line(toy, stopped=True)


def test_ks_report_verdict():
    g = toygan.load_toy_generator(None)
    bad = playground.ks_report(g, anomaly.NoiseSpec("beta"), 300, 0, "bundled default")
    assert bad.flagged and bad.line.startswith("### ⚠ Flagged") and bad.result["n"] == 300
    good = playground.ks_report(g, anomaly.NoiseSpec("uniform"), 100, 0, "bundled default")
    assert not good.flagged and good.line.startswith("### ✓ Passes")


def test_false_alarm_note_explains_a_high_rate():
    high = anomaly.DetectionCurve([10, 1000], [0.05, 0.42], 200, 0.05, "U(0, 1)", "N(0, 1)")
    text = playground.false_alarm_note(high)
    assert "42% of the time at n = 1,000" in text and "not drift in the input" in text
    low = anomaly.DetectionCurve([10, 1000], [0.05, 0.06], 200, 0.05, "U(0, 1)", "N(0, 1)")
    assert "not drift" not in playground.false_alarm_note(low)


def test_detection_report_covers_the_sizes():
    g = toygan.load_toy_generator(None)
    fig, note, data = playground.detection_report(g, anomaly.NoiseSpec("beta"), [10, 5000], 5, 0, "bundled default")
    assert data["sizes"] == [10, 5000] and fig["data"][0]["x"] == [10, 5000] and "n = 5,000" in note


# ----------------------------------------------------------------------------- the page's events, in-process


def test_toy_trainings_train_view_and_stop():
    toys = playground.ToyTrainings(max_epochs=100_000, max_hidden=1024, updates_per_s=0.001)
    assert toys.view(None) == (None, None, "Press **Train** to start.")
    *_, (status, session) = toys.train("normal", 400.0, 1e-3, 8.0, 0.0)  # forms send floats
    assert status["done"] and session["toy"]["epoch"] == 400
    dist, curves, line = toys.view(session)
    assert dist["data"] and curves["data"][0]["x"][-1] == 400 and line.startswith("**Epoch 400 / 400** (done)")
    toys.stop(session)
    assert "(stopped; this generator is kept" in toys.view(session)[2]
    toys.stop(None)  # a Stop before any Train does nothing
    with pytest.raises(ValueError, match="epochs"):
        next(toys.train("normal", 10**12, 1e-3, 8, 0))


def test_step_mode_steps_one_network_and_restarts_on_a_new_setting():
    steps = playground.StepMode(max_hidden=1024)
    settings = ("skewed", "lognormal", 1e-3, 50.0, 3.0, 10)
    dist, curves, caption, first, stepper = steps.step_d(*settings, None)
    assert caption.startswith("D update 1 (steps 1–2)") and (first["d_steps"], first["g_steps"]) == (1, 0)
    assert dist["layout"]["title"]["text"] == "After 1 D and 0 G updates" and first["caption"] == caption
    *_, after_g, same = steps.step_g(*settings, stepper)
    assert same is stepper and (after_g["d_steps"], after_g["g_steps"]) == (1, 1)
    _, curves, _, played, _ = steps.step_run(*settings[:-1], 100, stepper)
    assert (played["d_steps"], played["g_steps"]) == (101, 101) and curves["data"][0]["x"][-1] == 101
    *_, restarted, other = steps.step_d("skewed", "lognormal", 1e-3, 50, 4, 10, stepper)  # a new seed
    assert other is not stepper and (restarted["d_steps"], restarted["g_steps"]) == (1, 0)
    with pytest.raises(ValueError, match="speed must be between 1 and 1,000"):
        steps.step_run(*settings[:-1], 10**6, stepper)
    with pytest.raises(ValueError, match="hidden units"):
        steps.step_d("normal", "normal", 1e-3, 2048, 1, 10, None)
    with pytest.raises(ValueError, match="action must be"):
        steps.step("x", *settings, None)


def test_choose_preset_fills_in_the_target_and_says_what_to_watch():
    target, hidden, caption = playground.choose_preset("skewed", 40)
    assert (target, hidden) == ("lognormal", 40)
    assert caption == "**Skewed (log-normal).** A lopsided target: a long right tail that G's few kinks must bend into " \
        "shape. Press **Step D**."
    target, hidden, _ = playground.choose_preset("trained", 40)  # G is the bundled generator: its width
    assert (target, hidden) == ("normal", toygan.load_toy_generator(None).config.hidden)
    assert playground.choose_preset("bimodal", 7)[:2] == ("normal", 7)


def test_link_settings_caption_names_what_was_ignored():
    limits = {"epochs": (100, 100_000), "lr": (0, 1.0), "hidden": (2, 256), "seed": (0, 2**32 - 1)}
    values, caption = playground.link_settings({"preset": "skewed", "hidden": "lots", "seed": "3"}, limits)
    assert values == {"preset": "skewed", "target": "lognormal", "seed": 3}
    first, second = caption.split("\n\n")
    assert first.startswith("**Skewed (log-normal).**") and second == "Setting in the link ignored: hidden must be a number, got 'lots'"
    assert playground.link_settings({"__theme": "dark"}, limits) == ({}, None)  # nothing of ours: the caption stays
    for script in (playground.TOY_LINK_JS, playground.TOY_LINK_TAB_JS):
        assert '["preset", "target", "epochs", "lr", "hidden", "seed", "speed"]' in script


def test_drift_checks_from_form_fields():
    drift = playground.DriftChecks(max_n=5_000, curve_sizes=[10, 100], curve_trials=5)
    r = drift.ks("beta", 1.0, 5.0, 0.2, 300.0, 0.0, None)
    assert r.flagged and r.result["n"] == 300 and r.result["generator"] == "bundled default"
    with pytest.raises(ValueError, match="n must be"):
        drift.ks("beta", 1, 5, 0.2, 10**9, 0, None)
    fig, note, data = drift.curve("beta", 1, 5, 0.2, 0, {})
    assert data["sizes"] == [10, 100] and data["trials"] == 5 and "n = 100" in note
    assert playground.noise_fields("beta") == (True, True, False) and playground.noise_fields("drift") == (True, True, True)
    assert playground.noise_fields("uniform") == (False, False, False)
