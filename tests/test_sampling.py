"""Prototypes and iteration-0 sampling: right crystals, deterministic, tagged, screened."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_config
from potforge.hashing import structure_hash
from potforge.sampling import disordered, sample_system, screen
from potforge.structures import (
    diamond,
    hfo2_cubic,
    hfo2_monoclinic,
    hfo2_tetragonal,
    min_distance_ratio,
    too_close_reason,
)


def test_prototypes_have_the_literature_cells():
    si = diamond()
    assert len(si) == 8 and np.allclose(si.cell.lengths(), 5.47)
    mono = hfo2_monoclinic()
    assert mono.get_chemical_formula() == "Hf4O8"
    assert np.allclose(mono.cell.cellpar(), [5.117, 5.175, 5.291, 90, 99.22, 90], atol=1e-6)
    # Monoclinic Hf is seven-fold coordinated by O within 2.6 A.
    from ase.neighborlist import neighbor_list

    i, j = neighbor_list("ij", mono, 2.6)
    sym = np.array(mono.get_chemical_symbols())
    hf = np.where(sym == "Hf")[0]
    assert all(((i == k) & (sym[j] == "O")).sum() == 7 for k in hf)
    assert hfo2_tetragonal().get_chemical_formula() == "Hf2O4"
    cubic = hfo2_cubic()
    assert cubic.get_chemical_formula() == "Hf4O8"
    i, j, d = neighbor_list("ijd", cubic, 2.3)
    assert np.allclose(d, 5.07 * np.sqrt(3) / 4)


def test_sampling_is_deterministic_and_tagged():
    config = tiny_config()
    settings = config["systems"]["si"]
    first = sample_system("si", diamond(), settings, seed=3)
    again = sample_system("si", diamond(), settings, seed=3)
    other = sample_system("si", diamond(), settings, seed=4)
    assert [structure_hash(a) for a in first] == [structure_hash(a) for a in again]
    assert [structure_hash(a) for a in first] != [structure_hash(a) for a in other]
    generators = {a.info["generator"] for a in first}
    assert {"bulk", "strain", "shear", "rattle", "vacancy", "disordered"} <= generators
    for atoms in first:
        assert atoms.info["system"] == "si"
        json.loads(atoms.info["params"])
    vacancy = next(a for a in first if a.info["generator"] == "vacancy")
    assert len(vacancy) == 7


def test_surface_slab_is_periodic_with_vacuum():
    config = tiny_config(
        systems={
            "si": {
                "structure": {"prototype": "diamond"},
                "sample": {"surface": {"miller": [1, 0, 0], "layers": 2, "vacuum": 5.0}},
            }
        }
    )
    frames = sample_system("si", diamond(), config["systems"]["si"], seed=1)
    slab = next(a for a in frames if a.info["generator"] == "surface")
    assert slab.pbc.all()
    assert slab.cell.lengths()[2] > 10.0


def test_disordered_cell_respects_the_distance_limit():
    cell = disordered(diamond(), seed=5, min_fraction=0.6)
    assert min_distance_ratio(cell)[0] >= 0.6
    assert np.isclose(cell.get_volume(), diamond().get_volume())


def test_too_close_atoms_are_rejected_before_dft_with_a_reason():
    bad = diamond()
    bad.positions[1] = bad.positions[0] + [0.5, 0.0, 0.0]
    good = diamond()
    kept, rejected = screen([good, bad], min_fraction=0.6)
    assert kept == [good] and rejected == [bad]
    reason = bad.info["reject_reason"]
    assert "atoms 0 (Si) and 1 (Si) are 0.500 A apart" in reason
    assert too_close_reason(good, 0.6) is None


@pytest.mark.parametrize("prototype", ["hfo2-monoclinic", "hfo2-tetragonal", "hfo2-cubic"])
def test_hfo2_systems_sample_two_species(prototype):
    config = tiny_config(systems={"x": {"structure": {"prototype": prototype}}})
    from potforge.structures import starting_structure

    base = starting_structure(config["systems"]["x"]["structure"])
    frames = sample_system("x", base, config["systems"]["x"], seed=2)
    kept, rejected = screen(frames, config["systems"]["x"]["min_distance_fraction"])
    assert kept and all(set(a.get_chemical_symbols()) == {"Hf", "O"} for a in kept)


def test_vacancy_species_removes_only_that_element():
    """Oxygen vacancies in monoclinic HfO2: every vacancy cell lost one O and kept its Hf."""
    from potforge.errors import StructureError
    from potforge.sampling import with_vacancy
    from potforge.structures import hfo2_monoclinic

    settings = tiny_config(
        systems={
            "m": {
                "structure": {"prototype": "hfo2-monoclinic"},
                "sample": {"vacancies": 4, "vacancy_species": "O"},
            }
        }
    )["systems"]["m"]
    frames = sample_system("m", hfo2_monoclinic(), settings, seed=3)
    vacancies = [a for a in frames if a.info["generator"] == "vacancy"]
    assert len(vacancies) == 4
    assert all(a.get_chemical_formula() == "Hf4O7" for a in vacancies)
    # different seeds remove different O atoms (not always the first one)
    removed = {
        frozenset(map(tuple, with_vacancy(hfo2_monoclinic(), s, "O").positions.round(3)))
        for s in range(6)
    }
    assert len(removed) > 1
    with pytest.raises(StructureError, match="no Si atom"):
        with_vacancy(hfo2_monoclinic(), 0, "Si")


def test_sample_count_matches_what_is_generated():
    from potforge.sampling import sample_count

    config = tiny_config(
        systems={
            "si": {
                "structure": {"prototype": "diamond"},
                "sample": {
                    "surface": {"miller": [1, 1, 1], "layers": 2},
                    "vacancies": 2,
                    "deformations": {"count": 2, "clean": 1},
                },
            }
        }
    )
    settings = config["systems"]["si"]
    assert len(sample_system("si", diamond(), settings, seed=1)) == sample_count(settings)


def test_deformations_strain_every_component_within_the_bound():
    from potforge.sampling import deformed

    crystal = diamond()
    shapes = []
    for seed in range(4):
        cell = deformed(crystal, 0.02, 0.0, seed).cell.array
        strain = np.linalg.solve(crystal.cell.array, cell) - np.eye(3)
        assert np.allclose(strain, strain.T)
        assert np.abs(strain).max() <= 0.02
        shapes.append(strain)
    # Shear components are present (C44 needs them) and differ between seeds.
    assert min(abs(s[0, 1]) + abs(s[0, 2]) + abs(s[1, 2]) for s in shapes) > 1e-4
    assert not np.allclose(shapes[0], shapes[1])


def test_clean_deformations_are_unrattled_and_leave_the_other_frames_as_they_were():
    """Clean cells keep the crystal's fractional coordinates; adding them changes no other frame."""
    sample = {"strains": [], "shear_strains": [], "vacancies": 1, "rattle": {"copies": 1}}
    settings = {}
    for clean in (0, 2):
        deformations = {"count": 2, "max_strain": 0.02, "rattle": 0.03, "clean": clean}
        config = tiny_config(
            systems={
                "si": {
                    "structure": {"prototype": "diamond"},
                    "sample": {**sample, "deformations": deformations},
                }
            }
        )
        settings[clean] = sample_system("si", diamond(), config["systems"]["si"], seed=3)
    before, after = settings[0], settings[2]
    assert len(after) == len(before) + 2
    for old, new in zip(before, after[: len(before)], strict=True):
        assert np.allclose(old.positions, new.positions) and np.allclose(old.cell, new.cell)
    crystal = diamond()
    for frame in after[len(before) :]:
        assert json.loads(frame.info["params"])["clean"] is True
        assert np.allclose(frame.get_scaled_positions(), crystal.get_scaled_positions())
        strain = np.linalg.solve(crystal.cell.array, frame.cell.array) - np.eye(3)
        assert 1e-4 < np.abs(strain).max() <= 0.02
    rattled_ones = [f for f in after if f.info["generator"] == "deformation"][:2]
    assert not np.allclose(rattled_ones[0].get_scaled_positions(), crystal.get_scaled_positions())


