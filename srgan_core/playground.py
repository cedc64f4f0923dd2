"""The toy GAN and the drift check as the web page shows them: what to store, what to say.

The app's Toy GAN and Anomaly tabs call these and only turn the results into widgets. Kept apart
from toygan.py and anomaly.py, which know nothing of pages: here are the status lines, the
verdict, the plain-words reading of the false-alarm rate, and the Stop that really stops.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from typing import Iterator

import numpy as np

from srgan_core import anomaly, checks, figures, toygan

TOY_HELP = """A GAN is two small networks playing a game. The **generator** turns random noise into numbers; the
**discriminator** sees the real data and the generated numbers and learns to tell them apart: its curve D(x) (green,
dashed) is the probability it gives x of being real. Each epoch D takes one step at telling them apart, then the
generator one step at fooling D. When the red histogram covers the blue one, D(x) flattens towards ½ and the KS
distance, the largest gap between the two distributions, drops. **Stop** keeps the generator for the Anomaly tab."""
KS_HELP = """The toy generator turns U(0, 1) noise into numbers that follow its target (N(0, 1) for the bundled one).
Feed it other noise and its outputs drift. The Kolmogorov-Smirnov test measures the largest gap between the outputs'
distribution and the target (the **KS statistic**); the **p-value** is how often a gap that large would happen by
chance if the input were still U(0, 1). Below α = 0.05 the batch is **flagged**. The detection curve shows how often
the check fires as n grows, on clean input (false alarms) and on the chosen input (power)."""


class StopSwitches:
    """Stop buttons for trainings, by token: the token goes into a visitor's session, so a Stop
    reaches the training that session started, whatever copies the web framework makes of the
    session. At most `keep` are remembered (the oldest are forgotten)."""

    def __init__(self, keep: int = 10_000) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.keep = keep

    def new(self) -> tuple[str, threading.Event]:
        token, event = uuid.uuid4().hex, threading.Event()
        with self._lock:
            self._events[token] = event
            while len(self._events) > self.keep:
                self._events.pop(next(iter(self._events)))
        return token, event

    def press(self, token: str | None) -> None:
        with self._lock:
            event = self._events.get(token or "")
        if event is not None:
            event.set()

    def pressed(self, token: str | None) -> bool:
        with self._lock:
            event = self._events.get(token or "")
        return event is not None and event.is_set()


def toy_config(target: str, epochs: object, lr: object, hidden: object, seed: object, max_epochs: int,
               max_hidden: int) -> toygan.ToyGANConfig:
    """A toy-GAN config from form fields, each checked and named if wrong (forms send floats)."""
    return toygan.ToyGANConfig(target=target, epochs=checks.whole("epochs", epochs, 1, max_epochs, floats=True),
                               lr=checks.real("lr", lr), hidden=checks.whole("hidden units", hidden, 1, max_hidden, floats=True),
                               seed=checks.whole("seed", seed, 0, 2**32 - 1, floats=True))


def train_stream(config: toygan.ToyGANConfig, stop: threading.Event, updates_per_s: float = 4.0,
                 snapshots: int = 400) -> Iterator[tuple[dict, dict]]:
    """Train, yielding (status, toy) at most `updates_per_s` times a second and at the end.

    status: {epoch, epochs, d_loss, g_loss, ks_statistic, target, done}, for API clients.
    toy: {generator, epoch, snapshot, config, history}, what `status_line` and the plots read;
    the toy of the latest snapshot is also what a Stop keeps. Once `stop` is set nothing more is
    yielded, so the numbers on the page stay as they were when Stop was pressed."""
    history: dict[str, list] = {"epoch": [], "d_loss": [], "g_loss": [], "ks": []}
    last_yield = 0.0
    for snap in toygan.train(config, snapshot_every=max(1, config.epochs // snapshots)):
        if stop.is_set():
            return
        for key, value in zip(history, (snap.epoch, snap.d_loss, snap.g_loss, snap.ks_statistic)):
            history[key].append(value)
        done = snap.epoch >= config.epochs
        if done or time.monotonic() - last_yield >= 1 / updates_per_s:
            last_yield = time.monotonic()
            lite = dataclasses.replace(snap, d_losses=np.empty(0), g_losses=np.empty(0))  # plots use `history`
            toy = {"generator": snap.generator, "epoch": snap.epoch, "snapshot": lite, "config": config,
                   "history": {k: list(v) for k, v in history.items()}}
            yield {"epoch": snap.epoch, "epochs": config.epochs, "d_loss": round(snap.d_loss, 4),
                   "g_loss": round(snap.g_loss, 4), "ks_statistic": round(snap.ks_statistic, 4),
                   "target": toygan.describe_target(config), "done": done}, toy


def toy_generator(toy: dict | None) -> tuple[toygan.ToyGenerator, str]:
    """The generator a session trained (its `toy` record) if any, else the bundled default, and
    how to name it on the page."""
    if toy is not None:
        return toy["generator"], f"trained in this session (epoch {toy['epoch']:,}, target {toy['generator'].target})"
    try:
        return toygan.load_toy_generator(None), "bundled default"
    except (ValueError, OSError) as exc:
        raise ValueError(f"No toy generator yet: train one in the Toy GAN tab first. ({exc})") from None


def noise(source: str, a: object, b: object, fraction: object) -> anomaly.NoiseSpec:
    """The noise a form asks for, each number checked and named if it is not one."""
    return anomaly.NoiseSpec(kind=source, a=checks.real("a", a), b=checks.real("b", b),
                             fraction=checks.real("fraction", fraction))


def status_line(toy: dict, stopped: bool) -> str:
    snap = toy["snapshot"]
    state = ("stopped; this generator is kept for the Anomaly tab" if stopped
             else "done" if snap.epoch >= snap.epochs else "training…")
    return (f"**Epoch {snap.epoch:,} / {snap.epochs:,}** ({state}) · D loss {snap.d_loss:.3f} · "
            f"G loss {snap.g_loss:.3f} · KS distance {snap.ks_statistic:.3f}")


@dataclasses.dataclass
class KSReport:
    """A KS check for the page: three figures, a verdict line, and the numbers for API clients."""

    inputs: dict
    outputs: dict
    qq: dict
    line: str
    flagged: bool
    result: dict


def ks_report(generator: toygan.ToyGenerator, spec: anomaly.NoiseSpec, n: int, seed: int, which: str) -> KSReport:
    """n draws of `spec` through `generator`, KS-tested against its target; `which` names the
    generator in the verdict."""
    r = anomaly.ks_check(generator, spec, n=n, seed=seed)
    result = {"statistic": round(r.statistic, 4), "p_value": r.p_value, "alpha": r.alpha, "flagged": r.flagged,
              "verdict": r.verdict, "n": r.n, "source": r.source, "target": r.target, "generator": which}
    line = (f"### {'⚠ Flagged: the input has drifted' if r.flagged else '✓ Passes: no drift detected'}\n"
            f"KS statistic **{r.statistic:.3f}**, p-value **{r.p_value:.3g}** (α = {r.alpha:g}), n = {r.n}, "
            f"input {r.source}, generator: {which}.")
    hist, qq = figures.ks_outputs(r, generator.target_cdf)
    return KSReport(figures.ks_inputs(r), hist, qq, line, r.flagged, result)


def false_alarm_note(null: anomaly.DetectionCurve) -> str:
    """What the false-alarm curve says, in plain words, for the largest n measured."""
    n, rate, alpha = null.sizes[-1], null.flag_rate[-1], null.alpha
    text = (f"**False alarms:** on clean U(0, 1) input, a perfect generator would be flagged about {alpha:.0%} of the "
            f"time at every n (that is what α = {alpha:g} means). This one is flagged {rate:.0%} of the time at "
            f"n = {n:,}.")
    if rate > 2 * alpha + 0.05:
        text += (" That is not drift in the input: the generator's outputs are close to its target but not exactly "
                 "it, and with thousands of values the test sees that small difference. A detector like this "
                 "needs a generator that matches its target very well, or smaller batches.")
    return text


def detection_report(generator: toygan.ToyGenerator, spec: anomaly.NoiseSpec, sizes: list[int], trials: int,
                     seed: int, which: str) -> tuple[dict, str, dict]:
    """(figure, false-alarm note, data) of how often the check fires as n grows, on clean
    uniform input (false alarms) and on `spec` (power)."""
    power = anomaly.detection_curve(generator, spec, sizes=sizes, trials=trials, seed=seed)
    null = anomaly.detection_curve(generator, anomaly.NoiseSpec("uniform"), sizes=sizes, trials=trials, seed=seed)
    data = {"sizes": power.sizes, "trials": power.trials, "alpha": power.alpha, "false_alarm": null.flag_rate,
            "power": power.flag_rate, "source": power.source, "generator": which}
    return figures.detection(power, null), false_alarm_note(null), data
