"""Atomic file writes and structure-file helpers: a killed job never leaves half a file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from potforge.errors import DiskFullError
from potforge.hashing import readable_digest, structure_hash


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    tmp = str(path.with_name(f".{path.name}.unborn.tmp"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            existing = next(p for p in (path.parent, *path.parents) if p.exists())
            free = shutil.disk_usage(existing).free
            raise DiskFullError(
                f"{path}: no space left on the device ({free} bytes free); nothing was written "
                "(an earlier version of the file, if any, is unchanged): free space or move the "
                "results folder, then rerun"
            ) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically, indented and with sorted keys."""

    def _write(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")

    return atomic_write(path, _write)


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_frames(path: str | Path, frames: Sequence[Atoms]) -> Path:
    """Write frames as extended XYZ atomically (an empty list gives an empty file)."""
    from ase.io import write

    def _write(tmp: Path) -> None:
        if frames:
            write(tmp, list(frames), format="extxyz")
        else:
            tmp.write_text("")

    return atomic_write(path, _write)


def read_frames(path: str | Path) -> list[Atoms]:
    """Read every frame of an extended XYZ file (an empty file gives an empty list)."""
    from ase.io import read

    from potforge.errors import StructureError

    path = Path(path)
    if path.stat().st_size == 0:
        return []
    try:
        frames = list(read(path, index=":", format="extxyz"))
    except (OSError, ValueError, RuntimeError, AttributeError, IndexError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StructureError(
            f"{path}: cannot read extended XYZ ({type(exc).__name__}: {first}); the file is "
            "truncated or corrupt: delete it and rerun the step that writes it"
        ) from None
    for atoms in frames:
        restore_hashes(atoms)
    return frames


def restore_hashes(atoms: Atoms) -> Atoms:
    """Give back, as strings, the hashes that extended XYZ parsed as numbers.

    ASE reads `structure_hash=0135566688143342` as an integer (leading zero lost) and
    `0123456789e12345` as a float, quoted or not; one such label stopped a campaign's dataset
    step. New hashes never look like numbers (hashing.readable_digest); older labels get theirs
    back from `frame_id` (`<structure>-<protocol>`, never a number), in the readable form.
    """
    fid = atoms.info.get("frame_id")
    parts = fid.split("-", 1) if isinstance(fid, str) and "-" in fid else None
    for index, key in enumerate(("structure_hash", "dft_hash")):
        value = atoms.info.get(key)
        if value is None or isinstance(value, str):
            continue
        if parts is not None:
            atoms.info[key] = readable_digest(parts[index])
        elif key == "structure_hash":
            atoms.info[key] = structure_hash(atoms)
        else:
            del atoms.info[key]  # no frame_id to take it from
    return atoms


def read_trajectories(paths: Sequence[str | Path]) -> dict[str, list[Atoms]]:
    """Read explore/<system>/<task>/trajectory.extxyz files as {'system/task': frames}.

    Every frame's `info['system']` is set from its path.
    """
    trajectories = {}
    for path in map(Path, paths):
        system, task = path.parent.parent.name, path.parent.name
        frames = read_frames(path)
        for atoms in frames:
            atoms.info["system"] = system
        trajectories[f"{system}/{task}"] = frames
    return trajectories


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
