"""Load a trained model (checkpoint, package or compiled .pt2) and evaluate it on ASE frames.

Compiled AOTInductor models do not check input dtypes and silently return garbage for float32
inputs, so every call goes through `Potential.__call__`, which insists on float64 positions,
cells and shifts. Many frames are evaluated in one call by merging them into one disjoint graph:
the cell is set to the identity and each edge carries its Cartesian periodic shift, which leaves
energies and forces of a strictly local model unchanged (stresses need the real cell, one frame
per call).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from potforge.errors import ModelError

COMPILED_SUFFIX = ".nequip.pt2"
PACKAGE_SUFFIX = ".nequip.zip"
CHECKPOINT_SUFFIX = ".ckpt"
FLOAT_INPUTS = ("pos", "cell", "edge_cell_shift")
DEFAULT_ATOMS_PER_CALL = 4096


def model_kind(path: str | Path) -> str:
    """Return 'compiled', 'package' or 'checkpoint' from a model file's name."""
    name = Path(path).name
    if name.endswith(COMPILED_SUFFIX) or name.endswith(".pt2"):
        return "compiled"
    if name.endswith(PACKAGE_SUFFIX):
        return "package"
    if name.endswith(CHECKPOINT_SUFFIX):
        return "checkpoint"
    raise ModelError(
        f"{path}: unknown model file type; expected *{COMPILED_SUFFIX}, *{PACKAGE_SUFFIX} or "
        f"*{CHECKPOINT_SUFFIX}"
    )


@dataclass
class Potential:
    """A loaded NequIP model: a dict-in, dict-out callable with its type names and cutoff."""

    path: Path
    kind: str
    type_names: list[str]
    r_max: float
    module: Any = field(repr=False)
    device: str = "cpu"

    def __call__(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Evaluate the model on one graph, refusing inputs of the wrong dtype."""
        for key in FLOAT_INPUTS:
            if data[key].dtype != torch.float64:
                raise ModelError(
                    f"{self.path}: input '{key}' is {data[key].dtype}, the model needs float64 "
                    "(compiled models return garbage otherwise); build inputs with graph_of_frames"
                )
        for key in ("edge_index", "atom_types"):
            if data[key].dtype != torch.int64:
                raise ModelError(f"{self.path}: input '{key}' is {data[key].dtype}, needs int64")
        data = {k: v.to(self.device) for k, v in data.items()}
        if self.kind == "compiled":
            with torch.inference_mode():
                out = self.module(data)
        else:
            out = self.module(data)
        return {k: v.detach().cpu() for k, v in out.items() if isinstance(v, torch.Tensor)}

    def check_species(self, frames: Sequence[Atoms]) -> None:
        """Raise ModelError when the frames hold an element the model has no type for."""
        found = {s for a in frames for s in a.get_chemical_symbols()}
        missing = sorted(found - set(self.type_names))
        if missing:
            raise ModelError(
                f"{self.path}: the model's type names {self.type_names} do not cover the frames' "
                f"species {missing}; train the committee with every element of the campaign"
            )


def load_model(path: str | Path, device: str = "cpu") -> Potential:
    """Load a .nequip.pt2, .nequip.zip or .ckpt model; raise ModelError if it is unusable."""
    path = Path(path)
    kind = model_kind(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file; train or deploy the member first")
    try:
        if kind == "compiled":
            return _load_compiled(path, device)
        return _load_eager(path, kind, device)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure means an unusable file
        cause = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        raise ModelError(
            f"{path}: cannot load the {kind} model ({cause}); the file is corrupt or from an "
            "incompatible version: retrain the member or rebuild it with `potforge deploy`"
        ) from exc


def _load_compiled(path: Path, device: str) -> Potential:
    import warnings

    from nequip.model.inference_models.aotinductor import load_aotinductor_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module, metadata = load_aotinductor_model(str(path), device)
    outputs = metadata.get("nequip_aoti_outputs", "")
    if "forces" not in outputs or "atomic_energy" not in outputs:
        raise ModelError(f"{path}: compiled model has no forces/atomic_energy outputs ({outputs})")
    return Potential(
        path, "compiled", list(metadata["type_names"]), float(metadata["r_max"]), module, device
    )


def _load_eager(path: Path, kind: str, device: str) -> Potential:
    import warnings

    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.utils.global_state import set_global_state

    default_dtype = torch.get_default_dtype()
    try:
        set_global_state()  # NequIP builds models only after this; it makes float64 the default
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = load_saved_model(str(path))
    finally:
        torch.set_default_dtype(default_dtype)
        forget_nequip_global_state()
    module = module.to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    type_names = list(module.type_names)
    r_max = float(module.metadata["r_max"]) if hasattr(module, "metadata") else _r_max_of(module)
    return Potential(path, kind, type_names, r_max, module, device)


def forget_nequip_global_state() -> None:
    """Let NequIP set its global state again when it next needs it.

    NequIP sets its state (float64 default dtype among it) once per process; with the dtype put
    back here, a later NequIP user in the same process (its ASE calculator) would find the state
    marked as set while the dtype is not, and feed float32 to compiled models (NaN energies).
    """
    from nequip.utils import global_state

    if hasattr(global_state, "_GLOBAL_STATE_INITIALIZED"):
        global_state._GLOBAL_STATE_INITIALIZED = False


def _r_max_of(module: Any) -> float:
    for name in ("r_max",):
        if hasattr(module, name):
            return float(getattr(module, name))
    raise ModelError("model exposes no r_max")


def _neighbours(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return i, j and integer cell shifts S of all ordered pairs closer than r_max."""
    if atoms.pbc.all():
        from matscipy.neighbours import neighbour_list

        i, j, shifts = neighbour_list("ijS", atoms, float(r_max))
    else:
        from ase.neighborlist import neighbor_list

        i, j, shifts = neighbor_list("ijS", atoms, float(r_max))
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.float64)


