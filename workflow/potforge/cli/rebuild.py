"""`potforge rebuild`: retrain a finished campaign's committees from its record and compare."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the rebuild subcommand."""
    p = subparsers.add_parser(
        "rebuild", help="retrain a finished campaign from its record; compare with the recorded"
    )
    p.add_argument("campaign_dir", help="results/<campaign> (a finished campaign)")
    p.add_argument("--out", help="where the rebuilt members go (default: <campaign_dir>/rebuild)")
    p.set_defaults(func=run_rebuild)


def run_rebuild(args: argparse.Namespace) -> int:
    """Rebuild; exit 0 when every member came out bitwise equal, 1 otherwise."""
    from potforge.rebuild import rebuild_campaign

    report = rebuild_campaign(args.campaign_dir, args.out)
    return 0 if report["bitwise_equal"] else 1
