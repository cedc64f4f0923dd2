"""The toy GAN: the fast trainer against the plain PyTorch loop, streaming, files, bad input, CLI."""
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from srgan_core import toygan, toygan_engine
from srgan_core.cli import main
from srgan_core.toygan import ToyGANConfig, load_toy_generator, reference_train, save_toy_generator, train
from srgan_core.weights import WeightsError, save_weights

ROOT = Path(__file__).resolve().parent.parent


def last(config: ToyGANConfig, **kw) -> toygan.Snapshot:
    return list(train(config, snapshot_every=None, **kw))[-1]


# ---------------------------------------------------------------- same maths as the plain loop


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add waiting
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("config", [
    # 150 epochs: later, rounding alone makes the two part in a few seeds of twenty (this engine's and
    # the numpy one's before it alike); within 150, none of 24 seeds did, on AVX-512 or AVX2 kernels
    ToyGANConfig(epochs=150, seed=3),
    ToyGANConfig(epochs=150, seed=11),
    # every knob moved: mixture target, normal noise, other widths, ReLU, no averaging, full batch
    ToyGANConfig(epochs=200, seed=5, target="mixture", noise="normal", hidden=7, d_hidden=16, negative_slope=0.0,
                 lr=3e-3, beta1=0.5, beta2=0.9, ema=0.0, n_real=40, batch_size=40),
], ids=["defaults", "defaults-seed-11", "every-knob"])
def test_fast_trainer_matches_the_plain_pytorch_loop(config):
    """Same seed, same initial weights, same mini-batches: the compiled engine and the
    nn.Sequential + torch.optim.Adam + BCE loop must agree step for step."""
    ref = reference_train(config)
    fast = last(config)
    for name, w in ref.generator.weights.items():
        np.testing.assert_allclose(fast.generator.weights[name], w, rtol=0, atol=2e-5, err_msg=name)
    np.testing.assert_allclose(fast.decision, ref.decision, rtol=0, atol=2e-5)  # D agrees too
    np.testing.assert_allclose(fast.d_losses, ref.d_losses, rtol=0, atol=2e-5)
    np.testing.assert_allclose(fast.g_losses, ref.g_losses, rtol=0, atol=2e-5)
    assert len(fast.d_losses) == config.epochs
    # and the runs really moved: not two copies of the initial weights
    start = last(replace(config, epochs=1)).generator.weights["0.weight"]
    assert np.abs(fast.generator.weights["0.weight"] - start).max() > 1e-3


