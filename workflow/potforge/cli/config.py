"""`potforge check-config`: validate a campaign file and print the resolved configuration."""

from __future__ import annotations

import argparse

import yaml

from potforge.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the check-config subcommand."""
    p = subparsers.add_parser("check-config", help="validate a campaign configuration")
    p.add_argument("config", help="YAML campaign file")
    p.add_argument("--print", action="store_true", help="print the configuration with defaults")
    p.set_defaults(func=run)

    p = subparsers.add_parser("config-reference", help="print the configuration reference")
    p.set_defaults(func=run_reference)


def run(args: argparse.Namespace) -> int:
    """Validate the file; print it resolved when asked."""
    config = load_config(args.config)
    if args.print:
        print(yaml.safe_dump(config, sort_keys=False))
    else:
        print(f"{args.config}: valid (campaign '{config['campaign']}')")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    """Print config/README.md as generated from the schema."""
    from potforge.config import config_readme

    print(config_readme(), end="")
    return 0
