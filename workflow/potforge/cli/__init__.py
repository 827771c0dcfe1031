"""The `potforge` command line: one subcommand per stage, each in its own module here.

A module of this package that defines `register(subparsers)` adds its subcommands; each
subcommand sets `func(args) -> int`. Errors of potforge's own families print one line.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from potforge.errors import PotforgeError


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every stage's subcommands registered."""
    parser = argparse.ArgumentParser(prog="potforge", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue  # __main__ runs the CLI on import
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PotforgeError as exc:
        print(f"potforge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
