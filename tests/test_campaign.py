"""The whole loop for real on a tiny campaign: two iterations, a rerun, a kill and a resume."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import TINY_CAMPAIGN, run_snakemake, workflow_copy
from potforge.hashing import structure_hash
from potforge.io import read_frames, read_json

pytestmark = pytest.mark.slow
CAMPAIGN = [*TINY_CAMPAIGN, "-c2"]


def snakemake(work, *args, check=True):
    return run_snakemake(work, "-c2", *args, check=check)


def hashes(path):
    return sorted(structure_hash(a) for a in read_frames(path))


@pytest.fixture(scope="module")
def campaign(tiny_campaign):
    return tiny_campaign


def test_two_iterations_close_the_loop_and_a_rerun_does_nothing(campaign):
    res = campaign / "results" / "tiny"
    selected = hashes(res / "iter_000" / "select" / "selected.extxyz")
    assert selected, "iteration 0 selected nothing"
    labelled_1 = sorted(
        h for p in (res / "iter_001" / "labels").glob("chunk_*[0-9].extxyz") for h in hashes(p)
    )
    assert labelled_1 == selected, "iteration 1 must label exactly what iteration 0 selected"
    size = [read_json(res / f"iter_{i:03d}" / "dataset" / "summary.json")["frames"] for i in (0, 1)]
    assert size[1] == size[0] + len(selected)
    card = read_json(res / "final" / "model_card.json")
    assert card["iterations"] == 2 and card["stop_reason"]
    assert card["dft_frames"] == size[1]
    for member in ("member_0", "member_1"):
        assert (res / "final" / "committee" / member / "model.pair_nequip.nequip.pt2").is_file()
    again = snakemake(campaign, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def _labels(res):
    """Every labelled frame of a campaign's iterations: positions, energy, forces, stress."""
    out = []
    for path in sorted(res.glob("iter_*/labels/chunk_[0-9][0-9][0-9].extxyz")):
        for atoms in read_frames(path):
            calc = atoms.calc.results
            out.append(
                (str(path.relative_to(res)), atoms.positions, calc["energy"], calc["forces"])
            )
            out[-1] += (calc.get("stress"),)
    return out


def _bitwise(a, b):
    import numpy as np

    return a is b or (np.asarray(a).shape == np.asarray(b).shape and (np.asarray(a) == b).all())


def test_the_same_config_twice_gives_bitwise_the_same_labels_picks_and_weights(campaign, tmp_path):
    """Issue 18: a second run from scratch in another folder, same machine and cores."""
    from potforge.rebuild import weight_difference

    other = workflow_copy(tmp_path / "again")
    targets = [
        "results/tiny/iter_001/select/report.json",
        "results/tiny/iter_001/train/committee.json",
    ]
    snakemake(other, *targets)
    first, second = campaign / "results" / "tiny", other / "results" / "tiny"
    labels_1, labels_2 = _labels(first), _labels(second)
    assert [x[0] for x in labels_1] == [x[0] for x in labels_2] and labels_1
    for a, b in zip(labels_1, labels_2, strict=True):
        assert all(_bitwise(x, y) for x, y in zip(a[1:], b[1:], strict=True)), a[0]
    for it in (0, 1):
        picks = [
            read_json(r / f"iter_{it:03d}" / "select" / "report.json")["picked"]
            for r in (first, second)
        ]
        assert picks[0] == picks[1]
        selected = [
            read_frames(r / f"iter_{it:03d}" / "select" / "selected.extxyz")
            for r in (first, second)
        ]
        assert all(_bitwise(a.positions, b.positions) for a, b in zip(*selected, strict=True))
    for member in ("member_0", "member_1"):
        ckpts = [r / "iter_001" / "train" / member / "best.ckpt" for r in (first, second)]
        diff = weight_difference(*ckpts)
        assert diff["bitwise_equal"], diff


def test_a_finished_campaign_rebuilds_from_its_record(campaign, tmp_path):
    """Issue 18: `potforge rebuild` retrains the chain as recorded; same machine: bitwise."""
    from potforge.rebuild import rebuild_campaign

    card = read_json(campaign / "results" / "tiny" / "final" / "model_card.json")
    record = card["record"]
    assert record["dft_store_sha256"] and record["versions"]["nequip"]
    assert [len(it["members"]) for it in record["iterations"]] == [2, 2]
    assert (
        record["iterations"][1]["members"][0]["init"] == "iter_000/train/member_0/model.nequip.zip"
    )
    report = rebuild_campaign(campaign / "results" / "tiny", tmp_path / "rebuilt")
    assert len(report["members"]) == 4
    assert report["bitwise_equal"], report["members"]
    assert report["independent_frames"] > 0 and report["max_force_diff_ev_per_a"] == 0.0
    assert (tmp_path / "rebuilt" / "rebuild.json").is_file()


