"""How smooth is E(V) at a DFT protocol? Plane-wave cutoff against equation-of-state noise.

At a fixed plane-wave cutoff the basis changes with the cell, so energies of one crystal at
different volumes carry an error that jumps from volume to volume (the Pulay error; its
derivative is the Pulay stress that the protocol check measures). This script computes the
validation stage's energy-only equation of state of one crystal (the same strains, the same
GPAW parameters as the DFT references) at several cutoffs, in this process, and reports how far
the energies sit from a smooth curve: the RMS and largest residual of a cubic polynomial in V,
per formula unit, beside the Birch-Murnaghan V0, B and E0 and the seconds per point. Residuals
near the polymorph tolerance (25 meV/f.u.) mean that energy differences between cells are not
resolved at that cutoff. Prints a table and writes benchmarks/results/protocol_eos.json.

    python benchmarks/protocol_eos.py      # cubic HfO2, PW 400/500/600: about 9 min
    python benchmarks/protocol_eos.py --system monoclinic --ecuts 400 600
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from ase.eos import EquationOfState
from ase.units import GPa

from potforge.config import load_config
from potforge.structures import starting_structure
from potforge.validate.calculators import dft_factory

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "protocol_eos.json"


def energy_curve(
    crystal, dft: dict, strains: list[float]
) -> tuple[list[float], list[float], float]:
    """Energies of isotropically strained copies of `crystal`; volumes, energies, s per point."""
    make = dft_factory(dft)
    volumes, energies = [], []
    start = time.perf_counter()
    for eps in strains:
        work = crystal.copy()
        work.set_cell(crystal.cell.array * (1.0 + eps), scale_atoms=True)
        work.calc = make(relax=False, grid_cell=crystal.cell)
        energies.append(float(work.get_potential_energy()))
        volumes.append(float(work.get_volume()))
        print(f"  ecut {dft['ecut']:.0f}  strain {eps:+.3f}  E {energies[-1]:.4f} eV", flush=True)
    return volumes, energies, (time.perf_counter() - start) / len(strains)


def roughness(volumes: list[float], energies: list[float], units: int) -> dict[str, float]:
    """Residuals of a cubic polynomial in V (meV per formula unit) and the Birch-Murnaghan fit."""
    v, e = np.asarray(volumes), np.asarray(energies)
    residual = e - np.polyval(np.polyfit(v, e, 3), v)
    v0, e0, b = EquationOfState(v, e, eos="birchmurnaghan").fit()
    return {
        "residual_rms_mev_per_fu": float(1000 * np.sqrt(np.mean(residual**2)) / units),
        "residual_max_mev_per_fu": float(1000 * np.abs(residual).max() / units),
        "v0_per_fu": float(v0 / units),
        "e0_per_fu": float(e0 / units),
        "bulk_modulus_gpa": float(b / GPa),
    }


def main() -> None:
    """Run the comparison, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/hfo2-quick.yaml")
    parser.add_argument("--system", default="cubic")
    parser.add_argument("--ecuts", type=float, nargs="+", default=[400.0, 500.0, 600.0])
    args = parser.parse_args()

    config = load_config(REPO / args.config)
    system = config["systems"][args.system]
    crystal = starting_structure(system["structure"])
    strains = config["validate"]["properties"]["eos_strains"]
    units = (
        len(crystal) // 3 if args.system in ("monoclinic", "tetragonal", "cubic") else len(crystal)
    )
    rows = []
    for ecut in args.ecuts:
        volumes, energies, per_point = energy_curve(
            crystal, {**config["dft"], "ecut": ecut}, strains
        )
        rows.append(
            {
                "ecut": ecut,
                "seconds_per_point": per_point,
                "volumes": volumes,
                "energies": energies,
                **roughness(volumes, energies, units),
            }
        )
    base = rows[0]["seconds_per_point"]
    print(f"\n{args.system} {crystal.get_chemical_formula()}, strains {strains}")
    print(
        f"{'ecut':>6} {'resid rms':>10} {'resid max':>10} {'V0/fu':>8} {'s/point':>8} {'cost':>6}"
    )
    for row in rows:
        row["cost_ratio"] = row["seconds_per_point"] / base
        print(
            f"{row['ecut']:6.0f} {row['residual_rms_mev_per_fu']:10.1f} "
            f"{row['residual_max_mev_per_fu']:10.1f} {row['v0_per_fu']:8.3f} "
            f"{row['seconds_per_point']:8.1f} {row['cost_ratio']:6.2f}"
        )
    result = {
        "config": args.config,
        "system": args.system,
        "formula": crystal.get_chemical_formula(),
        "strains": strains,
        "protocol": {k: v for k, v in config["dft"].items() if k != "ladder"},
        "machine": platform.node(),
        "rows": rows,
        "note": "residuals per formula unit (HfO2) or per atom; cost relative to the first cutoff",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
