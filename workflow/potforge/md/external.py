"""The eager committee drives LAMMPS through `fix external`: exploration without compiling.

Compiling a member with AOTInductor costs about a minute on a CPU, every member, every
iteration, while the small cells of a quick campaign run their MD in seconds. Here LAMMPS
integrates and thermostats as usual, and a Python callback evaluates the eager NequIP members
(the packaged `.nequip.zip` files): the driving member every step, every member on deviation
steps. The callback publishes the same global vector as `compute pair potforge` (max, mean, min
force deviation, energy deviation, min distance, step) as `f_ext[1..6]`, so the guards and the
per-frame table are those of the plugin path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import ModelError
from potforge.train.committee import atom_force_deviation

VECTOR_LENGTH = 6


class CommitteeCallback:
    """LAMMPS `fix external` callback: energy, forces (and virial) from eager members."""

    def __init__(
        self,
        lmp: Any,
        members: Sequence[Any],
        species: Sequence[str],
        drive: str = "first",
        every: int = 10,
        virial: bool = False,
        fix_id: str = "ext",
    ) -> None:
        self.lmp, self.members, self.species = lmp, list(members), list(species)
        self.drive, self.every, self.virial, self.fix_id = drive, int(every), virial, fix_id
        self.force_dev: dict[int, np.ndarray] = {}  # step -> per-atom deviation, by atom id
        self.r_max = max(m.r_max for m in self.members)

    def atoms(self, nlocal: int, x: np.ndarray) -> tuple[Atoms, np.ndarray]:
        """Return the local atoms as ASE Atoms (current box) and their ids."""
        boxlo, boxhi, xy, yz, xz, _, _ = self.lmp.extract_box()
        lo, hi = np.array(boxlo), np.array(boxhi)
        cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
        types = np.asarray(self.lmp.numpy.extract_atom("type"))[:nlocal]
        ids = np.asarray(self.lmp.numpy.extract_atom("id"))[:nlocal].copy()
        symbols = [self.species[t - 1] for t in types]
        return Atoms(symbols, positions=np.asarray(x)[:nlocal] - lo, cell=cell, pbc=True), ids

    def __call__(self, _caller: Any, step: int, nlocal: int, tag: Any, x: Any, f: Any) -> None:
        """Fill LAMMPS' force array, energy, virial and the deviation vector for one step."""
        from potforge.train.models import predict

        atoms, ids = self.atoms(nlocal, x)
        deviation_step = len(self.members) > 1 and self.every > 0 and step % self.every == 0
        use = range(len(self.members)) if deviation_step or self.drive == "mean" else [0]
        preds = {k: predict(self.members[k], [atoms], stress=self.virial) for k in use}
        forces = np.array([preds[k].forces[0] for k in use])
        energies = np.array([preds[k].energies[0] for k in use])
        if not (np.isfinite(forces).all() and np.isfinite(energies).all()):
            raise ModelError(f"fix external: non-finite model output at step {step}")
        driving = [0] if self.drive == "first" else list(range(len(use)))
        f[:nlocal] = forces[driving].mean(axis=0)
        self.lmp.fix_external_set_energy_global(self.fix_id, float(energies[driving].mean()))
        if self.virial:
            stress = np.mean(
                [preds[k].stresses[0] for k in (use if self.drive == "mean" else [0])], axis=0
            )
            v = -stress * atoms.get_volume()
            self.lmp.fix_external_set_virial_global(
                self.fix_id, [v[0, 0], v[1, 1], v[2, 2], v[0, 1], v[0, 2], v[1, 2]]
            )
        if deviation_step:
            dev = atom_force_deviation(forces)
            self.force_dev[int(step)] = dev[np.argsort(ids)]
            self._publish([dev.max(), dev.mean(), dev.min(), energies.std() / nlocal], atoms, step)
        elif step % max(self.every, 1) == 0:  # a single member: distances only
            self._publish(None, atoms, step)

    def _publish(self, values: list[float] | None, atoms: Atoms, step: int) -> None:
        """Set f_ext[1..6] on the steps the guards read (every `every` steps; kept between)."""
        if values is not None:
            for k, value in enumerate(values, start=1):
                self.lmp.fix_external_set_vector(self.fix_id, k, float(value))
            self.lmp.fix_external_set_vector(self.fix_id, 6, float(step))
        self.lmp.fix_external_set_vector(self.fix_id, 5, min_distance_ratio(atoms, self.r_max))


def min_distance_ratio(atoms: Atoms, r_max: float) -> float:
    """Return the smallest d_ij / (r_cov,i + r_cov,j) over pairs within r_max (as the plugin)."""
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    radii = covalent_radii[atoms.numbers]
    i, j, d = neighbor_list("ijd", atoms, r_max)
    if len(d) == 0:  # every pair is at least r_max / (2 * largest radius) of its sum
        return float(r_max / (2.0 * radii.max()))
    return float((d / (radii[i] + radii[j])).min())
