"""The NequIP committee stage: configs, real (tiny) training, warm start, deployment, scoring."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from potforge.errors import ConfigError, DatasetError, ModelError, TrainingError
from potforge.io import read_json, write_frames

# A model small enough to train a few epochs in seconds on one core.
TINY_TRAIN = {
    "model": {"num_features": 8, "radial_mlp_width": 16, "num_layers": 2, "l_max": 1},
    "batch_size": 5,
    "learning_rate": 0.01,
}
SI_EPOCHS = 12
CAMPAIGN_SEED = 7
POTFORGE = str(Path(sys.executable).parent / "potforge")


def _write_splits(root: Path, frames, n_val: int, n_test: int):
    from potforge.train.nequip_config import SplitFiles

    root.mkdir(parents=True, exist_ok=True)
    n_train = len(frames) - n_val - n_test
    write_frames(root / "train.extxyz", frames[:n_train])
    write_frames(root / "validation.extxyz", frames[n_train : n_train + n_val])
    write_frames(root / "test.extxyz", frames[n_train + n_val :])
    return SplitFiles.in_dir(root)


def _big_frames(frames, n: int = 4, atoms: int = 64):
    from potforge.train.compile_data import representative_frame

    out = []
    for k, frame in enumerate(frames[:n]):
        big = representative_frame(frame, atoms)
        big.rattle(0.05, seed=k)
        out.append(big)
    return out


@pytest.fixture(scope="module")
def si_splits(tmp_path_factory, si_frames):
    return _write_splits(tmp_path_factory.mktemp("si_data"), si_frames, 3, 3)


@pytest.fixture(scope="module")
def hfo_splits(tmp_path_factory, hfo_frames):
    return _write_splits(tmp_path_factory.mktemp("hfo_data"), hfo_frames, 2, 2)


@pytest.fixture(scope="module")
def si_members(tmp_path_factory, si_splits):
    """Two Si members trained from scratch (the Python API)."""
    from potforge.train.member import train_member

    root = tmp_path_factory.mktemp("si_committee")
    dirs = []
    for k in range(2):
        out = root / f"member_{k}"
        train_member(TINY_TRAIN, ["Si"], si_splits, out, k, CAMPAIGN_SEED, epochs=SI_EPOCHS)
        dirs.append(out)
    return dirs


@pytest.fixture(scope="module")
def hfo_members(tmp_path_factory, hfo_splits):
    """Two HfO members trained from scratch through the command line."""
    root = tmp_path_factory.mktemp("hfo_committee")
    dirs = []
    for k in range(2):
        out = root / f"member_{k}"
        argv = [POTFORGE, "train-member", "--train-settings", json.dumps(TINY_TRAIN)]
        argv += ["--species", "O", "Hf", "--data-dir", str(hfo_splits.train.parent)]
        argv += ["--member", str(k), "--seed", str(CAMPAIGN_SEED), "--out", str(out)]
        argv += ["--epochs", "4", "--threads", "1"]
        subprocess.run(argv, check=True)
        dirs.append(out)
    return dirs


@pytest.fixture(scope="module")
def si_compiled(si_members, tmp_path_factory):
    """Member 0 packaged and compiled for the ase target: the suite's only compile."""
    from potforge.train.deploy import deploy_member

    cache = tmp_path_factory.mktemp("model_cache")
    report = deploy_member(si_members[0], ["ase"], cache_dir=cache)
    return report, cache


# --- fast: settings, seeds, configs -------------------------------------------------------


def test_member_seeds_differ_and_are_stable():
    from potforge.train.settings import member_seed

    seeds = [member_seed(2026, k) for k in range(8)]
    assert len(set(seeds)) == 8
    assert seeds == [member_seed(2026, k) for k in range(8)]
    assert member_seed(2027, 0) != seeds[0]
    with pytest.raises(ConfigError, match="member index"):
        member_seed(2026, -1)


