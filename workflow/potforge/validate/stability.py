"""MD stability of a committee: NVT at the plan's temperatures on a larger cell, NVE drift, RDF."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.units import kB

from potforge.io import read_frames


def plan_temperatures(system: Mapping[str, Any]) -> list[float]:
    """Return every temperature of a system's exploration plan, sorted."""
    return sorted({float(t) for task in system["explore"]["tasks"] for t in task["temperatures"]})


def total_energy_drift(frames: Sequence[Atoms], natoms: int) -> float | None:
    """Return the NVE total-energy drift in meV/atom/ps from the dumped frames (linear fit)."""
    if len(frames) < 3:
        return None
    dof = 3 * natoms - 3
    t_ps = np.array([a.info["time_fs"] for a in frames]) / 1000.0
    e = np.array([a.info["model_energy"] + 0.5 * dof * kB * a.info["temperature"] for a in frames])
    slope = np.polyfit(t_ps, e, 1)[0]
    return float(1000.0 * slope / natoms)


def md_stability(
    structure: Atoms,
    models: Sequence[str | Path],
    species: Sequence[str],
    system: Mapping[str, Any],
    settings: Mapping[str, Any],
    out_dir: str | Path,
    plugin: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run NVT at every plan temperature (and one NVE) on `settings['supercell']` copies.

    The guards are the exploration's (halt_factor x trust.hi and the distance guard); a run
    that survives every step passes. The RDF of the hottest NVT run is returned.
    """
    from potforge.md.explore import explore
    from potforge.validate.stage import rdf

    out_dir = Path(out_dir)
    explore_cfg = system["explore"]
    shared = {
        "supercell": list(settings["supercell"]),
        "timestep_fs": explore_cfg["timestep_fs"],
        "dump_every": settings["dump_every"],
        "halt_factor": explore_cfg["halt_factor"],
        "min_distance_fraction": system["min_distance_fraction"],
    }
    trust_hi = system["trust"]["hi"]
    runs = []
    temperatures = plan_temperatures(system)
    for k, temp in enumerate(temperatures):
        task = {**shared, "ensemble": "nvt", "temperature": temp, "steps": settings["steps"]}
        task["seed"] = 101 + k
        log(f"[validate] MD stability: NVT {temp:g} K, {settings['steps']} steps")
        summary = explore(
            structure, models, species, task, trust_hi, out_dir / f"nvt-T{temp:g}", plugin
        )
        runs.append(_run_row(summary, temp, "nvt"))
    hottest = out_dir / f"nvt-T{temperatures[-1]:g}" / "trajectory.extxyz"
    frames = read_frames(hottest) if hottest.is_file() else []
    result: dict[str, Any] = {
        "runs": runs,
        "rdf_hottest": {"temperature": temperatures[-1], **rdf(frames[len(frames) // 4 :])},
    }
    if settings["nve_steps"]:
        temp = temperatures[0]
        task = {
            **shared,
            "ensemble": "nve",
            "temperature": temp,
            "steps": settings["nve_steps"],
            "seed": 99,
        }
        log(f"[validate] MD stability: NVE from {temp:g} K, {settings['nve_steps']} steps")
        summary = explore(structure, models, species, task, trust_hi, out_dir / "nve", plugin)
        row = _run_row(summary, temp, "nve")
        nve_frames = read_frames(out_dir / "nve" / "trajectory.extxyz")
        row["energy_drift_mev_per_atom_per_ps"] = total_energy_drift(nve_frames, summary["natoms"])
        runs.append(row)
    result["all_survived"] = all(r["survived"] for r in runs)
    return result


def _run_row(summary: Mapping[str, Any], temperature: float, ensemble: str) -> dict[str, Any]:
    return {
        "ensemble": ensemble,
        "temperature": temperature,
        "natoms": summary["natoms"],
        "steps_requested": summary["steps_requested"],
        "steps_done": summary["steps_done"],
        "survived": not summary["halted"],
        "halt_reason": summary["halt_reason"],
        "message": summary["message"],
        "max_force_dev": summary["max_force_dev"],
    }
