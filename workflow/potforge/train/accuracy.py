"""Error statistics of predictions against DFT labels: energies per atom, forces, stresses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import GPa

from potforge.train.models import Predictions


def label_stress(atoms: Atoms) -> np.ndarray | None:
    """Return a frame's DFT stress as a 3x3 array (eV/A^3), or None when it has none."""
    if atoms.calc is None or "stress" not in atoms.calc.results:
        return None
    stress = np.asarray(atoms.calc.results["stress"], dtype=float)
    return voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)


def untrusted_stress_reason(check: Mapping[str, Any] | None) -> str | None:
    """Why a campaign's stress labels are not measured against (None when they are trusted).

    `check` is the protocol check (validation/protocol_check.json): where the analytic stress
    disagrees with -dE/dV at the protocol, the stress labels are wrong and no error against
    them means anything.
    """
    if not check or check.get("train_on_stress", True):
        return None
    worst = max((s["difference_gpa"] for s in check.get("systems", {}).values()), default=0.0)
    return (
        f"not measured: the protocol's stress labels are wrong (analytic stress and -dE/dV "
        f"differ by up to {worst:.1f} GPa)"
    )


def without_stress_labels(frames: Sequence[Atoms]) -> list[Atoms]:
    """Copies of labelled frames with their DFT stress removed (energies and forces kept)."""
    out = []
    for atoms in frames:
        copy = atoms.copy()
        if atoms.calc is not None:
            results = {k: v for k, v in atoms.calc.results.items() if k != "stress"}
            copy.calc = SinglePointCalculator(copy, **results)
        out.append(copy)
    return out


def measured_labels(
    frames: Sequence[Atoms], check: Mapping[str, Any] | None
) -> tuple[list[Atoms], str | None]:
    """Frames to measure errors on, without stress where the protocol check found it wrong.

    Returns the frames and the reason the stress is not measured (None when it is).
    """
    reason = untrusted_stress_reason(check)
    return (without_stress_labels(frames) if reason else list(frames)), reason


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
