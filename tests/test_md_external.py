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
        assert a.info["min_distance"] == pytest.approx(b.info["min_distance"], abs=1e-6)
        np.testing.assert_allclose(a.arrays["force_dev"], b.arrays["force_dev"], atol=1e-4)