def test_scouting_iterations_train_fewer_epochs_and_the_last_one_all():
    from potforge.train.settings import member_epochs, resolve_train_settings

    scratch = resolve_train_settings({"warm_start": False, "epochs": 300, "scout_epochs": 120})
    assert [member_epochs(scratch, it, 3) for it in range(3)] == [120, 120, 300]
    assert member_epochs(scratch, 0, 1) == 300  # a one-iteration loop: its only committee is final
    plain = resolve_train_settings({"warm_start": False, "epochs": 300})
    assert [member_epochs(plain, it, 3) for it in range(3)] == [300, 300, 300]
    warm = resolve_train_settings({"epochs": 300, "warm_epochs": 40, "scout_epochs": 120})
    assert [member_epochs(warm, it, 3) for it in range(3)] == [120, 40, 40]
    with pytest.raises(ConfigError, match="loop.max_iterations"):
        member_epochs(scratch, 3, 3)


def test_train_settings_fill_defaults_and_reject_unknown_keys():
    from potforge.train.settings import resolve_train_settings

    settings = resolve_train_settings('{"epochs": 3}')
    assert settings["epochs"] == 3 and settings["model"]["r_max"] == 4.5
    with pytest.raises(ConfigError, match="train.epoch"):
        resolve_train_settings({"epoch": 3})
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_train_settings("{epochs: 3")


def test_config_handles_tiny_splits(tmp_path, si_frames):
    from potforge.train.nequip_config import render_config, write_config
    from potforge.train.settings import resolve_train_settings

    settings = resolve_train_settings({**TINY_TRAIN, "batch_size": 50})
    splits = _write_splits(tmp_path / "d", si_frames[:6], 1, 0)
    config = render_config(settings, ["Si"], splits, seed=3, epochs=2)
    assert config["data"]["train_dataloader"]["batch_size"] == 5
    assert config["data"]["val_dataloader"]["batch_size"] == 1
    assert config["run"] == ["train"] and "test_file_path" not in config["data"]
    assert Path(config["data"]["train_file_path"]).is_absolute()
    path = write_config(config, tmp_path / "member")
    assert "nequip-train -cp" in path.read_text()

    warm = render_config(settings, ["Si"], splits, 3, 2, init=tmp_path / "prev" / "best.ckpt")
    assert warm["training_module"]["model"]["_target_"] == "nequip.model.ModelFromCheckpoint"

    empty_val = _write_splits(tmp_path / "e", si_frames[:4], 0, 1)
    with pytest.raises(DatasetError, match="validation split is empty"):
        render_config(settings, ["Si"], empty_val, 3, 2)
    with pytest.raises(DatasetError, match=r"species \['Si'\] are not in the model species"):
        render_config(settings, ["O", "Hf"], splits, 3, 2)


def test_compile_targets_are_parsed():
    from potforge.train.deploy import parse_targets

    assert parse_targets("ase,pair_nequip") == ["ase", "pair_nequip"]
    assert parse_targets("none") == [] and parse_targets("") == []
    with pytest.raises(TrainingError, match="unknown"):
        parse_targets("lammps")


def test_force_deviation_definition():
    from potforge.train.committee import atom_force_deviation, max_force_deviation

    forces = np.zeros((2, 3, 3))
    forces[0, 1] = [1.0, 0.0, 0.0]
    forces[1, 1] = [-1.0, 0.0, 0.0]
    assert np.allclose(atom_force_deviation(forces), [0.0, 1.0, 0.0])
    assert max_force_deviation(np.repeat(forces[:1], 4, axis=0)) == 0.0


@pytest.mark.parametrize("name", ["broken.ckpt", "broken.nequip.zip", "broken.nequip.pt2"])
def test_corrupt_model_file_names_the_file(tmp_path, name):
    from potforge.train.models import load_model

    path = tmp_path / name
    path.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelError, match=rf"{name}: cannot load the"):
        load_model(path)
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "missing.ckpt")


# --- slow: real training ------------------------------------------------------------------


def _finite_numbers(metrics):
    for split in ("validation", "test"):
        for key, value in metrics[split].items():
            if key != "frames":
                assert value is not None and math.isfinite(value), (split, key)


@pytest.mark.slow
def test_si_members_write_finite_metrics_and_differ(si_members):
    from potforge.train.models import load_model, predict

    metrics = [read_json(d / "metrics.json") for d in si_members]
    for d, m in zip(si_members, metrics, strict=True):
        assert (d / "best.ckpt").is_file() and (d / "nequip.yaml").is_file()
        assert not (d / ".tmp").exists() and not (d / ".cache").exists()
        _finite_numbers(m)
        assert m["epochs_run"] == SI_EPOCHS and m["device"] == "cpu"
        assert len(m["validation_force_mae_per_epoch"]) == SI_EPOCHS
    assert metrics[0]["seed"] != metrics[1]["seed"]
    frames = _big_frames([a for a in load_frames_of(si_members[0])], n=2)
    p0, p1 = (predict(load_model(d / "best.ckpt"), frames) for d in si_members)
    assert np.abs(p0.energies - p1.energies).max() > 1e-4


