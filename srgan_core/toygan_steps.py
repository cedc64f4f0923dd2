"""The toy GAN one update at a time, the way GAN Lab and TensorFlow Playground teach.

`toygan.train` runs thousands of epochs to show where a GAN ends up; a `Stepper` shows how it
gets there: `step_d()` makes one discriminator update, `step_g()` one generator update, each
returning a one-line caption of what changed (measured on all the real data and a fixed set of
generated values, not on the noisy mini-batch), and `frame()` gives the snapshot the plots draw.
`run(n)` plays n whole epochs at the engine's full speed.

It is the same GAN as `toygan.train`, not a copy of it: the same starting state (`toygan._start`),
the same mini-batch stream, the engine's networks and Adam (toygan_engine.FastGAN). `step_d` and
`step_g` call the two halves of `FastGAN.step`, so a visitor can stop between them;
tests/test_toygan_steps.py checks that alternating them gives exactly what the engine gives.

Presets are the starting points a page offers: the original experiment, a two-mode mixture (to
watch mode collapse), a skewed target, and the bundled trained generator facing a fresh D.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
from scipy import special
from threadpoolctl import ThreadpoolController

from srgan_core import checks, toygan
from srgan_core.toygan import ToyGANConfig, ToyGenerator
from srgan_core.toygan_engine import FastGAN

MAX_RUN = 10_000  # epochs one `run` may play: a typo must not freeze a page
SPEEDS = (1, 10, 100, 1000)  # epochs per frame a page may play
_HISTORY = 2_000  # points kept for the loss curves; older ones are thinned to every other


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named starting point: which target to learn, and whether G starts trained."""

    label: str
    what: str  # one line for the page: what to watch for
    target: str = "normal"
    from_trained: bool = False  # G starts from the bundled generator (weights/toygan_default)


PRESETS: dict[str, Preset] = {
    "normal": Preset("Normal N(0, 1)", "The original experiment: uniform noise in, N(0, 1) out."),
    "mode-collapse": Preset("Two modes (mode collapse)", "A mixture of two normals: watch G put all its values on "
                            "one mode, often for thousands of epochs, before it finds the other.", target="mixture"),
    "skewed": Preset("Skewed (log-normal)", "A lopsided target: a long right tail that G's few kinks must bend "
                     "into shape.", target="lognormal"),
    "trained": Preset("Start from the trained generator", "G is the bundled, trained generator; D starts from "
                      "scratch. Step D and watch D(x) stay near ½: there is little to tell apart.", from_trained=True),
}


