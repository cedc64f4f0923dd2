"""The 1-D toy GAN: a generator learns to turn U(0,1) noise into samples of N(mu, sigma).

The maths follows the Keras GAN example the original write-up used: G is a dense net 1 -> 50 -> 1,
D is 1 -> 128 -> 128 -> 1, both with leaky-ReLU hidden layers; 1000 observed samples; an "epoch" is
one step on a mini-batch in which D sees `batch_size` real and `batch_size` generated values.
Each step updates D with G fixed (binary cross-entropy, real = 1, generated = 0), then G through the
fixed D (the non-saturating loss: generated labelled real). Both use Adam. The generator a run
keeps is an exponential moving average of G's weights (`ema`; 0 keeps G as it is): with 32 values
a batch, G wanders around the equilibrium, and the average sits much closer to it.

Read top to bottom: the config; the data, noise and starting weights; what a run gives you (a
ToyGenerator, Snapshots); the GAN step written as the maths says in plain PyTorch
(`reference_train`, the executable specification); `train`, the same steps on the compiled engine
in toygan_engine.py, streaming snapshots for live plots; files.

Why two trainers: with 32 values a batch, PyTorch spends its time dispatching operations, not
computing, so the plain loop needs minutes for 30,000 epochs. The engine does the same maths as
compiled loops around the BLAS and needs seconds; tests/test_toygan.py checks that both agree
step for step.

The file is longer than our usual 400 lines because the specification loop, the streaming driver
and the objects they both return are one story; the engine's maths, the part a reader may skip, is
what moved out.

Randomness comes from one seed, split into independent streams (observed data, initial weights,
mini-batches, the evaluation noise), so the result never depends on how often snapshots are taken,
and a shorter run is exactly the start of a longer one.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from scipy import special
from threadpoolctl import ThreadpoolController

from srgan_core import checks
from srgan_core.flags import config_from_dict
from srgan_core.toygan_engine import FastGAN, ema_decay

TARGETS = ("normal", "mixture", "lognormal")
NOISES = ("uniform", "normal")
MAX_EPOCHS = 1_000_000  # ~4 minutes with the default model; a typo of extra zeros should not hang the app
MAX_WIDTH = 4096
MAX_REAL = 1_000_000
DEFAULT_NAME = "toygan_default"  # the bundled generator, in the weights folder
_SAMPLE_CHUNK = 65_536  # values per pass in ToyGenerator.sample: bounds its memory for any input size

_BLOCK = 500  # epochs of mini-batches drawn at once; fixed, so the random stream never depends on snapshots
_N_EVAL = 1000  # generated values in each snapshot (always from the same noise, so frames are comparable)
_N_GRID = 201
LOGNORMAL_SHAPE = 0.5  # sd of log x for the skewed target: skewness 1.75, clearly lopsided yet learnable


# ---------------------------------------------------------------- configuration


def _knob(default: object, help: str, **more: object):
    """A config field with its help text: the CLI's flags are generated from these (srgan_core.flags)."""
    return field(default=default, metadata={"help": help, **more})


