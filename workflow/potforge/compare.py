"""Campaigns side by side: learning curves of several arms on one shared independent test set.

The shared set is the union (by structure hash) of the arms' labelled test sets, so every arm's
committee of every iteration is measured on the same frames; nothing is labelled again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.hashing import structure_hash
from potforge.io import read_frames, read_json

SHARED_FOLDERS = ("dft_store", "validation", "lammps", "model_cache")


def derive_arm(source: str | Path, target: str | Path) -> Path:
    """Start a new arm from a campaign's iteration 0: same labels, committee, MD and test set.

    The copy keeps iteration 0 up to its exploration and what every iteration shares (the DFT
    store, the validation folder with the independent test set, the LAMMPS plugin, the model
    cache); iteration 0's selection is left out, so the arm's own choices start there. Run the
    arm with `--rerun-triggers mtime` so that the copied files count as up to date.
    """
    source, target = Path(source), Path(target)
    if not (source / "iter_000" / "train" / "committee.json").is_file():
        raise FileNotFoundError(f"{source}: no iteration-0 committee to start an arm from")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in SHARED_FOLDERS:
        if (source / name).exists():
            shutil.copytree(source / name, target / name, symlinks=True)
    shutil.copytree(source / "iter_000", target / "iter_000", symlinks=True)
    for later in ("select", "validate"):
        shutil.rmtree(target / "iter_000" / later, ignore_errors=True)
    return target


def shared_test_set(campaign_dirs: Sequence[str | Path]) -> list[Atoms]:
    """Return the union of the campaigns' labelled test-set frames (each frame once)."""
    seen: dict[str, Atoms] = {}
    for campaign in map(Path, campaign_dirs):
        for path in sorted((campaign / "validation" / "labels").glob("chunk_*[0-9].extxyz")):
            for atoms in read_frames(path):
                seen.setdefault(structure_hash(atoms), atoms)
    return [seen[k] for k in sorted(seen)]


def arm_curve(
    campaign_dir: str | Path, frames: Sequence[Atoms], log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Return per iteration: DFT frames, DFT core-seconds, test-set force and energy RMSE."""
    from potforge.train.accuracy import error_metrics
    from potforge.train.committee import load_committee, score_frames
    from potforge.train.models import Predictions

    rows = []
    for it_dir in sorted(Path(campaign_dir).glob("iter_[0-9][0-9][0-9]")):
        summary = it_dir / "dataset" / "summary.json"
        packages = sorted(it_dir.glob("train/member_*/model.nequip.zip"))
        if not summary.is_file() or not packages:
            continue
        dataset = read_json(summary)
        scores = score_frames(load_committee(packages), frames)
        metrics = error_metrics(frames, Predictions(scores.mean_energies(), scores.mean_forces()))
        rows.append(
            {
                "iteration": int(it_dir.name[5:]),
                "dft_frames": int(dataset["frames"]) + int(dataset.get("quarantined") or 0),
                "dft_core_seconds": float(dataset.get("dft_core_seconds") or 0.0),
                "force_rmse_ev_per_a": metrics["force_rmse_ev_per_a"],
                "energy_rmse_mev_per_atom": metrics["energy_rmse_mev_per_atom"],
            }
        )
        log(f"[compare] {campaign_dir} iteration {rows[-1]['iteration']}: {rows[-1]}")
    return rows


def cost_to_reach(
    curve: Sequence[dict[str, Any]], target: float, cost_key: str = "dft_frames"
) -> float | None:
    """Interpolate the cost at which a curve's force RMSE first reaches `target` (None: never)."""
    costs = [float(r[cost_key]) for r in curve]
    errors = [float(r["force_rmse_ev_per_a"]) for r in curve]
    for k, error in enumerate(errors):
        if error <= target:
            if k == 0:
                return costs[0]
            e0, e1, c0, c1 = errors[k - 1], error, costs[k - 1], costs[k]
            return c0 + (c1 - c0) * (e0 - target) / (e0 - e1) if e0 != e1 else c1
    return None


def efficiency(
    active: Sequence[dict[str, Any]], random: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Frames (and core-seconds) the active arm needed to reach the random arm's final error."""
    target = float(random[-1]["force_rmse_ev_per_a"])
    out: dict[str, Any] = {"target_force_rmse_ev_per_a": target}
    for key, name in (("dft_frames", "frames_ratio"), ("dft_core_seconds", "core_seconds_ratio")):
        reached = cost_to_reach(active, target, key)
        out[name] = None if reached is None else reached / float(random[-1][key])
    out["never_reached"] = out["frames_ratio"] is None
    return out


def efficiency_against(
    arms: dict[str, list[dict[str, Any]]], baseline: str
) -> dict[str, dict[str, Any]]:
    """`efficiency` of every other arm against the arm named `baseline`."""
    if baseline not in arms:
        raise KeyError(f"baseline arm {baseline!r} is not one of {sorted(arms)}")
    return {n: efficiency(c, arms[baseline]) for n, c in arms.items() if n != baseline and c}


def learning_curve_png(arms: dict[str, list[dict[str, Any]]]) -> bytes:
    """Plot force RMSE against DFT frames and DFT core-hours for every arm (PNG bytes)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    for ax, key, label in zip(
        fig.subplots(1, 2),
        ("dft_frames", "dft_core_seconds"),
        ("DFT frames", "DFT core-hours"),
        strict=True,
    ):
        for name, rows in arms.items():
            x = np.array([r[key] for r in rows], float) / (
                3600.0 if key == "dft_core_seconds" else 1
            )
            ax.plot(x, [r["force_rmse_ev_per_a"] for r in rows], "o-", label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("force RMSE on the shared test set (eV/A)")
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
