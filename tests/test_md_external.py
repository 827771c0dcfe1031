"""Exploration without compiling: the eager committee through fix external equals the plugin."""

from __future__ import annotations

import numpy as np
import pytest

from potforge.io import read_frames

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_external_backend_matches_the_compiled_plugin(tiny_campaign, tmp_path, ensemble):
    from potforge.md.explore import explore

    res = tiny_campaign / "results" / "tiny"
    members = sorted((res / "final" / "committee").glob("member_*"))
    start = read_frames(res / "iter_000" / "sample" / "si.start.extxyz")[0]
    task = {
        "ensemble": ensemble,
        "temperature": 900.0,
        "steps": 40,
        "dump_every": 10,
        "supercell": [2, 1, 1],
        "seed": 5,
    }
    runs = {}
    for backend, name in (
        ("plugin", "model.pair_nequip.nequip.pt2"),
        ("external", "model.nequip.zip"),
    ):
        models = [m / name for m in members]
        summary = explore(start, models, ["Si"], task, 50.0, tmp_path / backend)
        assert summary["backend"] == backend and summary["steps_done"] == 40
        runs[backend] = read_frames(tmp_path / backend / "trajectory.extxyz")
    plugin, external = runs["plugin"], runs["external"]
    assert len(plugin) == len(external) == 5
    for a, b in zip(plugin, external, strict=True):
        assert a.info["step"] == b.info["step"]
        n = len(a)
        assert abs(a.info["model_energy"] - b.info["model_energy"]) / n < 1e-5
        # 40 steps integrate the forces: equal positions mean equal forces all along
        assert np.abs(a.positions - b.positions).max() < 1e-4
        assert a.info["max_force_dev"] == pytest.approx(b.info["max_force_dev"], abs=1e-4)
        assert a.info["min_distance_ratio"] == pytest.approx(b.info["min_distance_ratio"], abs=1e-6)
        np.testing.assert_allclose(a.arrays["force_dev"], b.arrays["force_dev"], atol=1e-4)


@pytest.mark.faults
def test_an_exploding_run_keeps_its_frames_and_says_why(tiny_campaign, tmp_path):
    from potforge.io import read_json
    from potforge.md.explore import explore

    res = tiny_campaign / "results" / "tiny"
    models = sorted((res / "final" / "committee").glob("member_*/model.nequip.zip"))
    start = read_frames(res / "iter_000" / "sample" / "si.start.extxyz")[0]
    # 20 fs steps at 20000 K: atoms collide within a few steps; no deviation guard (trust 1e3)
    task = {"temperature": 20000.0, "steps": 400, "dump_every": 2, "timestep_fs": 20.0}
    task.update(supercell=[2, 2, 2], seed=3)
    summary = explore(start, models, ["Si"], task, 1000.0, tmp_path / "boom")
    assert summary["halted"] and summary["steps_done"] < 400
    assert summary["halt_reason"] in ("min_distance", "lost_atoms", "lammps_error")
    assert summary["message"]
    frames = read_frames(tmp_path / "boom" / "trajectory.extxyz")
    assert 1 <= len(frames) and frames[-1].info["step"] <= summary["steps_done"]
    assert read_json(tmp_path / "boom" / "summary.json")["halt_reason"] == summary["halt_reason"]


def test_a_task_starts_from_the_sampled_structure_it_names(tiny_campaign, tmp_path):
    """`start: vacancy` runs MD from the sampled vacancy cell; an unsampled start is named."""
    import json
    import subprocess

    from potforge.io import write_frames
    from potforge.sampling import start_structures, tag_origin, with_vacancy
    from potforge.structures import diamond

    res = tiny_campaign / "results" / "tiny"
    models = sorted(str(p) for p in (res / "final" / "committee").glob("member_*/model.nequip.zip"))
    crystal = diamond()
    vacancy = tag_origin(with_vacancy(crystal, seed=1), "si", "vacancy", 1)
    starts = tmp_path / "si.start.extxyz"
    write_frames(starts, start_structures(crystal, [vacancy]))
    task = {"temperature": 900.0, "steps": 20, "dump_every": 10, "seed": 2, "start": "vacancy"}

    def explore_cli(task: dict, out: str) -> subprocess.CompletedProcess:
        cmd = ["potforge", "explore", "--structure", str(starts), "--models", *models]
        cmd += ["--species", "Si", "--task", json.dumps(task), "--trust-hi", "50"]
        cmd += ["--out", str(tmp_path / out)]
        return subprocess.run(cmd, capture_output=True, text=True)

    done = explore_cli(task, "vacancy")
    assert done.returncode == 0, done.stderr
    frames = read_frames(tmp_path / "vacancy" / "trajectory.extxyz")
    assert len(frames) == 3 and all(len(a) == 7 for a in frames)
    refused = explore_cli({**task, "start": "molten"}, "molten")
    assert refused.returncode != 0
    assert "exploration start 'molten': no such structure" in refused.stderr
    assert not (tmp_path / "molten" / "trajectory.extxyz").exists()