@dataclass
class ToyGANConfig:
    """Every knob of a toy-GAN run. The defaults reproduce the original experiment."""

    target: str = _knob("normal", "normal: N(mu, sigma); mixture: (1 - weight2) N(mu, sigma) + weight2 N(mu2, sigma2) "
                        "(watch for mode collapse); lognormal: a right-skewed log-normal with mean mu and standard "
                        f"deviation sigma (its log has sd {LOGNORMAL_SHAPE:g})", choices=TARGETS)
    mu: float = _knob(0.0, "mean of the target (of its first component, for a mixture)")
    sigma: float = _knob(1.0, "standard deviation of the target (> 0)")
    mu2: float = _knob(4.0, "mean of the mixture's second component")
    sigma2: float = _knob(0.5, "standard deviation of the mixture's second component (> 0)")
    weight2: float = _knob(0.5, "share of the mixture's second component, in [0, 1]")
    noise: str = _knob("uniform", "generator input: uniform U(0,1) or normal N(0,1)", choices=NOISES)
    hidden: int = _knob(50, "hidden units of the generator (1 -> hidden -> 1)")
    d_hidden: int = _knob(128, "hidden units of each of the discriminator's two layers")
    negative_slope: float = _knob(0.2, "leaky-ReLU slope in both networks, in [0, 1) (0: a plain ReLU)")
    lr: float = _knob(1e-3, "Adam learning rate of both networks (the Keras default)")
    beta1: float = _knob(0.9, "Adam beta1, in [0, 1)")
    beta2: float = _knob(0.999, "Adam beta2, in [0, 1)")
    batch_size: int = _knob(32, "real values per step, and as many generated; n_real means full batch")
    epochs: int = _knob(30_000, "mini-batch steps, each D then G (the original used 30000)")
    ema: float = _knob(0.999, "decay of the moving average of G's weights that the run keeps, in [0, 1) "
                       "(0: keep G as it is)")
    n_real: int = _knob(1000, "observed samples of the target")
    seed: int = _knob(0, "seed for the data, the initial weights, the mini-batches and the evaluation noise")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the knob and the allowed range: these values come from users."""
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {self.noise!r}")
        checks.real("mu", self.mu)
        checks.real("mu2", self.mu2)
        for name in ("sigma", "sigma2", "lr"):
            checks.positive(name, getattr(self, name))
        checks.interval("weight2", self.weight2, 0, 1, what="share of the second mixture component")
        for name in ("negative_slope", "beta1", "beta2", "ema"):
            checks.interval(name, getattr(self, name), 0, 1, hi_open=True)
        checks.whole("hidden", self.hidden, 1, MAX_WIDTH)
        checks.whole("d_hidden", self.d_hidden, 1, MAX_WIDTH)
        checks.whole("epochs", self.epochs, 1, MAX_EPOCHS)
        checks.whole("n_real", self.n_real, 2, MAX_REAL)
        checks.whole("batch_size", self.batch_size, 1, self.n_real)
        checks.seed("seed", self.seed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ToyGANConfig":
        """Build from a sidecar's "config"; unknown keys are refused by name, as for every config file."""
        return config_from_dict(cls, d)


# ---------------------------------------------------------------- target distribution and noise


def describe_target(config: ToyGANConfig) -> str:
    """The target as people write it, e.g. "N(0, 1)"."""
    first = f"N({config.mu:g}, {config.sigma:g})"
    if config.target == "normal":
        return first
    if config.target == "lognormal":
        return f"LogN(mean {config.mu:g}, sd {config.sigma:g})"
    second = f"N({config.mu2:g}, {config.sigma2:g})"
    return f"{1 - config.weight2:g}·{first} + {config.weight2:g}·{second}"


