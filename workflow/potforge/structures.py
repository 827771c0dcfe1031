"""Starting crystals (built-in prototypes or files) and geometric sanity checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal

from potforge.errors import StructureError

# PBE lattice constants (Angstrom) used when the configuration gives none.
DIAMOND_A = {"Si": 5.47, "C": 3.57, "Ge": 5.76}


def diamond(element: str = "Si", a: float | None = None) -> Atoms:
    """Return the 8-atom conventional diamond cell."""
    lattice = a if a is not None else DIAMOND_A.get(element)
    if lattice is None:
        raise StructureError(f"diamond: no default lattice constant for {element}; give 'a'")
    return bulk(element, "diamond", a=lattice, cubic=True)


def hfo2_monoclinic(a: float | None = None) -> Atoms:
    """Return monoclinic HfO2 (P2_1/c, 12 atoms) with the experimental cell and positions."""
    scale = 1.0 if a is None else a / 5.117
    return crystal(
        ["Hf", "O", "O"],
        basis=[(0.2754, 0.0395, 0.2083), (0.0742, 0.3316, 0.3467), (0.4487, 0.7581, 0.4801)],
        spacegroup=14,
        cellpar=[5.117 * scale, 5.175 * scale, 5.291 * scale, 90, 99.22, 90],
    )


def hfo2_tetragonal(a: float | None = None) -> Atoms:
    """Return tetragonal HfO2 (P4_2/nmc, 6 atoms; a = 3.58, c = 5.20 A, O shift dz = 0.045)."""
    lattice = 3.58 if a is None else a
    return crystal(
        ["Hf", "O"],
        basis=[(0.75, 0.25, 0.75), (0.25, 0.25, 0.045)],
        spacegroup=137,
        setting=2,
        cellpar=[lattice, lattice, lattice * 5.20 / 3.58, 90, 90, 90],
    )


def hfo2_cubic(a: float | None = None) -> Atoms:
    """Return cubic fluorite HfO2 (Fm-3m, 12-atom conventional cell, a = 5.07 Angstrom)."""
    lattice = 5.07 if a is None else a
    return crystal(
        ["Hf", "O"],
        basis=[(0, 0, 0), (0.25, 0.25, 0.25)],
        spacegroup=225,
        cellpar=[lattice, lattice, lattice, 90, 90, 90],
    )


def read_structure(path: str | Path) -> Atoms:
    """Read one periodic structure from any file ASE understands, or raise StructureError."""
    return read_structure_frames(path, index=0)[0]


def read_structure_frames(path: str | Path, index: int | str = ":") -> list[Atoms]:
    """Read the periodic structures of a file (all by default), or raise StructureError."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise StructureError(f"no such structure file '{path}'")
    try:
        frames = read(path, index=index)
    except Exception as exc:  # ASE raises many types for a broken file
        raise StructureError(f"cannot read '{path}': {type(exc).__name__}: {exc}") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise StructureError(f"'{path}' holds no structure")
    for atoms in frames:
        if len(atoms) == 0:
            raise StructureError(f"'{path}' holds no atoms")
        if not atoms.pbc.all() or atoms.cell.rank < 3:
            raise StructureError(f"'{path}' is not a 3D periodic cell (pbc={atoms.pbc.tolist()})")
    return frames


def starting_structure(spec: Mapping[str, Any]) -> Atoms:
    """Build the starting crystal described by a system's `structure` configuration."""
    if "file" in spec:
        return read_structure(spec["file"])
    name, a = spec["prototype"], spec.get("a")
    if name == "diamond":
        return diamond(spec.get("element", "Si"), a)
    builders = {
        "hfo2-monoclinic": hfo2_monoclinic,
        "hfo2-tetragonal": hfo2_tetragonal,
        "hfo2-cubic": hfo2_cubic,
    }
    if name not in builders:
        raise StructureError(f"unknown prototype '{name}' (known: diamond, {', '.join(builders)})")
    return builders[name](a)


def min_distance_ratio(atoms: Atoms) -> tuple[float, int, int]:
    """Return the smallest d_ij / (r_cov,i + r_cov,j) over atom pairs, and that pair."""
    radii = covalent_radii[atoms.numbers]
    cutoff = 2.0 * float(radii.max())
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(d) == 0:
        return float("inf"), -1, -1
    ratio = d / (radii[i] + radii[j])
    k = int(np.argmin(ratio))
    return float(ratio[k]), int(i[k]), int(j[k])


def too_close_reason(atoms: Atoms, fraction: float) -> str | None:
    """Return why a structure is unphysical (atoms too close), or None when it is fine."""
    ratio, i, j = min_distance_ratio(atoms)
    if ratio < fraction:
        d = atoms.get_distance(i, j, mic=True)
        sym = atoms.get_chemical_symbols()
        return (
            f"atoms {i} ({sym[i]}) and {j} ({sym[j]}) are {d:.3f} A apart, "
            f"{ratio:.2f} of their covalent-radius sum (limit {fraction})"
        )
    return None
