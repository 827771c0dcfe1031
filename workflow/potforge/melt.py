"""Molten cells for iteration 0: a random cell equilibrated with a classical LAMMPS potential.

The DFT labels the snapshots; the classical potential only proposes liquid-like geometries, so
the first committee has seen the liquid before its own exploration reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms, units

from potforge.errors import StructureError


def molten_cell(
    atoms: Atoms,
    potential: Mapping[str, Any],
    species: Sequence[str],
    seed: int,
    temperature: float,
    melt_temperature: float,
    steps: int,
    timestep_fs: float = 1.0,
) -> Atoms:
    """Return a liquid snapshot of `atoms`' composition and cell.

    The atoms start at random positions (a small periodic crystal superheats rather than melt),
    half of `steps` run at melt_temperature, half at `temperature` (Langevin, fixed cell).
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from potforge.sampling import disordered
    from potforge.validate.calculators import peer_factory

    out = disordered(atoms, seed, min_fraction=0.6)
    name = {"name": "sample.molten.potential", **potential}
    out.calc = peer_factory(name, species)()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(out, temperature_K=melt_temperature, rng=rng)
    for temp, n in ((melt_temperature, steps - steps // 2), (temperature, steps // 2)):
        dyn = Langevin(
            out, timestep_fs * units.fs, temperature_K=temp, friction=0.02, rng=rng, fixcm=True
        )
        dyn.run(n)
    energy = out.get_potential_energy() / len(out)
    if not np.isfinite(energy) or not np.isfinite(out.positions).all():
        raise StructureError(
            f"sample.molten: the {potential['pair_style']} run blew up (energy {energy} eV/atom); "
            "lower sample.molten.melt_temperature or check the potential"
        )
    out.calc = None
    out.wrap()
    return Atoms(out.get_chemical_symbols(), out.positions, cell=out.cell, pbc=True)
