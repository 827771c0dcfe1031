"""Subcommand `compare`: several campaigns' learning curves on one shared test set."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the compare subcommand."""
    p = subparsers.add_parser(
        "compare", help="learning curves of campaigns on the union of their test sets"
    )
    p.add_argument("campaigns", nargs="+", help="results/<campaign> folders (arms)")
    p.add_argument("--names", nargs="*", help="arm names (default: the folder names)")
    p.add_argument(
        "--baseline", help="arm to measure the others against (e.g. the random one): DFT ratios"
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder: compare.json, learning_curves.png, compare.html",
    )
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Measure every arm's iterations on the shared test set; write JSON and the plot."""
    from potforge.compare import (
        arm_curve,
        efficiency_against,
        learning_curve_png,
        shared_test_set,
    )
    from potforge.errors import ValidationError
    from potforge.io import write_json
    from potforge.report.compare_page import write_comparison

    names = args.names or [Path(c).name for c in args.campaigns]
    if len(names) != len(args.campaigns):
        raise ValidationError("compare: give one --names entry per campaign")
    if args.baseline is not None and args.baseline not in names:
        raise ValidationError(f"compare: --baseline {args.baseline!r} is not one of {names}")
    frames = shared_test_set(args.campaigns)
    if not frames:
        raise ValidationError(
            "compare: no labelled test-set frames in any campaign (validation/labels/); "
            "run the campaigns' validation stage first"
        )
    arms = {n: arm_curve(c, frames) for n, c in zip(names, args.campaigns, strict=True)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"test_frames": len(frames), "arms": arms, "baseline": args.baseline}
    if args.baseline is not None:
        data["efficiency"] = efficiency_against(arms, args.baseline)
    png = learning_curve_png(arms)
    write_json(out / "compare.json", data)
    (out / "learning_curves.png").write_bytes(png)
    page = write_comparison(out, data, png)
    for name, rows in arms.items():
        last = rows[-1] if rows else {}
        print(
            f"[compare] {name}: {len(rows)} iterations, final {last.get('dft_frames')} DFT frames, "
            f"force RMSE {last.get('force_rmse_ev_per_a')} eV/A on {len(frames)} shared frames"
        )
    for name, result in data.get("efficiency", {}).items():
        print(
            f"[compare] {name} against {args.baseline}: frames ratio {result['frames_ratio']}, "
            f"core-seconds ratio {result['core_seconds_ratio']}"
        )
    print(f"[compare] page: {page}")
    return 0
