"""The toy GAN one update at a time: each half-step touches only its own network, the steps add up
to exactly what the engine trains, captions say what changed, presets and the skewed target."""
import re
import threading
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from srgan_core import figures, toygan
from srgan_core.toygan import ToyGANConfig, train
from srgan_core.toygan_steps import (MAX_RUN, PRESETS, Stepper, explanation, preset_config, settings_from_link,
                                     stepper_for)

NUMBER = r"(-?[\d.]+)"


def state(s: Stepper) -> dict[str, np.ndarray]:
    """Everything an update may change: both networks, both Adam states, the kept average of G."""
    gan = s.gan
    return {"G": gan.g_params.copy(), "D": gan.d_params.copy(), "g_avg": gan.g_avg.copy(),
            "adam_g": np.r_[gan.opt_g.m, gan.opt_g.v, gan.opt_g.t], "adam_d": np.r_[gan.opt_d.m, gan.opt_d.v, gan.opt_d.t]}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not np.array_equal(before[k], after[k])}


def last(config: ToyGANConfig) -> toygan.Snapshot:
    return list(train(config, snapshot_every=None))[-1]


def test_a_d_step_changes_only_d_and_a_g_step_only_g():
    s = Stepper(ToyGANConfig(seed=2))
    before = state(s)
    s.step_d()
    after_d = state(s)
    assert changed(before, after_d) == {"D", "adam_d"}
    s.step_g()
    assert changed(after_d, state(s)) == {"G", "adam_g", "g_avg"}
    assert (s.d_steps, s.g_steps, s.epoch) == (1, 1, 1)


@pytest.mark.parametrize("config", [
    ToyGANConfig(epochs=6, seed=3),
    ToyGANConfig(epochs=5, seed=5, target="mixture", noise="normal", hidden=7, d_hidden=16, negative_slope=0.0,
                 lr=3e-3, ema=0.0, n_real=40, batch_size=40),
], ids=["defaults", "every-knob"])
def test_alternating_steps_end_exactly_where_the_engine_does(config):
    s = Stepper(config)
    for _ in range(config.epochs):
        s.step_d()
        s.step_g()
    ref = last(config)
    for name, w in ref.generator.weights.items():
        np.testing.assert_array_equal(s.generator().weights[name], w, err_msg=name)
    np.testing.assert_array_equal(s.frame().decision, ref.decision)
    assert s.g_loss == pytest.approx(ref.g_losses[-1], abs=1e-12) and s.d_loss == pytest.approx(ref.d_losses[-1], abs=1e-12)


def test_run_and_steps_mix_across_mini_batch_blocks():
    """run() uses the engine's whole step, step_d/step_g its halves; over the 500-epoch block edge
    of the mini-batch stream they still follow `train` exactly."""
    config = ToyGANConfig(epochs=toygan._BLOCK + 3, seed=4)
    s = Stepper(config)
    s.run(toygan._BLOCK - 2)
    for _ in range(5):
        s.step_d()
        s.step_g()
    ref = last(config)
    for name, w in ref.generator.weights.items():
        np.testing.assert_array_equal(s.generator().weights[name], w, err_msg=name)
    assert len(s._blocks) == 1  # the finished block was let go


def test_run_lets_the_side_behind_catch_up_first():
    s = Stepper(ToyGANConfig(seed=6))
    s.step_d()
    s.step_d()
    s.step_g()
    s.run(3)
    assert (s.d_steps, s.g_steps, s.epoch) == (5, 5, 5)
    s.step_g()
    s.run(1)
    assert (s.d_steps, s.g_steps) == (7, 7)