def graph_of_frames(
    frames: Sequence[Atoms], type_names: Sequence[str], r_max: float, merged: bool = True
) -> dict[str, torch.Tensor]:
    """Build float64/int64 model inputs; `merged` joins several frames with an identity cell."""
    if not merged and len(frames) != 1:
        raise ValueError("an unmerged graph holds exactly one frame")
    index = {name: k for k, name in enumerate(type_names)}
    pos, types, edges, shifts = [], [], [], []
    offset = 0
    for atoms in frames:
        i, j, s = _neighbours(atoms, r_max)
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        pos.append(np.asarray(atoms.positions, dtype=np.float64))
        types.append(np.array([index[s_] for s_ in atoms.get_chemical_symbols()], dtype=np.int64))
        edges.append(np.stack([i + offset, j + offset]))
        shifts.append(s @ cell if merged else s)
        offset += len(atoms)
    cell = np.eye(3) if merged else np.asarray(frames[0].cell.array, dtype=np.float64)
    return {
        "pos": torch.from_numpy(np.concatenate(pos)),
        "edge_index": torch.from_numpy(np.concatenate(edges, axis=1)),
        "atom_types": torch.from_numpy(np.concatenate(types)),
        "cell": torch.from_numpy(np.ascontiguousarray(cell, dtype=np.float64)).reshape(1, 3, 3),
        "edge_cell_shift": torch.from_numpy(np.concatenate(shifts).astype(np.float64)),
    }


def frame_chunks(frames: Sequence[Atoms], max_atoms: int) -> Iterator[list[int]]:
    """Yield lists of frame indices holding at most max_atoms atoms each (one frame at least)."""
    chunk: list[int] = []
    atoms_in_chunk = 0
    for k, atoms in enumerate(frames):
        if chunk and atoms_in_chunk + len(atoms) > max_atoms:
            yield chunk
            chunk, atoms_in_chunk = [], 0
        chunk.append(k)
        atoms_in_chunk += len(atoms)
    if chunk:
        yield chunk


@dataclass
class Predictions:
    """Energies (eV), forces (eV/A) and optionally stresses (eV/A^3, ASE sign) of frames."""

    energies: np.ndarray
    forces: list[np.ndarray]
    stresses: np.ndarray | None = None


def predict(
    potential: Potential,
    frames: Sequence[Atoms],
    stress: bool = False,
    max_atoms_per_call: int = DEFAULT_ATOMS_PER_CALL,
) -> Predictions:
    """Predict energies and forces (merged calls), and stresses when asked (one frame per call)."""
    potential.check_species(frames)
    energies = np.empty(len(frames))
    forces: list[np.ndarray] = [np.empty((0, 3))] * len(frames)
    stresses = np.empty((len(frames), 3, 3)) if stress else None
    groups = (
        [[k] for k in range(len(frames))] if stress else frame_chunks(frames, max_atoms_per_call)
    )
    for group in groups:
        chunk = [frames[k] for k in group]
        data = graph_of_frames(chunk, potential.type_names, potential.r_max, merged=not stress)
        out = potential(data)
        chunk_energies, chunk_forces = split_outputs(potential, out, [len(a) for a in chunk])
        for k, energy, frame_forces in zip(group, chunk_energies, chunk_forces, strict=True):
            energies[k] = energy
            forces[k] = frame_forces
        if stresses is not None:
            stresses[group[0]] = _stress_of(out, potential, chunk[0])
    return Predictions(energies, forces, stresses)


def split_outputs(
    potential: Potential, out: Mapping[str, torch.Tensor], sizes: Sequence[int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Split a merged graph's outputs into per-frame energies (summed atomic energies), forces."""
    atomic = out["atomic_energy"].reshape(-1).numpy().astype(np.float64)
    f_all = out["forces"].numpy().astype(np.float64)
    if not (np.isfinite(atomic).all() and np.isfinite(f_all).all()):
        raise ModelError(
            f"{potential.path}: non-finite energies or forces; check the model file and that "
            "inputs are float64"
        )
    bounds = np.cumsum([0, *sizes])
    energies = np.add.reduceat(atomic, bounds[:-1]) if len(sizes) else np.empty(0)
    forces = [f_all[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return energies, forces


def _stress_of(out: Mapping[str, torch.Tensor], potential: Potential, atoms: Atoms) -> np.ndarray:
    if "stress" in out:
        return out["stress"].reshape(3, 3).numpy().astype(np.float64)
    if "virial" in out:
        return -out["virial"].reshape(3, 3).numpy().astype(np.float64) / atoms.get_volume()
    raise ModelError(
        f"{potential.path}: the model gives no stress; use an ase-target or eager model"
    )