def adam_side_by_side(seed: int, n: int, lr: float, betas: tuple[float, float], steps: int, grad_scale):
    """The engine's Adam and torch.optim.Adam from the same weights, fed the same random gradients
    (each `grad_scale(rng)` times a standard normal); returns (weights, engine Adam, torch param, torch opt)."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    g = np.zeros_like(p)
    ours = toygan_engine.Adam(p, g, lr=lr, betas=betas)
    theirs = torch.nn.Parameter(torch.from_numpy(p.copy()))
    opt = torch.optim.Adam([theirs], lr=lr, betas=betas)
    for _ in range(steps):
        g[:] = rng.standard_normal(n).astype(np.float32) * grad_scale(rng)
        ours.step()
        theirs.grad = torch.from_numpy(g.copy())
        opt.step()
    return p, ours, theirs, opt


def test_adam_is_torch_adam():
    p, _, theirs, _ = adam_side_by_side(0, 1000, 1e-2, (0.8, 0.99), 100, lambda rng: rng.uniform(0.01, 10))
    np.testing.assert_allclose(p, theirs.detach().numpy(), rtol=0, atol=1e-6)


def test_fast_trainer_is_much_faster_than_the_plain_loop():
    """The engine's reason to exist, measured against the plain loop at its best (1 torch thread),
    side by side in this process, in CPU seconds (which other people's work on shared cores
    disturbs far less than the wall clock). It is 5-6x faster where the README was measured; 3x
    leaves room for a busy machine. The absolute figure (30,000 epochs in seconds) is
    benchmarks/toygan.py's to report, not a test's: it depends on the CPU."""
    config = ToyGANConfig(seed=1)
    last(replace(config, epochs=10))  # warm-up, both trainers
    reference_train(replace(config, epochs=10))
    ref_per_epoch, per_epoch = [], []
    for _ in range(2):  # interleaved, best of two: a burst of load hits both alike
        t = time.process_time()
        reference_train(replace(config, epochs=150))
        ref_per_epoch.append((time.process_time() - t) / 150)
        t = time.process_time()
        last(replace(config, epochs=3000))
        per_epoch.append((time.process_time() - t) / 3000)
    assert min(ref_per_epoch) / min(per_epoch) >= 3, (ref_per_epoch, per_epoch)


# ---------------------------------------------------------------- determinism and streaming


def test_same_seed_same_result_and_snapshots_do_not_change_training():
    config = ToyGANConfig(epochs=1200, seed=7)
    a = last(config)
    b = list(train(config, snapshot_every=250))[-1]
    for name in a.generator.weights:
        np.testing.assert_array_equal(a.generator.weights[name], b.generator.weights[name])
    np.testing.assert_array_equal(a.d_losses, b.d_losses)
    # a shorter run is exactly the start of a longer one
    short = last(replace(config, epochs=700))
    np.testing.assert_array_equal(short.d_losses, a.d_losses[:700])
    other = last(replace(config, seed=8))
    assert not np.array_equal(other.d_losses, a.d_losses)


def test_snapshots_carry_what_the_app_plots():
    config = ToyGANConfig(epochs=1300, seed=2)
    snaps = list(train(config, snapshot_every=500))
    assert [s.epoch for s in snaps] == [500, 1000, 1300]
    s = snaps[-1]
    assert s.epochs == 1300 and s.elapsed_s > 0
    assert s.samples.shape == (1000,) and np.all(np.isfinite(s.samples))
    assert s.grid.shape == s.decision.shape and s.grid[0] < -3.9 and s.grid[-1] > 3.9
    assert np.all((s.decision > 0) & (s.decision < 1))
    assert s.real.shape == (config.n_real,) and abs(s.real.mean()) < 0.2 and 0.8 < s.real.std() < 1.2
    assert s.d_losses.shape == (1300,) and s.g_losses.shape == (1300,)
    assert s.d_loss == pytest.approx(s.d_losses[1000:].mean()) and s.g_loss == pytest.approx(s.g_losses[1000:].mean())
    # the KS statistic is scipy's
    from scipy import stats

    assert s.ks_statistic == pytest.approx(stats.kstest(s.samples, "norm").statistic, abs=1e-12)
    # training moves towards the target: the D loss heads for ln 2 and the KS distance shrinks
    assert snaps[0].ks_statistic < 0.3 and abs(s.d_loss - math.log(2)) < 0.1


def test_stopping_early_leaves_a_usable_generator_that_later_training_does_not_touch():
    run = train(ToyGANConfig(seed=4), snapshot_every=500)
    first = next(run)
    kept = {k: v.copy() for k, v in first.generator.weights.items()}
    next(run)
    run.close()  # stop early: 1,000 of 30,000 epochs
    for k, v in first.generator.weights.items():
        np.testing.assert_array_equal(v, kept[k])
    out = first.generator.draw(500, np.random.default_rng(0))
    assert out.shape == (500,) and np.all(np.isfinite(out)) and out.std() > 0.3


def test_snapshots_every_500_epochs_cost_at_most_10_percent(monkeypatch):
    """The time inside the intermediate snapshots, over the whole streamed run's, both read in the
    same run: a busy machine slows both alike. (Two whole runs timed one after the other swung by
    25 % against each other on shared cores, more than the cost being measured.)"""
    config = ToyGANConfig(epochs=2000, seed=6)
    last(replace(config, epochs=10))  # warm-up
    inside = []
    snapshot = toygan._snapshot

    def timed(*args, **kw):
        t = time.process_time()
        s = snapshot(*args, **kw)
        inside.append(time.process_time() - t)
        return s

    monkeypatch.setattr(toygan, "_snapshot", timed)
    shares = []
    for _ in range(3):  # best of three: the cores are shared
        inside.clear()
        t = time.process_time()
        streamed = list(train(config, snapshot_every=500))
        whole = time.process_time() - t
        assert len(streamed) == len(inside) == 4
        shares.append(sum(inside[:-1]) / whole)  # the last snapshot is taken by a plain run too
    assert min(shares) <= 0.10, shares
    plain = last(config)
    assert np.array_equal(plain.samples, streamed[-1].samples)  # and they change nothing


def test_mixture_target_and_normal_noise_train():
    config = ToyGANConfig(epochs=1500, target="mixture", noise="normal", mu=-2, mu2=3, sigma2=0.5, seed=1)
    s = last(config)
    assert toygan.describe_target(config) == "0.5·N(-2, 1) + 0.5·N(3, 0.5)"
    assert s.grid[0] <= -6 and s.grid[-1] >= 5
    assert np.all(np.isfinite(s.samples))
    assert s.ks_statistic == pytest.approx(toygan.ks_statistic(s.samples, toygan.target_cdf(config)))
    # the real data really is bimodal
    assert np.mean(s.real > 0.5) == pytest.approx(0.5, abs=0.06)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("field, value, words", [
    ("sigma", 0.0, "sigma must be greater than 0"),
    ("sigma", -1.0, "sigma must be greater than 0"),
    ("sigma", float("nan"), "sigma must be a finite number"),
    ("mu", float("inf"), "mu must be a finite number"),
    ("sigma2", 0.0, "sigma2 must be greater than 0"),
    ("weight2", 1.5, "weight2"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("lr", -1e-3, "lr must be greater than 0"),
    ("lr", float("inf"), "lr must be a finite number"),
    ("epochs", 0, "epochs must be between 1"),
    ("epochs", -100, "epochs must be between 1"),
    ("epochs", 10**12, "epochs must be between 1"),
    ("epochs", 2.5, "epochs must be a whole number"),
    ("epochs", float("nan"), "epochs must be a whole number"),
    ("hidden", -8, "hidden must be between 1"),
    ("n_real", 1, "n_real must be between 2"),
    ("batch_size", 2000, "batch_size must be between 1 and 1,000"),
    ("beta1", 1.0, "beta1 must be in [0, 1)"),
    ("ema", -0.1, "ema must be in [0, 1)"),
    ("negative_slope", float("nan"), "negative_slope must be a finite number"),
    ("seed", -1, "seed must be a whole number, 0 or more"),
    ("seed", float("nan"), "seed must be a whole number"),
    ("target", "cauchy", "target must be one of normal, mixture"),
    ("noise", "beta", "noise must be one of uniform, normal"),
])
def test_bad_config_raises_a_readable_value_error(field, value, words):
    with pytest.raises(ValueError, match=f"^{words}".replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        ToyGANConfig(**{field: value})


def test_snapshot_every_and_sample_inputs_are_checked():
    with pytest.raises(ValueError, match="snapshot_every"):
        next(train(ToyGANConfig(epochs=10), snapshot_every=0))
    g = last(ToyGANConfig(epochs=10)).generator
    with pytest.raises(ValueError, match="NaN or infinite"):
        g.sample(np.array([0.5, np.nan]))


# ---------------------------------------------------------------- files


def test_save_and_load_round_trip(tmp_path):
    s = last(ToyGANConfig(epochs=300, hidden=12, seed=9))
    path = save_toy_generator(s.generator, tmp_path / "toy", training={"epochs": 300})
    assert path == tmp_path / "toy.safetensors"
    meta = json.loads((tmp_path / "toy.json").read_text())
    assert meta["kind"] == "toygan" and meta["architecture"] == "toygan-mlp" and meta["target"] == "N(0, 1)"
    assert meta["config"]["hidden"] == 12 and meta["training"] == {"epochs": 300} and len(meta["sha256"]) == 64
    for source in (tmp_path / "toy", tmp_path / "toy.json", str(path)):
        g = load_toy_generator(source)
        assert g.config == s.generator.config
        z = np.linspace(0, 1, 101)
        np.testing.assert_array_equal(g.sample(z), s.generator.sample(z))
    # the file loads into the nn.Sequential the names promise
    from safetensors.torch import load_file

    net = torch.nn.Sequential(torch.nn.Linear(1, 12), torch.nn.LeakyReLU(0.2), torch.nn.Linear(12, 1))
    net.load_state_dict(load_file(str(path)))
    with torch.no_grad():
        out = net(torch.linspace(0, 1, 101).unsqueeze(1))[:, 0].numpy()
    np.testing.assert_allclose(out, s.generator.sample(np.linspace(0, 1, 101)), atol=1e-5)


def test_loading_something_that_is_not_a_toy_generator_says_so(tmp_path):
    save_weights({"conv.weight": torch.zeros(2, 2)}, tmp_path / "sr", {"kind": "generator", "architecture": "srresnet"})
    with pytest.raises(WeightsError, match="not a toy generator"):
        load_toy_generator(tmp_path / "sr")
    save_weights({"0.weight": torch.zeros(3, 1)}, tmp_path / "bad", {"kind": "toygan", "architecture": "toygan-mlp",
                                                                     "config": {"hidden": 5}})
    with pytest.raises(WeightsError, match="do not fit hidden=5"):
        load_toy_generator(tmp_path / "bad")
    with pytest.raises(WeightsError, match="no such weights"):
        load_toy_generator(tmp_path / "missing")


def test_the_shipped_default_loads_and_says_how_it_was_made():
    g = load_toy_generator()
    # default settings; the seed is 1 because seed 0's 1000 observed values happen to have a standard
    # deviation of 0.944, which caps how well any generator faithful to them can pass the KS test
    assert g.config == ToyGANConfig(seed=1)
    meta = json.loads((ROOT / "weights" / "toygan_default.json").read_text())
    assert meta["training"]["epochs"] == 30000 and "command" in meta["training"]
    out = g.draw(100_000, np.random.default_rng(0))
    assert abs(out.mean()) < 0.1 and 0.85 < out.std() < 1.15


# ---------------------------------------------------------------- CLI


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "srgan_core", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_cli_trains_saves_and_reports_json(tmp_path):
    out = cli("toygan", "--epochs", "3000", "--seed", "2", "--out", str(tmp_path / "g"), "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["epochs"] == 3000 and r["seed"] == 2 and r["n"] == 100 and r["target"] == "N(0, 1)"
    assert r["seconds"] > 0 and r["epochs_per_s"] > 0 and 0 <= r["p_value"] <= 1
    assert 0.4 < r["d_loss"] < 1 and 0.4 < r["g_loss"] < 1.5
    assert (tmp_path / "g.safetensors").is_file() and r["out"] == str(tmp_path / "g.safetensors")
    meta = json.loads((tmp_path / "g.json").read_text())
    assert meta["training"]["command"] == f"python -m srgan_core toygan --epochs 3000 --seed 2 --out {tmp_path / 'g'}"
    # a bad parameter, as a user meets it: one line on stderr, exit status 2, no traceback
    bad = cli("toygan", "--sigma", "0")
    assert bad.returncode == 2 and bad.stderr == "error: sigma must be greater than 0, got 0.0\n"


def test_cli_has_a_flag_for_every_config_field_and_the_saved_command_rebuilds_the_run(tmp_path, capsys):
    import shlex

    from srgan_core.cli import build_parser
    from srgan_core.flags import config_from_args

    args = ["--target", "mixture", "--mu=-1.5", "--sigma", "2", "--mu2", "3", "--sigma2", "0.25", "--weight2", "0.3",
            "--noise", "normal", "--hidden", "7", "--d-hidden", "16", "--negative-slope", "0", "--lr", "0.003",
            "--beta1", "0.5", "--beta2", "0.9", "--batch-size", "40", "--epochs", "150", "--ema", "0",
            "--n-real", "40", "--seed", "5"]
    assert main(["toygan", *args, "--out", str(tmp_path / "g"), "--json"]) == 0, capsys.readouterr().err
    expected = ToyGANConfig(target="mixture", mu=-1.5, sigma=2, mu2=3, sigma2=0.25, weight2=0.3, noise="normal",
                            hidden=7, d_hidden=16, negative_slope=0, lr=3e-3, beta1=0.5, beta2=0.9, batch_size=40,
                            epochs=150, ema=0, n_real=40, seed=5)
    assert load_toy_generator(tmp_path / "g").config == expected  # every one of the 18 fields reached the run
    command = json.loads((tmp_path / "g.json").read_text())["training"]["command"]
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "srgan_core", "toygan"] and words[-2:] == ["--out", str(tmp_path / "g")]
    assert config_from_args(ToyGANConfig, build_parser().parse_args(words[3:])) == expected


def test_cli_text_output(capsys):
    assert main(["toygan", "--epochs", "600", "--seed", "2"]) == 0
    out, err = capsys.readouterr()
    assert "trained 600 epochs" in out and "final losses: D" in out and "KS test of 100 outputs" in out
    assert "epochs/s" in err and "s left" in err  # progress goes to stderr


@pytest.mark.parametrize("args, words", [
    (("--epochs", "0"), "epochs must be between 1"),
    (("--epochs", "-100"), "epochs must be between 1"),
    (("--sigma", "0"), "sigma must be greater than 0"),
    (("--sigma", "nan"), "sigma must be a finite number"),
    (("--mu", "inf"), "mu must be a finite number"),
    (("--lr", "inf"), "lr must be a finite number"),
    (("--lr", "-0.001"), "lr must be greater than 0"),
    (("--hidden", "-8"), "hidden must be between 1"),
    (("--batch-size", "5000"), "batch_size must be between 1 and 1,000"),
    (("--seed", "-1"), "seed must be a whole number"),
    (("--out", "x.pth"), "saved as safetensors + JSON, not .pth"),
])
def test_cli_bad_parameters_print_one_line_and_exit_2(args, words, capsys):
    assert main(["toygan", *args]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err and out == ""


def test_cli_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["toygan", "--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # help lines wrap with the terminal width
    for word in ("--epochs", "--seed", "--out", "--json", "mini-batch", "30000", "KS p-value", "mode collapse"):
        assert word in out


# ---------------------------------------------------------------- the engine's pieces against torch


def torch_net(widths: tuple[int, ...], slope: float, layers) -> torch.nn.Sequential:
    mods = []
    for weight, bias in layers:
        lin = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(weight))
            lin.bias.copy_(torch.from_numpy(bias))
        mods += [lin, torch.nn.LeakyReLU(slope)]
    return torch.nn.Sequential(*mods[:-1])


def torch_gradients(widths, slope, layers, x, dout):
    """nn.Sequential + autograd on the same weights: output, nn.Linear (weight, bias) gradients, d out / d x."""
    seq = torch_net(widths, slope, layers)
    xt = torch.from_numpy(x[:, None].copy()).requires_grad_()
    out = seq(xt)
    out.backward(torch.from_numpy(dout[:, None].copy()))
    grads = [(m.weight.grad.numpy(), m.bias.grad.numpy()) for m in seq if isinstance(m, torch.nn.Linear)]
    return out.detach().numpy()[:, 0], grads, xt.grad.numpy()[:, 0]


def assert_layers_close(ours, theirs):
    for (dw, db), (tw, tb) in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(dw, tw, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(db, tb, rtol=1e-5, atol=1e-5)
        assert np.abs(db).max() > 1e-3  # a real gradient, not two zeros agreeing


@pytest.mark.parametrize("hidden, slope", [(50, 0.2), (1, 0.3), (7, 0.0)])
def test_engine_generator_is_torch_autograd(hidden, slope):
    """G (1 -> hidden -> 1) against nn.Sequential + autograd on the same weights: outputs and every
    weight and bias gradient."""
    rng = np.random.default_rng(1)
    widths = (1, hidden, 1)
    layers = toygan._init_layers(widths, rng)
    z, dy = rng.standard_normal((2, 37)).astype(np.float32) * 2
    out, grads, _ = torch_gradients(widths, slope, layers, z, dy)
    p, grad = toygan_engine.flatten(layers), np.full(3 * hidden + 1, np.nan, np.float32)
    y, a, s, _ = toygan_engine._g_work(hidden, len(z))
    toygan_engine._g_forward(p, z, np.float32(slope), a, s, y)
    np.testing.assert_allclose(y, out, rtol=1e-5, atol=1e-6)
    toygan_engine._g_backward(p, z, a, s, dy, grad)
    assert_layers_close(toygan_engine.unflatten(grad, widths), grads)


@pytest.mark.parametrize("width, slope", [(16, 0.0), (3, 0.3), (128, 0.2)])
def test_engine_discriminator_is_torch_autograd(width, slope):
    """D (1 -> width -> width -> 1) against nn.Sequential + autograd on the same weights: logits,
    every weight and bias gradient, the gradient at the input (what G's update goes through);
    asking for only one of the two gradients gives the same numbers."""
    rng = np.random.default_rng(2)
    widths = (1, width, width, 1)
    layers = toygan._init_layers(widths, rng)
    x, dout = rng.standard_normal((2, 37)).astype(np.float32) * 2
    out, grads, dx_torch = torch_gradients(widths, slope, layers, x, dout)
    p = toygan_engine.flatten(layers)
    _, a1, s1, u2, a2, s2, logits, du2, da1 = toygan_engine._d_work(width, len(x))
    toygan_engine._d_forward(p, x, np.float32(slope), a1, s1, u2, a2, s2, logits)
    np.testing.assert_allclose(logits, out, rtol=1e-5, atol=1e-6)
    grad, dx = np.full_like(p, np.nan), np.full_like(x, np.nan)
    toygan_engine._d_backward(p, x, a1, s1, a2, s2, dout, du2, da1, grad, dx)
    assert_layers_close(toygan_engine.unflatten(grad, widths), grads)
    np.testing.assert_allclose(dx, dx_torch, rtol=1e-5, atol=1e-6)
    only_grad, only_dx = np.full_like(p, np.nan), np.full_like(x, np.nan)
    toygan_engine._d_backward(p, x, a1, s1, a2, s2, dout, du2, da1, only_grad, x[:0])
    toygan_engine._d_backward(p, x, a1, s1, a2, s2, dout, du2, da1, p[:0], only_dx)
    np.testing.assert_array_equal(only_grad, grad)
    np.testing.assert_array_equal(only_dx, dx)


def test_a_stretch_in_one_call_is_the_epochs_one_by_one():
    """run() (many epochs in one compiled call, what training uses) and step() (one epoch, what the
    step-by-step page uses) give the same bits: weights, Adam's state, the kept average, the logits."""
    config = ToyGANConfig(seed=4)
    real, g_layers, d_layers, _, rng = toygan._start(config)
    x, z_d, z_g = next(toygan._batches(replace(config, epochs=120), real, rng))
    one, many = (toygan_engine.FastGAN(config, g_layers, d_layers) for _ in range(2))
    b = config.batch_size
    logits = [(np.empty((120, 2 * b), np.float32), np.empty((120, b), np.float32)) for _ in range(2)]
    for i in range(120):
        one.step(x[i], z_d[i], z_g[i], logits[0][0][i], logits[0][1][i])
    many.run(x[:50], z_d[:50], z_g[:50], logits[1][0][:50], logits[1][1][:50])
    many.run(x[50:], z_d[50:], z_g[50:], logits[1][0][50:], logits[1][1][50:])
    for name in ("g_params", "d_params", "g_avg"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name), err_msg=name)
    for opt in ("opt_g", "opt_d"):
        a, b_ = getattr(one, opt), getattr(many, opt)
        assert a.t == b_.t == 120
        np.testing.assert_array_equal(np.r_[a.m, a.v], np.r_[b_.m, b_.v])
    np.testing.assert_array_equal(logits[0][0], logits[1][0])
    np.testing.assert_array_equal(logits[0][1], logits[1][1])
    assert not np.array_equal(one.g_avg, toygan_engine.flatten(g_layers))  # it trained
    one.step_d(x[0], z_d[0], logits[0][0][0])
    with pytest.raises(RuntimeError, match="same epoch"):  # a half-done epoch is finished first
        one.run(x[:1], z_d[:1], z_g[:1], logits[0][0][:1], logits[0][1][:1])


