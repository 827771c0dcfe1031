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
    p.add_argument("--out", required=True, help="output folder: compare.json, learning_curves.png")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Measure every arm's iterations on the shared test set; write JSON and the plot."""
    from potforge.compare import arm_curve, learning_curve_png, shared_test_set
    from potforge.errors import ValidationError
    from potforge.io import write_json

    names = args.names or [Path(c).name for c in args.campaigns]
    if len(names) != len(args.campaigns):
        raise ValidationError("compare: give one --names entry per campaign")
    frames = shared_test_set(args.campaigns)
    if not frames:
        raise ValidationError(
            "compare: no labelled test-set frames in any campaign (validation/labels/); "
            "run the campaigns' validation stage first"
        )
    arms = {n: arm_curve(c, frames) for n, c in zip(names, args.campaigns, strict=True)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compare.json", {"test_frames": len(frames), "arms": arms})
    (out / "learning_curves.png").write_bytes(learning_curve_png(arms))
    for name, rows in arms.items():
        last = rows[-1] if rows else {}
        print(
            f"[compare] {name}: {len(rows)} iterations, final {last.get('dft_frames')} DFT frames, "
            f"force RMSE {last.get('force_rmse_ev_per_a')} eV/A on {len(frames)} shared frames"
        )
    return 0