def load_frames_of(member_dir):
    import yaml

    from potforge.io import read_frames

    config = yaml.safe_load((member_dir / "nequip.yaml").read_text())
    return read_frames(config["data"]["train_file_path"])


@pytest.mark.slow
def test_hfo_members_two_species(hfo_members):
    metrics = [read_json(d / "metrics.json") for d in hfo_members]
    for m in metrics:
        _finite_numbers(m)
        assert m["species"] == ["O", "Hf"]
    assert metrics[0]["validation"] != metrics[1]["validation"]


@pytest.mark.slow
def test_warm_start_from_the_package_is_ahead_of_scratch_at_equal_epochs(si_frames, tmp_path):
    """As the workflow does it: iteration 1 starts from iteration 0's package on grown data."""
    from potforge.train.deploy import deploy_member
    from potforge.train.member import train_member

    first = _write_splits(tmp_path / "data0", si_frames[:12], 2, 2)
    grown = _write_splits(tmp_path / "data1", si_frames, 3, 3)
    train_member(TINY_TRAIN, ["Si"], first, tmp_path / "it0", 0, CAMPAIGN_SEED, epochs=SI_EPOCHS)
    deploy_member(tmp_path / "it0", [], threads=1)
    package = tmp_path / "it0" / "model.nequip.zip"
    scratch = train_member(
        TINY_TRAIN, ["Si"], grown, tmp_path / "scratch", 0, CAMPAIGN_SEED, epochs=SI_EPOCHS
    )
    warm = train_member(
        TINY_TRAIN, ["Si"], grown, tmp_path / "warm", 0, CAMPAIGN_SEED, init=package, epochs=4
    )
    assert warm["warm_start"] and warm["init"] == str(package.resolve())
    warm_curve = warm["validation_force_mae_per_epoch"]
    scratch_curve = scratch["validation_force_mae_per_epoch"]
    # The package's weights were loaded: ahead from the first epoch and at equal epochs.
    assert warm_curve[0] < scratch_curve[0], (warm_curve, scratch_curve)
    assert min(warm_curve) < min(scratch_curve[: len(warm_curve)]), (warm_curve, scratch_curve)


def test_keep_epoch_last_runs_every_epoch_and_keeps_the_final_one(si_splits, tmp_path):
    """keep_epoch: last ignores the validation split (early stopping and the best epoch)."""
    import torch

    from potforge.train.member import train_member

    impatient = {**TINY_TRAIN, "early_stopping_patience": 1, "learning_rate": 0.05}
    best = train_member(
        impatient, ["Si"], si_splits, tmp_path / "best", 0, CAMPAIGN_SEED, epochs=10
    )
    last = train_member(
        {**impatient, "keep_epoch": "last"},
        ["Si"],
        si_splits,
        tmp_path / "last",
        0,
        CAMPAIGN_SEED,
        epochs=10,
    )
    assert best["keep_epoch"] == "best" and last["keep_epoch"] == "last"
    assert best["epochs_run"] < 10  # patience 1 stops it early: the setting is what differs
    assert last["epochs_run"] == last["best_epoch"] == 10
    kept = torch.load(tmp_path / "last" / "best.ckpt", map_location="cpu", weights_only=False)
    final = torch.load(tmp_path / "last" / "last.ckpt", map_location="cpu", weights_only=False)
    assert kept["epoch"] == final["epoch"] == 9  # Lightning counts epochs from 0
    assert kept["global_step"] == final["global_step"] > 0
    tensors = {k: v for k, v in final["state_dict"].items() if isinstance(v, torch.Tensor)}
    assert tensors
    for name, tensor in tensors.items():
        assert torch.equal(kept["state_dict"][name], tensor), name


