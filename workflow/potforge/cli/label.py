"""Subcommands of stages 1-3: `sample`, `label`, `dataset`."""

from __future__ import annotations

import argparse
import json
import sys

from potforge.io import read_frames, write_frames, write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the sampling, labelling and dataset subcommands."""
    p = subparsers.add_parser("sample", help="generate the iteration-0 structures of one system")
    p.add_argument("--system", required=True, help="system name (a key of `systems`)")
    p.add_argument("--settings", required=True, help="the system's configuration as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="extxyz of the accepted structures")
    p.add_argument("--rejected", required=True, help="extxyz of structures rejected before DFT")
    p.add_argument(
        "--start",
        help="extxyz of the exploration starts: the crystal, one per generator",
    )
    p.set_defaults(func=run_sample)

    p = subparsers.add_parser("label", help="label one chunk of frames with GPAW")
    p.add_argument("--frames", nargs="+", required=True, help="extxyz files of the iteration")
    p.add_argument("--chunk", type=int, help="label only chunk K of the frames (0-based)")
    p.add_argument("--frames-per-job", type=int, default=1, help="frames per chunk")
    p.add_argument("--dft", required=True, help="the `dft` configuration as JSON")
    p.add_argument("--store", required=True, help="directory of finished single points")
    p.add_argument("--iteration", type=int, required=True)
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks per single point")
    p.add_argument("--launcher", default="mpiexec", help="MPI launcher (srun on SLURM)")
    p.add_argument("--out", required=True, help="extxyz of labelled frames")
    p.add_argument("--failed", required=True, help="extxyz of quarantined frames")
    p.add_argument("--report", required=True, help="JSON report")
    p.set_defaults(func=run_label)

    p = subparsers.add_parser("dataset", help="build the dataset of all labels so far")
    p.add_argument("--labelled", nargs="*", default=[], help="labelled extxyz chunks")
    p.add_argument("--failed", nargs="*", default=[], help="quarantined extxyz chunks")
    p.add_argument("--split", required=True, help="the `dataset.split` fractions as JSON")
    p.add_argument("--iteration", type=int, required=True)
    p.add_argument("--max-failed-fraction", type=float, required=True)
    p.add_argument("--previous", help="the previous iteration's ase.db (keeps splits stable)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=run_dataset)


def _log(msg: str) -> None:
    print(msg, flush=True)


def run_sample(args: argparse.Namespace) -> int:
    """Generate, screen and write one system's starting structures."""
    from potforge.sampling import sample_system, screen, start_structures
    from potforge.structures import starting_structure

    settings = json.loads(args.settings)
    base = starting_structure(settings["structure"])
    frames = sample_system(args.system, base, settings, args.seed)
    kept, rejected = screen(frames, settings["min_distance_fraction"])
    if args.start:
        write_frames(args.start, start_structures(base, kept))
    for atoms in rejected:
        _log(
            f"[sample] {args.system}: rejected {atoms.info['origin']}: "
            f"{atoms.info['reject_reason']}"
        )
    write_frames(args.rejected, rejected)
    write_frames(args.out, kept)
    _log(
        f"[sample] {args.system}: {len(kept)} structures kept, {len(rejected)} rejected before DFT"
    )
    return 0


def run_label(args: argparse.Namespace) -> int:
    """Label a chunk through the store and write its labelled and quarantined frames."""
    from potforge.dft.label import label_frames

    frames = [a for path in args.frames for a in read_frames(path)]
    if args.chunk is not None:
        start = args.chunk * args.frames_per_job
        frames = frames[start : start + args.frames_per_job]
        _log(f"[label] chunk {args.chunk}: {len(frames)} frames")
    report = label_frames(
        frames,
        json.loads(args.dft),
        args.store,
        ranks=args.ranks,
        launcher=args.launcher,
        iteration=args.iteration,
        log=_log,
    )
    write_frames(args.failed, report.quarantined)
    write_frames(args.out, report.labelled)
    write_json(args.report, report.summary())
    _log(
        f"[label] chunk done: {len(report.labelled)} labelled, {len(report.quarantined)} "
        f"quarantined ({report.computed} computed, {report.reused} from the store)"
    )
    return 0


def run_dataset(args: argparse.Namespace) -> int:
    """Merge all labels so far into ase.db, split extxyz files and summary.json."""
    from potforge.dataset import build_dataset, check_failed_fraction, previous_splits

    labelled = [a for path in args.labelled for a in read_frames(path)]
    failed = [a for path in args.failed for a in read_frames(path)]
    check_failed_fraction(labelled, failed, args.iteration, args.max_failed_fraction)
    previous = previous_splits(args.previous)
    summary = build_dataset(labelled, failed, json.loads(args.split), args.out_dir, previous)
    counts = ", ".join(f"{k} {v}" for k, v in summary["per_split"].items())
    _log(f"[dataset] {summary['frames']} frames ({counts}), {summary['quarantined']} quarantined")
    sys.stdout.flush()
    return 0
