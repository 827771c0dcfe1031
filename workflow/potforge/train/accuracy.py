"""Error statistics of predictions against DFT labels: energies per atom, forces, stresses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import GPa

from potforge.train.models import Predictions


def label_stress(atoms: Atoms) -> np.ndarray | None:
    """Return a frame's DFT stress as a 3x3 array (eV/A^3), or None when it has none."""
    if atoms.calc is None or "stress" not in atoms.calc.results:
        return None
    stress = np.asarray(atoms.calc.results["stress"], dtype=float)
    return voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)


def error_metrics(frames: Sequence[Atoms], pred: Predictions) -> dict[str, Any]:
    """Return energy MAE/RMSE (meV/atom), force MAE/RMSE (eV/A, components), stress MAE (GPa)."""
    n_atoms = np.array([len(a) for a in frames], dtype=float)
    e_ref = np.array([a.get_potential_energy() for a in frames])
    de = (pred.energies - e_ref) / n_atoms * 1000.0
    df = np.concatenate([p - a.get_forces() for p, a in zip(pred.forces, frames, strict=True)])
    result: dict[str, Any] = {
        "frames": len(frames),
        "energy_mae_mev_per_atom": float(np.abs(de).mean()),
        "energy_rmse_mev_per_atom": float(np.sqrt((de**2).mean())),
        "force_mae_ev_per_a": float(np.abs(df).mean()),
        "force_rmse_ev_per_a": float(np.sqrt((df**2).mean())),
        "stress_mae_gpa": None,
    }
    if pred.stresses is not None:
        pairs = [(s, label_stress(a)) for s, a in zip(pred.stresses, frames, strict=True)]
        ds = [p - r for p, r in pairs if r is not None]
        if ds:
            result["stress_mae_gpa"] = float(np.abs(np.array(ds)).mean() / GPa)
    return result