def preset_config(name: str, **fields: object) -> tuple[ToyGANConfig, ToyGenerator | None]:
    """(config, starting generator or None) for a preset; `fields` (lr, seed, epochs, ...) override
    the preset's config. "trained" takes the bundled generator's architecture (hidden, noise,
    slope) from its file, whatever `fields` say: those must fit the weights."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    preset = PRESETS[name]
    fields = {"target": preset.target, **fields}
    if not preset.from_trained:
        return ToyGANConfig(**fields), None
    generator = toygan.load_toy_generator(None)
    fixed = {k: getattr(generator.config, k) for k in ("hidden", "noise", "negative_slope")}
    return replace(generator.config, **{**fields, **fixed}), generator


# ---------------------------------------------------------------- the stepper


@dataclass
class Measure:
    """What a caption compares before and after an update: D's mean verdict on all real values and
    on a fixed set of generated ones, and how far the generated values are from the target."""

    d_real: float
    d_fake: float
    ks: float


class Stepper:
    """A toy GAN (G, D, their Adam states, the data) that moves one update at a time.

    D and G updates keep their own counts: each update k uses the k-th mini-batch of the same
    stream `toygan.train` uses, so alternating step_d / step_g for n epochs ends exactly where
    `train` with epochs=n does. D may run ahead of G (several D steps per G step, as in Goodfellow
    et al.'s algorithm), and G ahead of D. All methods take a lock: a page's buttons and its timer
    may call them at once."""

    def __init__(self, config: ToyGANConfig, generator: ToyGenerator | None = None) -> None:
        config.validate()
        self.config = config
        self.real, g_layers, d_layers, self.eval_noise, self._rng = toygan._start(config)
        if generator is not None:
            mine, theirs = (tuple(getattr(c, k) for k in ("hidden", "noise", "negative_slope"))
                            for c in (config, generator.config))
            if mine != theirs:
                raise ValueError(f"the starting generator has (hidden, noise, slope) {theirs}, the config {mine}")
            w = generator.weights
            g_layers = [(w["0.weight"], w["0.bias"]), (w["2.weight"], w["2.bias"])]
        self.gan = FastGAN(config, g_layers, d_layers)
        self.grid = toygan._grid(config)
        self.cdf = toygan.target_cdf(config)
        self.d_steps = self.g_steps = 0
        self.d_loss = self.g_loss = math.nan  # of the latest update, on its mini-batch
        self.history: dict[str, list] = {"epoch": [], "d_loss": [], "g_loss": [], "ks": []}
        self.caption = "Ready: press Step D."
        self.preset: str | None = None  # the preset it was started from, when a page started it
        self._blocks: dict[int, tuple[np.ndarray, ...]] = {}
        self._drawn = 0  # blocks drawn from the mini-batch stream so far
        self._lock = threading.Lock()
        self._blas = ThreadpoolController()

    @property
    def epoch(self) -> int:
        """Whole epochs done: updates of the side that is behind."""
        return min(self.d_steps, self.g_steps)

    # ------------------------------------------------------------ mini-batches

    def _batch(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k-th (real, noise for D, noise for G) of the stream `toygan.train` draws, a block at a time."""
        block, row = divmod(k, toygan._BLOCK)
        while self._drawn <= block:  # one block of the endless stream: the same draws whatever `epochs` is
            one = replace(self.config, epochs=toygan._BLOCK)
            self._blocks[self._drawn] = next(toygan._batches(one, self.real, self._rng))
            self._drawn += 1
        if len(self._blocks) > 1:  # forget the blocks both sides are done with
            for old in [i for i in self._blocks if i < min(self.d_steps, self.g_steps) // toygan._BLOCK]:
                del self._blocks[old]
        x, z_d, z_g = self._blocks[block]
        return x[row], z_d[row], z_g[row]

    def _stretch(self, k: int, most: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mini-batches k, k+1, ... up to `most` of them, as rows, within one block of the stream."""
        self._batch(k)  # draws the block when needed
        block, row = divmod(k, toygan._BLOCK)
        rows = slice(row, min(row + most, toygan._BLOCK))
        x, z_d, z_g = self._blocks[block]
        return x[rows], z_d[rows], z_g[rows]

    # ------------------------------------------------------------ what the captions compare

    def _generated(self) -> np.ndarray:
        """G's output for the fixed evaluation noise: the current G, not the average a run keeps,
        so that one G update shows."""
        return self.gan.g_values(self.eval_noise).astype(np.float64)

    def measure(self) -> Measure:
        fake = self._generated()
        d_real = float(special.expit(self.gan.d_logits(self.real[: toygan._N_EVAL])).mean())  # bounded work
        d_fake = float(special.expit(self.gan.d_logits(fake)).mean())
        return Measure(d_real, d_fake, toygan.ks_statistic(fake, self.cdf))

    # ------------------------------------------------------------ the two halves of an epoch

    def _d_update(self) -> None:
        """FastGAN.step's first half: D learns to tell real (label 1) from generated (label 0), G fixed."""
        x, z_d, _ = self._batch(self.d_steps)
        b = len(x)
        logits = np.empty(2 * b, np.float32)
        self.gan.step_d(x, z_d, logits)
        self.d_loss = float(toygan._bce_with_logits(logits, np.r_[np.ones(b), np.zeros(b)]))
        self.d_steps += 1

    def _g_update(self) -> None:
        """FastGAN.step's second half: G learns to make D call its values real, through the fixed D
        (and the moving average of G's weights, the generator a run keeps, follows)."""
        _, _, z_g = self._batch(self.g_steps)
        logits = np.empty(len(z_g), np.float32)
        self.gan.step_g(z_g, logits)
        self.g_loss = float(toygan._bce_with_logits(logits, np.ones(len(z_g))))
        self.g_steps += 1

    def step_d(self) -> str:
        """One discriminator update; returns the caption of what it changed."""
        with self._lock:
            self._check_room(1)
            before = self.measure()
            with self._blas.limit(limits=1, user_api="blas"):
                self._d_update()
            after = self.measure()
            better = after.d_real - after.d_fake > before.d_real - before.d_fake
            self.caption = (f"D update {self.d_steps:,} (steps 1–2): D(real) {before.d_real:.3f}→{after.d_real:.3f}, "
                            f"D(fake) {before.d_fake:.3f}→{after.d_fake:.3f} — D got "
                            + ("better at telling them apart" if better else "worse at telling them apart (one mini-batch "
                               "can mislead it)"))
            self._record(after)
            return self.caption

    def step_g(self) -> str:
        """One generator update; returns the caption of what it changed."""
        with self._lock:
            self._check_room(1)
            before = self.measure()
            with self._blas.limit(limits=1, user_api="blas"):
                self._g_update()
            after = self.measure()
            self.caption = (f"G update {self.g_steps:,} (steps 3–4): D(fake) {before.d_fake:.3f}→{after.d_fake:.3f}, "
                            f"KS distance {before.ks:.3f}→{after.ks:.3f} — the generated values look "
                            f"{'more' if after.d_fake > before.d_fake else 'less'} real to D and moved "
                            f"{'closer to' if after.ks < before.ks else 'further from'} the target")
            self._record(after)
            return self.caption

    def run(self, epochs: int) -> str:
        """`epochs` whole epochs (D then G each) at the engine's speed; the lagging side catches up first."""
        epochs = checks.whole("epochs to run", epochs, 1, MAX_RUN)
        with self._lock:
            self._check_room(epochs + abs(self.d_steps - self.g_steps))
            before = self.measure()
            b = self.config.batch_size
            logits_d, logits_g = np.empty((epochs, 2 * b), np.float32), np.empty((epochs, b), np.float32)
            with self._blas.limit(limits=1, user_api="blas"):
                while self.d_steps < self.g_steps:
                    self._d_update()
                while self.g_steps < self.d_steps:
                    self._g_update()
                done = 0
                while done < epochs:  # a stretch of the mini-batch stream at a time, in one compiled call
                    x, z_d, z_g = self._stretch(self.d_steps, epochs - done)
                    n = len(x)
                    self.gan.run(x, z_d, z_g, logits_d[done : done + n], logits_g[done : done + n])
                    self.d_steps += n
                    self.g_steps += n
                    done += n
            # losses from the stored logits, all at once: cheaper than per step (as toygan.train does)
            self.d_loss = float(toygan._bce_with_logits(logits_d, np.r_[np.ones(b), np.zeros(b)]).mean())
            self.g_loss = float(toygan._bce_with_logits(logits_g, np.ones(b)).mean())
            after = self.measure()
            self.caption = (f"{epochs:,} epoch{'s' if epochs > 1 else ''} (steps 1–4, {epochs:,}×): "
                            f"D(real) {before.d_real:.3f}→{after.d_real:.3f}, D(fake) {before.d_fake:.3f}→"
                            f"{after.d_fake:.3f}, KS distance {before.ks:.3f}→{after.ks:.3f} — G moved "
                            f"{'closer to' if after.ks < before.ks else 'further from'} the target")
            self._record(after)
            return self.caption

    def _check_room(self, steps: int) -> None:
        if max(self.d_steps, self.g_steps) + steps > toygan.MAX_EPOCHS:
            raise ValueError(f"this toy GAN has made {toygan.MAX_EPOCHS:,} updates, the most it may: choose a preset to start again")

    def _record(self, m: Measure) -> None:
        h = self.history
        for key, value in zip(h, (self.d_steps / 2 + self.g_steps / 2, self.d_loss, self.g_loss, m.ks)):
            h[key].append(value)
        if len(h["epoch"]) > _HISTORY:  # keep the curves light for the page: every other old point
            for key in h:
                h[key] = h[key][: _HISTORY // 2 : 2] + h[key][_HISTORY // 2 :]

    # ------------------------------------------------------------ for the plots and the Anomaly tab

    def frame(self) -> toygan.Snapshot:
        """The current state as a toygan.Snapshot (what figures.toy_distribution draws): the current
        G's values for the fixed noise, D(x) on the target's grid, the KS distance."""
        with self._lock:
            samples = self._generated()
            return toygan.Snapshot(
                epoch=self.epoch, epochs=self.config.epochs, d_loss=self.d_loss, g_loss=self.g_loss,
                samples=samples, grid=self.grid.astype(np.float64),
                decision=self.gan.d_prob(self.grid).astype(np.float64),
                ks_statistic=toygan.ks_statistic(samples, self.cdf), real=self.real.astype(np.float64),
                generator=self.generator(), d_losses=np.empty(0), g_losses=np.empty(0), elapsed_s=0.0)

    def generator(self) -> ToyGenerator:
        """The generator as a run would keep it (the moving average of G's weights when ema > 0): a copy."""
        return ToyGenerator.from_layers(self.config, self.gan.kept_generator())

    def status(self) -> dict:
        """The numbers behind the caption, for API clients."""
        with self._lock:
            m = self.measure()
        return {"preset": self.preset, "target": toygan.describe_target(self.config), "d_steps": self.d_steps,
                "g_steps": self.g_steps, "epoch": self.epoch, "d_real": round(m.d_real, 4), "d_fake": round(m.d_fake, 4),
                "ks_statistic": round(m.ks, 4), "d_loss": None if math.isnan(self.d_loss) else round(self.d_loss, 4),
                "g_loss": None if math.isnan(self.g_loss) else round(self.g_loss, 4), "caption": self.caption}

    def title(self) -> str:
        """Under 40 characters, for the plot."""
        return f"After {self.d_steps:,} D and {self.g_steps:,} G updates"


def explanation(config: ToyGANConfig) -> str:
    """The numbered steps of one epoch, in plain words; the captions refer to them by number."""
    b = config.batch_size
    return f"""**One epoch, step by step**
1. **D sees a mini-batch**: {b} real values (label 1) and {b} values G made from fresh noise (label 0).
2. **D update**: one Adam step on D's weights lowers its binary cross-entropy: D(x) rises where real values lie and \
falls where generated ones lie. G does not change.
3. **G makes {b} new values** from fresh noise and shows them to D, labelled *real*.
4. **G update**: the gradient of that loss flows back through D, which does not change, into G; one Adam step moves \
G's outputs towards where D(x) is higher, where D believes real data lies.
5. **Repeat.** *Train* runs thousands of epochs. Captions measure D on all {config.n_real:,} real values and \
{toygan._N_EVAL:,} generated ones: steadier than one mini-batch."""


# ---------------------------------------------------------------- for a page: one stepper per visitor, settings in links


def stepper_for(current: Stepper | None, preset: str, **fields: object) -> Stepper:
    """The visitor's stepper if it was started with these settings, else a new one from them: a
    changed setting starts again from epoch 0, an unchanged one keeps stepping."""
    config, generator = preset_config(preset, **fields)
    if current is not None and current.preset == preset and current.config == config:
        return current
    stepper = Stepper(config, generator)
    stepper.preset = preset
    return stepper


LINK_KEYS = ("preset", "target", "epochs", "lr", "hidden", "seed", "speed")  # the page's settings a link carries


def settings_from_link(query: Mapping[str, str], limits: Mapping[str, tuple[float, float]]) -> tuple[dict, list[str]]:
    """Settings from a shared link's query (?preset=skewed&lr=0.002&seed=3): ({key: value} of the good
    ones, one message per bad one, so a page applies what it can and says what it ignored). `limits`
    gives (lo, hi) for epochs, lr, hidden and seed, the page's own slider ranges; other keys of the
    query (the framework's own) are not ours and are passed over."""
    values, problems = {}, []
    for key in LINK_KEYS:
        if key not in query:
            continue
        text = str(query[key]).strip()
        try:
            if key in ("preset", "target"):
                allowed = tuple(PRESETS) if key == "preset" else toygan.TARGETS
                if text not in allowed:
                    raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {text!r}")
                values[key] = text
                continue
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {text!r}") from None
            if key == "speed":
                if number not in SPEEDS:
                    raise ValueError(f"speed must be one of {', '.join(map(str, SPEEDS))}, got {text!r}")
                values[key] = int(number)
            elif key == "lr":
                values[key] = checks.interval("lr", number, *limits["lr"], lo_open=True)
            else:
                lo, hi = limits[key]
                values[key] = checks.whole(key, number, int(lo), int(hi), floats=True)
        except ValueError as exc:
            problems.append(str(exc))
    if "preset" in values:  # a preset fills in the target the link leaves out, as choosing it on the page does
        values.setdefault("target", PRESETS[values["preset"]].target)
    return values, problems
