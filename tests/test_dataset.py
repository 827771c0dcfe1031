"""The dataset: one ASE database with provenance, de-duplication, a split stable as data grows."""

from __future__ import annotations

import json

import pytest
from ase.db import connect
from ase.io import read

from potforge.dataset import build_dataset, check_failed_fraction, previous_splits
from potforge.errors import LabelError

SPLIT = {"train": 0.6, "validation": 0.2, "test": 0.2}


def _copies(frames):
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = atoms.calc
        out.append(copy)
    return out


def test_database_holds_every_frame_with_provenance(si_frames, tmp_path):
    summary = build_dataset(_copies(si_frames), [], SPLIT, tmp_path)
    assert summary["frames"] == len(si_frames)
    assert sum(summary["per_split"].values()) == len(si_frames)
    with connect(tmp_path / "ase.db") as db:
        rows = list(db.select())
        assert len(rows) == len(si_frames)
        row = rows[0]
        for key in ("iteration", "origin", "dft_hash", "gpaw_version", "wall_s", "scf_iterations"):
            assert hasattr(row, key), key
        assert row.ladder_step == 0 and row.quarantined is False
        assert row.split in ("train", "validation", "test")
        assert abs(row.energy - row.toatoms().get_potential_energy()) < 1e-9
    for name in ("train", "validation", "test"):
        frames = read(tmp_path / f"{name}.extxyz", ":")
        assert len(frames) == summary["per_split"][name] > 0
        assert frames[0].get_forces().shape == (len(frames[0]), 3)
        assert frames[0].get_stress().shape == (6,)
    assert json.loads((tmp_path / "summary.json").read_text())["atoms_per_species"] == {
        "Si": 2 * len(si_frames)
    }


def test_duplicates_are_dropped(si_frames, tmp_path):
    frames = _copies(si_frames[:5]) + _copies(si_frames[:2])
    assert build_dataset(frames, [], SPLIT, tmp_path)["frames"] == 5


def test_split_is_stable_when_frames_are_added(si_frames, tmp_path):
    first = build_dataset(_copies(si_frames[:10]), [], SPLIT, tmp_path / "a")
    before = previous_splits(tmp_path / "a" / "ase.db")
    assert len(before) == first["frames"] == 10
    build_dataset(_copies(si_frames), [], SPLIT, tmp_path / "b", previous=before)
    after = previous_splits(tmp_path / "b" / "ase.db")
    assert len(after) == len(si_frames)
    assert all(after[key] == split for key, split in before.items())
    # A frame never moves into training: test frames of the first build stay test frames.
    assert {k for k, v in before.items() if v == "test"} <= {
        k for k, v in after.items() if v == "test"
    }


def test_small_datasets_still_get_validation_and_test_frames(si_frames, tmp_path):
    summary = build_dataset(
        _copies(si_frames[:3]), [], {"train": 0.9, "validation": 0.05, "test": 0.05}, tmp_path
    )
    assert summary["per_split"] == {"train": 1, "validation": 1, "test": 1}


def test_force_free_frames_always_train(si_frames, tmp_path):
    # Perfect (strained) crystals: every force is zero by symmetry, so they validate no forces.
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    perfect = []
    for k, scale in enumerate((0.98, 0.99, 1.0, 1.01, 1.02)):
        atoms = bulk("Si", "diamond", a=5.47 * scale)
        atoms.calc = SinglePointCalculator(
            atoms, energy=-10.0 + k, forces=[[0.0, 0.0, 1e-5]] * 2, stress=[0.1] * 6
        )
        atoms.info.update(frame_id=f"perfect{k}")
        perfect.append(atoms)
    summary = build_dataset(perfect + _copies(si_frames[:2]), [], SPLIT, tmp_path)
    assert summary["per_split"] == {"train": 5, "validation": 1, "test": 1}
    with connect(tmp_path / "ase.db") as db:
        splits = {row.frame_id: row.split for row in db.select()}
    assert all(splits[f"perfect{k}"] == "train" for k in range(5))


def test_quarantined_frames_are_flagged_with_their_reason(si_frames, tmp_path):
    bad = si_frames[0].copy()
    bad.info.update(quarantine_reason="SCF not converged within 3 iterations", frame_id="x-y")
    build_dataset(_copies(si_frames[1:4]), [bad], SPLIT, tmp_path)
    with connect(tmp_path / "ase.db") as db:
        flagged = list(db.select(quarantined=True))
        assert len(flagged) == 1 and flagged[0].reason.startswith("SCF not converged")
        assert db.count(quarantined=False) == 3


def test_too_many_quarantined_frames_stop_the_run_with_a_clear_message(si_frames):
    good = _copies(si_frames[:8])
    bad = _copies(si_frames[8:10])
    for atoms in bad:
        atoms.info["quarantine_reason"] = "crashed: GPAW worker exited with status 1"
    check_failed_fraction(good, bad[:0], iteration=0, limit=0.1)
    with pytest.raises(LabelError, match=r"iteration 0: 2 of 10 frames quarantined \(20%\)"):
        check_failed_fraction(good, bad, iteration=0, limit=0.1)


def test_hashes_that_look_like_numbers_are_kept_as_text_through_xyz_and_database(
    si_frames, tmp_path
):
    from potforge.hashing import readable_digest, structure_hash
    from potforge.io import read_frames, write_frames

    assert readable_digest("0135566688143342") == "x0135566688143342"
    assert readable_digest("0123456789e12345") == "x0123456789e12345"
    assert readable_digest("0135566688a43342") == "0135566688a43342"
    old, unnamed = _copies(si_frames[:2])
    # a label written before readable_digest: its hashes are all digits
    old.info.update(
        structure_hash="0135566688143342",
        dft_hash="012345678901",
        frame_id="0135566688143342-012345678901",
    )
    unnamed.info.pop("frame_id", None)
    unnamed.info["structure_hash"] = "0123456789e12345"
    path = tmp_path / "labels.extxyz"
    write_frames(path, [old, unnamed])
    back = read_frames(path)
    assert back[0].info["structure_hash"] == "x0135566688143342"
    assert back[0].info["dft_hash"] == "x012345678901"
    assert back[1].info["structure_hash"] == structure_hash(unnamed)
    summary = build_dataset(back, [], SPLIT, tmp_path / "dataset")
    assert summary["frames"] == 2
    with connect(tmp_path / "dataset" / "ase.db") as db:
        assert {row.structure_hash for row in db.select()} == {
            "x0135566688143342",
            structure_hash(unnamed),
        }
