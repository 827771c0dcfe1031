"""Write the example graph `nequip-compile --data-path` traces with: a frame of realistic size.

Tracing on the 2-atom cells of a tiny dataset fails in NequIP's shape check ("fx'ed models for
different input shapes do not agree"), so the example is a training frame repeated to at least
`min_atoms` atoms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from potforge.errors import TrainingError

INPUT_KEYS = ("pos", "edge_index", "atom_types", "cell", "edge_cell_shift", "pbc")


class _DataHolder(torch.nn.Module):
    def __init__(self, data: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for key, value in data.items():
            self.register_buffer(key, value)

    def forward(self) -> int:
        return 0


def representative_frame(frame: Atoms, min_atoms: int = 24) -> Atoms:
    """Repeat a periodic frame along its shortest axes until it has at least `min_atoms` atoms."""
    atoms = frame.copy()
    atoms.calc = None
    while len(atoms) < min_atoms:
        lengths = atoms.cell.lengths()
        reps = [1, 1, 1]
        reps[int(np.argmin(lengths))] = 2
        atoms = atoms.repeat(reps)
    return atoms


def write_compile_data(
    frame: Atoms, type_names: Sequence[str], r_max: float, path: str | Path
) -> Path:
    """Write a TorchScript file holding the batched NequIP graph of one frame, for --data-path."""
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data._nl import compute_neighborlist_

    atoms = representative_frame(frame)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(type_names))
    if missing:
        raise TrainingError(
            f"compile example frame has species {missing} outside {list(type_names)}"
        )
    from nequip.utils.dtype import torch_default_dtype

    with torch_default_dtype(torch.float64):  # NequIP data are float64 whatever the model dtype
        data = from_ase(atoms)
    index = {name: k for k, name in enumerate(type_names)}
    data["atom_types"] = torch.tensor(
        [index[s] for s in atoms.get_chemical_symbols()], dtype=torch.int64
    )
    data = compute_neighborlist_(data, float(r_max))
    data = AtomicDataDict.batched_from_list([data])
    kept = {k: v for k, v in data.items() if k in INPUT_KEYS}
    kept[AtomicDataDict.BATCH_KEY] = data[AtomicDataDict.BATCH_KEY]
    kept[AtomicDataDict.NUM_NODES_KEY] = data[AtomicDataDict.NUM_NODES_KEY]
    for key in ("pos", "cell", "edge_cell_shift"):
        kept[key] = kept[key].to(torch.float64)
    path = Path(path)
    torch.jit.save(torch.jit.script(_DataHolder(kept)), str(path))
    return path
