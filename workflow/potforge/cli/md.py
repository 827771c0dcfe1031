"""`potforge build-plugin` and `potforge explore`: the LAMMPS exploration stage."""

from __future__ import annotations

import argparse
import json

from potforge.errors import ExplorationError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the build-plugin and explore subcommands."""
    p = subparsers.add_parser(
        "build-plugin", help="build (or find cached) the LAMMPS plugin; print its path"
    )
    p.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    p.add_argument("--verbose", action="store_true", help="print the cmake output")
    p.set_defaults(func=run_build)

    p = subparsers.add_parser(
        "explore", help="run one committee-monitored LAMMPS MD task through pair_style potforge"
    )
    p.add_argument("--structure", required=True, help="starting structure (any ASE format)")
    p.add_argument(
        "--models", required=True, nargs="+", help="compiled models (.nequip.pt2), first drives"
    )
    p.add_argument("--species", required=True, nargs="+", help="elements, one per LAMMPS atom type")
    p.add_argument(
        "--task",
        required=True,
        help='task as JSON, e.g. \'{"ensemble": "nvt", "temperature": 900, "steps": 1000}\'',
    )
    p.add_argument("--trust-hi", required=True, type=float, help="upper trust level (eV/A)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--plugin", help="plugin .so to use instead of building/caching one")
    p.set_defaults(func=run_explore)


def run_build(args: argparse.Namespace) -> int:
    """Build the plugin and print its path."""
    from potforge.md.plugin import build_plugin

    print(build_plugin(force=args.force, verbose=args.verbose))
    return 0


def run_explore(args: argparse.Namespace) -> int:
    """Run one exploration task and print its summary as JSON."""
    from potforge.md.explore import explore, resolve_task
    from potforge.sampling import start_frame
    from potforge.structures import read_structure_frames

    try:
        task = json.loads(args.task)
    except json.JSONDecodeError as exc:
        raise ExplorationError(f"--task: not valid JSON ({exc}): {args.task!r}") from None
    if not isinstance(task, dict):
        raise ExplorationError(f"--task: must be a JSON object, got {args.task!r}")
    summary = explore(
        start_frame(read_structure_frames(args.structure), resolve_task(task)["start"]),
        args.models,
        args.species,
        task,
        args.trust_hi,
        args.out,
        plugin=args.plugin,
    )
    keys = ("steps_done", "halted", "halt_reason", "message", "frames", "max_force_dev")
    print(json.dumps({k: summary[k] for k in keys}))
    return 0
