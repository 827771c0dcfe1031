"""GPAW labelling on tiny real cells: values, provenance, the failure ladder, kills and reruns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.build import bulk

from conftest import TINY_DFT, tiny_config
from potforge.dft.label import frame_id, label_frames
from potforge.io import read_frames, write_frames


def dft(**overrides):
    return tiny_config(dft={**TINY_DFT, **overrides})["dft"]


def si2(seed):
    atoms = bulk("Si", "diamond", a=5.47)
    atoms.rattle(0.05, seed=seed)
    atoms.info["origin"] = f"test-{seed}"
    return atoms


def test_si_frame_is_labelled_with_energy_forces_stress_and_provenance(si_frames):
    atoms = si_frames[0]
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    assert -12.0 < energy / len(atoms) < -4.0
    assert forces.shape == (2, 3) and stress.shape == (6,)
    assert np.abs(forces.sum(axis=0)).max() < 0.05  # translational invariance
    assert np.abs(forces).max() > 0.01  # rattled: real forces
    info = atoms.info
    assert info["gpaw_version"].startswith("26.7")
    assert info["scf_iterations"] > 3 and info["wall_s"] > 0
    assert info["ladder_step"] == 0 and info["dft_ranks"] == 1
    assert json.loads(info["ladder"])[0]["error"] == ""


def test_two_species_frame_is_labelled(hfo_frames):
    atoms = hfo_frames[0]
    assert sorted(set(atoms.get_chemical_symbols())) == ["Hf", "O"]
    assert np.isfinite(atoms.get_potential_energy())
    assert np.abs(atoms.get_forces().sum(axis=0)).max() < 0.05


def test_unconverged_scf_walks_the_ladder_then_quarantines(tmp_path):
    settings = dft(maxiter=2, ladder=[{"maxiter": 3}, {"mixer_beta": 0.01}])
    report = label_frames([si2(1)], settings, tmp_path, log=lambda _: None)
    assert not report.labelled and len(report.quarantined) == 1
    bad = report.quarantined[0]
    assert bad.info["quarantine_reason"] == "SCF not converged within 3 iterations"
    steps = json.loads(bad.info["ladder"])
    assert [s["settings"] for s in steps] == ["initial", "maxiter=3", "mixer_beta=0.01"]
    assert (tmp_path / f"{frame_id(si2(1), settings)}.failed.extxyz").is_file()


def test_ladder_step_rescues_a_frame(tmp_path):
    settings = dft(maxiter=2, ladder=[{"maxiter": 200}])
    report = label_frames([si2(2)], settings, tmp_path, log=lambda _: None)
    assert len(report.labelled) == 1
    assert report.labelled[0].info["ladder_step"] == 1


def test_a_worker_past_its_timeout_is_quarantined_and_the_rest_labelled(tmp_path):
    # A frame whose single point cannot finish within its time limit counts as crashed.
    settings = dft(frame_timeout_s=0.3, ladder=[])
    report = label_frames([si2(3)], settings, tmp_path, log=lambda _: None)
    assert report.quarantined[0].info["quarantine_reason"].startswith("crashed: no result")


def _label_cli(chunk, store, out_dir):
    cmd = [sys.executable, "-m", "potforge.cli", "label", "--frames", str(chunk)]
    cmd += ["--dft", json.dumps(dft()), "--store", str(store), "--iteration", "0"]
    cmd += ["--out", str(out_dir / "done.extxyz"), "--failed", str(out_dir / "failed.extxyz")]
    cmd += ["--report", str(out_dir / "report.json")]
    return cmd


def test_killed_labelling_job_keeps_finished_frames_and_rerun_computes_only_the_rest(tmp_path):
    frames = [si2(10 + k) for k in range(3)]
    chunk = write_frames(tmp_path / "chunk.extxyz", frames)
    store, out = tmp_path / "store", tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        _label_cli(chunk, store, out),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = store / f"{frame_id(frames[0], dft())}.extxyz"
    deadline = time.time() + 120
    while not first.is_file() and time.time() < deadline:
        time.sleep(0.1)
    assert first.is_file(), "the first frame never finished"
    time.sleep(0.5)  # the second frame is now in flight
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in store.glob("*.extxyz"))
    assert len(finished) in (1, 2)
    assert not (out / "done.extxyz").exists(), "a killed job must not leave its output"
    for path in store.glob("*.extxyz"):
        assert len(read_frames(path)) == 1  # every visible result is complete
    stamp = first.stat().st_mtime_ns

    rerun = subprocess.run(_label_cli(chunk, store, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["labelled"] == 3
    assert report["reused"] == len(finished) and report["computed"] == 3 - len(finished)
    assert first.stat().st_mtime_ns == stamp, "a finished frame was recomputed"
    assert len(read_frames(out / "done.extxyz")) == 3


@pytest.mark.slow
def test_single_point_under_two_mpi_ranks_matches_one_rank(tmp_path):
    atoms = si2(20)
    one = label_frames([atoms], dft(), tmp_path / "a", log=lambda _: None).labelled[0]
    two = label_frames([atoms], dft(), tmp_path / "b", ranks=2, log=lambda _: None).labelled[0]
    assert two.info["dft_ranks"] == 2
    assert abs(one.get_potential_energy() - two.get_potential_energy()) < 1e-4
    assert np.abs(one.get_forces() - two.get_forces()).max() < 1e-3
