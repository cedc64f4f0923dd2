"""playground: what the Toy GAN and Anomaly tabs say, and a Stop that stops."""
from __future__ import annotations

import threading

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
