"""Uncertainty selection: the trust window, diverse picks, and the convergence criterion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from potforge.report.data import Campaign, Iteration
from potforge.report.html import fractions_table
from potforge.select import classify, convergence, select_frames, structure_descriptor
from potforge.structures import diamond, hfo2_cubic

TRUST = {"si": {"lo": 0.05, "hi": 0.15}}


def frames(n, amplitude, deviation, seed=0, step_every=10):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = diamond()
        atoms.positions += rng.normal(0, amplitude, atoms.positions.shape)
        dev = deviation(k) if callable(deviation) else deviation
        atoms.info.update(system="si", max_force_dev=dev, step=k * step_every)
        out.append(atoms)
    return out


def test_trust_window_boundaries():
    assert classify(0.049, 0.05, 0.15) == "accurate"
    assert classify(0.05, 0.05, 0.15) == "candidate"
    assert classify(0.149, 0.05, 0.15) == "candidate"
    assert classify(0.15, 0.05, 0.15) == "failed"


def test_near_identical_frames_yield_one_pick():
    traj = frames(30, 1e-4, 0.1, step_every=100)
    picked, report = select_frames({"t": traj}, TRUST, ["Si"], 10, 0, 0.02)
    assert len(picked) == 1
    assert report["candidates"] == 30 and report["counts"]["candidate"] == 30


def test_distinct_frames_are_picked_up_to_the_cap_and_steps_are_spaced():
    traj = frames(40, 0.15, lambda k: 0.06 + 0.002 * k, step_every=10)
    picked, report = select_frames({"t": traj}, TRUST, ["Si"], 5, 50, 0.0)
    assert len(picked) == 5
    steps = sorted(p.info["step"] for p in picked)
    assert min(np.diff(steps)) >= 50
    assert picked[0].info["max_force_dev"] == max(a.info["max_force_dev"] for a in traj)
    assert all(p.info["generator"] == "explore" and p.info["system"] == "si" for p in picked)
    assert len(report["picked"]) == 5 and report["picked"][0]["why"] == "highest deviation"


def test_accurate_and_failed_frames_are_counted_never_picked():
    traj = frames(10, 0.1, lambda k: 0.01 if k < 5 else 0.5)
    picked, report = select_frames({"t": traj}, TRUST, ["Si"], 10, 0, 0.0)
    assert picked == []
    assert report["counts"] == {"accurate": 5, "candidate": 0, "failed": 5}
    assert sum(report["deviation_histogram"]["counts"]) == 10


def test_convergence_needs_accuracy_and_no_failures():
    ok = {"frames": 100, "counts": {"failed": 0}, "fractions": {"accurate": 0.96}}
    assert convergence(ok, 0.95)[0]
    failed = {"frames": 100, "counts": {"failed": 1}, "fractions": {"accurate": 0.99}}
    done, why = convergence(failed, 0.95)
    assert not done and "1 failed" in why
    low = {"frames": 100, "counts": {"failed": 0}, "fractions": {"accurate": 0.5}}
    assert not convergence(low, 0.95)[0]


def test_descriptor_separates_species_pairs():
    d = structure_descriptor(hfo2_cubic(), ["O", "Hf"])
    assert d.shape == (150,) and np.isclose(np.linalg.norm(d), 1.0)


def test_random_picks_are_uniform_over_frames():
    from potforge.select import random_picks

    rng = np.random.default_rng(0)
    descriptors = rng.normal(size=(90, 8))
    groups = [f"t{k // 30}" for k in range(90)]
    steps = [10 * (k % 30) for k in range(90)]
    per_frame = np.zeros(90)
    for seed in range(1000):
        picks = random_picks(descriptors, groups, steps, 9, 0.0, 0, np.random.default_rng(seed))
        assert len({p.index for p in picks}) == 9
        per_frame[[p.index for p in picks]] += 1
    # 9000 picks over 90 frames: 100 each on average; a chi-square test of uniformity
    chi2 = ((per_frame - 100.0) ** 2 / 100.0).sum()
    assert chi2 < 130, chi2  # 89 degrees of freedom: p ~ 0.003 at 130


def test_random_strategy_picks_from_every_class_not_by_deviation():
    trajectories = {
        "accurate": frames(10, 0.1, 0.01, seed=1),
        "candidate": frames(10, 0.1, 0.1, seed=2),
        "failed": frames(10, 0.1, 0.5, seed=3),
    }
    seen = set()
    for seed in range(4):
        picked, report = select_frames(
            trajectories, TRUST, ["Si"], 6, 0, 0.0, strategy="random", seed=seed
        )
        assert len(picked) == 6 and report["candidates"] == 10
        seen |= {a.info["task"] for a in picked}
    assert seen == {"accurate", "candidate", "failed"}
    again, _ = select_frames(trajectories, TRUST, ["Si"], 6, 0, 0.0, strategy="random", seed=4)
    first, _ = select_frames(trajectories, TRUST, ["Si"], 6, 0, 0.0, strategy="random", seed=4)
    assert [a.info["origin"] for a in again] == [a.info["origin"] for a in first]


def test_random_strategy_keeps_the_step_gap_and_duplicate_filter():
    near_identical = frames(30, 1e-4, 0.1, step_every=100)
    picked, _ = select_frames({"t": near_identical}, TRUST, ["Si"], 10, 0, 0.02, strategy="random")
    assert len(picked) == 1
    spaced = frames(40, 0.15, 0.1, step_every=10)
    picked, _ = select_frames({"t": spaced}, TRUST, ["Si"], 8, 50, 0.0, strategy="random", seed=1)
    steps = sorted(p.info["step"] for p in picked)
    assert min(np.diff(steps)) >= 50


def swelling_trajectory(seed=0):
    """20 frames; from step 120 the cell swells (x1.5 per edge, 3.4 x the volume) and reads as
    accurate (deviation 0.01), as an NPT cell the model cannot hold together does."""
    traj = frames(20, 0.1, 0.1, seed=seed, step_every=10)
    for atoms in traj[12:]:
        atoms.set_cell(atoms.cell * 1.5, scale_atoms=True)
        atoms.info["max_force_dev"] = 0.01
    return traj


def test_swollen_cells_count_as_failed_and_are_never_picked():
    from potforge.config import load_config

    max_ratio = load_config(Path("config/config.yaml"))["select"]["max_volume_ratio"]
    traj = {"npt": swelling_trajectory()}
    for strategy in ("uncertainty", "random"):
        for seed in range(3):
            picked, report = select_frames(
                traj, TRUST, ["Si"], 20, 0, 0.0, strategy, seed, max_volume_ratio=max_ratio
            )
            assert report["counts"] == {"accurate": 0, "candidate": 12, "failed": 8}
            assert report["expanded"] == {"npt": 8}
            assert picked and max(p.info["step"] for p in picked) < 120
    # without the guard the swollen frames are 'accurate', and the random arm labels them
    picked, report = select_frames(traj, TRUST, ["Si"], 20, 0, 0.0, "random", 0)
    assert report["counts"]["accurate"] == 8 and report["expanded"] == {}
    assert max(p.info["step"] for p in picked) >= 120
    # the campaign report's selection table says how many failed frames were swollen cells
    _, guarded = select_frames(traj, TRUST, ["Si"], 20, 0, 0.0, max_volume_ratio=max_ratio)
    page = fractions_table(Campaign(Path("."), "si", [Iteration(0, select=guarded)]))
    assert "of them swollen" in page and 'data-key="select.0.swollen">8<' in page
    assert "of them swollen" not in fractions_table(
        Campaign(Path("."), "si", [Iteration(0, select=report)])
    )


def test_test_set_frames_and_their_neighbours_are_never_selected():
    from potforge.select import exclude_frames

    traj = frames(40, 0.15, 0.1, step_every=10)
    test_frame = traj[20].copy()
    test_frame.info.update(source="explore", task="t", step=200)
    marked = exclude_frames({"t": traj}, [test_frame], iteration=0, min_step_gap=20)
    assert marked == 5  # steps 180..220
    picked, report = select_frames({"t": traj}, TRUST, ["Si"], 40, 0, 0.0)
    assert report["counts"]["candidate"] == 40  # still counted
    assert all(not 180 <= p.info["step"] <= 220 for p in picked) and len(picked) == 35


def test_report_says_which_species_drives_the_deviation():
    # HfO2 frames whose largest per-atom deviation sits on an O atom in 5 frames, on an Hf atom
    # in 3: the report counts them per species and names the driver of every pick.
    rng = np.random.default_rng(3)
    traj = []
    for k in range(8):
        atoms = hfo2_cubic()
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        per_atom = np.full(len(atoms), 0.02)
        hot = [
            i for i, s in enumerate(atoms.get_chemical_symbols()) if s == ("O" if k < 5 else "Hf")
        ]
        per_atom[hot[k % len(hot)]] = 0.08 + 0.001 * k
        atoms.arrays["force_dev"] = per_atom
        atoms.info.update(system="hfo2", max_force_dev=per_atom.max(), step=100 * k)
        traj.append(atoms)
    trust = {"hfo2": {"lo": 0.05, "hi": 0.15}}
    picked, report = select_frames({"t": traj}, trust, ["Hf", "O"], 8, 0, 0.0)
    per = report["per_species"]
    assert (per["O"]["frames_driven"], per["Hf"]["frames_driven"]) == (5, 3)
    assert per["O"]["frames"] == per["Hf"]["frames"] == 8
    assert per["Hf"]["max_deviation"] == pytest.approx(0.087)
    assert per["O"]["max_deviation"] == pytest.approx(0.084)
    assert per["Hf"]["mean_max_deviation"] == pytest.approx((0.02 * 5 + 0.085 + 0.086 + 0.087) / 8)
    by_step = {p["step"]: p["species"] for p in report["picked"]}
    assert len(by_step) == 8
    assert all(s == ("O" if step < 500 else "Hf") for step, s in by_step.items())
    # the campaign report's selection table shows the drivers of the picks
    page = fractions_table(Campaign(Path("."), "hfo2", [Iteration(0, select=report)]))
    assert "largest deviation on" in page
    assert "O 5, Hf 3" in page
    one_species = {**report, "per_species": {"Hf": per["Hf"]}}
    assert "largest deviation on" not in fractions_table(
        Campaign(Path("."), "si", [Iteration(0, select=one_species)])
    )


@pytest.mark.parametrize("strategy", ["uncertainty", "random"])
def test_per_task_cap_shares_picks_out_over_tasks(strategy):
    spread = frames(40, 0.15, lambda k: 0.06 + 0.001 * k, seed=1)  # frames far apart
    alike = frames(40, 0.02, 0.14, seed=2)  # more uncertain, but alike to the descriptor
    trajectories = {"npt": spread, "liquid": alike}
    uncapped, _ = select_frames(trajectories, TRUST, ["Si"], 12, 0, 0.0, strategy, 3)
    capped, report = select_frames(
        trajectories, TRUST, ["Si"], 12, 0, 0.0, strategy, 3, max_frames_per_task=6
    )
    tasks = [p.info["task"] for p in capped]
    assert len(capped) == 12 and tasks.count("npt") == 6 and tasks.count("liquid") == 6
    assert report["max_frames_per_task"] == 6
    if strategy == "uncertainty":  # without the cap the spread-out task takes nearly everything
        assert [p.info["task"] for p in uncapped].count("liquid") < 6
    few, _ = select_frames(
        trajectories, TRUST, ["Si"], 12, 0, 0.0, strategy, 3, max_frames_per_task=2
    )
    assert len(few) == 4
