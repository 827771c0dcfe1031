"""Runs measured on the same test frames, frame by frame: where each run's force error comes from.

Several campaigns given one fixed test set (`validate.test_set.structures`) are measured on the
same frames; their `validation.json` files hold every frame's DFT and model forces in the order
of the file. This prints, per frame, its origin, DFT force RMS and each run's force error (all
atoms, Hf or another species), then per run the RMSE over all frames, per species and per source
(explored / sampled frames), and writes them to benchmarks/results/NAME.json.

    python benchmarks/test_set_frames.py --test-set config/test_sets/hfo2-quick.extxyz \
        --run 9b55750=benchmarks/results/hfo2_campaign_3_iterations/validation.json \
        --run 48c376c=benchmarks/results/hfo2_campaign/validation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read

RESULTS = Path(__file__).resolve().parent / "results"


def frame_errors(frames: list, validation: dict) -> list[dict[str, float]]:
    """Force RMSE of each frame (all atoms and per species) and its DFT force RMS."""
    forces = validation["test_set"]["force_components"]
    dft, model = np.asarray(forces["dft"]), np.asarray(forces["model"])
    if len(dft) != 3 * sum(len(a) for a in frames):
        raise SystemExit("the validation's force components do not match the test-set frames")
    rows, start = [], 0
    for atoms in frames:
        stop = start + 3 * len(atoms)
        error = (model[start:stop] - dft[start:stop]).reshape(-1, 3)
        row = {
            "dft_force_rms": float(np.sqrt(np.mean(dft[start:stop] ** 2))),
            "all": float(np.sqrt(np.mean(error**2))),
        }
        for species in sorted(set(atoms.get_chemical_symbols())):
            mask = np.array(atoms.get_chemical_symbols()) == species
            row[species] = float(np.sqrt(np.mean(error[mask] ** 2)))
        rows.append(row)
        start = stop
    return rows


def pooled_rmse(frames: list, rows: list[dict[str, float]], species: str, keep) -> float | None:
    """RMSE over the atoms of `species` ("all": every atom) of the frames `keep` accepts."""
    squares, count = 0.0, 0
    for atoms, row in zip(frames, rows, strict=True):
        if not keep(atoms) or species not in row:
            continue
        n = len(atoms) if species == "all" else atoms.get_chemical_symbols().count(species)
        squares += row[species] ** 2 * n
        count += n
    return float(np.sqrt(squares / count)) if count else None


def main() -> None:
    """Compare runs frame by frame on their shared test set; print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-set", required=True, help="the structure file all runs used")
    parser.add_argument("--run", action="append", required=True, help="LABEL=path/validation.json")
    parser.add_argument("--name", default="hfo2_fixed_test_set")
    args = parser.parse_args()
    frames = read(args.test_set, ":")
    runs = dict(item.split("=", 1) for item in args.run)
    errors = {
        label: frame_errors(frames, json.loads(Path(p).read_text())) for label, p in runs.items()
    }
    species = sorted({s for a in frames for s in a.get_chemical_symbols()})

    print(
        f"{'#':>2} {'origin':40s} {'atoms':>5} {'DFT F rms':>9} "
        + " ".join(f"{k:>14}" for k in runs)
    )
    for i, atoms in enumerate(frames):
        cells = " ".join(
            f"{errors[k][i]['all']:6.3f} ({errors[k][i].get(species[0], 0):5.3f})" for k in runs
        )
        origin = f"{atoms.info.get('system', '?')} {atoms.info.get('origin', '?')}"
        rms = errors[next(iter(runs))][i]["dft_force_rms"]
        print(f"{i:2d} {origin:40s} {len(atoms):5d} {rms:9.2f} {cells}")
    print(f"(per frame: force RMSE of all atoms ({species[0]} atoms), eV/A)")

    def source(name: str):
        return lambda a: name in str(a.info.get("origin", ""))

    groups = {
        "all frames": lambda a: True,
        "explored": source("explore:"),
        "sampled": source("sample:"),
    }
    summary = {}
    for label in runs:
        summary[label] = {
            group: {s: pooled_rmse(frames, errors[label], s, keep) for s in ["all", *species]}
            for group, keep in groups.items()
        }
    print(f"\n{'run':>10} {'frames':>10} " + " ".join(f"{s:>7}" for s in ["all", *species]))
    for label, by_group in summary.items():
        for group, values in by_group.items():
            cells = " ".join(f"{v:7.3f}" if v is not None else f"{'-':>7}" for v in values.values())
            print(f"{label:>10} {group:>10} {cells}")
    out = RESULTS / f"{args.name}.json"
    out.write_text(
        json.dumps(
            {"test_set": args.test_set, "runs": runs, "frames": errors, "summary": summary},
            indent=2,
        )
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
