"""Uncertainty selection: trust-window classification, diverse picks, and the convergence test.

Pure functions over ASE frames carrying `info['max_force_dev']` (eV/A) and `info['step']`,
independent of Snakemake, the MD engine and the DFT code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"


def classify(deviation: float, lo: float, hi: float) -> str:
    """Return accurate (< lo), candidate (in [lo, hi)) or failed (>= hi) for one deviation."""
    if deviation < lo:
        return ACCURATE
    return CANDIDATE if deviation < hi else FAILED


def expanded_frames(frames: Sequence[Atoms], max_volume_ratio: float | None) -> list[bool]:
    """Flag frames whose volume per atom exceeds max_volume_ratio x the trajectory's first.

    An NPT cell the model cannot hold together swells into a gas (8 Si atoms in a 28 A cube was
    seen): its committee deviation is near zero, so it reads as accurate, and GPAW stalls on it.
    """
    if max_volume_ratio is None or not frames:
        return [False] * len(frames)
    first = min(frames, key=lambda a: int(a.info.get("step", 0)))
    reference = first.get_volume() / len(first)
    return [a.get_volume() / len(a) > max_volume_ratio * reference for a in frames]


def structure_descriptor(
    atoms: Atoms, species: Sequence[str], r_max: float = 5.0, bins: int = 50, width: float = 0.1
) -> np.ndarray:
    """Return a species-pair-resolved, Gaussian-smoothed radial distribution (unit norm).

    Cheap and permutation-invariant: near-identical frames give near-identical vectors.
    """
    i, j, d = neighbor_list("ijd", atoms, r_max)
    symbols = np.array(atoms.get_chemical_symbols())
    centres = np.linspace(0.0, r_max, bins)
    parts = []
    for a_idx, a in enumerate(species):
        for b in species[a_idx:]:
            mask = (symbols[i] == a) & (symbols[j] == b)
            dist = d[mask]
            hist = np.exp(-(((centres[None, :] - dist[:, None]) / width) ** 2)).sum(axis=0)
            parts.append(hist / max(len(atoms), 1))
    vec = np.concatenate(parts)
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def deviation_driver(atoms: Atoms) -> str | None:
    """The species of the atom with the largest force deviation (None without per-atom data)."""
    per_atom = atoms.arrays.get("force_dev")
    if per_atom is None or len(atoms) == 0:
        return None
    return atoms.get_chemical_symbols()[int(np.argmax(per_atom))]


def species_deviation(frames: Sequence[Atoms], species: Sequence[str]) -> dict[str, Any]:
    """Per species: frames driven, and the mean and largest of its per-frame peak deviation.

    A frame is driven by the species of its atom with the largest force deviation (eV/A): what a
    frame's max_force_dev hides in a multi-species system is whether one species alone sends
    frames to DFT. Frames without per-atom deviations are skipped.
    """
    peaks: dict[str, list[float]] = {name: [] for name in species}
    driven = dict.fromkeys(species, 0)
    for atoms in frames:
        per_atom = atoms.arrays.get("force_dev")
        if per_atom is None or len(atoms) == 0:
            continue
        symbols = np.asarray(atoms.get_chemical_symbols())
        driven[symbols[int(np.argmax(per_atom))]] += 1
        for name in species:
            mine = symbols == name
            if mine.any():
                peaks[name].append(float(per_atom[mine].max()))
    return {
        name: {
            "frames": len(peaks[name]),
            "frames_driven": driven[name],
            "mean_max_deviation": float(np.mean(peaks[name])) if peaks[name] else None,
            "max_deviation": max(peaks[name], default=None),
        }
        for name in species
    }


@dataclass
class Pick:
    """One selected frame and why it was chosen."""

    index: int
    deviation: float
    distance: float
    reason: str


def diverse_picks(
    descriptors: np.ndarray,
    deviations: np.ndarray,
    groups: Sequence[str],
    steps: Sequence[int],
    max_picks: int,
    min_distance: float,
    min_step_gap: int,
    max_per_group: int | None = None,
) -> list[Pick]:
    """Farthest-point sampling over candidates, starting from the most uncertain one.

    A frame is skipped when it lies within `min_step_gap` MD steps of a pick from the same
    trajectory (`groups`), or when its trajectory already gave `max_per_group` picks; sampling
    stops once the farthest remaining frame is closer than `min_distance` to a pick:
    near-duplicates are never picked twice.
    """
    n = len(deviations)
    if n == 0 or max_picks == 0:
        return []
    first = int(np.argmax(deviations))
    picks = [Pick(first, float(deviations[first]), float("inf"), "highest deviation")]
    nearest = np.linalg.norm(descriptors - descriptors[first], axis=1)
    blocked = np.zeros(n, dtype=bool)
    blocked[first] = True

    taken: Counter[str] = Counter()

    def block_neighbours(k: int) -> None:
        taken[groups[k]] += 1
        full = max_per_group is not None and taken[groups[k]] >= max_per_group
        for m in range(n):
            near = abs(int(steps[m]) - int(steps[k])) < min_step_gap
            if groups[m] == groups[k] and (near or full):
                blocked[m] = True

    block_neighbours(first)
    while len(picks) < max_picks:
        score = np.where(blocked, -1.0, nearest)
        k = int(np.argmax(score))
        if score[k] < min_distance:
            break
        picks.append(
            Pick(
                k, float(deviations[k]), float(score[k]), f"farthest point, distance {score[k]:.3f}"
            )
        )
        blocked[k] = True
        block_neighbours(k)
        nearest = np.minimum(nearest, np.linalg.norm(descriptors - descriptors[k], axis=1))
    return picks


def random_picks(
    descriptors: np.ndarray,
    groups: Sequence[str],
    steps: Sequence[int],
    max_picks: int,
    min_distance: float,
    min_step_gap: int,
    rng: np.random.Generator,
    max_per_group: int | None = None,
) -> list[Pick]:
    """Uniformly random picks in a seeded order, with the same filters as `diverse_picks`."""
    picks: list[Pick] = []
    taken: Counter[str] = Counter()
    for k in rng.permutation(len(groups)):
        if len(picks) >= max_picks:
            break
        k = int(k)
        if max_per_group is not None and taken[groups[k]] >= max_per_group:
            continue
        if any(
            groups[p.index] == groups[k] and abs(int(steps[p.index]) - int(steps[k])) < min_step_gap
            for p in picks
        ):
            continue
        distance = min(
            (float(np.linalg.norm(descriptors[k] - descriptors[p.index])) for p in picks),
            default=float("inf"),
        )
        if distance < min_distance:
            continue
        picks.append(Pick(k, float("nan"), distance, "random"))
        taken[groups[k]] += 1
    return picks


def select_frames(
    trajectories: Mapping[str, Sequence[Atoms]],
    trust: Mapping[str, Mapping[str, float]],
    species: Sequence[str],
    max_frames: int,
    min_step_gap: int,
    min_distance: float,
    strategy: str = "uncertainty",
    seed: int = 0,
    max_volume_ratio: float | None = None,
    max_frames_per_task: int | None = None,
) -> tuple[list[Atoms], dict[str, Any]]:
    """Classify every explored frame and pick frames for DFT; return picks and a report.

    `trajectories` maps a task name to its frames; each frame's `info['system']` selects its
    trust window from `trust` (system name -> {'lo', 'hi'}). The `uncertainty` strategy picks
    diverse candidates of the trust window; `random` picks uniformly among all explored frames
    (any class), with the same filters: the baseline arm of an active-learning comparison.
    A frame swollen past `max_volume_ratio` x its trajectory's start volume per atom counts as
    failed, whatever its deviation, and neither strategy picks it. `max_frames_per_task` caps
    the picks from any one task (trajectory) under both strategies.
    """
    if strategy not in ("uncertainty", "random"):
        raise ValueError(f"select.strategy: unknown {strategy!r}; use uncertainty or random")
    per_task: dict[str, dict[str, int]] = {}
    candidates: list[tuple[str, Atoms]] = []
    pool: list[tuple[str, Atoms]] = []
    all_devs: list[float] = []
    expanded: dict[str, int] = {}
    for task, frames in sorted(trajectories.items()):
        counts = {ACCURATE: 0, CANDIDATE: 0, FAILED: 0}
        swollen = expanded_frames(frames, max_volume_ratio)
        for atoms, too_big in zip(frames, swollen, strict=True):
            window = trust[atoms.info["system"]]
            dev = float(atoms.info["max_force_dev"])
            kind = FAILED if too_big else classify(dev, window["lo"], window["hi"])
            counts[kind] += 1
            all_devs.append(dev)
            if kind == CANDIDATE and not atoms.info.get("excluded"):
                candidates.append((task, atoms))
            if not (atoms.info.get("excluded") or too_big):
                pool.append((task, atoms))
        per_task[task] = counts
        if any(swollen):
            expanded[task] = int(sum(swollen))
    total = {k: sum(c[k] for c in per_task.values()) for k in (ACCURATE, CANDIDATE, FAILED)}
    frames_seen = sum(total.values())
    picks: list[Pick] = []
    source = pool if strategy == "random" else candidates
    if strategy == "random":
        if pool:
            picks = random_picks(
                np.array([structure_descriptor(a, species) for _, a in pool]),
                [t for t, _ in pool],
                [int(a.info.get("step", 0)) for _, a in pool],
                max_frames,
                min_distance,
                min_step_gap,
                np.random.default_rng(seed),
                max_frames_per_task,
            )
            for pick in picks:
                pick.deviation = float(pool[pick.index][1].info["max_force_dev"])
    elif candidates:
        descriptors = np.array([structure_descriptor(a, species) for _, a in candidates])
        picks = diverse_picks(
            descriptors,
            np.array([float(a.info["max_force_dev"]) for _, a in candidates]),
            [t for t, _ in candidates],
            [int(a.info.get("step", 0)) for _, a in candidates],
            max_frames,
            min_distance,
            min_step_gap,
            max_frames_per_task,
        )
    selected = []
    picked_report = []
    for pick in picks:
        task, atoms = source[pick.index]
        frame = atoms.copy()
        frame.info = {
            "system": atoms.info["system"],
            "generator": "explore",
            "origin": f"explore({task}, step={int(atoms.info.get('step', 0))})",
            "task": task,
            "step": int(atoms.info.get("step", 0)),
            "max_force_dev": pick.deviation,
        }
        selected.append(frame)
        picked_report.append(
            {
                "task": task,
                "step": frame.info["step"],
                "deviation": pick.deviation,
                "species": deviation_driver(atoms),
                "why": pick.reason,
            }
        )
    hist_hi = max([2.0 * w["hi"] for w in trust.values()] + [max(all_devs, default=0.0)])
    counts, edges = np.histogram(all_devs, bins=20, range=(0.0, hist_hi))
    report = {
        "frames": frames_seen,
        "counts": total,
        "fractions": {k: (v / frames_seen if frames_seen else 0.0) for k, v in total.items()},
        "per_task": per_task,
        "candidates": len(candidates),
        "expanded": expanded,
        "max_volume_ratio": max_volume_ratio,
        "max_frames_per_task": max_frames_per_task,
        "picked": picked_report,
        "per_species": species_deviation(
            [a for frames in trajectories.values() for a in frames], species
        ),
        "deviation_histogram": {"edges": edges.round(4).tolist(), "counts": counts.tolist()},
    }
    return selected, report


def convergence(report: Mapping[str, Any], converged_accuracy: float) -> tuple[bool, str]:
    """Return (converged, why): enough accurate frames and no failed ones."""
    frames = report["frames"]
    if frames == 0:
        return False, "no frames were explored"
    accurate = report["fractions"][ACCURATE]
    failed = report["counts"][FAILED]
    if accurate >= converged_accuracy and failed == 0:
        return True, f"converged: {accurate:.1%} of {frames} explored frames accurate, none failed"
    return False, (
        f"not converged: {accurate:.1%} accurate (target {converged_accuracy:.0%}), "
        f"{failed} failed of {frames}"
    )


def exclude_frames(
    trajectories: Mapping[str, Sequence[Atoms]],
    test_set: Sequence[Atoms],
    iteration: int,
    min_step_gap: int,
) -> int:
    """Mark explored frames the selection must not pick: test-set frames and their neighbours.

    A test frame drawn from iteration 0's trajectory blocks the frames of that trajectory within
    `min_step_gap` steps of it (in iteration 0 only); a frame equal to a test frame (structure
    hash) is blocked anywhere. Marked frames still count in the accuracy fractions. Returns the
    number of frames marked.
    """
    from potforge.hashing import structure_hash

    hashes = {structure_hash(a) for a in test_set}
    windows: dict[str, list[int]] = {}
    for atoms in test_set:
        if atoms.info.get("source") == "explore" and iteration == 0:
            windows.setdefault(str(atoms.info["task"]), []).append(int(atoms.info["step"]))
    marked = 0
    for task, frames in trajectories.items():
        steps = windows.get(task, [])
        for atoms in frames:
            step = int(atoms.info.get("step", 0))
            near = any(abs(step - s) <= max(min_step_gap, 0) for s in steps)
            if near or structure_hash(atoms) in hashes:
                atoms.info["excluded"] = True
                marked += 1
    return marked
