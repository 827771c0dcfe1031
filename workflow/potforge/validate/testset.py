"""The independent test set: frames the selection did not choose, drawn once and frozen.

Frames come at random (never by committee deviation) from the first exploration, spread over
its tasks (every temperature and pressure of the plan), from fresh draws of the sampling
generators, and from structure files named in the configuration. They are labelled through the
DFT stage and store like any other frame, and never trained on: the selection excludes them and
the frames next to them in their trajectory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from potforge.hashing import structure_hash

GENERATOR = "test_set"
SAMPLE_SEED_OFFSET = 7919  # fresh generator draws: another seed than the training sample's


def _tagged(atoms: Atoms, origin: str, source: str, **info: Any) -> Atoms:
    frame = Atoms(atoms.get_chemical_symbols(), atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update(
        system=atoms.info.get("system", "?"),
        generator=GENERATOR,
        source=source,
        origin=origin,
        **info,
    )
    return frame


def trusted_end(frames: Sequence[Atoms], trust_hi: float) -> int:
    """Return the index after a trajectory's last frame with committee deviation <= trust_hi."""
    end = len(frames)
    while end > 0 and float(frames[end - 1].info.get("max_force_dev", 0.0)) > trust_hi:
        end -= 1
    return end


def draw_from_exploration(
    trajectories: Mapping[str, Sequence[Atoms]],
    count: int,
    rng: np.random.Generator,
    trust_hi: Mapping[str, float] | None = None,
) -> list[Atoms]:
    """Draw `count` frames uniformly at random, round-robin over tasks (step 0 excluded).

    With `trust_hi` (per system, the task name's first part), a trajectory's tail past the
    trust window is left out: the frames after its last one whose committee deviation is within
    trust.hi, when it ended outside (it halted). Such a run had left physical space: the
    iteration-0 committee once drove an 8-atom cell to 1.3 A contacts and 72 eV/A DFT forces
    before its guard fired. The draw among the rest stays uniform, never by deviation.
    """
    pools = {}
    for task, frames in sorted(trajectories.items()):
        hi = (trust_hi or {}).get(task.split("/", 1)[0], float("inf"))
        end = trusted_end(frames, hi)
        usable = [a for a in frames[:end] if int(a.info.get("step", 0)) > 0]
        pools[task] = [usable[k] for k in rng.permutation(len(usable))]
    picked: list[Atoms] = []
    while len(picked) < count and any(pools.values()):
        for task in sorted(pools):
            if pools[task] and len(picked) < count:
                atoms = pools[task].pop()
                step = int(atoms.info.get("step", 0))
                picked.append(
                    _tagged(
                        atoms, f"explore:{task.split('/', 1)[-1]}", "explore", task=task, step=step
                    )
                )
    return picked


def draw_from_generators(
    fresh: Sequence[Atoms], training: Sequence[Atoms], count: int, rng: np.random.Generator
) -> list[Atoms]:
    """Draw `count` of the fresh generator structures whose hash no training structure has."""
    seen = {structure_hash(a) for a in training}
    new = [a for a in fresh if structure_hash(a) not in seen]
    order = rng.permutation(len(new))[:count]
    return [
        _tagged(new[k], f"sample:{new[k].info.get('generator', '?')}", "sample")
        for k in sorted(order)
    ]


def named_structures(files: Mapping[str, Sequence[Atoms]], default_system: str) -> list[Atoms]:
    """Tag every frame of the structure files named in the configuration (file name -> frames).

    A frame keeps the `system` it carries (else `default_system`) and, as `file:<origin>`, the
    origin it carries: a test set written by an earlier run, given here, is reported by the same
    groups as there, so that two runs are measured on the same frames.
    """
    out = []
    for name, frames in files.items():
        for atoms in frames:
            origin = atoms.info.get("origin", name)
            frame = _tagged(atoms, f"file:{origin}", "file")
            frame.info["system"] = atoms.info.get("system", default_system)
            out.append(frame)
    return out


def frames_in_test_set(settings: Mapping[str, Any], systems: int) -> int:
    """Return how many frames the test set of `settings` (validate.test_set) holds."""
    from potforge.structures import read_structure_frames

    files = sum(len(read_structure_frames(path)) for path in settings["structures"])
    return settings["explore_frames"] + settings["sample_frames"] * systems + files


def excluded_steps(test_set: Sequence[Atoms], gap: int) -> dict[str, list[tuple[int, int]]]:
    """Return, per exploration task, the step ranges the selection must not pick from."""
    out: dict[str, list[tuple[int, int]]] = {}
    for atoms in test_set:
        if atoms.info.get("source") == "explore":
            step = int(atoms.info["step"])
            out.setdefault(str(atoms.info["task"]), []).append((step - gap, step + gap))
    return out


def origin_category(atoms: Atoms) -> str:
    """Return the reporting group of a test frame (its origin, e.g. 'explore:001-nvt-T1200')."""
    return str(atoms.info.get("origin", "?"))
