"""Shared fixtures: tiny but real GPAW datasets, made once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from ase.build import bulk

REPO = Path(__file__).resolve().parents[1]
VENV_LIB = Path(sys.prefix) / "lib"
os.environ.setdefault("OMP_NUM_THREADS", "1")
if str(VENV_LIB) not in os.environ.get("LD_LIBRARY_PATH", ""):
    os.environ["LD_LIBRARY_PATH"] = f"{VENV_LIB}:{os.environ.get('LD_LIBRARY_PATH', '')}"

# A cheap but real protocol: 2-atom cells label in about 2 s each on one core.
TINY_DFT = {"ecut": 200, "kpt_density": 1.5, "frame_timeout_s": 300}


def workflow_copy(dest: Path) -> Path:
    """Copy what a Snakemake run needs (no results) into `dest`, for isolated end-to-end runs."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "profiles", "envs", "tests/data"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def tiny_config(**overrides):
    """Return a validated configuration for a tiny silicon campaign."""
    from potforge.config import validate_config

    raw = {
        "campaign": "tiny",
        "systems": {"si": {"structure": {"prototype": "diamond"}}},
        "dft": dict(TINY_DFT),
    }
    raw.update(overrides)
    return validate_config(raw)


def _label(frames, dft_overrides, store):
    from potforge.dft.label import label_frames

    dft = tiny_config(dft={**TINY_DFT, **dft_overrides})["dft"]
    report = label_frames(frames, dft, store, log=lambda _: None)
    assert not report.quarantined
    return report.labelled


def _perturbed(base, n, seed, amplitude=0.08):
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = base.copy()
        strain = 1.0 + rng.uniform(-0.03, 0.03)
        atoms.set_cell(atoms.cell.array * strain, scale_atoms=True)
        atoms.positions += rng.normal(0, amplitude, atoms.positions.shape)
        atoms.info.update(system=base.get_chemical_formula(), generator="test", origin=f"test{k}")
        frames.append(atoms)
    return frames


@pytest.fixture(scope="session")
def si_frames(tmp_path_factory):
    """Twenty real GPAW-labelled 2-atom Si cells (strained and rattled)."""
    store = tmp_path_factory.mktemp("si_store")
    return _label(_perturbed(bulk("Si", "diamond", a=5.47), 20, seed=1), {}, store)


@pytest.fixture(scope="session")
def hfo_frames(tmp_path_factory):
    """Ten real GPAW-labelled 2-atom rocksalt HfO cells: the cheap two-species case."""
    store = tmp_path_factory.mktemp("hfo_store")
    base = bulk("HfO", "rocksalt", a=4.6)
    return _label(_perturbed(base, 10, seed=2, amplitude=0.05), {"ecut": 250}, store)


TINY_CAMPAIGN = ["--configfile", "tests/data/tiny.yaml"]


def run_snakemake(work: Path, *args: str, config: str = "tests/data/tiny.yaml", check: bool = True):
    """Run snakemake on a campaign (the tiny one by default) in `work`; show its end on failure."""
    import subprocess

    proc = subprocess.run(
        ["snakemake", "--configfile", config, *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="session")
def tiny_campaign(tmp_path_factory):
    """The tiny campaign (tests/data/tiny.yaml) run to the end on this machine: 2 iterations."""
    work = workflow_copy(tmp_path_factory.mktemp("campaign"))
    run_snakemake(work, "-c2")
    return work
