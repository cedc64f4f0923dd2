"""Command-line flags generated from config dataclasses, and back.

A config dataclass is the one description of a run: each field's name, type, default and, in its
metadata, its help text (and allowed choices). From it come

- `add_config_flags`: one `--field-name` per field, so a new field is a new flag with no second
  list to keep in step;
- `config_from_args`: the flags a user gave, over a base config (a run being resumed) or the
  defaults;
- `config_to_flags`: the flags that rebuild a config, for "reproduce this run" lines in sidecars
  and logs;
- `config_from_dict`: a config from a JSON object, refusing unknown keys (a typo such as
  "lr_mn" would otherwise silently train with the default).

    @dataclass
    class Config:
        lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
        target: str = field(default="normal", metadata={"help": "...", "choices": ("normal", "mixture")})
        data: list[str] = field(default_factory=list, metadata={"help": "image folders", "metavar": "DIR"})
        batch_norm: bool = True          # no metadata: still a flag (--batch-norm / --no-batch-norm)
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import shlex
import types
import typing
from typing import Any, Iterable, TypeVar

C = TypeVar("C")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(f: dataclasses.Field) -> Any:
    """The field's default value, or dataclasses.MISSING when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _kind(annotation: Any) -> tuple[type, bool]:
    """(scalar type, is a list) from an annotation: int, float, str, bool, list[X]; `X | None` is X."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"cannot make a flag for a field of type {annotation}")
        return _kind(rest[0])
    if origin in (list, tuple) and args:
        return args[0], True
    if annotation in (int, float, str, bool):
        return annotation, False
    raise TypeError(f"cannot make a flag for a field of type {annotation}")


def add_config_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                     exclude: Iterable[str] = ()) -> None:
    """Add one `--field-name` flag per field of the dataclass `cls` (except those in `exclude`).

    bool fields get --name / --no-name, list fields take one or more values, others are typed from
    the annotation. A flag that is not given leaves no attribute on the namespace (its default is
    argparse.SUPPRESS), so `config_from_args` can tell "not given" from "given the default value";
    the default is written into the help instead.
    """
    hints = typing.get_type_hints(cls)
    skip = set(exclude)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        scalar, many = _kind(hints[f.name])
        default = _default(f)
        help_text = str(f.metadata.get("help", ""))
        if default is not dataclasses.MISSING and default not in ("", []):
            shown = " ".join(map(str, default)) if many else default
            help_text = f"{help_text} (default: {shown})".strip()
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        if "choices" in f.metadata:
            kwargs["choices"] = tuple(f.metadata["choices"])
        if "metavar" in f.metadata:
            kwargs["metavar"] = f.metadata["metavar"]
        if scalar is bool and not many:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        elif many:
            parser.add_argument(_flag(f.name), type=scalar, nargs="+", **kwargs)
        else:
            parser.add_argument(_flag(f.name), type=scalar, **kwargs)


def config_from_args(cls: type[C], args: argparse.Namespace, base: C | None = None) -> C:
    """A `cls` from the flags given on the command line, over `base` (or over the defaults).

    The dataclass's own checks (`__post_init__`) run on the result, so a bad value is refused with
    the config's message, naming the field.
    """
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)}
    if base is not None:
        return dataclasses.replace(base, **given)
    return cls(**given)


def config_to_flags(cfg: object) -> str:
    """The flags, shell-quoted, that rebuild `cfg` from the defaults (fields at their default are
    left out): `python -m srgan_core toygan ` + this reproduces a run."""
    parts: list[str] = []
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        if value == _default(f):
            continue
        flag = _flag(f.name)
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)]
        elif str(value).startswith("-"):  # "-inf", "--x": argparse would read them as flags
            parts.append(f"{flag}={value}")
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def config_from_dict(cls: type[C], d: object) -> C:
    """A `cls` from a JSON object (a config file, a sidecar's "config"). Unknown keys are refused
    with a ValueError naming them (and the nearest known name), so a typo never passes silently
    as the default; missing keys take their defaults."""
    if not isinstance(d, dict):
        raise ValueError(f"a {cls.__name__} must be a JSON object of settings, got {type(d).__name__}")
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(d) - set(known), key=str)
    if unknown:
        described = []
        for key in unknown:
            near = difflib.get_close_matches(str(key), known, n=1)
            described.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise ValueError(f"unknown {cls.__name__} key{'s' * (len(unknown) > 1)}: {', '.join(described)}")
    return cls(**d)
