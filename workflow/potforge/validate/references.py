"""DFT references of properties, computed once per protocol and crystal and cached by hash.

A reference is keyed by the protocol hash, the crystal's structure hash and the property
settings, so two campaigns at the same protocol share it. References for the shipped
campaigns' protocols ship with the package (`potforge/data/references/`); `potforge
dft-reference` recomputes any of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import GPa

from potforge.dft.protocol import protocol_hash
from potforge.hashing import settings_hash, structure_hash
from potforge.io import read_json, write_json

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "references"
STRESS_CHECK_STRAIN = 0.005


def reference_key(kind: str, crystal: Atoms, dft: Mapping[str, Any], settings: Any) -> str:
    """Return the cache key of one reference: kind, protocol, crystal and settings."""
    return f"{kind}-" + settings_hash(
        {
            "protocol": protocol_hash(dft),
            "structure": structure_hash(crystal),
            "settings": settings,
        }
    )


def cached_reference(
    key: str, cache_dir: str | Path, compute: Callable[[], dict[str, Any]], reuse: bool = True
) -> dict[str, Any]:
    """Return the reference `key` from the cache, the shipped set, or by computing it once.

    `reuse=False` computes it again and replaces the cached copy (the shipped one stays).
    """
    path = Path(cache_dir) / f"{key}.json"
    for source in (path, SHIPPED / f"{key}.json") if reuse else ():
        if source.is_file():
            ref = read_json(source)
            if source != path:
                write_json(path, ref)
            return {**ref, "cached": True, "source": str(source)}
    start = time.perf_counter()
    ref = compute()
    ref.update(key=key, compute_s=round(time.perf_counter() - start, 1))
    write_json(path, ref)
    return {**ref, "cached": False, "source": str(path)}


def stress_check(
    crystal: Atoms, factory: Any, strain: float = STRESS_CHECK_STRAIN
) -> dict[str, float]:
    """Compare the analytic pressure with -dE/dV from two strained copies (GPa).

    Too low a plane-wave cutoff shows here first (Pulay stress): its stress labels are wrong.
    """
    from potforge.validate.properties import energy_and_stress

    energies, volumes = [], []
    for eps in (-strain, strain):
        work = crystal.copy()
        work.set_cell(crystal.cell.array * (1 + eps), scale_atoms=True)
        energies.append(energy_and_stress(work, factory, grid_cell=crystal.cell.array)[0])
        volumes.append(work.get_volume())
    _, stress = energy_and_stress(crystal, factory)
    analytic = -float(np.mean(stress[:3])) / GPa
    finite = -(energies[1] - energies[0]) / (volumes[1] - volumes[0]) / GPa
    return {
        "analytic_pressure_gpa": analytic,
        "finite_difference_pressure_gpa": float(finite),
        "difference_gpa": float(abs(analytic - finite)),
    }
