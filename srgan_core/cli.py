"""`python -m srgan_core ...`: the command-line shell over the library.

Every command prints a one-line error and exits non-zero on bad input; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import sys


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# ---------------------------------------------------------------- toy GAN and anomaly commands
# (section owned by the toy-GAN work: parsers and handlers for `toygan` and `anomaly`)


def add_toygan_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toygan", help="train the 1-D toy GAN (placeholder)")
    p.set_defaults(func=lambda args: print("not implemented yet") or 1)
    p = sub.add_parser("anomaly", help="KS drift check with the toy generator (placeholder)")
    p.set_defaults(func=lambda args: print("not implemented yet") or 1)


# ---------------------------------------------------------------- end of toy GAN section


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srgan_core",
        description="SRGAN super-resolution and a toy 1-D GAN. Run a command with --help for its options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_toygan_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
