"""Physical properties of a crystal from any ASE calculator: EOS, elastic constants, vacancy.

Every function takes a `CalculatorFactory`: called with `relax=False` it returns a calculator for
fixed geometries, with `relax=True` one for structures whose ions move (a DFT factory may use
point-group symmetry only for the former). A strained copy of a crystal is computed with
`grid_cell` set to the unstrained cell: a DFT factory then keeps that cell's k-point grid (a
k-point density alone can switch grids between two strains, a jump in E(V) that no potential
follows). The DFT side and the model side share these lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from ase import Atoms
from ase.units import GPa

from potforge.errors import ValidationError


class CalculatorFactory(Protocol):
    """Returns a fresh ASE calculator for one structure.

    `relax` says whether the ions will move; `grid_cell` which cell's k-point grid a DFT
    calculator keeps (None: the structure's own).
    """

    def __call__(self, relax: bool = False, grid_cell: Any = None) -> Any:  # noqa: D102
        ...


# Defaults of `validate.properties` (the schema states the same numbers).
EOS_STRAINS = (-0.02, -0.01, -0.005, 0.0, 0.005, 0.01, 0.02)  # linear strains around a
ELASTIC_STRAIN = 0.01
RELAX_FMAX = 0.01  # eV/A
RELAX_STEPS = 60


def energy_and_stress(
    atoms: Atoms, factory: CalculatorFactory, grid_cell: Any = None
) -> tuple[float, np.ndarray]:
    """Return the energy (eV) and Voigt stress (eV/A^3, ASE sign) of a fixed structure."""
    work = atoms.copy()
    work.calc = factory(relax=False, grid_cell=grid_cell)
    return float(work.get_potential_energy()), np.asarray(work.get_stress(voigt=True))


def relax_ions(
    atoms: Atoms,
    factory: CalculatorFactory,
    fmax: float = RELAX_FMAX,
    steps: int = RELAX_STEPS,
    grid_cell: Any = None,
) -> Atoms:
    """Relax positions at a fixed cell with BFGS; return the relaxed copy (calculator attached)."""
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = factory(relax=True, grid_cell=grid_cell)
    if np.abs(work.get_forces()).max() > fmax:
        opt = BFGS(work, logfile=None, maxstep=0.1)
        if not opt.run(fmax=fmax, steps=steps):
            fmax_now = float(np.linalg.norm(work.get_forces(), axis=1).max())
            raise ValidationError(
                f"relaxation of {work.get_chemical_formula()} did not reach fmax {fmax} eV/A in "
                f"{steps} steps (now {fmax_now:.3g}); the potential may be unstable there"
            )
    return work


def equation_of_state(
    atoms: Atoms, factory: CalculatorFactory, strains: Sequence[float] = EOS_STRAINS
) -> dict[str, Any]:
    """Fit a Birch-Murnaghan EOS to isotropically strained copies; return V0, E0, B, scale.

    `scale` is the linear factor that takes the given cell to the equilibrium volume; the
    analytic pressures at every point are kept for the protocol's stress check.
    """
    from ase.eos import EquationOfState

    volumes, energies, pressures = [], [], []
    for eps in strains:
        work = atoms.copy()
        work.set_cell(atoms.cell.array * (1.0 + eps), scale_atoms=True)
        energy, stress = energy_and_stress(work, factory, grid_cell=atoms.cell.array)
        volumes.append(work.get_volume())
        energies.append(energy)
        pressures.append(-float(stress[:3].mean()) / GPa)
    try:
        v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    except Exception as exc:  # ASE raises bare errors when the fit has no minimum
        raise ValidationError(f"EOS fit of {atoms.get_chemical_formula()} failed: {exc}") from None
    if not (min(volumes) <= v0 <= max(volumes)):
        raise ValidationError(
            f"EOS of {atoms.get_chemical_formula()}: minimum V0={v0:.2f} A^3 outside the sampled "
            f"volumes {min(volumes):.2f}-{max(volumes):.2f}; the potential has no minimum there"
        )
    return {
        "natoms": len(atoms),
        "v0": float(v0),
        "e0": float(e0),
        "bulk_modulus_gpa": float(b / GPa),
        "scale": float((v0 / atoms.get_volume()) ** (1.0 / 3.0)),
        "volumes": volumes,
        "energies": energies,
        "pressures_gpa": pressures,
    }


def strained_cell(atoms: Atoms, voigt: int, eps: float) -> Atoms:
    """Return a copy under one Voigt strain component (engineering shear for 3-5)."""
    strain = np.zeros((3, 3))
    if voigt < 3:
        strain[voigt, voigt] = eps
    else:
        i, j = [(1, 2), (0, 2), (0, 1)][voigt - 3]
        strain[i, j] = strain[j, i] = eps / 2.0
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return out


def is_cubic(atoms: Atoms, tol: float = 1e-3) -> bool:
    """True for a cell with three equal orthogonal lengths (the conventional cubic cell)."""
    lengths, angles = atoms.cell.lengths(), atoms.cell.angles()
    return bool(np.ptp(lengths) < tol * lengths.mean() and np.abs(angles - 90).max() < 1e-2)


def elastic_constants(
    atoms: Atoms,
    factory: CalculatorFactory,
    strain: float = ELASTIC_STRAIN,
    relax: bool = True,
    fmax: float = RELAX_FMAX,
) -> dict[str, float]:
    """Return elastic constants (GPa) with relaxed ions from central stress differences.

    A cubic cell needs two strains (xx and yz) and gives C11, C12, C44; any other cell gets all
    six and returns every C_ij (i <= j) whose magnitude exceeds 1 GPa.
    """
    cubic = is_cubic(atoms)
    columns = (0, 3) if cubic else tuple(range(6))
    c = np.zeros((6, 6))
    for j in columns:
        stresses = []
        for sign in (1.0, -1.0):
            work = strained_cell(atoms, j, sign * strain)
            if relax:
                work = relax_ions(work, factory, fmax=fmax, grid_cell=atoms.cell.array)
                stress = np.asarray(work.get_stress(voigt=True))
            else:
                _, stress = energy_and_stress(work, factory, grid_cell=atoms.cell.array)
            stresses.append(stress)
        c[:, j] = (stresses[0] - stresses[1]) / (2.0 * strain) / GPa
    if cubic:
        return {
            "C11": float(c[0, 0]),
            "C12": float((c[1, 0] + c[2, 0]) / 2.0),
            "C44": float(c[3, 3]),
        }
    sym = (c + c.T) / 2.0
    return {
        f"C{i + 1}{j + 1}": float(sym[i, j])
        for i in range(6)
        for j in range(i, 6)
        if abs(sym[i, j]) > 1.0
    }


def vacancy_formation(
    atoms: Atoms,
    factory: CalculatorFactory,
    supercell: Sequence[int] = (1, 1, 1),
    relax: bool = True,
    fmax: float = RELAX_FMAX,
) -> dict[str, float]:
    """Return unrelaxed (and relaxed) vacancy formation energies (eV) at the given cell.

    E_f = E(N-1) - (N-1)/N E(N) in the same supercell; atom 0 is removed. The relaxation
    starts from a small seeded rattle (0.02 A), so that it is not held at a symmetric point
    where the forces vanish by symmetry alone.
    """
    bulk = atoms.repeat(tuple(int(n) for n in supercell))
    n = len(bulk)
    e_bulk, _ = energy_and_stress(bulk, factory)
    vacancy = bulk.copy()
    del vacancy[0]
    e_unrelaxed, _ = energy_and_stress(vacancy, factory)
    out = {"natoms": n, "unrelaxed": e_unrelaxed - (n - 1) / n * e_bulk}
    if relax:
        start = vacancy.copy()
        start.rattle(0.02, seed=0)
        relaxed = relax_ions(start, factory, fmax=fmax)
        out["relaxed"] = float(relaxed.get_potential_energy()) - (n - 1) / n * e_bulk
    return {k: float(v) for k, v in out.items()}


def crystal_properties(
    atoms: Atoms,
    factory: CalculatorFactory,
    settings: Mapping[str, Any],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Compute every property `settings` asks for (validate.properties) on one crystal."""
    formula = atoms.get_chemical_formula()
    log(f"[validate] {formula}: equation of state ({len(settings['eos_strains'])} volumes)")
    eos = equation_of_state(atoms, factory, settings["eos_strains"])
    crystal = atoms.copy()
    crystal.set_cell(atoms.cell.array * eos["scale"], scale_atoms=True)
    result: dict[str, Any] = {
        "eos": eos,
        "lattice": [float(x) for x in crystal.cell.lengths()],
        "volume_per_atom": eos["v0"] / len(atoms),
        "energy_per_atom": eos["e0"] / len(atoms),
    }
    if settings["elastic"]:
        log(f"[validate] {formula}: elastic constants (relaxed ions)")
        result["elastic_gpa"] = elastic_constants(
            crystal, factory, settings["elastic_strain"], relax=True, fmax=settings["fmax"]
        )
    vacancy = settings["vacancy"]
    if vacancy is not None:
        log(f"[validate] {formula}: vacancy in a {'x'.join(map(str, vacancy['supercell']))} cell")
        result["vacancy_ev"] = vacancy_formation(
            crystal, factory, vacancy["supercell"], vacancy["relax"], settings["fmax"]
        )
    return result
