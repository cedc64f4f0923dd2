"""srgan_core.checks: every number that comes from people is refused with its field's name."""
import argparse
import math

import numpy as np
import pytest

from srgan_core import checks


@pytest.mark.parametrize("value, words", [
    (float("nan"), "lr must be a finite number, got nan"),
    (float("inf"), "lr must be a finite number, got inf"),
    ("0.1", "lr must be a number, got '0.1'"),
    (None, "lr must be a number, got None"),
    (True, "lr must be a number, got True"),
])
def test_real_refuses_what_is_not_a_finite_number(value, words):
    with pytest.raises(ValueError, match=f"^{words}$"):
        checks.real("lr", value)


def test_real_and_positive_return_plain_floats():
    assert checks.real("mu", np.float32(-2.5)) == -2.5 and type(checks.real("mu", np.int64(3))) is float
    assert checks.positive("sigma", 2) == 2.0
    for bad in (0, -1e-9, 0.0):
        with pytest.raises(ValueError, match="^sigma must be greater than 0, got"):
            checks.positive("sigma", bad)
    with pytest.raises(ValueError, match="^sigma must be a finite number"):
        checks.positive("sigma", float("nan"))


def test_interval_ends_open_or_closed():
    assert checks.interval("p", 0, 0, 1) == 0.0 and checks.interval("p", 1, 0, 1) == 1.0
    with pytest.raises(ValueError, match=r"^beta1 must be in \[0, 1\), got 1$"):
        checks.interval("beta1", 1, 0, 1, hi_open=True)
    with pytest.raises(ValueError, match=r"^alpha \(the significance level\) must be in \(0, 1\), got 0$"):
        checks.interval("alpha", 0, 0, 1, lo_open=True, hi_open=True, what="the significance level")
    with pytest.raises(ValueError, match=r"^w must be in \[0, 1\], got -0.5$"):
        checks.interval("w", -0.5, 0, 1)
    with pytest.raises(ValueError, match="^w must be a finite number"):
        checks.interval("w", float("nan"), 0, 1)


@pytest.mark.parametrize("value, words", [
    (2.5, "epochs must be a whole number, got 2.5"),
    (float("nan"), "epochs must be a whole number, got nan"),
    (True, "epochs must be a whole number, got True"),
    ("10", "epochs must be a whole number, got '10'"),
    (0, "epochs must be between 1 and 1,000, got 0"),
    (10**12, "epochs must be between 1 and 1,000, got 1,000,000,000,000"),
])
def test_whole_refuses_fractions_nan_bools_and_out_of_range(value, words):
    with pytest.raises(ValueError, match=f"^{words}$"):
        checks.whole("epochs", value, 1, 1000)


def test_whole_takes_whole_floats_only_when_asked():
    assert checks.whole("n", np.int64(7), 1, 10) == 7 and type(checks.whole("n", np.int64(7), 1, 10)) is int
    with pytest.raises(ValueError, match="^n must be a whole number, got 3.0$"):
        checks.whole("n", 3.0, 1, 10)
    assert checks.whole("n", 3.0, 1, 10, floats=True) == 3  # what a form widget sends
    with pytest.raises(ValueError, match="^n must be a whole number, got 3.5$"):
        checks.whole("n", 3.5, 1, 10, floats=True)
    with pytest.raises(ValueError, match="^n must be a whole number, got inf$"):
        checks.whole("n", math.inf, 1, 10, floats=True)


def test_whole_without_upper_end_and_seed():
    assert checks.whole("k", 10**30, 0) == 10**30
    with pytest.raises(ValueError, match="^seed must be a whole number, 0 or more, got -1$"):
        checks.seed("seed", -1)
    assert checks.seed("seed", 0) == 0


def test_finite_values():
    np.testing.assert_array_equal(checks.finite_values("x", [1, 2]), [1.0, 2.0])
    with pytest.raises(ValueError, match="^the source values contain NaN or infinite values$"):
        checks.finite_values("the source values", [0.5, float("nan")])
    with pytest.raises(ValueError, match="^x must be numbers$"):
        checks.finite_values("x", ["a", "b"])


def test_argparse_types_give_one_usage_line(capsys):
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("--rounds", type=checks.whole_arg(1))
    p.add_argument("--budget", type=checks.positive_arg)
    assert p.parse_args(["--rounds", "3", "--budget", "2.5"]).budget == 2.5
    for args, words in ((["--rounds", "0"], "argument --rounds: must be a whole number, 1 or more, got 0"),
                        (["--rounds", "x"], "argument --rounds: 'x' is not a whole number"),
                        (["--budget", "nan"], "argument --budget: must be a finite number greater than 0, got nan"),
                        (["--budget", "-1"], "argument --budget: must be a finite number greater than 0, got -1")):
        with pytest.raises(SystemExit):
            p.parse_args(args)
        assert words in capsys.readouterr().err
