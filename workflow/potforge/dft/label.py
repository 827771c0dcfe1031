"""Label frames with GPAW through the failure ladder, one worker process per attempt.

Every finished frame goes into a content-addressed store as soon as it is done
(`<store>/<structure hash>-<protocol hash>.extxyz`, or `.failed.extxyz` when quarantined), written
atomically, so a killed job loses at most the frame in flight and a rerun computes only the rest.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from potforge.dft.protocol import attempts, gpaw_parameters, protocol_hash
from potforge.dft.worker import EXIT_UNCONVERGED
from potforge.hashing import structure_hash
from potforge.io import read_frames, write_frames
from potforge.pmi import drop_stale_pmi


@dataclass
class LabelReport:
    """What one labelling call did: frames labelled, reused from the store, and quarantined."""

    labelled: list[Atoms] = field(default_factory=list)
    quarantined: list[Atoms] = field(default_factory=list)
    computed: int = 0
    reused: int = 0

    def summary(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary of the report."""
        return {
            "labelled": len(self.labelled),
            "quarantined": len(self.quarantined),
            "computed": self.computed,
            "reused": self.reused,
            "quarantine_reasons": {
                a.info["frame_id"]: a.info["quarantine_reason"] for a in self.quarantined
            },
        }


def frame_id(atoms: Atoms, dft: Mapping[str, Any]) -> str:
    """Return the store key of a frame under a DFT protocol."""
    return f"{structure_hash(atoms)}-{protocol_hash(dft)}"


def worker_environment(ranks: int) -> dict[str, str]:
    """Return the environment of a worker: one thread per rank, the venv's MPI libraries."""
    env = dict(os.environ)
    drop_stale_pmi(env)  # a launcher gives the worker its own; a lone worker starts as a singleton
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    lib = str(Path(sys.prefix) / "lib")
    paths = env.get("LD_LIBRARY_PATH", "")
    if lib not in paths.split(":"):
        env["LD_LIBRARY_PATH"] = f"{lib}:{paths}" if paths else lib
    if ranks > 1:
        env["GPAW_MPI_BACKEND"] = "cgpaw"
    return env


def worker_command(
    frame: Path, params: Path, out: Path, ranks: int, launcher: str = "mpiexec"
) -> list[str]:
    """Return the command line of one single-point worker, under the MPI launcher if ranks > 1."""
    cmd = [sys.executable, "-m", "potforge.dft.worker"]
    cmd += ["--frame", str(frame), "--params", str(params), "--out", str(out)]
    if ranks > 1:
        cmd = [*shlex.split(launcher), "-n", str(ranks), *cmd]
    return cmd


def run_attempt(
    atoms: Atoms,
    settings: Mapping[str, Any],
    workdir: Path,
    ranks: int,
    launcher: str,
    timeout: float,
) -> tuple[Atoms | None, str]:
    """Run one single point; return (labelled atoms, '') or (None, why it failed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    frame, params, out = workdir / "frame.extxyz", workdir / "params.json", workdir / "out.extxyz"
    out.unlink(missing_ok=True)
    write_frames(frame, [atoms])
    params.write_text(json.dumps(gpaw_parameters(settings)))
    cmd = worker_command(frame, params, out, ranks, launcher)
    sys.stdout.flush()
    try:
        proc = subprocess.run(cmd, env=worker_environment(ranks), timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"crashed: no result after the {timeout:g} s frame timeout"
    if proc.returncode == 0 and out.is_file():
        return read_frames(out)[0], ""
    if proc.returncode == EXIT_UNCONVERGED:
        return None, f"SCF not converged within {settings['maxiter']} iterations"
    return None, f"crashed: GPAW worker exited with status {proc.returncode}"


def store_entry(path: Path, labelled: bool, log: Callable[[str], None]) -> Atoms | None:
    """Read one store entry; a corrupt one is set aside as <name>.corrupt and None returned.

    A labelled entry must hold one frame with energy and forces; a killed writer never leaves
    one half-written (writes are atomic), but a disk or a hand can.
    """
    from potforge.errors import StructureError

    try:
        frames = read_frames(path)
        if len(frames) != 1:
            raise StructureError(f"{len(frames)} frames, expected 1")
        if labelled:
            frames[0].get_potential_energy()
            frames[0].get_forces()
        return frames[0]
    except Exception as exc:  # any unreadable entry is recomputed, never trusted
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        first = (str(exc).strip().splitlines() or [""])[0]
        log(
            f"store entry {path} is corrupt ({type(exc).__name__}: {first}); set aside as "
            f"{aside.name}, recomputing"
        )
        return None


def label_frames(
    frames: Sequence[Atoms],
    dft: Mapping[str, Any],
    store: str | Path,
    ranks: int = 1,
    launcher: str = "mpiexec",
    iteration: int = 0,
    log: Callable[[str], None] = print,
) -> LabelReport:
    """Label frames with GPAW, reusing the store; quarantine what the ladder cannot fix."""
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    ladder = attempts(dft)
    report = LabelReport()
    n = len(frames)
    for k, atoms in enumerate(frames, start=1):
        fid = frame_id(atoms, dft)
        done, failed = store / f"{fid}.extxyz", store / f"{fid}.failed.extxyz"
        origin = atoms.info.get("origin", "?")
        cached, kind = None, None
        for path, kind in ((done, "labelled"), (failed, "quarantined")):
            if path.is_file():
                cached = store_entry(path, kind == "labelled", lambda m: log(f"[label] {m}"))
                if cached is not None:
                    break
        if cached is not None:
            (report.labelled if kind == "labelled" else report.quarantined).append(cached)
            report.reused += 1
            log(f"[label] frame {k}/{n} {fid} ({origin}): already in the store")
            continue
        tried: list[dict[str, Any]] = []
        result = None
        for step, (label, settings) in enumerate(ladder):
            start = time.perf_counter()
            log(
                f"[label] frame {k}/{n} {fid} ({origin}, {len(atoms)} atoms): "
                f"attempt {step} [{label}]"
            )
            result, why = run_attempt(
                atoms, settings, store / ".work" / fid, ranks, launcher, dft["frame_timeout_s"]
            )
            wall = time.perf_counter() - start
            tried.append({"step": step, "settings": label, "wall_s": round(wall, 2), "error": why})
            if result is not None:
                log(
                    f"[label] frame {k}/{n} {fid}: done in {wall:.1f} s, "
                    f"{result.info['scf_iterations']} SCF iterations, "
                    f"E = {result.get_potential_energy():.4f} eV"
                )
                break
            log(f"[label] frame {k}/{n} {fid}: attempt {step} failed after {wall:.1f} s: {why}")
        report.computed += 1
        meta = {
            "frame_id": fid,
            "structure_hash": fid.split("-")[0],
            "dft_hash": protocol_hash(dft),
            "iteration": iteration,
            "ladder": json.dumps(tried),
        }
        if result is not None:
            result.info.update(meta, ladder_step=len(tried) - 1)
            write_frames(done, [result])
            report.labelled.append(result)
        else:
            bad = atoms.copy()
            bad.info.update(meta, quarantine_reason=tried[-1]["error"], ladder_step=len(tried) - 1)
            write_frames(failed, [bad])
            report.quarantined.append(bad)
            log(f"[label] frame {k}/{n} {fid}: quarantined after {len(tried)} attempts")
        shutil.rmtree(store / ".work" / fid, ignore_errors=True)
    return report