def test_molten_cells_come_from_a_real_classical_run():
    """SW equilibrates a random 16-atom cell at 1800 K: liquid-like, far above the crystal."""
    from potforge.sampling import sample_count
    from potforge.validate.calculators import peer_factory

    config = tiny_config(
        systems={
            "si": {
                "structure": {"prototype": "diamond"},
                "sample": {"molten": {"count": 1, "supercell": [2, 1, 1]}},
            }
        }
    )
    settings = config["systems"]["si"]
    frames = sample_system("si", diamond(), settings, seed=5)
    assert len(frames) == sample_count(settings)
    hot = next(a for a in frames if a.info["generator"] == "molten")
    assert len(hot) == 16 and hot.calc is None
    assert too_close_reason(hot, 0.6) is None
    sw = peer_factory({"name": "SW", **settings["sample"]["molten"]["potential"]}, ["Si"])()
    crystal = diamond().repeat((2, 1, 1))
    crystal.calc = sw
    e_crystal = crystal.get_potential_energy() / 16
    hot.calc = sw
    # 3/2 kT at 1800 K is 0.23 eV/atom; a liquid also holds the latent heat (SW: 0.3 eV/atom).
    assert hot.get_potential_energy() / 16 - e_crystal > 0.4


def test_exploration_starts_are_the_crystal_and_one_structure_per_generator():
    """The start file holds the crystal and the first kept vacancy and molten cells, by name."""
    from potforge.errors import StructureError
    from potforge.md.explore import expand_tasks
    from potforge.sampling import start_frame, start_structures

    config = tiny_config(
        systems={
            "si": {
                "structure": {"prototype": "diamond"},
                "sample": {
                    "vacancies": 2,
                    "disordered": {"count": 0},
                    "molten": {"count": 1, "supercell": [2, 1, 1]},
                },
                "explore": {
                    "tasks": [
                        {"ensemble": "nvt", "temperatures": [600]},
                        {"ensemble": "nvt", "temperatures": [1800], "start": "molten"},
                    ]
                },
            }
        }
    )
    settings = config["systems"]["si"]
    kept, _ = screen(sample_system("si", diamond(), settings, seed=3), 0.6)
    starts = start_structures(diamond(), kept)
    assert [a.info["start"] for a in starts] == ["crystal", "vacancy", "molten"]
    first_vacancy = next(a for a in kept if a.info["generator"] == "vacancy")
    assert structure_hash(start_frame(starts, "vacancy")) == structure_hash(first_vacancy)
    assert len(start_frame(starts, "crystal")) == 8 and len(start_frame(starts, "molten")) == 16
    with pytest.raises(StructureError, match="exploration start 'surface': no such structure"):
        start_frame(starts, "surface")
    names = [t["name"] for t in expand_tasks(settings)]
    assert names == ["000-nvt-T600", "001-nvt-T1800-molten"]
