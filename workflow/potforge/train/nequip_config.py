"""Render a NequIP 0.19 Hydra training config from the `train:` settings and split files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from potforge.errors import DatasetError, TrainingError
from potforge.io import atomic_write, read_frames

CONFIG_NAME = "nequip"
MONITOR = "val0_epoch/weighted_sum"
CSV_LOG_NAME = "csv"


@dataclass(frozen=True)
class SplitFiles:
    """The train, validation and test extxyz files of one dataset."""

    train: Path
    validation: Path
    test: Path

    @classmethod
    def in_dir(cls, data_dir: str | Path) -> SplitFiles:
        """Return `train.extxyz`, `validation.extxyz` and `test.extxyz` of a dataset folder."""
        data_dir = Path(data_dir)
        return cls(*(data_dir / f"{name}.extxyz" for name in ("train", "validation", "test")))


@dataclass(frozen=True)
class SplitFacts:
    """What the config needs to know about one split file."""

    path: Path
    frames: int
    has_stress: bool
    symbols: frozenset[str]


def split_facts(path: str | Path) -> SplitFacts:
    """Read a split file: its frame count, whether every frame has stress, its species."""
    path = Path(path).resolve()
    if not path.is_file():
        raise DatasetError(f"{path}: no such split file; run the dataset stage first")
    frames = read_frames(path)
    has_stress = bool(frames) and all(
        a.calc is not None and "stress" in a.calc.results for a in frames
    )
    for i, atoms in enumerate(frames):
        if atoms.calc is None or "energy" not in atoms.calc.results:
            raise DatasetError(f"{path}: frame {i} has no energy label; relabel the dataset")
        if "forces" not in atoms.calc.results:
            raise DatasetError(f"{path}: frame {i} has no force labels; relabel the dataset")
    symbols = frozenset(s for a in frames for s in a.get_chemical_symbols())
    return SplitFacts(path, len(frames), has_stress, symbols)


def per_type_energy_shifts(frames_path: Path, species: Sequence[str]) -> list[float]:
    """Least-squares per-species energies (eV/atom), minimum-norm for collinear compositions."""
    frames = read_frames(frames_path)
    counts = np.array([[a.get_chemical_symbols().count(s) for s in species] for a in frames], float)
    energies = np.array([a.get_potential_energy() for a in frames])
    shifts, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return [float(x) for x in shifts]


def _loader(batch_size: int, shuffle: bool = False) -> dict[str, Any]:
    loader: dict[str, Any] = {"_target_": "torch.utils.data.DataLoader", "batch_size": batch_size}
    if shuffle:
        loader["shuffle"] = True
    return loader


def _model_section(settings: Mapping[str, Any], init: Path | None) -> dict[str, Any]:
    if init is not None:
        builder = "ModelFromPackage" if init.name.endswith(".nequip.zip") else "ModelFromCheckpoint"
        key = "package_path" if builder == "ModelFromPackage" else "checkpoint_path"
        return {"_target_": f"nequip.model.{builder}", key: str(init), "compile_mode": "eager"}
    model = settings["model"]
    return {
        "_target_": "nequip.model.NequIPGNNModel",
        "seed": "${seed}",
        "model_dtype": model["model_dtype"],
        "type_names": "${model_type_names}",
        "r_max": "${cutoff_radius}",
        "l_max": model["l_max"],
        "parity": True,
        "num_layers": model["num_layers"],
        "num_features": model["num_features"],
        "radial_mlp_depth": model["radial_mlp_depth"],
        "radial_mlp_width": model["radial_mlp_width"],
        "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
        "per_type_energy_shifts": None,  # filled in by render_config
        "per_type_energy_scales": "${training_data_stats:forces_rms}",
    }


def render_config(
    settings: Mapping[str, Any],
    species: Sequence[str],
    splits: SplitFiles,
    seed: int,
    epochs: int,
    init: str | Path | None = None,
    accelerator: str = "cpu",
) -> dict[str, Any]:
    """Return a NequIP Hydra config (a plain mapping) for one committee member."""
    species = list(species)
    if not species or len(set(species)) != len(species):
        raise TrainingError(f"species: need distinct element names, got {species}")
    train = split_facts(splits.train)
    val = split_facts(splits.validation)
    test = split_facts(splits.test)
    if train.frames == 0:
        raise DatasetError(f"{train.path}: the training split is empty; label more frames")
    if val.frames == 0:
        raise DatasetError(
            f"{val.path}: the validation split is empty; label more frames or raise "
            "dataset.split.validation"
        )
    for facts in (train, val, test):
        unknown = sorted(facts.symbols - set(species))
        if unknown:
            raise DatasetError(
                f"{facts.path}: species {unknown} are not in the model species {species}; "
                "pass every element of the campaign as --species"
            )
    with_stress = all(f.has_stress for f in (train, val, test) if f.frames)
    loss_w = settings["loss"]
    batch = settings["batch_size"]
    train_batch = min(batch, train.frames)
    eval_batch = min(batch, max(val.frames, test.frames))
    steps_per_epoch = math.ceil(train.frames / train_batch)

    kind = "EnergyForceStress" if with_stress else "EnergyForce"
    loss_coeffs = {"total_energy": loss_w["energy"], "forces": loss_w["forces"]}
    metric_coeffs: dict[str, float | None] = {
        "per_atom_energy_mae": 1.0,
        "forces_mae": 1.0,
        "per_atom_energy_rmse": None,
        "forces_rmse": None,
        "total_energy_rmse": None,
    }
    if with_stress:
        loss_coeffs["stress"] = loss_w["stress"]
        metric_coeffs.update(stress_mae=None, stress_rmse=None)

    model = _model_section(settings, Path(init).resolve() if init else None)
    if init is None:
        model["per_type_energy_shifts"] = dict(
            zip(species, per_type_energy_shifts(train.path, species), strict=True)
        )
    data: dict[str, Any] = {
        "_target_": "nequip.data.datamodule.ASEDataModule",
        "seed": "${seed}",
        "train_file_path": str(train.path),
        "val_file_path": str(val.path),
        "transforms": [
            {
                "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                "model_type_names": "${model_type_names}",
                "chemical_species_to_atom_type_map": "${list_to_identity_dict:${chemical_species}}",
            },
            {
                "_target_": "nequip.data.transforms.NeighborListTransform",
                "r_max": "${cutoff_radius}",
            },
        ],
        "train_dataloader": _loader(train_batch, shuffle=True),
        "val_dataloader": _loader(eval_batch),
        "stats_manager": {
            "_target_": "nequip.data.CommonDataStatisticsManager",
            "type_names": "${model_type_names}",
        },
    }
    run: list[str] = ["train"]
    if test.frames:
        data["test_file_path"] = str(test.path)
        data["test_dataloader"] = "${data.val_dataloader}"
        run.append("test")
    metrics = {"_target_": f"nequip.train.{kind}Metrics", "coeffs": metric_coeffs}
    return {
        "run": run,
        "seed": int(seed),
        "cutoff_radius": float(settings["model"]["r_max"]),
        "model_type_names": species,
        "chemical_species": "${model_type_names}",
        "data": data,
        "trainer": {
            "_target_": "lightning.Trainer",
            "accelerator": accelerator,
            "devices": 1,
            "max_epochs": int(epochs),
            "check_val_every_n_epoch": 1,
            "log_every_n_steps": steps_per_epoch,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": "${hydra:runtime.output_dir}",
                "name": CSV_LOG_NAME,
                "version": "",
            },
            "callbacks": _checkpoint_callbacks(settings),
        },
        "training_module": {
            "_target_": "nequip.train.EMALightningModule",
            "loss": {
                "_target_": f"nequip.train.{kind}Loss",
                "per_atom_energy": True,
                "coeffs": loss_coeffs,
            },
            "val_metrics": metrics,
            "test_metrics": "${training_module.val_metrics}",
            "optimizer": {"_target_": "torch.optim.Adam", "lr": settings["learning_rate"]},
            "lr_scheduler": _lr_scheduler(settings, epochs),
            "model": model,
        },
    }


def _lr_scheduler(settings: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """The learning-rate schedule: on the validation plateau, or cosine to zero over the epochs.

    `plateau` halves the rate when the validation loss stalls, so on a split of a frame or two
    the rate follows noise; `cosine` decays it by a fixed curve from `learning_rate` to
    `learning_rate * lr_min_factor` at the last epoch, whatever the validation says.
    """
    if settings.get("lr_schedule", "plateau") == "cosine":
        return {
            "scheduler": {
                "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
                "T_max": max(1, int(epochs)),
                "eta_min": settings["learning_rate"] * settings.get("lr_min_factor", 0.01),
            },
            "interval": "epoch",
            "frequency": 1,
        }
    return {
        "scheduler": {
            "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
            "factor": settings["lr_factor"],
            "patience": settings["lr_patience"],
        },
        "monitor": MONITOR,
        "interval": "epoch",
        "frequency": 1,
    }


def write_config(config: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write the config as `<out_dir>/nequip.yaml`; rerun with `nequip-train -cp DIR -cn nequip`."""
    path = Path(out_dir) / f"{CONFIG_NAME}.yaml"
    header = (
        "# Written by potforge.train; re-run by hand with\n"
        f"#   nequip-train -cp {Path(out_dir).resolve()} -cn {CONFIG_NAME} "
        f"hydra.run.dir={Path(out_dir).resolve()}\n"
    )

    def _write(tmp: Path) -> None:
        tmp.write_text(header + yaml.safe_dump(dict(config), sort_keys=False))

    return atomic_write(path, _write)


def _checkpoint_callbacks(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The callbacks that choose best.ckpt: the best validation epoch, or the last one.

    `keep_epoch: best` (early stopping on the validation split) or `last` (every epoch runs,
    the final one is kept: a one-frame validation split no longer picks the epoch).
    """
    keep_last = settings.get("keep_epoch", "best") == "last"
    checkpoint = {
        "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
        "monitor": None if keep_last else MONITOR,
        "dirpath": "${hydra:runtime.output_dir}",
        "filename": "best",
        "save_last": True,
        "enable_version_counter": False,
    }
    if keep_last:
        return [checkpoint]
    stopping = {
        "_target_": "lightning.pytorch.callbacks.EarlyStopping",
        "monitor": MONITOR,
        "patience": settings["early_stopping_patience"],
        "mode": "min",
        "check_finite": True,
    }
    return [checkpoint, stopping]
