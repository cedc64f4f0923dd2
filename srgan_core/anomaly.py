"""Drift detection with a trained toy generator and the Kolmogorov-Smirnov test.

A toy generator turns U(0,1) noise into N(0,1) values. Feed it the values of a source that ought
to be uniform: while the source is uniform, the outputs pass a KS test against N(0,1); when it
changes (say it becomes Beta(1,5), or a share of it does), the outputs stop looking normal and the
test flags the source. `detection_curve` measures how often that happens over many trials: the
false-alarm rate for a healthy source, the power for a broken one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from srgan_core import checks
from srgan_core.toygan import ToyGenerator, load_toy_generator

NOISE_KINDS = ("uniform", "beta", "normal", "drift")
MAX_N = 1_000_000  # values per trial
MAX_TRIALS = 100_000
_CHUNK = 1_000_000  # values drawn at once in detection_curve, to bound memory


@dataclass(frozen=True)
class NoiseSpec:
    """A data source feeding the generator.

    uniform: U(0,1), what the generator was trained on; beta: Beta(a, b); normal: N(loc, scale),
    by default with U(0,1)'s mean and standard deviation, a subtle break; drift: U(0,1) where each
    value is replaced by a Beta(a, b) value with probability `fraction`.
    """

    kind: str = "uniform"
    a: float = 1.0
    b: float = 5.0
    fraction: float = 0.5
    loc: float = 0.5
    scale: float = 1 / math.sqrt(12)

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {self.kind!r}")
        if checks.real("a", self.a) <= 0 or checks.real("b", self.b) <= 0:
            raise ValueError(f"Beta parameters a and b must be greater than 0, got a={self.a:g}, b={self.b:g}")
        checks.interval("fraction", self.fraction, 0, 1, what="share of Beta values in the drift")
        checks.real("loc", self.loc)
        checks.positive("scale", self.scale)  # the normal noise's standard deviation

    def describe(self) -> str:
        beta = f"Beta({self.a:g}, {self.b:g})"
        return {
            "uniform": "U(0, 1)",
            "beta": beta,
            "normal": f"N({self.loc:g}, {self.scale:.3g})",
            "drift": f"U(0, 1) with {self.fraction:.0%} {beta}",
        }[self.kind]


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(None if seed is None else checks.seed("seed", seed))


def _check_alpha(alpha: object) -> float:
    return checks.interval("alpha", alpha, 0, 1, lo_open=True, hi_open=True, what="the significance level")


def draw_noise(spec: NoiseSpec, n: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """n values (or an array of that shape) from the source `spec` describes."""
    shape = (n,) if isinstance(n, (int, np.integer)) and not isinstance(n, bool) else n
    if not isinstance(shape, tuple) or not shape:
        raise ValueError(f"n must be a whole number, got {n!r}")
    for size in shape:
        checks.whole("n", size, 1, MAX_N * MAX_TRIALS)
    if spec.kind == "uniform":
        return rng.random(shape)
    if spec.kind == "beta":
        return rng.beta(spec.a, spec.b, shape)
    if spec.kind == "normal":
        return rng.normal(spec.loc, spec.scale, shape)
    x = rng.random(shape)
    replaced = rng.random(shape) < spec.fraction
    return np.where(replaced, rng.beta(spec.a, spec.b, shape), x)


def _spec(noise: NoiseSpec | str) -> NoiseSpec:
    return noise if isinstance(noise, NoiseSpec) else NoiseSpec(kind=noise)


def _generator(generator: ToyGenerator | str | Path | None) -> ToyGenerator:
    return generator if isinstance(generator, ToyGenerator) else load_toy_generator(generator)


@dataclass
class KSResult:
    statistic: float
    p_value: float
    flagged: bool  # p_value <= alpha: the outputs do not look like the target
    alpha: float
    n: int
    target: str  # e.g. "N(0, 1)"
    source: str  # the noise, e.g. "Beta(1, 5)", or "given values"
    verdict: str  # one sentence for people
    inputs: np.ndarray = field(repr=False)
    outputs: np.ndarray = field(repr=False)


def ks_check(
    generator: ToyGenerator | str | Path | None,
    noise: NoiseSpec | str | np.ndarray,
    n: int = 100,
    alpha: float = 0.05,
    seed: int | None = None,
    target: Callable[[np.ndarray], np.ndarray] | None = None,
) -> KSResult:
    """Run `n` values of the source through the generator and KS-test the outputs against its target.

    generator: a ToyGenerator, a weights path, or None for the bundled default.
    noise: a NoiseSpec (or its kind) to draw from, or the observed source values themselves.
    target: a CDF to test against instead of the generator's own target (N(0,1) by default).
    """
    from scipy import stats  # here, not at the top: the CLI imports this module to build its help

    g = _generator(generator)
    alpha = _check_alpha(alpha)
    if isinstance(noise, (NoiseSpec, str)):
        spec = _spec(noise)
        inputs = draw_noise(spec, checks.whole("n", n, 2, MAX_N), _rng(seed))
        source = spec.describe()
    else:
        inputs = checks.finite_values("the source values", noise).ravel()
        checks.whole("number of values", inputs.size, 2, MAX_N)
        source = "given values"
    outputs = g.sample(inputs)
    result = stats.kstest(outputs, target if target is not None else g.target_cdf)
    p = float(result.pvalue)
    flagged = p <= alpha
    name = g.target if target is None else "the target"
    if flagged:
        verdict = (f"flagged: {len(inputs)} outputs do not look like {name} (KS p = {p:.3g} <= {alpha:g}); "
                   f"the source has likely changed")
    else:
        verdict = f"passes: {len(inputs)} outputs are consistent with {name} (KS p = {p:.3g} > {alpha:g})"
    return KSResult(float(result.statistic), p, flagged, alpha, len(inputs), name, source, verdict, inputs, outputs)


@dataclass
class DetectionCurve:
    sizes: list[int]
    flag_rate: list[float]  # share of trials flagged at each size
    trials: int
    alpha: float
    source: str
    target: str


def detection_curve(
    generator: ToyGenerator | str | Path | None,
    noise: NoiseSpec | str,
    sizes: Sequence[int] = (10, 20, 50, 100, 200, 500, 1000),
    trials: int = 200,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> DetectionCurve:
    """Share of `trials` independent samples flagged, at each sample size: the false-alarm rate
    for a uniform source, the power against a broken one. Data for a plot."""
    from scipy import stats

    g = _generator(generator)
    spec = _spec(noise)
    alpha = _check_alpha(alpha)
    trials = checks.whole("trials", trials, 1, MAX_TRIALS)
    if isinstance(sizes, (int, np.integer)):
        sizes = [sizes]
    sizes = [checks.whole("sample size n", n, 2, MAX_N) for n in sizes]
    if not sizes:
        raise ValueError("give at least one sample size")
    rng = _rng(seed)
    rates = []
    for n in sizes:
        flagged = 0
        rows = max(1, _CHUNK // n)
        for start in range(0, trials, rows):
            outputs = g.sample(draw_noise(spec, (min(rows, trials - start), n), rng))
            p = stats.kstest(outputs, g.target_cdf, axis=1).pvalue
            flagged += int(np.count_nonzero(p <= alpha))
        rates.append(flagged / trials)
    return DetectionCurve(sizes, rates, trials, alpha, spec.describe(), g.target)