def test_captions_state_what_changed():
    s = Stepper(ToyGANConfig(seed=1))
    s.run(200)  # past the first steps, where everything moves the same way
    for _ in range(20):
        before = s.measure()
        caption = s.step_d()
        after = s.measure()
        m = re.search(rf"^D update (\d+) \(steps 1–2\): D\(real\) {NUMBER}→{NUMBER}, D\(fake\) {NUMBER}→{NUMBER} — D got "
                      r"(better|worse)", caption)
        assert m, caption
        assert int(m[1]) == s.d_steps
        assert [float(v) for v in m.groups()[1:5]] == [round(v, 3) for v in
                                                      (before.d_real, after.d_real, before.d_fake, after.d_fake)]
        assert (m[6] == "better") == (after.d_real - after.d_fake > before.d_real - before.d_fake)
        before = after
        caption = s.step_g()
        after = s.measure()
        m = re.search(rf"^G update (\d+) \(steps 3–4\): D\(fake\) {NUMBER}→{NUMBER}, KS distance {NUMBER}→{NUMBER} — "
                      r"the generated values look (more|less) real to D and moved (closer to|further from) the target",
                      caption)
        assert m, caption
        assert [float(v) for v in m.groups()[1:5]] == [round(v, 3) for v in
                                                      (before.d_fake, after.d_fake, before.ks, after.ks)]
        assert (m[6] == "more") == (after.d_fake > before.d_fake)
        assert (m[7] == "closer to") == (after.ks < before.ks)
    caption = s.run(300)
    assert caption.startswith("300 epochs (steps 1–4, 300×): D(real) ") and s.caption == caption
    assert len(s.history["epoch"]) == 42 and s.history["epoch"][-1] == 520


def test_a_few_hundred_epochs_of_steps_learn():
    s = Stepper(ToyGANConfig(seed=1))
    start = s.measure().ks
    s.run(1500)
    assert s.measure().ks < start / 3


def test_frames_keep_their_axes():
    """The histogram / D(x) figure keeps its x and y ranges from the first frame to the last."""
    for name in PRESETS:
        config, generator = preset_config(name, seed=1)
        s = Stepper(config, generator)
        layouts = []
        for _ in range(3):
            fig = figures.toy_distribution(s.frame(), config)
            layouts.append([fig["layout"][axis]["range"] for axis in ("xaxis", "yaxis", "yaxis2")])
            s.run(200)
        assert layouts[0] == layouts[1] == layouts[2], name
        assert s.title() == "After 600 D and 600 G updates"


def test_presets_build():
    targets = {}
    for name, preset in PRESETS.items():
        config, generator = preset_config(name, seed=3, lr=2e-3)
        assert (config.seed, config.lr, config.target) == (3, 2e-3, preset.target)
        assert (generator is not None) == preset.from_trained
        targets[name] = config.target
        Stepper(config, generator).step_d()
    assert targets == {"normal": "normal", "mode-collapse": "mixture", "skewed": "lognormal", "trained": "normal"}


def test_the_trained_preset_starts_from_the_bundled_generator():
    bundled = toygan.load_toy_generator(None)
    config, generator = preset_config("trained", hidden=7, seed=9)  # the file's width wins: it must fit the weights
    assert config.hidden == bundled.config.hidden and config.seed == 9
    s = Stepper(config, generator)
    for name, w in bundled.weights.items():
        np.testing.assert_array_equal(s.generator().weights[name], w)
    fresh = Stepper(preset_config("normal", seed=9)[0])
    assert s.measure().ks < 0.1 < fresh.measure().ks  # already shaped like its target; a fresh G is not


def test_bad_presets_and_settings_are_one_clear_message():
    with pytest.raises(ValueError, match="preset must be one of normal, mode-collapse, skewed, trained"):
        preset_config("bimodal")
    with pytest.raises(ValueError, match="lr"):
        preset_config("skewed", lr=-1)
    s = Stepper(ToyGANConfig())
    for bad in (0, MAX_RUN + 1, 2.5, "many"):
        with pytest.raises(ValueError, match="epochs to run"):
            s.run(bad)
    with pytest.raises(ValueError, match="hidden"):
        Stepper(ToyGANConfig(hidden=8), toygan.load_toy_generator(None))