def test_cosine_schedule_decays_the_rate_to_its_floor_whatever_the_validation(si_splits, tmp_path):
    """lr_schedule: cosine follows its fixed curve; plateau would have kept 0.01 for 4 epochs."""
    import math

    import torch

    from potforge.train.member import train_member

    settings = {**TINY_TRAIN, "lr_schedule": "cosine", "lr_min_factor": 0.1, "keep_epoch": "last"}
    train_member(settings, ["Si"], si_splits, tmp_path / "cos", 0, CAMPAIGN_SEED, epochs=4)
    ckpt = torch.load(tmp_path / "cos" / "last.ckpt", map_location="cpu", weights_only=False)
    (scheduler,) = ckpt["lr_schedulers"]
    assert scheduler["T_max"] == 4 and scheduler["eta_min"] == pytest.approx(0.001)

    def cosine(step: int) -> float:
        return 0.001 + 0.5 * (0.01 - 0.001) * (1 + math.cos(math.pi * step / 4))

    # Lightning saves the last checkpoint just before or just after the final epoch's step
    lr = ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
    assert any(lr == pytest.approx(cosine(step)) for step in (3, 4)), lr


@pytest.mark.slow
def test_warm_start_refuses_other_species(si_members, hfo_splits, tmp_path):
    from potforge.train.member import train_member

    with pytest.raises(TrainingError, match="same species"):
        train_member(
            TINY_TRAIN,
            ["O", "Hf"],
            hfo_splits,
            tmp_path / "w",
            0,
            1,
            init=si_members[0] / "best.ckpt",
        )


@pytest.mark.slow
def test_compiled_model_agrees_with_checkpoint(si_members, si_compiled, si_frames):
    from potforge.train.models import load_model, predict

    report, _ = si_compiled
    compiled = load_model(report["artefacts"]["ase"]["path"])
    eager = load_model(si_members[0] / "best.ckpt")
    packaged = load_model(report["artefacts"]["package"]["path"])
    frames = _big_frames(si_frames)
    pc, pe, pp = (predict(m, frames, stress=True) for m in (compiled, eager, packaged))
    assert np.abs(pc.energies - pe.energies).max() < 1e-5
    assert max(np.abs(a - b).max() for a, b in zip(pc.forces, pe.forces, strict=True)) < 1e-5
    assert np.abs(pp.energies - pe.energies).max() < 1e-8
    # merging frames into one graph changes nothing
    merged = predict(compiled, frames)
    assert np.abs(merged.energies - pc.energies).max() < 1e-6


@pytest.mark.slow
def test_deploy_again_is_served_from_cache(si_members, si_compiled):
    from potforge.train.deploy import deploy_member

    _, cache = si_compiled
    again = deploy_member(si_members[0], ["ase"], cache_dir=cache)
    assert again["artefacts"]["ase"]["cached"] and again["artefacts"]["package"]["cached"]
    assert again["artefacts"]["ase"]["seconds"] < 5


@pytest.mark.slow
def test_a_sibling_compiled_model_with_swapped_weights_is_the_member(
    si_members, si_compiled, si_frames
):
    """Member 1 deployed from member 0's compiled code: its own model to 1e-5, no compile."""
    from potforge.train.deploy import deploy_member
    from potforge.train.models import load_model, predict

    _, cache = si_compiled
    messages = []
    report = deploy_member(
        si_members[1], ["ase"], cache_dir=cache, template=si_members[0], log=messages.append
    )
    entry = report["artefacts"]["ase"]
    assert entry["how"] == "weight swap" and not entry["cached"], messages
    assert entry["template"] == str(si_members[0].resolve() / "model.ase.nequip.pt2")
    frames = _big_frames(si_frames)
    swapped = predict(load_model(entry["path"]), frames)
    own = predict(load_model(si_members[1] / "best.ckpt"), frames)
    template = predict(load_model(si_members[0] / "best.ckpt"), frames)
    natoms = np.array([len(f) for f in frames])
    assert np.abs((swapped.energies - own.energies) / natoms).max() < 1e-5
    assert max(np.abs(a - b).max() for a, b in zip(swapped.forces, own.forces, strict=True)) < 1e-4
    # the members differ, so agreeing with member 1 is not agreeing with member 0
    assert (
        max(np.abs(a - b).max() for a, b in zip(swapped.forces, template.forces, strict=True))
        > 1e-3
    )


