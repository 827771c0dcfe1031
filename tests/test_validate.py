"""The validation stage: properties, references, calibration and the independent test set."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from conftest import TINY_DFT, tiny_config
from potforge.validate.calculators import dft_factory, peer_factory, reference_parameters
from potforge.validate.calibration import calibration
from potforge.validate.properties import (
    crystal_properties,
    elastic_constants,
    equation_of_state,
    is_cubic,
)
from potforge.validate.rows import eos_scatter, polymorph_rows, property_rows

SETTINGS = {
    "eos_strains": [-0.02, -0.01, -0.005, 0.0, 0.005, 0.01, 0.02],
    "elastic": True,
    "elastic_strain": 0.01,
    "fmax": 0.005,
    "vacancy": {"supercell": [2, 2, 2], "relax": True},
}
SW = {"name": "SW", "pair_style": "sw", "pair_coeff": "* * Si.sw Si"}


def test_stillinger_weber_properties_match_the_published_values():
    # Stillinger-Weber silicon (LAMMPS' Si.sw): a0 5.431 A, B 101.4, C11 151.4, C12 76.4 GPa,
    # C44 56.4 GPa with relaxed ions. Its unrelaxed vacancy costs exactly the cohesive energy
    # (4 broken bonds of half of it each; no three-body term in a perfect tetrahedron).
    crystal = bulk("Si", "diamond", a=5.40, cubic=True)
    props = crystal_properties(crystal, peer_factory(SW, ["Si"]), SETTINGS, log=lambda _: None)
    assert props["lattice"][0] == pytest.approx(5.431, abs=0.002)
    assert props["eos"]["bulk_modulus_gpa"] == pytest.approx(101.4, rel=0.02)
    c = props["elastic_gpa"]
    assert c["C11"] == pytest.approx(151.4, rel=0.02)
    assert c["C12"] == pytest.approx(76.4, rel=0.02)
    assert c["C44"] == pytest.approx(56.4, rel=0.03)
    assert props["vacancy_ev"]["natoms"] == 64
    assert props["vacancy_ev"]["unrelaxed"] == pytest.approx(-props["energy_per_atom"], abs=1e-3)
    assert props["energy_per_atom"] == pytest.approx(-4.3366, abs=1e-3)
    # no force on any atom by symmetry: the relaxation from a small rattle comes back
    assert props["vacancy_ev"]["relaxed"] == pytest.approx(
        props["vacancy_ev"]["unrelaxed"], abs=1e-3
    )


def test_unrelaxed_c44_is_stiffer_than_relaxed_ions():
    crystal = bulk("Si", "diamond", a=5.431, cubic=True)
    factory = peer_factory(SW, ["Si"])
    relaxed = elastic_constants(crystal, factory, relax=True, fmax=0.005)
    unrelaxed = elastic_constants(crystal, factory, relax=False)
    assert unrelaxed["C44"] > 1.5 * relaxed["C44"]
    assert unrelaxed["C11"] == pytest.approx(relaxed["C11"], rel=1e-3)  # no internal strain


def test_a_non_cubic_cell_gets_the_full_set_of_constants():
    crystal = bulk("Si", "diamond", a=5.431)  # the 2-atom primitive cell
    assert not is_cubic(crystal)
    c = elastic_constants(crystal, peer_factory(SW, ["Si"]), relax=True, fmax=0.005)
    assert {"C11", "C12", "C44"} <= set(c) and len(c) > 3


def test_property_rows_pass_and_fail_against_their_tolerance():
    dft = {"lattice": [5.0], "eos": {"bulk_modulus_gpa": 100.0}, "elastic_gpa": {"C11": 150.0}}
    model = {"lattice": [5.04], "eos": {"bulk_modulus_gpa": 95.0}, "elastic_gpa": {"C11": 100.0}}
    model["vacancy_ev"] = dft["vacancy_ev"] = None
    tol = {"lattice_percent": 0.5, "bulk_modulus_percent": 10, "elastic_percent": 15}
    rows = {r["name"]: r for r in property_rows("si", True, dft, model, tol)}
    assert rows["a0"]["error"] == pytest.approx(0.8) and not rows["a0"]["pass"]
    assert rows["B"]["error"] == pytest.approx(-5.0) and rows["B"]["pass"]
    assert not rows["C11"]["pass"]


def test_an_eos_keeps_one_k_grid_and_its_scatter_tells_smooth_from_jagged():
    # GPAW on the primitive Si2 cell at k-density 1.5: left to the density, the grid drops from
    # 4x4x4 to 3x3x3 between 0 and +0.5% strain, a jump in E(V) that no potential follows (and
    # a bulk modulus of 2000 GPa); the EOS keeps the unstrained cell's grid at every strain.
    strains = SETTINGS["eos_strains"]
    crystal, make = bulk("Si"), dft_factory(tiny_config()["dft"])
    fixed = equation_of_state(crystal, make, strains)
    volumes, energies = [], []
    for eps in strains:
        work = crystal.copy()
        work.set_cell(crystal.cell.array * (1 + eps), scale_atoms=True)
        work.calc = make(relax=False)
        volumes.append(work.get_volume())
        energies.append(work.get_potential_energy())
    jagged = {"volumes": volumes, "energies": energies}
    assert eos_scatter(jagged) > 0.02  # eV per cell
    assert eos_scatter(fixed) < 0.002
    assert 60 < fixed["bulk_modulus_gpa"] < 130
    smooth = equation_of_state(bulk("Si", "diamond", a=5.43), peer_factory(SW, ["Si"]), strains)
    assert eos_scatter(smooth) < 1e-4
    assert eos_scatter({**smooth, "volumes": smooth["volumes"][:5]}) is None  # too few points
    # an energy difference between two crystals carries both crystals' scatter; the lowest none
    crystals = {
        "a": {"dft": {"eos": {**fixed, **jagged}}, "model": {"eos": smooth}},
        "b": {"dft": {"eos": smooth}, "model": {"eos": smooth}},
    }
    rows = polymorph_rows(crystals, {"a": 2, "b": 2}, 25.0, 1.0)
    blur = {r["name"]: r["dft_scatter"] for r in rows if r["name"].startswith("dE(")}
    lowest = "a" if fixed["e0"] < smooth["e0"] else "b"
    other = "b" if lowest == "a" else "a"
    assert blur[f"dE({lowest}-{lowest})"] is None
    expected = 1000 * np.hypot(eos_scatter(jagged), eos_scatter(smooth)) / 2
    assert blur[f"dE({other}-{lowest})"] == pytest.approx(expected)


def test_calibration_recovers_a_known_scale_and_ranks():
    rng = np.random.default_rng(0)
    dev = rng.uniform(0.01, 0.3, 400)
    err = 2.0 * dev * rng.uniform(0.8, 1.2, 400)
    symbols = ["Si"] * 200 + ["O"] * 200
    cal = calibration(dev, err, symbols, {"lo": 0.05, "hi": 0.15})
    assert cal["scale"] == pytest.approx(2.0, rel=0.03)
    assert cal["spearman"] > 0.9
    assert set(cal["per_species"]) == {"O", "Si"}
    assert cal["suggested_trust"]["lo"] == pytest.approx(0.025, rel=0.05)
    shuffled = calibration(dev, rng.permutation(err), symbols)
    assert abs(shuffled["spearman"]) < 0.2


def test_time_reversal_symmetry_gives_the_same_labels_as_no_symmetry(tmp_path):
    from potforge.dft.label import label_frames

    atoms = bulk("Si", "diamond", a=5.47)
    atoms.rattle(0.05, seed=3)
    atoms.info.update(system="si", generator="test", origin="rattle")
    results = {}
    for symmetry in ("off", "time-reversal"):
        dft = tiny_config(dft={**TINY_DFT, "symmetry": symmetry})["dft"]
        report = label_frames([atoms], dft, tmp_path / symmetry, log=lambda _: None)
        results[symmetry] = report.labelled[0]
    off, tr = results["off"], results["time-reversal"]
    assert tr.info["dft_hash"] != off.info["dft_hash"], "symmetry must be in the protocol hash"
    assert tr.get_potential_energy() == pytest.approx(off.get_potential_energy(), abs=1e-6)
    assert np.abs(tr.get_forces() - off.get_forces()).max() < 1e-4
    assert np.abs(tr.get_stress() - off.get_stress()).max() < 1e-6
    assert "Si" in tr.info["paw_setups"]


def test_a_dft_reference_is_computed_once_and_reused_by_another_campaign(tmp_path):
    from potforge.validate.protocol import dft_reference

    settings = {"eos_strains": [-0.02, -0.01, 0.0, 0.01, 0.02], "elastic": False, "vacancy": None}
    first = tiny_config(
        campaign="one",
        systems={"si": {"structure": {"file": "tests/data/si2.extxyz"}}},
        validate={"properties": settings},
    )
    second = tiny_config(
        campaign="two",
        systems={"crystal": {"structure": {"file": "tests/data/si2.extxyz"}}},
        validate={"properties": settings},
    )
    cache = tmp_path / "references"
    ref1 = dft_reference(first, "si", cache, log=lambda _: None)
    assert not ref1["cached"]
    stamp = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    ref2 = dft_reference(second, "crystal", cache, log=lambda _: None)
    assert ref2["cached"] and ref2["key"] == ref1["key"]
    assert ref2["properties"]["eos"] == ref1["properties"]["eos"]
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamp
    # the primitive Si2 cell at the tiny protocol: a_cubic = sqrt(2) a_prim within 3% of 5.47
    assert np.sqrt(2) * ref1["properties"]["lattice"][0] == pytest.approx(5.47, rel=0.03)
    other = tiny_config(
        campaign="three",
        systems={"si": {"structure": {"file": "tests/data/si2.extxyz"}}},
        dft={**TINY_DFT, "ecut": 220},
        validate={"properties": settings},
    )
    assert not dft_reference(other, "si", cache, log=lambda _: None)["cached"]


def test_the_protocol_check_flags_a_pulay_stress_and_can_stop(tmp_path):
    from potforge.errors import LabelError
    from potforge.validate.protocol import protocol_check

    systems = {"si": {"structure": {"file": "tests/data/si2.extxyz"}}}
    good = tiny_config(systems=systems, dft={**TINY_DFT, "ecut": 250})
    result = protocol_check(good, tmp_path, log=lambda _: None)
    assert result["stress_consistent"] and result["train_on_stress"]
    # 120 eV is far too low for Si: analytic and finite-difference pressure part ways.
    npt = [{"ensemble": "npt", "temperatures": [900]}]
    bad = tiny_config(
        systems={"si": {**systems["si"], "explore": {"tasks": npt}}},
        dft={**TINY_DFT, "ecut": 120},
        validate={"protocol_check": {"stress_tolerance_gpa": 0.5}},
    )
    flagged = protocol_check(bad, tmp_path, log=lambda _: None)
    assert not flagged["train_on_stress"]
    assert flagged["systems"]["si"]["difference_gpa"] > 0.5
    # NPT driven by a model without stress labels is named in the warning
    assert flagged["npt_without_stress"] == ["si"] and "npt exploration of si" in flagged["warning"]
    stop = tiny_config(
        systems=systems,
        dft={**TINY_DFT, "ecut": 120},
        validate={"protocol_check": {"on_inconsistent_stress": "stop"}},
    )
    with pytest.raises(LabelError, match="dft.ecut"):
        protocol_check(stop, tmp_path, log=lambda _: None)


def test_stress_labels_a_protocol_check_found_wrong_are_not_measured(si_frames):
    from potforge.train.accuracy import error_metrics, measured_labels
    from potforge.train.models import Predictions

    pred = Predictions(
        np.array([a.get_potential_energy() for a in si_frames]),
        [a.get_forces() + 0.1 for a in si_frames],
        np.array([np.eye(3) * 0.01 for _ in si_frames]),
    )
    trusted, note = measured_labels(si_frames, {"train_on_stress": True, "systems": {}})
    assert note is None and error_metrics(trusted, pred)["stress_mae_gpa"] > 0
    wrong = {"train_on_stress": False, "systems": {"si": {"difference_gpa": 75.6}}}
    frames, note = measured_labels(si_frames, wrong)
    assert "75.6 GPa" in note
    assert all("stress" not in a.calc.results for a in frames)
    assert all("stress" in a.calc.results for a in si_frames)  # the labels themselves are kept
    metrics = error_metrics(frames, pred)
    assert metrics["stress_mae_gpa"] is None
    assert metrics["force_rmse_ev_per_a"] == pytest.approx(0.1)
    assert metrics["energy_rmse_mev_per_atom"] == pytest.approx(0.0, abs=1e-9)


def test_references_use_the_point_group_only_for_fixed_geometries():
    dft = tiny_config()["dft"]
    fixed, moving = reference_parameters(dft, relax=False), reference_parameters(dft, relax=True)
    assert fixed["symmetry"] == {"point_group": True, "time_reversal": True}
    assert moving["symmetry"] == {"point_group": False, "time_reversal": True}
    assert {k: v for k, v in fixed.items() if k != "symmetry"} == {
        k: v for k, v in moving.items() if k != "symmetry"
    }
    off = tiny_config(dft={**TINY_DFT, "symmetry": "off"})["dft"]
    assert reference_parameters(off, relax=False)["symmetry"] == "off"


@pytest.mark.slow
def test_the_tiny_campaign_validates_its_committee_against_dft(tiny_campaign):
    from potforge.hashing import structure_hash
    from potforge.io import read_frames, read_json

    res = tiny_campaign / "results" / "tiny"
    v = read_json(res / "final" / "validation.json")
    ts = v["test_set"]
    assert ts["frames"] == 6
    for key in ("force_rmse_ev_per_a", "energy_rmse_mev_per_atom", "stress_rmse_gpa"):
        assert np.isfinite(ts[key]) and ts[key] > 0
    assert set(ts["per_origin"]) >= {o for o in ts["per_origin"] if o.startswith("explore:")}
    assert any(o.startswith("sample:") for o in ts["per_origin"])
    # the test set was never trained on: no test frame in any training database
    test_hashes = {
        structure_hash(a)
        for p in (res / "validation" / "labels").glob("chunk_*[0-9].extxyz")
        for a in read_frames(p)
    }
    assert len(test_hashes) == 6
    for split in ("train", "validation", "test"):
        trained = {
            structure_hash(a) for a in read_frames(res / "iter_001" / "dataset" / f"{split}.extxyz")
        }
        assert not trained & test_hashes
    rows = {r["name"]: r for r in v["properties"]}
    assert {"a0", "B", "C11", "C12", "C44", "vacancy_unrelaxed", "vacancy_relaxed"} <= set(rows)
    assert rows["a0"]["dft"] == pytest.approx(5.47, rel=0.03)
    assert 60 < rows["B"]["dft"] < 120
    assert 0.5 < rows["vacancy_unrelaxed"]["dft"] < 6
    for row in rows.values():
        assert np.isfinite(row["model"]) and np.isfinite(row["dft"])
        assert row["pass"] == (abs(row["error"]) <= row["tolerance"])
        assert "SW" in row["peers"]
    assert rows["a0"]["peers"]["SW"]["value"] == pytest.approx(5.431, abs=0.002)
    assert v["peers"]["SW"]["test_set"]["frames"] == 6
    cal = v["calibration"]
    assert -1 <= cal["spearman"] <= 1 and cal["scale"] > 0
    md = v["md_stability"]["si"]
    assert [r["temperature"] for r in md["runs"]] == [600.0, 1200.0, 600.0]
    assert all(r["natoms"] == 16 and r["steps_done"] > 0 for r in md["runs"])
    assert len(md["rdf_hottest"]["g"]) == len(md["rdf_hottest"]["r"]) > 0
    # every iteration is validated on the same frozen test set (learning curves)
    per_iter = [read_json(res / f"iter_{i:03d}" / "validate" / "validation.json") for i in (0, 1)]
    assert [p["test_set"]["frames"] for p in per_iter] == [6, 6]
    card = read_json(res / "final" / "model_card.json")
    assert card["validation"]["test_set"]["force_rmse_ev_per_a"] == ts["force_rmse_ev_per_a"]
    assert "Validation against DFT" in (res / "final" / "model_card.md").read_text()
    assert read_json(res / "validation" / "protocol_check.json")["stress_consistent"]


def test_the_test_set_is_drawn_over_every_task_and_skips_training_structures():
    from potforge.hashing import structure_hash
    from potforge.validate.testset import draw_from_exploration, draw_from_generators

    def trajectory(task, n):
        frames = []
        for k in range(n):
            atoms = bulk("Si", "diamond", a=5.43, cubic=True)
            atoms.rattle(0.05, seed=k + 100 * len(task))
            atoms.info.update(step=10 * k, system="si")
            frames.append(atoms)
        return frames

    trajectories = {"si/000-nvt-T600": trajectory("a", 20), "si/001-nvt-T1200": trajectory("bb", 3)}
    rng = np.random.default_rng(1)
    drawn = draw_from_exploration(trajectories, 6, rng)
    tasks = [a.info["task"] for a in drawn]
    assert tasks.count("si/001-nvt-T1200") == 2  # the short one: steps 10 and 20 (0 is the start)
    assert tasks.count("si/000-nvt-T600") == 4
    assert all(a.info["step"] > 0 and a.info["source"] == "explore" for a in drawn)
    assert {a.info["origin"] for a in drawn} == {"explore:000-nvt-T600", "explore:001-nvt-T1200"}
    # The tail of a run that ended past the trust window is not drawn; a frame past it mid-run is.
    for k, atoms in enumerate(trajectories["si/000-nvt-T600"]):
        atoms.info["max_force_dev"] = 0.5 if k >= 15 or k == 7 else 0.1
    kept = draw_from_exploration(trajectories, 40, np.random.default_rng(2), {"si": 0.3})
    steps = sorted(a.info["step"] for a in kept if a.info["task"] == "si/000-nvt-T600")
    assert steps == [10 * k for k in range(1, 15)]
    training = trajectory("a", 3)
    fresh = trajectory("a", 6)  # the first 3 equal the training structures
    for atoms in fresh:
        atoms.info["generator"] = "rattle"
    picked = draw_from_generators(fresh, training, 10, rng)
    assert len(picked) == 3
    assert not {structure_hash(a) for a in picked} & {structure_hash(a) for a in training}


def test_an_earlier_test_set_given_as_a_structure_file_keeps_every_frame_and_its_groups(tmp_path):
    from ase.io import write

    from potforge.errors import ConfigError
    from potforge.structures import read_structure_frames
    from potforge.validate.testset import frames_in_test_set, named_structures

    earlier = []
    for k, origin in enumerate(["explore:001-nvt-T1200", "sample:rattle", None]):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.rattle(0.05, seed=k)
        if origin:
            atoms.info.update(origin=origin, system="si")
        earlier.append(atoms)
    path = tmp_path / "test_set.extxyz"
    write(path, earlier)
    frames = named_structures({str(path): read_structure_frames(path)}, "si")
    assert [a.info["origin"] for a in frames] == [
        "file:explore:001-nvt-T1200",
        "file:sample:rattle",
        f"file:{path}",
    ]
    assert {a.info["system"] for a in frames} == {"si"}
    assert np.allclose(frames[1].positions, earlier[1].positions)
    settings = {"explore_frames": 4, "sample_frames": 2, "structures": [str(path)]}
    assert frames_in_test_set(settings, systems=2) == 4 + 2 * 2 + 3
    # A frame of a system this campaign lacks is named when the configuration is checked.
    earlier[0].info["system"] = "hfo2"
    write(path, earlier)
    with pytest.raises(ConfigError, match="frame 0 is of system 'hfo2'"):
        tiny_config(validate={"test_set": {"structures": [str(path)]}})
    # So is a frame whose elements the model does not know.
    earlier[0].info["system"] = "si"
    earlier[2][1].symbol = "O"
    write(path, earlier)
    with pytest.raises(ConfigError, match="structures.0.: .* frame 2 holds O, which no system"):
        tiny_config(validate={"test_set": {"structures": [str(path)]}})