def target_cdf(config: ToyGANConfig) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of the target, for the Kolmogorov-Smirnov test."""
    mu, sigma = config.mu, config.sigma
    if config.target == "normal":
        return lambda x: special.ndtr((np.asarray(x, np.float64) - mu) / sigma)
    if config.target == "lognormal":
        mean, sd = _lognormal_moments()

        def lognormal_cdf(x: np.ndarray) -> np.ndarray:
            # x = mu + sigma (e^(sZ) - mean) / sd, so P(X <= x) = P(sZ <= log(mean + sd (x - mu) / sigma))
            e = mean + sd * (np.asarray(x, np.float64) - mu) / sigma
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(e > 0, special.ndtr(np.log(np.maximum(e, 1e-300)) / LOGNORMAL_SHAPE), 0.0)

        return lognormal_cdf
    w, mu2, sigma2 = config.weight2, config.mu2, config.sigma2

    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return (1 - w) * special.ndtr((x - mu) / sigma) + w * special.ndtr((x - mu2) / sigma2)

    return cdf


def _lognormal_moments() -> tuple[float, float]:
    """Mean and standard deviation of e^(sZ), Z ~ N(0, 1), s = LOGNORMAL_SHAPE: the skewed target is
    that variable standardised, then scaled to mean mu and standard deviation sigma."""
    s2 = LOGNORMAL_SHAPE**2
    return math.exp(s2 / 2), math.sqrt((math.exp(s2) - 1) * math.exp(s2))


def _draw_target(config: ToyGANConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    if config.target == "lognormal":
        mean, sd = _lognormal_moments()
        e = np.exp(LOGNORMAL_SHAPE * rng.standard_normal(n))
        return (config.mu + config.sigma * (e - mean) / sd).astype(np.float32)
    x = rng.standard_normal(n) * config.sigma + config.mu
    if config.target == "mixture":
        second = rng.random(n) < config.weight2
        x = np.where(second, rng.standard_normal(n) * config.sigma2 + config.mu2, x)
    return x.astype(np.float32)


def _draw_noise(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def _grid(config: ToyGANConfig) -> np.ndarray:
    """x values for D's decision curve: the target +- 4 standard deviations (the skewed one: its bulk and tail)."""
    lo, hi = config.mu - 4 * config.sigma, config.mu + 4 * config.sigma
    if config.target == "lognormal":  # bounded below at mu - 1.9 sigma, a long right tail (to 99.9 %)
        lo, hi = config.mu - 2.5 * config.sigma, config.mu + 5.5 * config.sigma
    if config.target == "mixture":
        lo, hi = min(lo, config.mu2 - 4 * config.sigma2), max(hi, config.mu2 + 4 * config.sigma2)
    return np.linspace(lo, hi, _N_GRID, dtype=np.float32)


def _streams(seed: int) -> tuple[np.random.Generator, ...]:
    data, init, batches, evaluation = np.random.SeedSequence(seed).spawn(4)
    return tuple(np.random.default_rng(s) for s in (data, init, batches, evaluation))