@pytest.mark.slow
def test_weight_swap_refuses_what_the_compiled_code_does_not_fit(si_members, si_compiled):
    from potforge.train.weight_swap import (
        WeightSwapError,
        constants_region,
        library_of,
        model_tensors,
        patched_library,
    )

    report, _ = si_compiled
    library = library_of(Path(report["artefacts"]["ase"]["path"]))
    start, end = constants_region(library)
    assert 0 < start < end <= len(library)
    template = model_tensors(report["artefacts"]["package"]["path"])
    other = model_tensors(si_members[1] / "best.ckpt")
    patched, counts = patched_library(library, template, other)
    assert counts["swapped"] > 0 and len(patched) == len(library)
    assert patched[:start] == library[:start] and patched[end:] == library[end:]
    with pytest.raises(WeightSwapError, match="different tensors"):
        patched_library(
            library, template, {k: v for k, v in other.items() if k != next(iter(other))}
        )
    name = next(k for k, v in other.items() if v.ndim == 2 and v.size > 1)
    with pytest.raises(WeightSwapError, match=f"{name}: float32"):
        patched_library(library, template, {**other, name: other[name][:, :1].copy()})
    # a tensor the compiler folded into the code (not a weight of the blob) cannot be swapped
    masks = [k for k, v in template.items() if k.endswith("output_mask")]
    assert masks
    changed = {**other, masks[0]: template[masks[0]] * 0.5}
    with pytest.raises(WeightSwapError, match=f"{masks[0]} differs .* found nowhere"):
        patched_library(library, template, changed)
    # the same data statistic summed in another order (the last bit) is not a different model
    scale = next(k for k in template if k.endswith("scales"))
    rounded = {**other, scale: template[scale] * (1 + 1e-15)}
    assert patched_library(library, template, rounded)[1]["swapped"] == counts["swapped"]
    with pytest.raises(WeightSwapError, match="not a 64-bit"):
        constants_region(b"not an ELF file at all")


@pytest.mark.slow
def test_compiled_model_refuses_float32_inputs(si_compiled, si_frames):
    from potforge.train.models import graph_of_frames, load_model

    compiled = load_model(si_compiled[0]["artefacts"]["ase"]["path"])
    graph = graph_of_frames(si_frames[:2], compiled.type_names, compiled.r_max)
    graph["pos"] = graph["pos"].float()
    with pytest.raises(ModelError, match="'pos' is torch.float32, the model needs float64"):
        compiled(graph)


@pytest.mark.slow
def test_committee_deviation_zero_for_copies_positive_for_seeds(si_members, si_frames):
    from potforge.train.committee import load_committee, score_frames

    frames = _big_frames(si_frames, n=3)
    copies = score_frames(load_committee([si_members[0] / "best.ckpt"] * 3), frames)
    assert copies.max_force_deviation.max() < 1e-6
    seeds = score_frames(load_committee([d / "best.ckpt" for d in si_members]), frames)
    assert (seeds.max_force_deviation > 1e-3).all()
    assert seeds.energies.shape == (2, 3) and seeds.forces[0].shape == (2, 64, 3)


@pytest.mark.slow
def test_species_mismatch_names_model_and_species(hfo_members, si_frames):
    from potforge.train.committee import load_committee, score_frames

    members = load_committee([d / "best.ckpt" for d in hfo_members])
    with pytest.raises(
        ModelError, match=r"best.ckpt: the model's type names \['O', 'Hf'\].*\['Si'\]"
    ):
        score_frames(members, si_frames[:2])


@pytest.mark.slow
def test_committee_cli_writes_summary(si_members, si_splits, tmp_path):
    out = tmp_path / "committee.json"
    argv = [
        POTFORGE,
        "committee",
        "--members",
        *map(str, si_members),
        "--test",
        str(si_splits.test),
    ]
    subprocess.run([*argv, "--out", str(out)], check=True)
    summary = read_json(out)
    assert summary["frames"] == 3 and len(summary["per_member"]) == 2
    assert math.isfinite(summary["committee_mean"]["force_mae_ev_per_a"])
    scored = (summary["committee_mean"], *summary["per_member"])
    assert all(math.isfinite(m["stress_mae_gpa"]) and m["stress_mae_gpa"] > 0 for m in scored)
    assert summary["max_force_deviation"]["max"] > 0
