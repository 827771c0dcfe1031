"""Subcommands of stage 7: `test-set`, `protocol-check`, `dft-reference`, `validate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from potforge.io import read_frames, read_json, read_trajectories, write_frames, write_json


def _log(msg: str) -> None:
    print(msg, flush=True)


def _serial_mpi() -> None:
    """GPAW and LAMMPS run in this process: inside a SLURM step, start MPI as a singleton."""
    import os

    from potforge.pmi import drop_stale_pmi

    drop_stale_pmi(os.environ)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the validation subcommands."""
    p = subparsers.add_parser("test-set", help="draw the independent test set (once per campaign)")
    p.add_argument("--config", required=True, help="the validated configuration as JSON")
    p.add_argument("--trajectories", nargs="*", default=[], help="iteration 0's trajectories")
    p.add_argument("--samples", nargs="*", default=[], help="iteration 0's sampled structures")
    p.add_argument("--out", required=True, help="extxyz of the test frames (unlabelled)")
    p.set_defaults(func=run_test_set)

    p = subparsers.add_parser(
        "protocol-check", help="analytic stress vs -dE/dV of every starting crystal (GPAW)"
    )
    _reference_arguments(p)
    p.set_defaults(func=run_protocol_check)

    p = subparsers.add_parser("dft-reference", help="DFT properties of one system's crystal")
    _reference_arguments(p)
    p.add_argument("--system", required=True, help="system name")
    p.add_argument("--recompute", action="store_true", help="ignore cached and shipped copies")
    p.set_defaults(func=run_dft_reference)

    p = subparsers.add_parser("validate", help="measure a committee against DFT (validation.json)")
    p.add_argument("--config", required=True, help="the validated configuration as JSON")
    p.add_argument("--species", nargs="+", required=True)
    p.add_argument("--members", nargs="+", required=True, help="member packages (.nequip.zip)")
    p.add_argument("--test-labels", nargs="*", default=[], help="labelled test-set chunks")
    p.add_argument("--references", nargs="*", default=[], help="dft-reference JSON files")
    p.add_argument("--iteration", type=int, help="the committee's iteration")
    p.add_argument("--peers", action="store_true", help="also measure validate.peers")
    p.add_argument(
        "--protocol-check", help="protocol_check.json: wrong stress labels are not measured"
    )
    p.add_argument("--compiled", nargs="*", default=[], help="compiled models: MD stability")
    p.add_argument("--plugin", help="LAMMPS plugin for MD stability")
    p.add_argument("--md-dir", help="folder of the MD stability runs")
    p.add_argument("--out", required=True, help="validation JSON")
    p.set_defaults(func=run_validate)


def _config(text: str) -> dict:
    """The --config value: a campaign YAML file (validated here) or the validated JSON."""
    from potforge.config import load_config

    return json.loads(text) if text.lstrip().startswith("{") else load_config(text)


def _reference_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the GPAW reference subcommands."""
    p.add_argument(
        "--config", required=True, help="a campaign file, or the validated configuration as JSON"
    )
    p.add_argument("--cache-dir", required=True, help="reference cache shared by campaigns")
    p.add_argument("--out", required=True, help="JSON result")
    p.add_argument("--log-dir", help="folder for GPAW text output")


def run_test_set(args: argparse.Namespace) -> int:
    """Draw and write the test set."""
    import numpy as np

    from potforge.sampling import sample_system, screen
    from potforge.structures import read_structure_frames, starting_structure
    from potforge.validate.testset import (
        SAMPLE_SEED_OFFSET,
        draw_from_exploration,
        draw_from_generators,
        named_structures,
    )

    config = json.loads(args.config)
    settings = config["validate"]["test_set"]
    rng = np.random.default_rng(config["seed"] + SAMPLE_SEED_OFFSET)
    trajectories = read_trajectories(args.trajectories)
    trust_hi = {name: system["trust"]["hi"] for name, system in config["systems"].items()}
    frames = draw_from_exploration(trajectories, settings["explore_frames"], rng, trust_hi)
    training = [a for path in args.samples for a in read_frames(path)]
    fresh = []
    for name, system in sorted(config["systems"].items()):
        base = starting_structure(system["structure"])
        drawn = sample_system(name, base, system, config["seed"] + SAMPLE_SEED_OFFSET)
        fresh += screen(drawn, system["min_distance_fraction"])[0]
    frames += draw_from_generators(fresh, training, settings["sample_frames"], rng)
    files = {path: read_structure_frames(path) for path in settings["structures"]}
    frames += named_structures(files, next(iter(sorted(config["systems"]))))
    write_frames(args.out, frames)
    counts: dict[str, int] = {}
    for atoms in frames:
        counts[atoms.info["source"]] = counts.get(atoms.info["source"], 0) + 1
    _log(f"[test-set] {len(frames)} frames: {counts}")
    return 0


def run_protocol_check(args: argparse.Namespace) -> int:
    """Check every starting crystal's stress against the energy's volume derivative."""
    _serial_mpi()
    from potforge.validate.protocol import protocol_check

    result = protocol_check(_config(args.config), args.cache_dir, args.log_dir, _log)
    write_json(args.out, result)
    return 0


def run_dft_reference(args: argparse.Namespace) -> int:
    """Compute (or reuse) the DFT properties of one system."""
    _serial_mpi()
    from potforge.validate.protocol import dft_reference

    config = _config(args.config)
    ref = dft_reference(config, args.system, args.cache_dir, args.log_dir, _log, not args.recompute)
    write_json(args.out, ref)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    """Measure a committee and write validation JSON."""
    _serial_mpi()
    from potforge.structures import starting_structure
    from potforge.train.accuracy import measured_labels
    from potforge.validate.stability import md_stability
    from potforge.validate.stage import validate_committee

    config = json.loads(args.config)
    frames, stress_note = measured_labels(
        [a for path in args.test_labels for a in read_frames(path)],
        read_json(args.protocol_check) if args.protocol_check else None,
    )
    references = {}
    for path in args.references:
        ref = read_json(path)
        references[ref["system"]] = ref["properties"]
    result = validate_committee(
        config, args.species, args.members, frames, references, peers=args.peers, log=_log
    )
    result["iteration"] = args.iteration
    if stress_note and result["test_set"].get("frames"):
        result["test_set"]["stress_note"] = stress_note
    if args.compiled and config["validate"]["md_stability"] is not None:
        result["md_stability"] = {}
        for name, system in sorted(config["systems"].items()):
            result["md_stability"][name] = md_stability(
                starting_structure(system["structure"]),
                args.compiled,
                args.species,
                system,
                config["validate"]["md_stability"],
                Path(args.md_dir or Path(args.out).parent / "md_stability") / name,
                args.plugin,
                _log,
            )
    write_json(args.out, result)
    ts = result["test_set"]
    if ts.get("frames"):
        _log(
            f"[validate] test set ({ts['frames']} frames): force RMSE "
            f"{ts['force_rmse_ev_per_a']:.3f} eV/A, energy RMSE "
            f"{ts['energy_rmse_mev_per_atom']:.1f} meV/atom"
        )
    s = result["property_summary"]
    _log(f"[validate] properties: {s['passed']} of {s['total']} within tolerance")
    return 0
