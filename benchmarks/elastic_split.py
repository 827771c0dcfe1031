"""Where an elastic-constant error comes from: clamped-ion response or internal relaxation.

For a cubic crystal of a finished campaign, computes C11, C12, C44 with clamped ions (the
homogeneous strain alone) and with relaxed ions (what the validation stage reports) for the
campaign's final committee, each peer of its config and GPAW at the campaign's protocol (clamped
ions only: the relaxed DFT values are the validation's own references). The relaxation term
C44(relaxed) - C44(clamped) separates a wrong internal-strain response from a wrong response to
the strain itself. Every calculator is strained around its own lattice constant (the validation's
a0 for the model and the peers, the DFT reference's for GPAW).

    python benchmarks/elastic_split.py --campaign results/si-quick --system si

Each potential's stresses on the campaign's own strained training frames (its last dataset's
train split, generators deformation, strain, shear) say whether a clamped-ion error is a fit
that was not reached: RMSE over shear components and over normal components less their mean.
`--members DIR` measures the committee in DIR/member_*/ (a recipe arm's) instead of the final one.

Prints a table and writes benchmarks/results/elastic_split.json (or --result FILE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase.io import read
from ase.units import GPa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "workflow"))

from potforge.config import load_config  # noqa: E402
from potforge.structures import starting_structure  # noqa: E402
from potforge.validate.calculators import (  # noqa: E402
    committee_factory,
    dft_factory,
    peer_factory,
)
from potforge.validate.properties import elastic_constants  # noqa: E402


def crystal_at(config: dict, system: str, a0: float):
    """Return the system's starting crystal scaled to lattice constant a0."""
    atoms = starting_structure(config["systems"][system]["structure"])
    scale = a0 / atoms.cell.lengths()[0]
    atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    return atoms


def stress_fit(factory, frames: Sequence, generators: Sequence[str]) -> dict[str, dict]:
    """Return, per generator, the stress RMSE (GPa) of shear and of deviatoric normal components."""
    errors: dict[str, list[np.ndarray]] = {}
    for frame in frames:
        if frame.info.get("generator") not in generators:
            continue
        work = frame.copy()
        work.calc = factory()
        diff = (work.get_stress(voigt=True) - frame.get_stress(voigt=True)) / GPa
        errors.setdefault(frame.info["generator"], []).append(diff)
    out = {}
    for generator, diffs in errors.items():
        d = np.array(diffs)
        normal = d[:, :3] - d[:, :3].mean(axis=1, keepdims=True)
        out[generator] = {
            "frames": len(d),
            "shear_rmse_gpa": float(np.sqrt((d[:, 3:] ** 2).mean())),
            "normal_deviatoric_rmse_gpa": float(np.sqrt((normal**2).mean())),
        }
    return out


def main() -> None:
    """Compute clamped and relaxed elastic constants; print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, required=True, help="a finished campaign")
    parser.add_argument("--config", default="config/config.yaml", help="the campaign's config")
    parser.add_argument("--system", default="si", help="the (cubic) system to strain")
    parser.add_argument("--members", type=Path, help="measure DIR/member_*/ instead")
    parser.add_argument("--result", type=Path, default=HERE / "results" / "elastic_split.json")
    args = parser.parse_args()
    validation = json.loads((args.campaign / "final" / "validation.json").read_text())
    config = load_config(ROOT / args.config)
    (a0,) = [
        row
        for row in validation["properties"]
        if row["system"] == args.system and row["name"] == "a0"
    ]
    dft_ref = json.loads((args.campaign / "validation" / f"dft_{args.system}.json").read_text())
    start = starting_structure(config["systems"][args.system]["structure"])
    species = sorted(set(start.get_chemical_symbols()))
    members = validation["members"]
    if args.members:
        members = sorted(str(p) for p in args.members.glob("member_*/model.nequip.zip"))
    calculators = {"model": (committee_factory(members), a0["model"])}
    train_split = sorted(args.campaign.glob("iter_*/dataset/train.extxyz"))[-1]
    frames = read(train_split, ":")
    for peer in config["validate"].get("peers", []):
        peer_a0 = a0["peers"][peer["name"]]["value"]
        calculators[peer["name"]] = (peer_factory(peer, species), peer_a0)
    calculators["DFT"] = (dft_factory(config["dft"]), a0["dft"])
    rows = {}
    for name, (factory, lattice) in calculators.items():
        start = time.perf_counter()
        atoms = crystal_at(config, args.system, lattice)
        row = {"a0": lattice, "clamped": elastic_constants(atoms, factory, relax=False)}
        if name == "DFT":
            row["relaxed"] = dft_ref["properties"]["elastic_gpa"]
        else:
            row["relaxed"] = elastic_constants(atoms, factory, relax=True)
            row["stress_fit"] = stress_fit(factory, frames, ("deformation", "strain", "shear"))
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows[name] = row
        print(f"[elastic_split] {name}: {row['seconds']} s", flush=True)
    dft = rows["DFT"]
    header = ("C11", "C12", "C44 clamped", "C44 relaxed", "relax term", "C11-C12 vs DFT")
    print(f"{'':<12}" + "".join(f"{h:>15}" for h in header))
    for name, row in rows.items():
        c, r = row["clamped"], row["relaxed"]
        row["c44_relaxation_term"] = r["C44"] - c["C44"]
        shear = (c["C11"] - c["C12"]) / (dft["clamped"]["C11"] - dft["clamped"]["C12"]) - 1.0
        row["c11_minus_c12_error_percent"] = 100.0 * shear
        row["clamped_error_percent"] = {
            k: 100.0 * (v / dft["clamped"][k] - 1.0) for k, v in c.items()
        }
        values = (c["C11"], c["C12"], c["C44"], r["C44"], row["c44_relaxation_term"])
        print(f"{name:<12}" + "".join(f"{v:15.1f}" for v in values) + f"{100 * shear:+14.1f}%")
    print(f"stress on the training split's strained frames ({train_split}), RMSE GPa:")
    for name, row in rows.items():
        for generator, fit in row.get("stress_fit", {}).items():
            print(
                f"{name:<12} {generator:<12} {fit['frames']:3d} frames  shear "
                f"{fit['shear_rmse_gpa']:.3f}  normal less mean "
                f"{fit['normal_deviatoric_rmse_gpa']:.3f}"
            )
    args.result.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "campaign": str(args.campaign),
        "members": members,
        "system": args.system,
        "train_split": str(train_split),
        "rows": rows,
    }
    args.result.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.result}")


if __name__ == "__main__":
    main()