def test_warm_up_compiles_what_runs_and_pages_call():
    """The app compiles the engine in the background at start: afterwards a run, a step and the
    page's curves find their compiled versions (float32 arrays, as FastGAN passes them)."""
    toygan_engine.warm_up_in_background().join(timeout=300)
    e = toygan_engine
    for fn in (e._epochs, e._d_step, e._g_step, e._g_forward, e._d_forward, e._avg_weight):
        assert fn.signatures, fn
    assert all("float32" in str(sig[1]) for sig in e._g_forward.signatures)  # the noise: never float64


def test_adam_keeps_torchs_moments():
    """Not only the weights: m and v are torch's exp_avg and exp_avg_sq, operation for operation
    but for the multiply-add torch fuses in both (an ulp apart now and then): the same state, not
    a rescaled one, so the engine's optimiser could be handed to torch."""
    p, ours, theirs, opt = adam_side_by_side(3, 5000, 1e-3, (0.9, 0.999), 50, lambda rng: 1e-2)
    state = opt.state[theirs]
    np.testing.assert_allclose(ours.m, state["exp_avg"].numpy(), rtol=1e-6, atol=1e-8)  # gradients ~1e-2
    np.testing.assert_allclose(ours.v, state["exp_avg_sq"].numpy(), rtol=1e-6, atol=0)
    np.testing.assert_allclose(p, theirs.detach().numpy(), rtol=0, atol=2.5e-7)  # an ulp or two of weights ~1


def test_decision_curve_is_the_same_on_any_number_of_blas_threads():
    """OpenBLAS's AVX2 kernels (Haswell, Zen) round a matmul split over two threads differently from
    one; D's curve is drawn on one thread, as training runs, so a run and the step-by-step page give
    the same bits for the same weights. A subprocess: the kernel is chosen when OpenBLAS loads."""
    code = """if True:
        import numpy as np
        from threadpoolctl import threadpool_limits
        from srgan_core import toygan
        from srgan_core.toygan_engine import FastGAN
        config = toygan.ToyGANConfig(seed=3)
        _, g_layers, d_layers, _, _ = toygan._start(config)
        gan, grid = FastGAN(config, g_layers, d_layers), toygan._grid(config)
        with threadpool_limits(1):
            one = gan.d_prob(grid)
        with threadpool_limits(2):
            two = gan.d_prob(grid)
        print(np.array_equal(one, two))
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_CORETYPE="Haswell")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
