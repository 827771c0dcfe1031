"""The campaign dataset: every label so far in one ASE database, de-duplicated, split by hash."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import DatasetError, LabelError
from potforge.hashing import SPLITS, hash_fraction, split_of, structure_hash
from potforge.io import atomic_write, write_frames, write_json

# Forces below this (eV/A) on every atom count as zero: such a frame validates no forces.
FORCE_FREE_EV_PER_A = 1e-3
# Frame metadata kept as ASE database key-value pairs (scalars only).
DB_KEYS = (
    "frame_id",
    "structure_hash",
    "iteration",
    "system",
    "generator",
    "origin",
    "params",
    "seed",
    "dft_hash",
    "gpaw_version",
    "wall_s",
    "scf_iterations",
    "ladder_step",
    "dft_ranks",
)


def frame_key(atoms: Atoms) -> str:
    """Return a frame's structure hash (recorded at labelling, computed otherwise)."""
    return atoms.info.get("structure_hash") or structure_hash(atoms)


def deduplicate(frames: Iterable[Atoms]) -> list[Atoms]:
    """Keep the first frame of each structure hash, in (iteration, frame id) order."""
    ordered = sorted(frames, key=lambda a: (a.info.get("iteration", 0), a.info.get("frame_id", "")))
    seen: set[str] = set()
    out = []
    for atoms in ordered:
        key = frame_key(atoms)
        if key not in seen:
            seen.add(key)
            out.append(atoms)
    return out


def force_free(atoms: Atoms) -> bool:
    """True when every force vanishes (by symmetry: a perfect crystal, strained or not)."""
    if atoms.calc is None or "forces" not in atoms.calc.results:
        return False
    return float(np.abs(atoms.calc.results["forces"]).max()) < FORCE_FREE_EV_PER_A


def assign_splits(
    frames: Sequence[Atoms],
    fractions: Mapping[str, float],
    previous: Mapping[str, str] | None = None,
) -> dict[str, list[Atoms]]:
    """Group frames into train/validation/test; a frame never changes split as the data grows.

    A frame seen before keeps the split recorded in `previous` (structure hash -> split). A new
    frame goes where its hash falls, except that a force-free frame always trains (it would make
    force errors look perfect while validating nothing), and while validation or test is empty,
    the new train frame with forces whose hash lies nearest to that split moves there (small
    datasets need both).
    """
    previous = previous or {}
    groups: dict[str, list[Atoms]] = {name: [] for name in SPLITS}
    fresh: list[Atoms] = []
    for atoms in frames:
        key = frame_key(atoms)
        name = previous.get(key) or ("train" if force_free(atoms) else split_of(key, fractions))
        if key not in previous:
            fresh.append(atoms)
        atoms.info["split"] = name
        groups[name].append(atoms)
    for name in ("validation", "test"):
        movable = [a for a in groups["train"] if any(a is f for f in fresh) and not force_free(a)]
        if groups[name] or len(groups["train"]) < 2 or not movable:
            continue
        atoms = max(movable, key=lambda a: hash_fraction(frame_key(a)))
        groups["train"] = [a for a in groups["train"] if a is not atoms]
        atoms.info["split"] = name
        groups[name].append(atoms)
    return groups


def previous_splits(db_path: str | Path | None) -> dict[str, str]:
    """Read the structure hash -> split map of an earlier dataset (empty when there is none)."""
    import sqlite3

    from ase.db import connect

    if db_path is None or not Path(db_path).is_file():
        return {}
    fix = "delete it and rerun: the labels are kept in the DFT store"
    if Path(db_path).stat().st_size == 0:
        raise DatasetError(f"{db_path}: empty file, not an ASE database; {fix}")
    try:
        with connect(db_path) as db:
            return {
                row.structure_hash: row.split
                for row in db.select(quarantined=False)
                if hasattr(row, "split")
            }
    except sqlite3.DatabaseError as exc:
        raise DatasetError(f"{db_path}: not a readable ASE database ({exc}); {fix}") from None