def _init_layers(widths: tuple[int, ...], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases,
    drawn with numpy so both trainers can start from the very same numbers."""
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        bound = 1 / math.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        bias = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        layers.append((weight, bias))
    return layers


def _batches(config: ToyGANConfig, real: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, ...]]:
    """Blocks of mini-batches: (real values, noise for D's step, noise for G's step), each (block, batch)."""
    b = config.batch_size
    full = b == config.n_real
    for start in range(0, config.epochs, _BLOCK):
        count = min(_BLOCK, config.epochs - start)
        if full:
            x = np.broadcast_to(real, (_BLOCK, b))
        else:
            x = real[rng.integers(0, config.n_real, (_BLOCK, b))]
        z_d = _draw_noise(config.noise, (_BLOCK, b), rng)
        z_g = _draw_noise(config.noise, (_BLOCK, b), rng)
        yield x[:count], z_d[:count], z_g[:count]


def _bce_with_logits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy of each row, from logits (the numerically stable form)."""
    logits = logits.astype(np.float64)
    return np.mean(np.logaddexp(0, logits) - labels * logits, axis=-1)


def _start(config: ToyGANConfig) -> tuple[np.ndarray, list, list, np.ndarray, np.random.Generator]:
    """The observed data, the initial weights of G and D, the evaluation noise and the mini-batch
    stream: one function for both trainers, so they start from the same state by construction."""
    data_rng, init_rng, batch_rng, eval_rng = _streams(config.seed)
    real = _draw_target(config, config.n_real, data_rng)
    g_layers = _init_layers((1, config.hidden, 1), init_rng)
    d_layers = _init_layers((1, config.d_hidden, config.d_hidden, 1), init_rng)
    eval_noise = _draw_noise(config.noise, (_N_EVAL,), eval_rng)
    return real, g_layers, d_layers, eval_noise, batch_rng


# ---------------------------------------------------------------- the generator users keep


@dataclass
class ToyGenerator:
    """A trained toy generator: noise in, values out. Weights use nn.Sequential's names
    ("0.weight" (hidden, 1), "0.bias", "2.weight" (1, hidden), "2.bias") so files load into
    `nn.Sequential(nn.Linear(1, h), nn.LeakyReLU(s), nn.Linear(h, 1))` as they are."""

    config: ToyGANConfig
    weights: dict[str, np.ndarray]

    @classmethod
    def from_layers(cls, config: ToyGANConfig, layers: list[tuple[np.ndarray, np.ndarray]]) -> "ToyGenerator":
        (w0, b0), (w2, b2) = layers
        weights = {"0.weight": w0, "0.bias": b0, "2.weight": w2, "2.bias": b2}
        return cls(config, {k: np.array(v, np.float32) for k, v in weights.items()})

    def __post_init__(self) -> None:
        h = self.config.hidden
        expected = {"0.weight": (h, 1), "0.bias": (h,), "2.weight": (1, h), "2.bias": (1,)}
        got = {k: tuple(np.shape(v)) for k, v in self.weights.items()}
        if got != expected:
            raise ValueError(f"toy generator weights do not fit hidden={h}: expected shapes {expected}, got {got}")

    @property
    def target(self) -> str:
        return describe_target(self.config)

    def target_cdf(self, x: np.ndarray) -> np.ndarray:
        return target_cdf(self.config)(x)

    def sample(self, noise: np.ndarray) -> np.ndarray:
        """G(noise) for an array of any shape (G acts on each value); float64 for the statistics."""
        z = np.asarray(noise, np.float32)
        if not np.all(np.isfinite(z)):
            raise ValueError("noise contains NaN or infinite values")
        w = self.weights
        slope = np.float32(self.config.negative_slope)
        flat, out = z.ravel(), np.empty(z.size)
        for start in range(0, flat.size, _SAMPLE_CHUNK):
            h = flat[start : start + _SAMPLE_CHUNK, None] * w["0.weight"][:, 0] + w["0.bias"]
            h = np.where(h > 0, h, h * slope)
            out[start : start + _SAMPLE_CHUNK] = h @ w["2.weight"][0] + w["2.bias"][0]
        return out.reshape(z.shape)

    def draw(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """n outputs for noise from the source the generator was trained on."""
        rng = rng if rng is not None else np.random.default_rng()
        return self.sample(_draw_noise(self.config.noise, (n,), rng))


# ---------------------------------------------------------------- snapshots


@dataclass
class Snapshot:
    """The state of a run after `epoch` epochs, for plotting live and for keeping."""

    epoch: int
    epochs: int  # planned in total
    d_loss: float  # mean per-step loss since the previous snapshot (one mini-batch is too noisy to read)
    g_loss: float
    samples: np.ndarray  # G's output for a fixed set of 1000 noise values
    grid: np.ndarray  # x values ...
    decision: np.ndarray  # ... and D(x), the probability D gives x of being real
    ks_statistic: float  # Kolmogorov-Smirnov distance of `samples` from the target
    real: np.ndarray  # the observed data D learns from
    generator: ToyGenerator  # a copy: stays usable whatever the run does next
    d_losses: np.ndarray  # per-epoch losses, epochs 1..epoch
    g_losses: np.ndarray
    elapsed_s: float  # wall time since training started


def ks_statistic(values: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray]) -> float:
    """Kolmogorov-Smirnov distance between the values' empirical CDF and `cdf` (scipy's kstest
    statistic, without the exact p-value that costs milliseconds at n = 1000)."""
    x = np.sort(np.asarray(values, np.float64))
    n = len(x)
    F = cdf(x)
    return float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))


