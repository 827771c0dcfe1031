"""Campaigns compared on one shared test set, and the active-vs-random efficiency ratio."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from potforge.compare import cost_to_reach, efficiency
from potforge.io import read_json


def curve(points):
    return [
        {"dft_frames": f, "dft_core_seconds": 10.0 * f, "force_rmse_ev_per_a": e} for f, e in points
    ]


def test_cost_to_reach_interpolates_and_says_never():
    c = curve([(10, 0.5), (20, 0.3), (30, 0.1)])
    assert cost_to_reach(c, 0.2) == pytest.approx(25.0)
    assert cost_to_reach(c, 0.6) == 10.0
    assert cost_to_reach(c, 0.05) is None


def test_efficiency_ratio_of_active_against_random():
    active = curve([(10, 0.5), (20, 0.2), (30, 0.1)])
    random = curve([(10, 0.5), (20, 0.35), (30, 0.2)])
    result = efficiency(active, random)
    assert result["frames_ratio"] == pytest.approx(20 / 30)
    assert result["core_seconds_ratio"] == pytest.approx(200 / 300)
    worse = efficiency(curve([(10, 0.5), (30, 0.4)]), random)
    assert worse["never_reached"] and worse["frames_ratio"] is None


@pytest.mark.slow
def test_compare_two_campaigns_on_their_shared_test_set(tiny_campaign, tmp_path):
    res = tiny_campaign / "results" / "tiny"
    other = tmp_path / "tiny-b"
    shutil.copytree(res, other, ignore=shutil.ignore_patterns("md_stability", "model_cache"))
    out = tmp_path / "cmp"
    subprocess.run(
        ["potforge", "compare", str(res), str(other), "--names", "a", "b", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    data = read_json(out / "compare.json")
    assert data["test_frames"] == 6  # the same frozen set: the union holds each frame once
    a, b = data["arms"]["a"], data["arms"]["b"]
    assert [r["iteration"] for r in a] == [0, 1]
    assert a == b  # the same committees on the same frames give the same curve
    validation = read_json(res / "iter_001" / "validate" / "validation.json")
    assert a[1]["force_rmse_ev_per_a"] == pytest.approx(
        validation["test_set"]["force_rmse_ev_per_a"], rel=1e-6
    )
    assert (out / "learning_curves.png").stat().st_size > 1000
