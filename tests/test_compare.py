"""Campaigns compared on one shared test set, and the active-vs-random efficiency ratio."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from conftest import REPO, workflow_copy
from potforge.compare import cost_to_reach, derive_arm, efficiency
from potforge.hashing import structure_hash
from potforge.io import read_frames, read_json


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
def test_a_random_arm_from_the_same_iteration_0_is_compared_on_the_shared_test_set(
    tiny_campaign, tmp_path
):
    active = tiny_campaign / "results" / "tiny"
    work = workflow_copy(tmp_path / "work")
    random_dir = derive_arm(active, work / "results" / "tiny-random")
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny.yaml").read_text())
    config["campaign"] = "tiny-random"
    config["select"]["strategy"] = "random"
    (work / "random.yaml").write_text(yaml.safe_dump(config))
    last = "results/tiny-random/iter_001/train"
    targets = [f"{last}/committee.json", *(f"{last}/member_{k}/model.nequip.zip" for k in (0, 1))]
    cmd = ["snakemake", *targets, "--configfile", "random.yaml", "-c2", "--rerun-triggers", "mtime"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = read_json(random_dir / "iter_000" / "select" / "report.json")
    assert report["strategy"] == "random" and 1 <= len(report["picked"]) <= 4
    assert {p["why"] for p in report["picked"]} == {"random"}
    picks = {structure_hash(a) for a in read_frames(random_dir / "iter_000/select/selected.extxyz")}
    active_picks = {
        structure_hash(a) for a in read_frames(active / "iter_000/select/selected.extxyz")
    }
    assert picks != active_picks, "the random arm picked what the committee picked"

    out = tmp_path / "cmp"
    cmd = ["potforge", "compare", str(active), str(random_dir), "--names", "uncertainty", "random"]
    proc = subprocess.run(
        [*cmd, "--baseline", "random", "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = read_json(out / "compare.json")
    assert data["test_frames"] == 6  # both arms share iteration 0's independent test set
    a, r = data["arms"]["uncertainty"], data["arms"]["random"]
    assert [row["iteration"] for row in a] == [row["iteration"] for row in r] == [0, 1]
    assert a[0] == r[0], "iteration 0 is shared: the same committee on the same frames"
    validation = read_json(active / "iter_001" / "validate" / "validation.json")
    assert a[1]["force_rmse_ev_per_a"] == pytest.approx(
        validation["test_set"]["force_rmse_ev_per_a"], rel=1e-6
    )  # the comparison measures what the validation stage measured
    assert r[1]["dft_frames"] == r[0]["dft_frames"] + len(report["picked"])
    assert a[1]["force_rmse_ev_per_a"] != r[1]["force_rmse_ev_per_a"]
    ratio = data["efficiency"]["uncertainty"]
    assert ratio["target_force_rmse_ev_per_a"] == r[1]["force_rmse_ev_per_a"]
    assert ratio["never_reached"] == (ratio["frames_ratio"] is None)
    assert (out / "learning_curves.png").stat().st_size > 1000
    html = (out / "compare.html").read_text()
    for name in ("uncertainty", "random"):
        assert f'data-arm="{name}"' in html
    assert 'data-figure="compare"' in html and "data:image/png;base64," in html
