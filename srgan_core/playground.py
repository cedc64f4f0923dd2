"""The toy GAN and the drift check as the web page shows them: what to store, what to say.

The app's Toy GAN and Anomaly tabs call these and only turn the results into widgets. Kept apart
from toygan.py and anomaly.py, which know nothing of pages: here are the status lines, the
verdict, the plain-words reading of the false-alarm rate, the Stop that really stops, and the
step mode's events (a preset, a shared link, one step) with the page scripts that keep its
settings in the address. Form fields arrive as the page sends them and are checked here.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from typing import Iterator, Mapping

import numpy as np

from srgan_core import anomaly, checks, figures, toygan, toygan_engine, toygan_steps

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


class ToyTrainings:
    """The Toy GAN tab's Train, Stop and plots for every visitor: a training streams into the
    visitor's session ({token, toy}), and the token finds its Stop. Limits are the page's own.
    Made with the page, it has the engine compiled in the background meanwhile (seconds on a fresh
    install, then read from numba's cache), so the first Train does not wait for it."""

    def __init__(self, max_epochs: int, max_hidden: int, updates_per_s: float = 4.0) -> None:
        self.max_epochs, self.max_hidden, self.updates_per_s = max_epochs, max_hidden, updates_per_s
        self.stops = StopSwitches()
        toygan_engine.warm_up_in_background()

    def train(self, target: str, epochs: object, lr: object, hidden: object, seed: object,
              session: dict | None = None) -> Iterator[tuple[dict, dict]]:
        """Train the 1-D GAN, streaming {epoch, epochs, d_loss, g_loss, ks_statistic, target, done}
        a few times a second, with the session to keep; the page draws the session's latest
        snapshot on a timer (`view`)."""
        config = toy_config(target, epochs, lr, hidden, seed, self.max_epochs, self.max_hidden)
        token, stop = self.stops.new()
        for status, toy in train_stream(config, stop, self.updates_per_s):
            yield status, {"token": token, "toy": toy}

    def stop(self, session: dict | None) -> None:
        self.stops.press((session or {}).get("token"))

    def view(self, session: dict | None) -> tuple[dict | None, dict | None, str]:
        """(distribution figure, curves figure, status line) of the session's latest snapshot."""
        toy, token = (session or {}).get("toy"), (session or {}).get("token")
        if toy is None:
            return None, None, "Press **Train** to start."
        return (figures.toy_distribution(toy["snapshot"], toy["config"]),
                figures.toy_curves(toy["history"], toy["config"].epochs), status_line(toy, self.stops.pressed(token)))


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


def noise_fields(source: str) -> tuple[bool, bool, bool]:
    """Which of the noise's numbers (a, b, fraction) mean something for `source`: the page shows those."""
    return source in ("beta", "drift"), source in ("beta", "drift"), source == "drift"


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


# ---------------------------------------------------------------- the step mode on a page

TARGETS_HELP = " · ".join(f"{t}: {toygan.describe_target(toygan.ToyGANConfig(target=t))}" for t in toygan.TARGETS)

# the script that writes the toy settings into the page's address whenever one changes
TOY_LINK_JS = """(...values) => {
    const url = new URL(window.location.href);
    %s.forEach((key, i) => url.searchParams.set(key, values[i]));
    window.history.replaceState(window.history.state, "", url);
}""" % json.dumps(list(toygan_steps.LINK_KEYS))
TOY_LINK_TAB_JS = """() => {  // a link with toy settings opens on the Toy GAN tab
    const query = new URLSearchParams(window.location.search);
    if (!%s.some(key => query.has(key))) return;
    const tab = [...document.querySelectorAll("[role=tab]")].find(t => t.textContent.trim() === "Toy GAN");
    if (tab) tab.click();
}""" % json.dumps(list(toygan_steps.LINK_KEYS))


def preset_caption(preset: toygan_steps.Preset) -> str:
    return f"**{preset.label}.** {preset.what} Press **Step D**."


def choose_preset(name: str, hidden: object = None) -> tuple[str, object, str]:
    """(target, hidden units, caption) for a preset picked on the page: the target to fill in, the
    bundled generator's width when G starts from it (else the page's `hidden` as it is), and what
    to watch for. An unknown name is the first preset, as the menu cannot send one."""
    preset = toygan_steps.PRESETS.get(name) or toygan_steps.PRESETS["normal"]
    if preset.from_trained:
        hidden = toygan.load_toy_generator(None).config.hidden
    return preset.target, hidden, preset_caption(preset)


def link_settings(query: Mapping[str, str], limits: Mapping[str, tuple[float, float]]) -> tuple[dict, str | None]:
    """A shared link's settings (toygan_steps.settings_from_link) and the caption it sets: the
    preset's, then one line per value left out ("Setting in the link ignored: ..."); None when the
    link says nothing, so the page's caption stays."""
    values, problems = toygan_steps.settings_from_link(query, limits)
    preset = toygan_steps.PRESETS.get(values.get("preset", ""))
    lines = [preset_caption(preset)] if preset else []
    lines += [f"Setting in the link ignored: {problem}" for problem in problems]
    return values, "\n\n".join(lines) if lines else None


class StepMode:
    """The step mode's events, each taking the page's fields in the page's order (preset, target, lr,
    hidden, seed, speed, stepper) and returning (distribution figure, curves figure, caption,
    numbers, stepper): the visitor's stepper goes on if no setting changed, else starts again."""

    def __init__(self, max_hidden: int) -> None:
        self.max_hidden = max_hidden

    def step_d(self, preset: str, target: str, lr: object, hidden: object, seed: object, speed: object,
               stepper: toygan_steps.Stepper | None) -> tuple[dict, dict, str, dict, toygan_steps.Stepper]:
        """One D update. Returns the distribution and curves figures, the caption, {preset, target,
        d_steps, g_steps, epoch, d_real, d_fake, ks_statistic, d_loss, g_loss, caption}, the stepper."""
        return self.step("d", preset, target, lr, hidden, seed, speed, stepper)

    def step_g(self, preset: str, target: str, lr: object, hidden: object, seed: object, speed: object,
               stepper: toygan_steps.Stepper | None) -> tuple[dict, dict, str, dict, toygan_steps.Stepper]:
        """One G update; returns what `step_d` returns."""
        return self.step("g", preset, target, lr, hidden, seed, speed, stepper)

    def step_run(self, preset: str, target: str, lr: object, hidden: object, seed: object, speed: object,
                 stepper: toygan_steps.Stepper | None) -> tuple[dict, dict, str, dict, toygan_steps.Stepper]:
        """`speed` whole epochs (one Play frame); returns what `step_d` returns."""
        return self.step("run", preset, target, lr, hidden, seed, speed, stepper)

    def step(self, action: str, preset: str, target: str, lr: object, hidden: object, seed: object, speed: object,
             stepper: toygan_steps.Stepper | None) -> tuple[dict, dict, str, dict, toygan_steps.Stepper]:
        """"d" one D update, "g" one G update, "run" `speed` whole epochs, each field checked."""
        stepper = toygan_steps.stepper_for(stepper, preset, target=target, lr=checks.real("lr", lr),
                                           hidden=checks.whole("hidden units", hidden, 1, self.max_hidden, floats=True),
                                           seed=checks.whole("seed", seed, 0, 2**32 - 1, floats=True))
        if action == "d":
            stepper.step_d()
        elif action == "g":
            stepper.step_g()
        elif action == "run":
            stepper.run(checks.whole("speed", speed, 1, toygan_steps.SPEEDS[-1], floats=True))
        else:
            raise ValueError(f"action must be d, g or run, got {action!r}")
        return (figures.toy_distribution(stepper.frame(), stepper.config, stepper.title()),
                figures.toy_curves(stepper.history, max(1, stepper.history["epoch"][-1])), stepper.caption,
                stepper.status(), stepper)


# ---------------------------------------------------------------- the Anomaly tab from form fields


class DriftChecks:
    """The Anomaly tab's two buttons, each taking the page's fields in the page's order and the
    visitor's session (its trained generator, else the bundled one: `toy_generator`)."""

    def __init__(self, max_n: int, curve_sizes: list[int], curve_trials: int) -> None:
        self.max_n, self.curve_sizes, self.curve_trials = max_n, curve_sizes, curve_trials

    def ks(self, source: str, a: object, b: object, fraction: object, n: object, seed: object,
           session: dict | None) -> KSReport:
        """`ks_report` of n draws of the chosen noise."""
        n, seed = checks.whole("n", n, 2, self.max_n, floats=True), checks.whole("seed", seed, 0, 2**32 - 1, floats=True)
        generator, which = toy_generator((session or {}).get("toy"))
        return ks_report(generator, noise(source, a, b, fraction), n, seed, which)

    def curve(self, source: str, a: object, b: object, fraction: object, seed: object,
              session: dict | None) -> tuple[dict, str, dict]:
        """How often the check fires as n grows over `curve_sizes`, on uniform input (false alarms)
        and on the chosen input (power): a figure, a plain-words note on the false alarms, and
        {sizes, trials, alpha, false_alarm, power, source, generator}."""
        seed = checks.whole("seed", seed, 0, 2**32 - 1, floats=True)
        generator, which = toy_generator((session or {}).get("toy"))
        return detection_report(generator, noise(source, a, b, fraction), self.curve_sizes, self.curve_trials, seed,
                                which)
