"""srgan_core.flags: CLI flags generated from config dataclasses, and the way back."""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field

import pytest

from srgan_core.flags import add_config_flags, config_from_args, config_from_dict, config_to_flags


@dataclass
class Demo:
    lr: float = field(default=1e-3, metadata={"help": "learning rate (100% of it)"})
    target: str = field(default="normal", metadata={"help": "what to learn", "choices": ("normal", "mixture")})
    data: list[str] = field(default_factory=list, metadata={"help": "folders", "metavar": "DIR"})
    epochs: int = 10
    batch_norm: bool = True
    skip: bool = False
    name: str = ""
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be greater than 0, got {self.lr}")


def parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo")
    add_config_flags(p, Demo, **kw)
    return p


def test_one_typed_flag_per_field_and_not_given_stays_absent():
    args = parser().parse_args(["--lr", "0.5", "--epochs", "3", "--data", "a b", "c", "--no-batch-norm", "--skip"])
    assert args.lr == 0.5 and args.epochs == 3 and args.data == ["a b", "c"]
    assert args.batch_norm is False and args.skip is True
    empty = parser().parse_args([])
    assert vars(empty) == {}  # "not given" is distinguishable from "given the default"
    assert parser().parse_args(["--limit", "4"]).limit == 4  # `int | None` is an int flag


def test_help_choices_and_exclude(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--target", "cauchy"])
    assert "invalid choice: 'cauchy'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["--epochs", "2.5"])
    assert "invalid int value" in capsys.readouterr().err
    text = parser().format_help()
    assert "learning rate (100% of it) (default: 0.001)" in text and "--data DIR [DIR ...]" in text
    assert "--batch-norm, --no-batch-norm" in text and "(default: 10)" in text
    assert "--epochs" not in parser(exclude=("epochs",)).format_help()


def test_config_from_args_over_defaults_or_a_base():
    assert config_from_args(Demo, parser().parse_args([])) == Demo()
    got = config_from_args(Demo, parser().parse_args(["--epochs", "7"]), base=Demo(lr=0.2, name="run"))
    assert got == Demo(lr=0.2, name="run", epochs=7)
    with pytest.raises(ValueError, match="lr must be greater than 0"):  # the config's own checks run
        config_from_args(Demo, parser().parse_args(["--lr", "-1"]))


@pytest.mark.parametrize("cfg", [
    Demo(),
    Demo(lr=0.1 + 0.2, target="mixture", data=["my data", "x"], epochs=3, batch_norm=False, skip=True, name="a'b"),
    Demo(limit=-5, name="--weird", lr=float("inf")),
])
def test_config_to_flags_rebuilds_the_config(cfg):
    flags = config_to_flags(cfg)
    assert config_from_args(Demo, parser().parse_args(shlex.split(flags))) == cfg


def test_config_to_flags_leaves_defaults_out():
    assert config_to_flags(Demo()) == ""
    assert config_to_flags(Demo(epochs=3, batch_norm=False, data=["a", "b c"])) == "--data a 'b c' --epochs 3 --no-batch-norm"


def test_config_from_dict_refuses_unknown_keys_by_name():
    assert config_from_dict(Demo, {"lr": 0.5, "data": ["x"]}) == Demo(lr=0.5, data=["x"])
    with pytest.raises(ValueError, match=r"^unknown Demo key: 'epoch' \(did you mean 'epochs'\?\)$"):
        config_from_dict(Demo, {"epoch": 3})
    with pytest.raises(ValueError, match=r"^unknown Demo keys: 'colour', 'zzz'$"):
        config_from_dict(Demo, {"zzz": 1, "colour": "red", "lr": 0.5})
    with pytest.raises(ValueError, match="must be a JSON object"):
        config_from_dict(Demo, [1, 2])


def test_the_real_configs_get_a_flag_for_every_field():
    from dataclasses import fields

    from srgan_core.toygan import ToyGANConfig
    from srgan_core.train import TrainConfig

    for cls in (ToyGANConfig, TrainConfig):
        p = argparse.ArgumentParser()
        add_config_flags(p, cls)
        flags = {a.dest for a in p._actions if a.option_strings and a.dest != "help"}
        assert flags == {f.name for f in fields(cls)}, cls
        assert config_from_args(cls, p.parse_args([])) == cls()
