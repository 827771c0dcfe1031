"""The committee scorer: member energies and forces, and the DP-GEN model deviation of forces.

The deviation of a frame is max over atoms i of sqrt(mean_k |F_k,i - <F_i>|^2), where k runs over
the K members and <F_i> is the committee-mean force on atom i.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import ModelError
from potforge.train.models import (
    DEFAULT_ATOMS_PER_CALL,
    Potential,
    Predictions,
    frame_chunks,
    graph_of_frames,
    load_model,
    predict,
    split_outputs,
)


@dataclass
class CommitteeScores:
    """Member energies (K, F) in eV, forces per frame (K, n, 3) in eV/A, max deviation (F,)."""

    energies: np.ndarray
    forces: list[np.ndarray]
    max_force_deviation: np.ndarray

    def mean_energies(self) -> np.ndarray:
        """Return the committee-mean energy of every frame (eV)."""
        return self.energies.mean(axis=0)

    def mean_forces(self) -> list[np.ndarray]:
        """Return the committee-mean forces of every frame (eV/A)."""
        return [f.mean(axis=0) for f in self.forces]


def atom_force_deviation(forces: np.ndarray) -> np.ndarray:
    """Return sqrt(mean_k |F_k - mean F|^2) per atom for member forces of shape (K, n, 3)."""
    forces = np.asarray(forces, dtype=float)
    spread = forces - forces.mean(axis=0, keepdims=True)
    return np.sqrt((spread**2).sum(axis=-1).mean(axis=0))


def max_force_deviation(forces: np.ndarray) -> float:
    """Return the DP-GEN model deviation of one frame: the largest per-atom force deviation."""
    return float(atom_force_deviation(forces).max())


def load_committee(paths: Sequence[str | Path], device: str = "cpu") -> list[Potential]:
    """Load K >= 1 member models (compiled .nequip.pt2, .nequip.zip or .ckpt) for scoring."""
    if not paths:
        raise ModelError("committee: no member models given; pass one model file per member")
    return [load_model(p, device) for p in paths]


def score_frames(
    members: Sequence[Potential],
    frames: Sequence[Atoms],
    max_atoms_per_call: int = DEFAULT_ATOMS_PER_CALL,
) -> CommitteeScores:
    """Evaluate every member on every frame; frames are merged into graphs of up to N atoms."""
    if not members:
        raise ModelError("committee: no members to score with")
    for member in members:
        member.check_species(frames)
    k_members, n_frames = len(members), len(frames)
    energies = np.empty((k_members, n_frames))
    forces = [np.empty((k_members, len(a), 3)) for a in frames]
    for group in frame_chunks(frames, max_atoms_per_call):
        chunk = [frames[i] for i in group]
        sizes = [len(a) for a in chunk]
        graphs: dict[tuple[float, tuple[str, ...]], Any] = {}
        for k, member in enumerate(members):
            key = (member.r_max, tuple(member.type_names))
            if key not in graphs:
                graphs[key] = graph_of_frames(chunk, member.type_names, member.r_max)
            e_chunk, f_chunk = split_outputs(member, member(graphs[key]), sizes)
            energies[k, group] = e_chunk
            for i, f in zip(group, f_chunk, strict=True):
                forces[i][k] = f
    deviation = np.array([max_force_deviation(f) for f in forces]) if frames else np.empty(0)
    return CommitteeScores(energies, forces, deviation)


def member_stresses(members: Sequence[Potential], frames: Sequence[Atoms]) -> np.ndarray | None:
    """Return every member's stresses (K, F, 3, 3) in eV/A^3, or None if a model gives none."""
    try:
        return np.array([predict(member, frames, stress=True).stresses for member in members])
    except ModelError:  # a compiled pair_nequip model has no stress output
        return None


def committee_summary(
    members: Sequence[Potential], frames: Sequence[Atoms], split_name: str = "test"
) -> dict[str, Any]:
    """Return per-member and committee-mean errors on labelled frames, and force deviations."""
    from potforge.train.accuracy import error_metrics

    summary: dict[str, Any] = {
        "split": split_name,
        "frames": len(frames),
        "members": [str(m.path) for m in members],
    }
    if not frames:
        summary.update(committee_mean=None, per_member=[], max_force_deviation=None)
        return summary
    scores = score_frames(members, frames)
    stresses = member_stresses(members, frames)
    mean_stress = None if stresses is None else stresses.mean(axis=0)
    mean = Predictions(scores.mean_energies(), scores.mean_forces(), mean_stress)
    summary["committee_mean"] = error_metrics(frames, mean)
    summary["per_member"] = [
        error_metrics(
            frames,
            Predictions(
                scores.energies[k],
                [f[k] for f in scores.forces],
                None if stresses is None else stresses[k],
            ),
        )
        for k in range(len(members))
    ]
    dev = scores.max_force_deviation
    summary["max_force_deviation"] = {
        "mean": float(dev.mean()),
        "max": float(dev.max()),
        "per_frame": [float(x) for x in dev],
    }
    return summary