def test_a_run_killed_while_labelling_resumes_without_redoing_or_losing_frames(campaign):
    res = campaign / "results" / "tiny"
    store = res / "dft_store"
    selected = hashes(res / "iter_000" / "select" / "selected.extxyz")
    assert len(selected) >= 2, "the kill test needs two frames to label in iteration 1"
    # Forget iteration 1's labels (the store too) so that it labels again, then kill it mid-way.
    for path in store.glob("*.extxyz"):
        if read_frames(path)[0].info.get("iteration") == 1:
            path.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in store.glob("*.extxyz")}
    # Everything from iteration 1's labels on is gone: as if the first run had been killed there.
    subprocess.run(["rm", "-rf", str(res / "iter_001"), str(res / "final")], check=True)
    proc = subprocess.Popen(
        ["snakemake", *CAMPAIGN],
        cwd=campaign,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    while len(list(store.glob("*.extxyz"))) <= len(before) and time.time() < deadline:
        assert proc.poll() is None, "snakemake ended before iteration 1 labelled anything"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before_resume = {
        p.name: p.stat().st_mtime_ns for p in store.glob("*.extxyz") if p.name not in before
    }
    assert 1 <= len(done_before_resume) < len(selected), "kill came too late or too early"

    subprocess.run(
        ["snakemake", "--unlock", *CAMPAIGN], cwd=campaign, check=True, capture_output=True
    )
    snakemake(campaign)
    for name, stamp in {**before, **done_before_resume}.items():
        assert (store / name).stat().st_mtime_ns == stamp, f"{name} was recomputed"
    labelled_1 = sorted(
        h for p in (res / "iter_001" / "labels").glob("chunk_*[0-9].extxyz") for h in hashes(p)
    )
    assert labelled_1 == selected, "a frame was lost"
    reports = [read_json(p) for p in (res / "iter_001" / "labels").glob("chunk_*.json")]
    assert sum(r["reused"] for r in reports) == len(done_before_resume)


def test_hfo2_tiny_iteration_runs_every_stage_with_two_species(tmp_path):
    work = workflow_copy(tmp_path)
    run_snakemake(work, "-c2", config="tests/data/tiny_hfo2.yaml")
    res = work / "results" / "tiny-hfo2"
    card = read_json(res / "final" / "model_card.json")
    assert card["species"] == ["O", "Hf"]  # model type order: by atomic number
    assert card["iterations"] == 1 and card["stop_reason"]
    labelled = [
        a for p in (res / "iter_000" / "labels").glob("chunk_*[0-9].extxyz") for a in read_frames(p)
    ]
    assert labelled and all(sorted(set(a.get_chemical_symbols())) == ["Hf", "O"] for a in labelled)
    assert all(abs(a.get_forces()).max() > 0 or a.info.get("generator") == "bulk" for a in labelled)
    (path,) = (res / "iter_000" / "explore" / "cubic").glob("*/trajectory.extxyz")
    trajectory = read_frames(path)
    assert len(trajectory) >= 2 and trajectory[0].get_chemical_formula() == "Hf2O4"
    for member in ("member_0", "member_1"):
        assert (res / "final" / "committee" / member / "model.pair_nequip.nequip.pt2").is_file()
    validation = read_json(res / "final" / "validation.json")
    assert validation["test_set"]["frames"] == 3
    assert set(validation["test_set"]["per_species_force_rmse_ev_per_a"]) == {"Hf", "O"}
    dft = read_json(res / "validation" / "dft_cubic.json")["properties"]
    assert 8 < dft["volume_per_atom"] < 14  # A^3 per atom of fluorite HfO2 (about 11)
    (row,) = [r for r in validation["properties"] if r["system"] == "cubic"]
    # a committee of 8 epochs may have no EOS minimum: then the row says so instead of a number
    assert row["name"] == "V0" or "EOS" in row["error"], row
    assert validation["md_stability"]["cubic"]["runs"][0]["natoms"] == 24
