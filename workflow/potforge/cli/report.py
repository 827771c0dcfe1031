"""Subcommand `report`: render a campaign folder as one self-contained HTML page."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the report subcommand."""
    p = subparsers.add_parser("report", help="write the campaign's HTML report (any stage)")
    p.add_argument("campaign_dir", help="results/<campaign>")
    p.add_argument("--out", help="output HTML (default <campaign_dir>/report.html)")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Render the report of a finished or unfinished campaign."""
    from potforge.report import write_report

    out = write_report(args.campaign_dir, args.out)
    print(f"[report] {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0