def check_failed_fraction(
    labelled: Sequence[Atoms], quarantined: Sequence[Atoms], iteration: int, limit: float
) -> None:
    """Raise LabelError when too many of one iteration's frames were quarantined."""
    done = sum(1 for a in labelled if a.info.get("iteration") == iteration)
    bad = [a for a in quarantined if a.info.get("iteration") == iteration]
    total = done + len(bad)
    if total and len(bad) / total > limit:
        reasons = Counter(a.info.get("quarantine_reason", "?") for a in bad)
        listed = "; ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
        raise LabelError(
            f"iteration {iteration}: {len(bad)} of {total} frames quarantined "
            f"({len(bad) / total:.0%}), above dft.max_failed_fraction={limit}: {listed}. "
            "Finished labels are kept in the DFT store; fix the protocol (dft.*) or raise the "
            "limit, then rerun."
        )


def _row_metadata(atoms: Atoms) -> dict[str, Any]:
    out = {}
    for key in DB_KEYS:
        value = atoms.info.get(key)
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None:
            out[key] = value
    return out


def write_database(path: str | Path, frames: Sequence[Atoms], quarantined: Sequence[Atoms]) -> Path:
    """Write labelled and quarantined frames into a fresh ASE SQLite database, atomically."""
    from ase.db import connect

    def _write(tmp: Path) -> None:
        db_path = tmp.with_suffix(".db")
        try:
            with connect(db_path, append=False) as db:
                for atoms in frames:
                    kv = _row_metadata(atoms)
                    kv.update(split=atoms.info["split"], quarantined=False)
                    db.write(
                        atoms, key_value_pairs=kv, data={"ladder": atoms.info.get("ladder", "")}
                    )
                for atoms in quarantined:
                    kv = _row_metadata(atoms)
                    kv.update(quarantined=True, reason=str(atoms.info.get("quarantine_reason", "")))
                    bare = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
                    db.write(
                        bare, key_value_pairs=kv, data={"ladder": atoms.info.get("ladder", "")}
                    )
            db_path.replace(tmp)
        finally:
            db_path.unlink(missing_ok=True)

    return atomic_write(path, _write)


def summarize(
    groups: Mapping[str, Sequence[Atoms]], quarantined: Sequence[Atoms]
) -> dict[str, Any]:
    """Return counts per split, origin and species, and energy/force statistics."""
    frames = [a for name in SPLITS for a in groups[name]]
    species: Counter[str] = Counter()
    for atoms in frames:
        species.update(atoms.get_chemical_symbols())
    summary: dict[str, Any] = {
        "frames": len(frames),
        "per_split": {name: len(groups[name]) for name in SPLITS},
        "per_generator": dict(Counter(a.info.get("generator", "?") for a in frames)),
        "per_system": dict(Counter(a.info.get("system", "?") for a in frames)),
        "per_iteration": dict(Counter(str(a.info.get("iteration", 0)) for a in frames)),
        "atoms_per_species": dict(species),
        "quarantined": len(quarantined),
        "quarantine_reasons": dict(
            Counter(a.info.get("quarantine_reason", "?") for a in quarantined)
        ),
        "dft_core_seconds": round(
            sum(a.info.get("wall_s", 0.0) * a.info.get("dft_ranks", 1) for a in frames), 1
        ),
    }
    if frames:
        e = np.array([a.get_potential_energy() / len(a) for a in frames])
        f = np.concatenate([np.linalg.norm(a.get_forces(), axis=1) for a in frames])
        summary["energy_per_atom_eV"] = {
            "mean": e.mean(),
            "std": e.std(),
            "min": e.min(),
            "max": e.max(),
        }
        summary["force_norm_eV_per_A"] = {
            "mean": f.mean(),
            "rms": np.sqrt((f**2).mean()),
            "max": f.max(),
        }
    return json.loads(json.dumps(summary, default=float))


def build_dataset(
    labelled: Sequence[Atoms],
    quarantined: Sequence[Atoms],
    fractions: Mapping[str, float],
    out_dir: str | Path,
    previous: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write ase.db, one extxyz per split and summary.json into `out_dir`; return the summary."""
    out_dir = Path(out_dir)
    frames = deduplicate(labelled)
    if not frames:
        raise DatasetError(
            "no labelled frames: every frame so far was quarantined or none was given"
        )
    bad = deduplicate(quarantined)
    groups = assign_splits(frames, fractions, previous)
    if not groups["train"]:
        raise DatasetError(f"the train split is empty ({len(frames)} frames); label more frames")
    write_database(out_dir / "ase.db", frames, bad)
    for name in SPLITS:
        write_frames(out_dir / f"{name}.extxyz", groups[name])
    summary = summarize(groups, bad)
    write_json(out_dir / "summary.json", summary)
    return summary
