"""Checks for numbers that come from people: config files, CLI flags, form fields, API calls.

One place, so the library, the app and the benchmarks refuse the same values with the same words.
Every check returns the value as a plain Python number when it is fine, and otherwise raises a
ValueError whose message starts with the field's name and says what is allowed, e.g.
"lr must be greater than 0, got -0.001". Callers turn that into one line (the CLI's `error:`, the
app's gr.Error); nobody needs to parse it.

Why so strict: NaN passes every `<` and `>` test as False, so a NaN learning rate or sample size
slips through range checks written the obvious way and trains or tests quietly into garbage; a
bool is an int to Python, so `epochs=True` would run one epoch; a float epoch count breaks
`range()` far from where it came in. Each check names the field, so a form with ten fields does
not leave the user guessing which one was wrong.
"""
from __future__ import annotations

import argparse
import math
from numbers import Integral, Real
from typing import Callable

import numpy as np


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def real(name: str, value: object) -> float:
    """A finite real number (not NaN, not infinite, not a bool or a string)."""
    if not _is_real(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return float(value)


def positive(name: str, value: object) -> float:
    """A finite real number greater than 0 (a learning rate, a standard deviation, a scale)."""
    if real(name, value) <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value}")
    return float(value)


def interval(name: str, value: object, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
             what: str = "") -> float:
    """A finite real number in the interval [lo, hi], with either end open when asked: "[0, 1)".

    `what` is an optional plain-words gloss printed after the name, e.g. "(the significance level)".
    """
    x = real(name, value)
    if (x < lo or (lo_open and x == lo)) or (x > hi or (hi_open and x == hi)):
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        label = f"{name} ({what})" if what else name
        raise ValueError(f"{label} must be in {span}, got {value}")
    return x


def _whole_problem(value: object, lo: int, hi: int | None, floats: bool) -> str | None:
    """What is wrong with `value` as a whole number in [lo, hi] (hi None: no upper end), or None."""
    if floats and _is_real(value) and math.isfinite(value) and value == int(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, Integral):
        return f"must be a whole number, got {value!r}"
    if hi is None:
        return None if value >= lo else f"must be a whole number, {lo:,} or more, got {int(value):,}"
    return None if lo <= value <= hi else f"must be between {lo:,} and {hi:,}, got {int(value):,}"


def whole(name: str, value: object, lo: int, hi: int | None = None, *, floats: bool = False) -> int:
    """A whole number in [lo, hi] (or lo or more, when hi is None), as a Python int.

    `floats=True` also takes a float with a whole value (2.0): form widgets and JSON send numbers as
    floats. Otherwise only integers pass, so 2.5, NaN and True are refused, not truncated.
    """
    problem = _whole_problem(value, lo, hi, floats)
    if problem:
        raise ValueError(f"{name} {problem}")
    return int(value)  # type: ignore[arg-type]


def seed(name: str, value: object) -> int:
    """A random seed: a whole number, 0 or more (what numpy's SeedSequence takes)."""
    return whole(name, value, 0)


def finite_values(name: str, values: object) -> np.ndarray:
    """An array of finite numbers (float64), for samples handed in as data rather than drawn."""
    try:
        array = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def whole_arg(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse `type` for a whole number in [lo, hi]: a 0 or negative count is one usage line
    at once ("argument --rounds: must be a whole number, 1 or more, got 0"), not a traceback later.
    argparse prefixes the flag's name, so the message leaves it out."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        problem = _whole_problem(value, lo, hi, floats=False)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def positive_arg(text: str) -> float:
    """An argparse `type` for a finite number greater than 0 (a time budget, a rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
    return value
