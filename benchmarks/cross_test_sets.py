"""Finished runs' final committees, each measured on every run's independent test set.

Two runs of one config whose iteration 0 differs draw different independent test sets, so their
own figures do not compare. This evaluates each run's final committee (and the config's peers,
forces only: their energy zero is not DFT's) on each run's test frames and on all of them
together, and writes benchmarks/results/NAME.json.

    python benchmarks/cross_test_sets.py --run f5cba02=/work/aside/si-quick-f5cba02 \\
        --run 44a3ac8=results/si-quick --name cross_test_sets_si
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def test_frames(campaign: Path) -> list:
    """Return a finished campaign's labelled independent test frames."""
    from potforge.io import read_frames

    files = sorted((campaign / "validation" / "labels").glob("chunk_*[0-9].extxyz"))
    if not files:
        raise SystemExit(f"{campaign}: no validation/labels/chunk_*.extxyz; a finished campaign?")
    return [atoms for f in files for atoms in read_frames(f)]


def committee_members(campaign: Path) -> list[Path]:
    """Return a finished campaign's final committee member packages."""
    members = sorted(campaign.glob("final/committee/member_*/model.nequip.zip"))
    if not members:
        raise SystemExit(f"{campaign}: no final/committee/member_*/model.nequip.zip")
    return members


def main() -> None:
    """Measure every run's committee and the peers on every run's test set."""
    from potforge.config import load_config, model_species
    from potforge.train.accuracy import error_metrics
    from potforge.validate.calculators import committee_factory, peer_factory
    from potforge.validate.stage import predictions_with

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=results/<campaign>")
    parser.add_argument("--config", default="config/config.yaml", help="for the peers")
    parser.add_argument("--name", default="cross_test_sets", help="results/NAME.json")
    args = parser.parse_args()
    runs = {}
    for spec in args.run:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--run {spec!r}: expected NAME=results/<campaign>")
        runs[name] = path
    sets = {name: test_frames(Path(path)) for name, path in runs.items()}
    sets["all"] = [atoms for frames in sets.values() for atoms in frames]
    config = load_config(args.config)
    species = model_species(config)
    factories = {
        f"committee {name}": committee_factory(committee_members(Path(path)))
        for name, path in runs.items()
    }
    for peer in config["validate"]["peers"]:
        factories[peer["name"]] = peer_factory(peer, species)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, factory in factories.items():
        table[label] = {}
        for set_name, frames in sets.items():
            errors = error_metrics(frames, predictions_with(factory, frames))
            force = errors["force_rmse_ev_per_a"]
            row = {"force_rmse_ev_per_a": round(force, 4), "frames": len(frames)}
            if label.startswith("committee"):
                row["energy_rmse_mev_per_atom"] = round(errors["energy_rmse_mev_per_atom"], 2)
            table[label][set_name] = row
            print(f"[cross] {label} on {set_name}: force {force:.3f} eV/A", flush=True)
    print(f"\n{'potential':<22}" + "".join(f"{f'test set {s}':>20}" for s in sets))
    for label, row in table.items():
        cells = "".join(
            f"{row[s]['force_rmse_ev_per_a']:>9.3f}"
            + (
                f" / {row[s]['energy_rmse_mev_per_atom']:>5.1f} meV"
                if "energy_rmse_mev_per_atom" in row[s]
                else " " * 11
            )
            for s in sets
        )
        print(f"{label:<22}{cells}")
    out = RESULTS / f"{args.name}.json"
    out.write_text(
        json.dumps(
            {
                "runs": runs,
                "note": "force RMSE eV/A (and energy RMSE meV/atom for committees) of each "
                "run's final committee and each peer on each run's independent test set",
                "table": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
