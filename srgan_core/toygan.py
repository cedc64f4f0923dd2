"""The 1-D toy GAN: a generator learns to turn U(0,1) noise into samples of N(mu, sigma).

The maths follows the Keras GAN example the original write-up used: G is a dense net 1 -> 50 -> 1,
D is 1 -> 128 -> 128 -> 1, both with leaky-ReLU hidden layers; 1000 observed samples; an "epoch" is
one step on a mini-batch in which D sees `batch_size` real and `batch_size` generated values.
Each step updates D with G fixed (binary cross-entropy, real = 1, generated = 0), then G through the
fixed D (the non-saturating loss: generated labelled real). Both use Adam. The generator a run
keeps is an exponential moving average of G's weights (`ema`; 0 keeps G as it is): with 32 values
a batch, G wanders around the equilibrium, and the average sits much closer to it.

Two trainers run that same maths:
- `reference_train` is the straightforward eager PyTorch loop (nn.Sequential, torch.optim.Adam,
  BCEWithLogitsLoss). It is the executable specification and the benchmark baseline.
- `train` writes the forward and backward passes by hand in numpy, keeps each network's weights
  in one flat vector and applies torch.optim.Adam's update to it in a few array operations.
  With 64 values in a batch, PyTorch spends its time dispatching ops, not computing; cutting the
  op count and the per-op cost is what makes 30,000 epochs take seconds instead of minutes.
  tests/test_toygan.py checks that both trainers agree step for step.

Randomness comes from one seed, split into independent streams (observed data, initial weights,
mini-batches, the evaluation noise), so the result never depends on how often snapshots are taken,
and a shorter run is exactly the start of a longer one.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from scipy import special
from threadpoolctl import ThreadpoolController

TARGETS = ("normal", "mixture")
NOISES = ("uniform", "normal")
MAX_EPOCHS = 1_000_000  # ~4 minutes with the default model; a typo of extra zeros should not hang the app
MAX_WIDTH = 4096
MAX_REAL = 1_000_000
DEFAULT_NAME = "toygan_default"  # the bundled generator, in the weights folder
_SAMPLE_CHUNK = 65_536  # values per pass in ToyGenerator.sample: bounds its memory for any input size

_BLOCK = 500  # epochs of mini-batches drawn at once; fixed, so the random stream never depends on snapshots
_N_EVAL = 1000  # generated values in each snapshot (always from the same noise, so frames are comparable)
_N_GRID = 201


# ---------------------------------------------------------------- configuration


@dataclass
class ToyGANConfig:
    """Every knob of a toy-GAN run. The defaults reproduce the original experiment."""

    target: str = "normal"  # "normal": N(mu, sigma); "mixture": (1 - weight2) N(mu, sigma) + weight2 N(mu2, sigma2)
    mu: float = 0.0
    sigma: float = 1.0
    mu2: float = 4.0  # second mixture component, only used when target == "mixture"
    sigma2: float = 0.5
    weight2: float = 0.5
    noise: str = "uniform"  # generator input: "uniform" U(0,1) or "normal" N(0,1)
    hidden: int = 50  # generator: 1 -> hidden -> 1
    d_hidden: int = 128  # discriminator: 1 -> d_hidden -> d_hidden -> 1
    negative_slope: float = 0.2  # leaky ReLU in both nets (0 gives a plain ReLU)
    lr: float = 1e-3  # Adam, both nets (the Keras default)
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int = 32  # real values per step, and as many generated; = n_real means full batch
    epochs: int = 30_000  # one epoch = one mini-batch step of D then G
    ema: float = 0.999  # keep an exponential moving average of G's weights (0: keep G as it is)
    n_real: int = 1000  # observed samples of the target
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the knob and the allowed range: these values come from users."""
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {self.noise!r}")
        for name in ("mu", "mu2"):
            check_real(name, getattr(self, name))
        for name in ("sigma", "sigma2", "lr"):
            if check_real(name, getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if not 0 <= check_real("weight2", self.weight2) <= 1:
            raise ValueError(f"weight2 (share of the second mixture component) must be in [0, 1], got {self.weight2}")
        if not 0 <= check_real("negative_slope", self.negative_slope) < 1:
            raise ValueError(f"negative_slope must be in [0, 1), got {self.negative_slope}")
        for name in ("beta1", "beta2", "ema"):
            if not 0 <= check_real(name, getattr(self, name)) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        check_int("hidden", self.hidden, 1, MAX_WIDTH)
        check_int("d_hidden", self.d_hidden, 1, MAX_WIDTH)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("n_real", self.n_real, 2, MAX_REAL)
        check_int("batch_size", self.batch_size, 1, self.n_real)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a whole number, 0 or more, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ToyGANConfig":
        """Build from a sidecar's "config"; unknown keys are refused so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown toy-GAN config keys: {', '.join(unknown)}")
        return cls(**d)


def check_real(name: str, value: object) -> float:
    """A finite real number, or a ValueError naming the parameter: NaN from a form or a JSON body
    would otherwise train or test quietly into garbage. Shared with the anomaly detector."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return float(value)


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """A whole number in [lo, hi], or a ValueError naming the parameter and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")
    return int(value)


# ---------------------------------------------------------------- target distribution and noise


def describe_target(config: ToyGANConfig) -> str:
    """The target as people write it, e.g. "N(0, 1)"."""
    first = f"N({config.mu:g}, {config.sigma:g})"
    if config.target == "normal":
        return first
    second = f"N({config.mu2:g}, {config.sigma2:g})"
    return f"{1 - config.weight2:g}·{first} + {config.weight2:g}·{second}"


def target_cdf(config: ToyGANConfig) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of the target, for the Kolmogorov-Smirnov test."""
    mu, sigma = config.mu, config.sigma
    if config.target == "normal":
        return lambda x: special.ndtr((np.asarray(x, np.float64) - mu) / sigma)
    w, mu2, sigma2 = config.weight2, config.mu2, config.sigma2

    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return (1 - w) * special.ndtr((x - mu) / sigma) + w * special.ndtr((x - mu2) / sigma2)

    return cdf


def _draw_target(config: ToyGANConfig, n: int, rng: np.random.Generator) -> np.ndarray:
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
    """x values for D's decision curve: the target +- 4 standard deviations."""
    lo, hi = config.mu - 4 * config.sigma, config.mu + 4 * config.sigma
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


# ---------------------------------------------------------------- fast trainer: numpy by hand


class _MLP:
    """A dense net on scalar inputs with leaky-ReLU hidden layers, all weights in one flat float32 vector.

    Layer l keeps an augmented matrix W (fan_in + 1, fan_out) whose last row is the bias; its input
    carries a column of ones, so one matmul does the affine map forward and one gives both gradients
    backward. One flat vector of weights means one flat vector of gradients and a single Adam update.
    """

    def __init__(self, widths: tuple[int, ...], negative_slope: float, layers) -> None:
        shapes = [(fan_in + 1, fan_out) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
        offsets = np.cumsum([0] + [r * c for r, c in shapes])
        self.params = np.zeros(offsets[-1], np.float32)
        self.grads = np.zeros(offsets[-1], np.float32)
        self.W = [self.params[o : o + r * c].reshape(r, c) for o, (r, c) in zip(offsets, shapes)]
        self.dW = [self.grads[o : o + r * c].reshape(r, c) for o, (r, c) in zip(offsets, shapes)]
        for W, (weight, bias) in zip(self.W, layers):
            W[:-1] = weight.T
            W[-1] = bias
        self.widths = widths
        self.slope = np.float32(negative_slope)
        self._work: dict[int, _Work] = {}

    def layers(self, params: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight (out, in), bias) per layer, nn.Linear's layout; of `params` (a vector laid out
        like self.params, e.g. an average of them) when given."""
        if params is None:
            return [(W[:-1].T.copy(), W[-1].copy()) for W in self.W]
        offsets = np.cumsum([0] + [W.size for W in self.W])
        mats = [params[o : o + W.size].reshape(W.shape) for o, W in zip(offsets, self.W)]
        return [(M[:-1].T.copy(), M[-1].copy()) for M in mats]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch of scalars; activations stay in the batch-size workspace for backward."""
        w = self._work.get(len(x)) or self._work.setdefault(len(x), _Work(self.widths, len(x)))
        w.a[0][:, 0] = x
        last = len(self.W) - 1
        for l, W in enumerate(self.W):
            np.matmul(w.a[l], W, out=w.u[l])
            if l < last:  # leaky ReLU as u * s, s = 1 where u > 0 else the slope; s is reused backward
                np.greater(w.u[l], 0, out=w.pos[l])
                np.copyto(w.s[l], w.pos[l])
                np.maximum(w.s[l], self.slope, out=w.s[l])
                np.multiply(w.u[l], w.s[l], out=w.a[l + 1][:, :-1])
        return w.u[last][:, 0]

    def backward(self, dout: np.ndarray, param_grads: bool = True, input_grad: bool = False) -> np.ndarray | None:
        """Backpropagate d loss / d output of the last forward of this batch size: into self.grads
        if param_grads, and to the input (returned) if input_grad."""
        w = self._work[len(dout)]
        w.du[-1][:, 0] = dout
        for l in range(len(self.W) - 1, -1, -1):
            if param_grads:
                np.matmul(w.a[l].T, w.du[l], out=self.dW[l])
            if l == 0 and not input_grad:
                return None
            if w.du[l].shape[1] == 1:  # an outer product: broadcasting beats a K=1 matmul
                np.multiply(w.du[l], self.W[l][:-1].T, out=w.da[l])
            else:
                np.matmul(w.du[l], self.W[l][:-1].T, out=w.da[l])
            if l > 0:
                np.multiply(w.da[l], w.s[l - 1], out=w.du[l - 1])
        return w.da[0][:, 0]


class _Work:
    """Buffers for one batch size, allocated once: a[l] layer inputs with a ones column, u[l]
    pre-activations, s[l] leaky-ReLU slopes (pos[l]: u[l] > 0), du[l] / da[l] gradients at u[l] / a[l]."""

    def __init__(self, widths: tuple[int, ...], n: int) -> None:
        self.a = [np.ones((n, w + 1), np.float32) for w in widths[:-1]]
        self.u = [np.empty((n, w), np.float32) for w in widths[1:]]
        self.s = [np.empty((n, w), np.float32) for w in widths[1:-1]]
        self.pos = [np.empty((n, w), bool) for w in widths[1:-1]]
        self.du = [np.empty((n, w), np.float32) for w in widths[1:]]
        self.da = [np.empty((n, w), np.float32) for w in widths[:-1]]


class _Adam:
    """torch.optim.Adam's update (no weight decay, no amsgrad), in place on one flat vector.
    Same operations in the same order as torch's single-tensor implementation."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float, betas: tuple[float, float], eps: float = 1e-8):
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v, self.tmp = (np.zeros_like(params) for _ in range(3))
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        g, m, v, tmp = self.grads, self.m, self.v, self.tmp
        np.subtract(g, m, out=tmp)  # m.lerp_(g, 1 - b1)
        tmp *= 1 - b1
        m += tmp
        v *= b2  # v.mul_(b2).addcmul_(g, g, value=1 - b2)
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        np.sqrt(v, out=tmp)  # denom = v.sqrt() / sqrt(1 - b2^t) + eps
        tmp /= math.sqrt(1 - b2**self.t)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)  # p.addcdiv_(m, denom, value=-lr / (1 - b1^t))
        tmp *= self.lr / (1 - b1**self.t)
        self.params -= tmp


def _ema_decay(ema: float, t: int) -> float:
    """The average's decay after t updates: short memory at first, so it never drags the
    random initial weights along (the schedule of TensorFlow's ExponentialMovingAverage)."""
    return min(ema, (1 + t) / (10 + t))


class _FastGAN:
    """G, D and their optimisers, and the GAN step."""

    def __init__(self, config: ToyGANConfig, g_layers, d_layers) -> None:
        c = config
        self.G = _MLP((1, c.hidden, 1), c.negative_slope, g_layers)
        self.D = _MLP((1, c.d_hidden, c.d_hidden, 1), c.negative_slope, d_layers)
        betas = (c.beta1, c.beta2)
        self.opt_g = _Adam(self.G.params, self.G.grads, c.lr, betas)
        self.opt_d = _Adam(self.D.params, self.D.grads, c.lr, betas)
        b = c.batch_size
        self.x = np.empty(2 * b, np.float32)  # D's batch: b real then b generated
        self.y = np.r_[np.ones(b), np.zeros(b)].astype(np.float32)
        self.dlogit_d = np.empty(2 * b, np.float32)
        self.dlogit_g = np.empty(b, np.float32)
        self.one = np.float32(1)
        self.ema = c.ema
        self.g_avg = self.G.params.copy()
        self.g_diff = np.empty_like(self.g_avg)

    def step(self, real: np.ndarray, z_d: np.ndarray, z_g: np.ndarray, logits_d: np.ndarray, logits_g: np.ndarray):
        """One epoch. Writes D's logits of both steps into logits_d / logits_g, for the loss history."""
        b = len(real)
        # 1. update D to tell real (label 1) from generated (label 0), G fixed.
        self.x[:b] = real
        self.x[b:] = self.G.forward(z_d)
        logits_d[:] = self.D.forward(self.x)
        # d mean BCE / d logit = (sigmoid(logit) - label) / 2b
        np.subtract(special.expit(logits_d), self.y, out=self.dlogit_d)
        self.dlogit_d *= 1 / (2 * b)
        self.D.backward(self.dlogit_d)
        self.opt_d.step()
        # 2. update G through the fixed D: make D call generated values real (label 1).
        logits_g[:] = self.D.forward(self.G.forward(z_g))
        np.subtract(special.expit(logits_g), self.one, out=self.dlogit_g)
        self.dlogit_g *= 1 / b
        self.G.backward(self.D.backward(self.dlogit_g, param_grads=False, input_grad=True))
        self.opt_g.step()
        # 3. the generator we keep: a moving average of G's weights, G's own oscillation smoothed out.
        if self.ema:
            np.subtract(self.G.params, self.g_avg, out=self.g_diff)  # g_avg.lerp_(G, 1 - decay)
            self.g_diff *= 1 - _ema_decay(self.ema, self.opt_g.t)
            self.g_avg += self.g_diff

    def kept_generator(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.G.layers(self.g_avg if self.ema else None)

    def d_prob(self, x: np.ndarray) -> np.ndarray:
        return special.expit(self.D.forward(x.astype(np.float32)))


def _start(config: ToyGANConfig) -> tuple[np.ndarray, list, list, np.ndarray, np.random.Generator]:
    """The observed data, the initial weights of G and D, the evaluation noise and the mini-batch
    stream: one function for both trainers, so they start from the same state by construction."""
    data_rng, init_rng, batch_rng, eval_rng = _streams(config.seed)
    real = _draw_target(config, config.n_real, data_rng)
    g_layers = _init_layers((1, config.hidden, 1), init_rng)
    d_layers = _init_layers((1, config.d_hidden, config.d_hidden, 1), init_rng)
    eval_noise = _draw_noise(config.noise, (_N_EVAL,), eval_rng)
    return real, g_layers, d_layers, eval_noise, batch_rng


def train(config: ToyGANConfig, snapshot_every: int | None = 500) -> Iterator[Snapshot]:
    """Train, yielding a Snapshot every `snapshot_every` epochs and after the last one (None: only the
    last). Stop iterating whenever you like: every snapshot's generator is a finished, usable copy.
    Same config, same result, whatever snapshot_every is."""
    config.validate()
    if snapshot_every is not None:
        check_int("snapshot_every", snapshot_every, 1, MAX_EPOCHS)
    t0 = time.perf_counter()
    real, g_layers, d_layers, eval_noise, batch_rng = _start(config)
    gan = _FastGAN(config, g_layers, d_layers)

    b = config.batch_size
    d_losses = np.empty(config.epochs)
    g_losses = np.empty(config.epochs)
    logits_d = np.empty((_BLOCK, 2 * b), np.float32)
    logits_g = np.empty((_BLOCK, b), np.float32)
    y_d, y_g = gan.y.astype(np.float64), np.ones(b)
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
                for i in range(epoch - base, stop - base):
                    gan.step(x[i], z_d[i], z_g[i], logits_d[i], logits_g[i])
            epoch = stop
            if epoch % every == 0 and epoch < config.epochs:
                losses_up_to_now(base)
                yield snapshot()
                since = epoch
        losses_up_to_now(base)
    yield snapshot()


# ---------------------------------------------------------------- reference trainer: plain PyTorch


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
                        p_avg.lerp_(p, 1 - _ema_decay(config.ema, len(g_losses) + 1))
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