def _snapshot(config, epoch, g_layers, d_prob, real, eval_noise, d_losses, g_losses, since, t0) -> Snapshot:
    generator = ToyGenerator.from_layers(config, g_layers)
    samples = generator.sample(eval_noise)
    grid = _grid(config)
    return Snapshot(
        epoch=epoch,
        epochs=config.epochs,
        d_loss=float(np.mean(d_losses[since:epoch])),
        g_loss=float(np.mean(g_losses[since:epoch])),
        samples=samples,
        grid=grid.astype(np.float64),
        decision=d_prob(grid).astype(np.float64),
        ks_statistic=ks_statistic(samples, target_cdf(config)),
        real=real.astype(np.float64),
        generator=generator,
        d_losses=d_losses[:epoch].copy(),
        g_losses=g_losses[:epoch].copy(),
        elapsed_s=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------- the GAN as the maths says: plain PyTorch


def reference_train(config: ToyGANConfig) -> Snapshot:
    """The straightforward eager PyTorch loop, written as the maths says. Same seed, same data,
    same initial weights and mini-batches as `train`; slow (a few ms per epoch), kept as the
    specification the fast trainer is tested and benchmarked against. Returns the final snapshot."""
    import torch
    from torch import nn

    config.validate()
    t0 = time.perf_counter()
    real, g_layers, d_layers, eval_noise, batch_rng = _start(config)

    slope, h, dh = config.negative_slope, config.hidden, config.d_hidden
    G = nn.Sequential(nn.Linear(1, h), nn.LeakyReLU(slope), nn.Linear(h, 1))
    D = nn.Sequential(nn.Linear(1, dh), nn.LeakyReLU(slope), nn.Linear(dh, dh), nn.LeakyReLU(slope), nn.Linear(dh, 1))
    for net, layers in ((G, g_layers), (D, d_layers)):
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, (weight, bias) in zip(linears, layers):
                lin.weight.copy_(torch.from_numpy(weight))
                lin.bias.copy_(torch.from_numpy(bias))
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=betas)
    bce = nn.BCEWithLogitsLoss()  # D outputs a logit; D(x) = sigmoid(logit)

    g_avg = [p.detach().clone() for p in G.parameters()]
    b = config.batch_size
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
    d_losses, g_losses = [], []
    for x, z_d, z_g in _batches(config, real, batch_rng):
        for i in range(len(x)):
            real_b = torch.from_numpy(np.array(x[i])).unsqueeze(1)
            # 1. update D: real -> 1, generated -> 0, with G fixed.
            with torch.no_grad():
                fake = G(torch.from_numpy(z_d[i]).unsqueeze(1))
            d_loss = bce(D(torch.cat([real_b, fake])), torch.cat([ones, zeros]))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            # 2. update G through the fixed D: generated -> 1 (only G's optimiser steps).
            g_loss = bce(D(G(torch.from_numpy(z_g[i]).unsqueeze(1))), ones)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            # 3. the generator we keep: a moving average of G's weights.
            if config.ema:
                with torch.no_grad():
                    for p_avg, p in zip(g_avg, G.parameters()):
                        p_avg.lerp_(p, 1 - ema_decay(config.ema, len(g_losses) + 1))
            d_losses.append(d_loss.item())
            g_losses.append(g_loss.item())

    def layers(net: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in net if isinstance(m, nn.Linear)]

    def d_prob(grid: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(D(torch.from_numpy(grid).unsqueeze(1)))[:, 0].numpy()

    kept = [(w.numpy(), b.numpy()) for w, b in zip(g_avg[::2], g_avg[1::2])] if config.ema else layers(G)
    return _snapshot(config, config.epochs, kept, d_prob, real, eval_noise,
                     np.array(d_losses), np.array(g_losses), 0, t0)


# ---------------------------------------------------------------- fast trainer: the same GAN on the compiled engine


def train(config: ToyGANConfig, snapshot_every: int | None = 500) -> Iterator[Snapshot]:
    """Train, yielding a Snapshot every `snapshot_every` epochs and after the last one (None: only the
    last). Stop iterating whenever you like: every snapshot's generator is a finished, usable copy.
    Same config, same result, whatever snapshot_every is."""
    config.validate()
    if snapshot_every is not None:
        checks.whole("snapshot_every", snapshot_every, 1, MAX_EPOCHS)
    t0 = time.perf_counter()
    real, g_layers, d_layers, eval_noise, batch_rng = _start(config)
    gan = FastGAN(config, g_layers, d_layers)

    b = config.batch_size
    d_losses = np.empty(config.epochs)
    g_losses = np.empty(config.epochs)
    logits_d = np.empty((_BLOCK, 2 * b), np.float32)
    logits_g = np.empty((_BLOCK, b), np.float32)
    y_d, y_g = np.r_[np.ones(b), np.zeros(b)], np.ones(b)
    epoch = done = since = 0  # epochs trained; epochs whose losses are computed; last snapshot

    def losses_up_to_now(base: int) -> None:
        # Losses come from the logits stored each step, a block at a time: cheaper than per step.
        nonlocal done
        rows = slice(done - base, epoch - base)
        d_losses[done:epoch] = _bce_with_logits(logits_d[rows], y_d)
        g_losses[done:epoch] = _bce_with_logits(logits_g[rows], y_g)
        done = epoch

    every = snapshot_every or config.epochs
    blas = ThreadpoolController()

    def snapshot() -> Snapshot:
        with blas.limit(limits=1, user_api="blas"):
            return _snapshot(config, epoch, gan.kept_generator(), gan.d_prob, real, eval_noise,
                             d_losses, g_losses, since, t0)

    for x, z_d, z_g in _batches(config, real, batch_rng):
        base = epoch
        while epoch - base < len(x):
            stop = min(base + len(x), (epoch // every + 1) * every)
            # BLAS threads only wait on each other at these sizes (and stall when the cores are busy).
            # Limited per stretch, never across a yield, so the caller's numpy keeps its threads.
            with blas.limit(limits=1, user_api="blas"):
                rows = slice(epoch - base, stop - base)
                gan.run(x[rows], z_d[rows], z_g[rows], logits_d[rows], logits_g[rows])
            epoch = stop
            if epoch % every == 0 and epoch < config.epochs:
                losses_up_to_now(base)
                yield snapshot()
                since = epoch
        losses_up_to_now(base)
    yield snapshot()


# ---------------------------------------------------------------- files


def save_toy_generator(generator: ToyGenerator, path: str | Path, **sidecar: object) -> Path:
    """Write NAME.safetensors + NAME.json (config, target, and whatever `sidecar` adds: description,
    training, metrics). Returns the .safetensors path."""
    import torch

    from srgan_core.weights import save_weights

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in generator.weights.items()}
    meta = {
        "kind": "toygan",
        "architecture": "toygan-mlp",
        "config": generator.config.to_dict(),
        "target": generator.target,
        "description": f"1-D toy GAN generator: {generator.config.noise} noise -> {generator.target}",
        **sidecar,
    }
    return save_weights(tensors, path, meta)


def load_toy_generator(source: str | Path | None = None) -> ToyGenerator:
    """A toy generator from a path, a bundled name or an hf:// reference; None: the bundled default."""
    from srgan_core.weights import WeightsError, read_weights, weights_dir

    tensors, meta = read_weights(weights_dir() / DEFAULT_NAME if source is None else source)
    where = source if source is not None else DEFAULT_NAME
    if meta.get("kind") != "toygan" or meta.get("architecture") != "toygan-mlp":
        raise WeightsError(f"{where}: holds {meta.get('kind')}/{meta.get('architecture')} weights, not a toy generator")
    try:
        config = ToyGANConfig.from_dict(meta.get("config", {}))
        return ToyGenerator(config, {k: t.numpy() for k, t in tensors.items()})
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{where}: not a usable toy generator ({e})") from None
