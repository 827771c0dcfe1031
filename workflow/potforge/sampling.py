"""Iteration-0 structure generators: strains, deformations, rattles, vacancies, slabs, melts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import surface

from potforge.errors import StructureError
from potforge.structures import too_close_reason

CRYSTAL_START = "crystal"
# Where an exploration task may start: the crystal, or the first structure of a generator.
EXPLORATION_STARTS = (CRYSTAL_START, "vacancy", "molten", "disordered", "surface")
GENERATORS = (
    *("bulk", "strain", "shear", "deformation", "rattle"),
    *("vacancy", "surface", "disordered", "molten"),
)


def tag_origin(atoms: Atoms, system: str, generator: str, seed: int | None, **params: Any) -> Atoms:
    """Record where a structure came from in its `info` (flat keys, extxyz-safe)."""
    atoms.info["system"] = system
    atoms.info["generator"] = generator
    atoms.info["params"] = json.dumps(params, sort_keys=True)
    atoms.info["seed"] = -1 if seed is None else int(seed)
    atoms.info["origin"] = f"{generator}({', '.join(f'{k}={v}' for k, v in params.items())})"
    return atoms


def strained(atoms: Atoms, strain: float, shear: bool = False) -> Atoms:
    """Return a copy with an isotropic linear strain, or an xy shear strain, applied."""
    eps = np.eye(3)
    if shear:
        eps[0, 1] = eps[1, 0] = strain / 2
    else:
        eps *= 1.0 + strain
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ eps, scale_atoms=True)
    return out


def deformed(atoms: Atoms, max_strain: float, amplitude: float, seed: int) -> Atoms:
    """Return a copy under a random symmetric strain (each component within +-max_strain), rattled.

    Normal and shear components together constrain every elastic constant, not only the bulk
    modulus that isotropic strains see.
    """
    rng = np.random.default_rng(seed)
    eps = rng.uniform(-max_strain, max_strain, size=(3, 3))
    eps = (eps + eps.T) / 2
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return rattled(out, amplitude, seed) if amplitude > 0 else out


def rattled(atoms: Atoms, amplitude: float, seed: int) -> Atoms:
    """Return a copy with Gaussian displacements of the given width."""
    out = atoms.copy()
    rng = np.random.default_rng(seed)
    out.positions += rng.normal(0.0, amplitude, size=out.positions.shape)
    return out


def with_vacancy(atoms: Atoms, seed: int, species: str | None = None) -> Atoms:
    """Return a copy with one randomly chosen atom (of `species`, if given) removed."""
    candidates = [
        k for k, s in enumerate(atoms.get_chemical_symbols()) if species is None or s == species
    ]
    if not candidates:
        raise StructureError(
            f"sample.vacancy_species: no {species} atom in {atoms.get_chemical_formula()}"
        )
    out = atoms.copy()
    del out[candidates[int(np.random.default_rng(seed).integers(len(candidates)))]]
    return out


def slab(atoms: Atoms, miller: tuple[int, int, int], layers: int, vacuum: float) -> Atoms:
    """Return a slab of the bulk cut along `miller`, periodic in all directions (vacuum along z)."""
    out = surface(atoms, tuple(miller), layers, vacuum=vacuum, periodic=True)
    out.pbc = True
    return out


def disordered(
    atoms: Atoms, seed: int, min_fraction: float, density_scale: float = 1.0, tries: int = 500
) -> Atoms:
    """Return a random cell with the same composition and density, atoms kept apart.

    Atoms are placed one by one at uniform random positions, each accepted only when every
    distance to the atoms placed so far is at least `margin` times the covalent-radius sum; the
    margin starts 0.15 above `min_fraction` and relaxes towards it when a cell is crowded.
    """
    from ase.data import covalent_radii
    from ase.geometry import get_distances

    rng = np.random.default_rng(seed)
    out = atoms.copy()
    out.set_cell(atoms.cell.array / density_scale ** (1 / 3), scale_atoms=False)
    cell, radii = out.cell.array, covalent_radii[out.numbers]
    for margin in np.linspace(min_fraction + 0.15, min_fraction + 0.01, 8):
        placed: list[int] = []
        for idx in rng.permutation(len(out)):
            for _ in range(tries):
                trial = rng.random(3) @ cell
                if not placed:
                    break
                _, d = get_distances(trial, out.positions[placed], cell=cell, pbc=True)
                if (d[0] >= margin * (radii[idx] + radii[placed])).all():
                    break
            else:
                break  # crowded: start again with a smaller margin
            out.positions[idx] = trial
            placed.append(int(idx))
        if len(placed) == len(out):
            return out
    raise StructureError(
        f"could not place {len(out)} atoms at {min_fraction} of the covalent-radius sums; "
        "lower disordered.density_scale"
    )


def sample_system(name: str, base: Atoms, settings: Mapping[str, Any], seed: int) -> list[Atoms]:
    """Generate the iteration-0 structures of one system, each tagged with its origin."""
    sample = settings["sample"]
    cell = base.repeat(tuple(sample["supercell"]))
    rng = np.random.default_rng(seed)
    frames: list[Atoms] = [tag_origin(cell.copy(), name, "bulk", None)]
    for eps in sample["strains"]:
        frames.append(tag_origin(strained(cell, eps), name, "strain", None, strain=eps))
    for eps in sample["shear_strains"]:
        frames.append(tag_origin(strained(cell, eps, shear=True), name, "shear", None, shear=eps))
    deform = sample["deformations"]
    for _ in range(deform["count"]):
        s = int(rng.integers(2**31))
        frames.append(
            tag_origin(
                deformed(cell, deform["max_strain"], deform["rattle"], s),
                name,
                "deformation",
                s,
                max_strain=deform["max_strain"],
            )
        )
    rattle = sample["rattle"]
    for amp in rattle["amplitudes"]:
        for _ in range(rattle["copies"]):
            s = int(rng.integers(2**31))
            frames.append(tag_origin(rattled(cell, amp, s), name, "rattle", s, amplitude=amp))
    for _ in range(sample["vacancies"]):
        s = int(rng.integers(2**31))
        vacant = with_vacancy(cell, s, sample["vacancy_species"])
        frames.append(tag_origin(rattled(vacant, 0.05, s), name, "vacancy", s))
    surf = sample["surface"]
    if surf is not None:
        # Slabs are cut from the unit cell: a supercell would multiply the slab area needlessly.
        cut = slab(base, tuple(surf["miller"]), surf["layers"], surf["vacuum"])
        miller = "".join(map(str, surf["miller"]))
        frames.append(tag_origin(cut, name, "surface", None, miller=miller, layers=surf["layers"]))
    dis = sample["disordered"]
    for _ in range(dis["count"]):
        s = int(rng.integers(2**31))
        cell_d = disordered(cell, s, settings["min_distance_fraction"], dis["density_scale"])
        frames.append(tag_origin(cell_d, name, "disordered", s, density_scale=dis["density_scale"]))
    melt = sample["molten"]
    for _ in range(melt["count"]):
        s = int(rng.integers(2**31))
        hot = molten_sample(base, cell, melt, s)
        frames.append(tag_origin(hot, name, "molten", s, temperature=melt["temperature"]))
    # Clean deformations are drawn last, so adding them leaves every other frame's seed as it was.
    for _ in range(deform["clean"]):
        s = int(rng.integers(2**31))
        frames.append(
            tag_origin(
                deformed(cell, deform["max_strain"], 0.0, s),
                name,
                "deformation",
                s,
                max_strain=deform["max_strain"],
                clean=True,
            )
        )
    return frames


def molten_sample(base: Atoms, cell: Atoms, melt: Mapping[str, Any], seed: int) -> Atoms:
    """Return one molten cell of `sample.molten` settings (`cell`: the sample supercell)."""
    from potforge.melt import molten_cell

    hot_cell = base.repeat(tuple(melt["supercell"])) if melt["supercell"] else cell
    symbols = hot_cell.get_chemical_symbols()
    species = sorted(set(symbols), key=symbols.index)
    return molten_cell(
        hot_cell,
        melt["potential"],
        species,
        seed,
        melt["temperature"],
        melt["melt_temperature"],
        melt["steps"],
    )


# A generator's key in `sample:` where it differs from the generator's name.
SAMPLE_KEYS = {
    "strain": "strains",
    "shear": "shear_strains",
    "deformation": "deformations",
    "vacancy": "vacancies",
}


def generator_count(sample: Mapping[str, Any], generator: str) -> int:
    """Return how many structures one generator of `sample:` makes (before screening)."""
    counts = {
        "bulk": 1,
        "strain": len(sample["strains"]),
        "shear": len(sample["shear_strains"]),
        "deformation": sample["deformations"]["count"] + sample["deformations"]["clean"],
        "rattle": len(sample["rattle"]["amplitudes"]) * sample["rattle"]["copies"],
        "vacancy": sample["vacancies"],
        "surface": int(sample["surface"] is not None),
        "disordered": sample["disordered"]["count"],
        "molten": sample["molten"]["count"],
    }
    return int(counts[generator])


def sample_count(settings: Mapping[str, Any]) -> int:
    """Return how many structures sample_system generates for a system (before screening)."""
    return sum(generator_count(settings["sample"], g) for g in GENERATORS)


def start_structures(base: Atoms, kept: Sequence[Atoms]) -> list[Atoms]:
    """Return the structures exploration may start from: the crystal, then one per generator.

    Each carries `info['start']` (`crystal`, or the generator's name: the first structure that
    generator made and screening kept), so a task's `start:` key names its frame.
    """
    crystal = base.copy()
    crystal.info = {"start": CRYSTAL_START}
    out = [crystal]
    for name in EXPLORATION_STARTS[1:]:
        first = next((a for a in kept if a.info.get("generator") == name), None)
        if first is not None:
            frame = first.copy()
            frame.info["start"] = name
            out.append(frame)
    return out


def start_frame(frames: Sequence[Atoms], start: str) -> Atoms:
    """Return the structure a task starts from (its `start:`), or raise StructureError."""
    for atoms in frames:
        if atoms.info.get("start", CRYSTAL_START) == start:
            return atoms
    found = sorted({str(a.info.get("start", CRYSTAL_START)) for a in frames})
    raise StructureError(
        f"exploration start '{start}': no such structure among the sampled starts {found}; "
        f"sample at least one {start} structure (sample.{start}) or start from crystal"
    )


def screen(frames: list[Atoms], min_fraction: float) -> tuple[list[Atoms], list[Atoms]]:
    """Split frames into (kept, rejected); each rejected frame carries `info['reject_reason']`."""
    kept, rejected = [], []
    for atoms in frames:
        reason = too_close_reason(atoms, min_fraction)
        if reason is None:
            kept.append(atoms)
        else:
            atoms.info["reject_reason"] = reason
            rejected.append(atoms)
    return kept, rejected