def test_steps_from_two_threads_do_not_interleave():
    """A page's button and its timer may step the same session at once: every update still counts."""
    s = Stepper(ToyGANConfig(seed=1))
    threads = [threading.Thread(target=lambda: [s.step_d() for _ in range(10)]),
               threading.Thread(target=lambda: [s.run(5) for _ in range(4)])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.d_steps == 30 and 20 <= s.g_steps <= 30  # every update counted once
    assert all(np.isfinite(w).all() for w in s.generator().weights.values())


def test_the_explanation_is_numbered_and_uses_the_config():
    text = explanation(ToyGANConfig(batch_size=16, n_real=500))
    assert [int(n) for n in re.findall(r"^(\d)\. ", text, flags=re.M)] == [1, 2, 3, 4, 5]
    assert "16 real values" in text and "500 real values" in text


def test_a_visitor_keeps_stepping_until_a_setting_changes():
    s = stepper_for(None, "normal", seed=1)
    s.step_d()
    assert stepper_for(s, "normal", seed=1) is s
    assert stepper_for(s, "normal", seed=2) is not s
    assert stepper_for(s, "normal", seed=1, lr=2e-3) is not s
    trained = stepper_for(s, "trained", seed=1)  # the same config as "normal", but G starts trained
    assert trained is not s and trained.preset == "trained" and trained.d_steps == 0


LIMITS = {"epochs": (100, 100_000), "lr": (0, 1), "hidden": (2, 256), "seed": (0, 2**32 - 1)}


def test_settings_from_a_link():
    query = {"preset": "skewed", "lr": "0.002", "hidden": "40", "seed": "3", "speed": "100", "epochs": "5000",
             "__theme": "dark"}  # not ours: passed over
    values, problems = settings_from_link(query, LIMITS)
    assert problems == []
    assert values == {"preset": "skewed", "target": "lognormal", "lr": 0.002, "hidden": 40, "seed": 3, "speed": 100,
                      "epochs": 5000}
    values, _ = settings_from_link({"preset": "mode-collapse", "target": "normal"}, LIMITS)
    assert values == {"preset": "mode-collapse", "target": "normal"}  # the link's own target wins
    assert settings_from_link({}, LIMITS) == ({}, [])


def test_bad_settings_in_a_link_are_each_named():
    query = {"preset": "bimodal", "target": "gamma", "epochs": "2.5", "lr": "0", "hidden": "lots", "seed": "-1",
             "speed": "7"}
    values, problems = settings_from_link(query, LIMITS)
    assert values == {}
    assert problems == [
        "preset must be one of normal, mode-collapse, skewed, trained, got 'bimodal'",
        "target must be one of normal, mixture, lognormal, got 'gamma'",
        "epochs must be a whole number, got 2.5",
        "lr must be in (0, 1], got 0.0",
        "hidden must be a number, got 'lots'",
        "seed must be between 0 and 4,294,967,295, got -1",
        "speed must be one of 1, 10, 100, 1000, got '7'",
    ]
    values, problems = settings_from_link({"seed": "5", "hidden": "nan"}, LIMITS)
    assert values == {"seed": 5} and problems == ["hidden must be a whole number, got nan"]


# ---------------------------------------------------------------- the skewed target


def test_the_lognormal_target_has_its_mean_sd_skew_and_a_working_ks():
    config = ToyGANConfig(target="lognormal", mu=1.0, sigma=2.0)
    x = toygan._draw_target(config, 200_000, np.random.default_rng(0)).astype(np.float64)
    assert x.mean() == pytest.approx(1.0, abs=0.02) and x.std() == pytest.approx(2.0, abs=0.02)
    assert stats.skew(x) == pytest.approx(1.75, abs=0.1)
    cdf = toygan.target_cdf(config)
    assert cdf(np.array([-10.0]))[0] == 0 and cdf(np.array([1e6]))[0] == 1  # bounded below, no NaN
    # our KS statistic agrees with scipy's, small for its own samples, large for a normal of the same moments
    sample = x[:5000]
    assert toygan.ks_statistic(sample, cdf) == pytest.approx(stats.kstest(sample, cdf).statistic, abs=1e-12)
    assert stats.kstest(sample, cdf).pvalue > 0.01
    normal = np.random.default_rng(1).normal(1.0, 2.0, 5000)  # same mean and sd, no skew
    assert toygan.ks_statistic(normal, cdf) > 3 * toygan.ks_statistic(sample, cdf)
    assert toygan.describe_target(config) == "LogN(mean 1, sd 2)"


def test_the_lognormal_target_trains():
    config = ToyGANConfig(target="lognormal", epochs=3000, seed=1)
    start, end = last(replace(config, epochs=1)), last(config)
    assert end.ks_statistic < 0.1 < start.ks_statistic  # 0.067 where it was written
    grid = end.grid  # the plots' range: from below the lowest value to far into the tail
    assert grid[0] < config.mu - 1.9 * config.sigma and grid[-1] >= config.mu + 5 * config.sigma
