"""Assemble a validation: test-set errors, calibration, properties against DFT, peers, MD."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from potforge.errors import ValidationError
from potforge.train.accuracy import error_metrics, label_stress
from potforge.train.models import Predictions
from potforge.validate.testset import origin_category


def test_set_errors(frames: Sequence[Atoms], pred: Predictions) -> dict[str, Any]:
    """Return errors overall, per origin and per species (force RMSE) on labelled frames."""
    if not frames:
        return {"frames": 0}
    out = error_metrics(frames, pred)
    out["stress_rmse_gpa"] = _stress_rmse(frames, pred)
    groups: dict[str, list[int]] = {}
    for k, atoms in enumerate(frames):
        groups.setdefault(origin_category(atoms), []).append(k)
    out["per_origin"] = {
        name: error_metrics(
            [frames[k] for k in idx],
            Predictions(
                pred.energies[idx],
                [pred.forces[k] for k in idx],
                None if pred.stresses is None else pred.stresses[idx],
            ),
        )
        for name, idx in sorted(groups.items())
    }
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    df = np.concatenate([p - a.get_forces() for p, a in zip(pred.forces, frames, strict=True)])
    out["per_species_force_rmse_ev_per_a"] = {
        s: float(np.sqrt((df[symbols == s] ** 2).mean())) for s in sorted(set(symbols))
    }
    out["energy_per_atom"] = {
        "dft": [a.get_potential_energy() / len(a) for a in frames],
        "model": [float(e) / len(a) for e, a in zip(pred.energies, frames, strict=True)],
    }
    out["force_components"] = {  # for parity plots: every Cartesian component, eV/A
        "dft": np.concatenate([a.get_forces().ravel() for a in frames]).round(4).tolist(),
        "model": np.concatenate([np.ravel(f) for f in pred.forces]).round(4).tolist(),
    }
    return out


def _stress_rmse(frames: Sequence[Atoms], pred: Predictions) -> float | None:
    from ase.units import GPa

    if pred.stresses is None:
        return None
    diffs = [
        p - r
        for p, a in zip(pred.stresses, frames, strict=True)
        if (r := label_stress(a)) is not None
    ]
    return float(np.sqrt((np.array(diffs) ** 2).mean()) / GPa) if diffs else None


def predictions_with(factory: Callable[..., Any], frames: Sequence[Atoms]) -> Predictions:
    """Predict energies, forces and stresses of frames with a calculator factory."""
    energies, forces, stresses = [], [], []
    calc = factory(relax=False)
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        energies.append(work.get_potential_energy())
        forces.append(np.array(work.get_forces()))
        from ase.stress import voigt_6_to_full_3x3_stress

        stresses.append(voigt_6_to_full_3x3_stress(work.get_stress(voigt=True)))
    return Predictions(np.array(energies), forces, np.array(stresses))


def aligned(pred: Predictions, frames: Sequence[Atoms], shift_per_atom: float) -> Predictions:
    """Shift predicted energies by a per-atom constant (a peer's energy zero to DFT's)."""
    n = np.array([len(a) for a in frames], dtype=float)
    return Predictions(pred.energies + shift_per_atom * n, pred.forces, pred.stresses)


def per_atom_deviation_and_error(
    member_forces: Sequence[np.ndarray], frames: Sequence[Atoms]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return per-atom committee force deviation, true force error and symbols."""
    from potforge.train.committee import atom_force_deviation

    devs, errs, symbols = [], [], []
    for forces, atoms in zip(member_forces, frames, strict=True):
        devs.append(atom_force_deviation(forces))
        errs.append(np.linalg.norm(forces.mean(axis=0) - atoms.get_forces(), axis=1))
        symbols += atoms.get_chemical_symbols()
    return np.concatenate(devs), np.concatenate(errs), symbols


def safe_properties(
    compute: Callable[[], dict[str, Any]], who: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run a property computation; a failed one is reported as an error, not raised."""
    try:
        return compute()
    except ValidationError as exc:
        log(f"[validate] {who}: {exc}")
        return {"error": str(exc)}


def rdf(frames: Sequence[Atoms], r_max: float = 6.0, bins: int = 120) -> dict[str, list[float]]:
    """Return the radial distribution function g(r) averaged over frames."""
    from ase.neighborlist import neighbor_list

    edges = np.linspace(0.0, r_max, bins + 1)
    hist = np.zeros(bins)
    density = 0.0
    for atoms in frames:
        d = neighbor_list("d", atoms, r_max)
        hist += np.histogram(d, bins=edges)[0] / len(atoms)
        density += len(atoms) / atoms.get_volume()
    n = max(len(frames), 1)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / n / (shell * density / n) if density else hist
    centres = 0.5 * (edges[1:] + edges[:-1])
    return {"r": centres.round(4).tolist(), "g": np.asarray(g).round(4).tolist()}


def write_path(path: str | Path) -> Path:
    """Return the path, its folder created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def property_crystal(system: Mapping[str, Any]) -> Atoms:
    """Return the crystal whose properties a system's validation measures."""
    from potforge.structures import starting_structure

    spec = system["validate"]["structure"] or system["structure"]
    return starting_structure(spec)


def validate_committee(
    config: Mapping[str, Any],
    species: Sequence[str],
    packages: Sequence[str | Path],
    test_frames: Sequence[Atoms],
    references: Mapping[str, Mapping[str, Any]],
    peers: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure a committee (eager packages) on the test set and on every system's properties.

    `references` maps a system to its DFT properties (potforge dft-reference). With `peers`,
    every potential of validate.peers is measured on the same frames and properties.
    """
    from potforge.train.committee import load_committee, member_stresses, score_frames
    from potforge.validate.calculators import CommitteeCalculator, peer_factory
    from potforge.validate.calibration import calibration
    from potforge.validate.properties import crystal_properties, is_cubic
    from potforge.validate.rows import property_rows, summary_counts

    settings = config["validate"]
    members = load_committee(packages)
    out: dict[str, Any] = {"members": [str(p) for p in packages]}
    log(f"[validate] test set: {len(test_frames)} frames, committee of {len(members)}")
    if test_frames:
        scores = score_frames(members, test_frames)
        stresses = member_stresses(members, test_frames)
        pred = Predictions(
            scores.mean_energies(),
            scores.mean_forces(),
            None if stresses is None else stresses.mean(axis=0),
        )
        out["test_set"] = test_set_errors(test_frames, pred)
        out["test_set"]["max_force_deviation"] = [float(x) for x in scores.max_force_deviation]
        dev, err, symbols = per_atom_deviation_and_error(scores.forces, test_frames)
        trust = next(iter(config["systems"].values()))["trust"]
        out["calibration"] = calibration(dev, err, symbols, {"lo": trust["lo"], "hi": trust["hi"]})
        out["calibration"]["points"] = {
            "deviation": dev.round(5).tolist(),
            "error": err.round(5).tolist(),
        }
    else:
        out["test_set"] = {"frames": 0}
        out["calibration"] = {"spearman": None, "scale": None}

    def model_factory(relax: bool = False, grid_cell: Any = None) -> CommitteeCalculator:
        return CommitteeCalculator(members)

    peer_list = list(settings["peers"]) if peers else []
    peer_factories = {p["name"]: peer_factory(p, species) for p in peer_list}
    rows: list[dict[str, Any]] = []
    crystals: dict[str, dict[str, Any]] = {}
    peer_props: dict[str, dict[str, Any]] = {name: {} for name in peer_factories}
    for name, system in sorted(config["systems"].items()):
        if not system["validate"]["properties"] or name not in references:
            continue
        crystal = property_crystal(system)
        dft = references[name]
        model = safe_properties(
            lambda c=crystal: crystal_properties(c, model_factory, settings["properties"], log),
            f"{name}: committee",
            log,
        )
        for peer, factory in peer_factories.items():
            peer_props[peer][name] = safe_properties(
                lambda c=crystal, f=factory: crystal_properties(c, f, settings["properties"], log),
                f"{name}: peer {peer}",
                log,
            )
        crystals[name] = {"dft": dft, "model": model, "formula": crystal.get_chemical_formula()}
        if "error" in model:
            rows.append(
                {"system": name, "name": "properties", "error": model["error"], "pass": False}
            )
            continue
        rows += property_rows(
            name,
            is_cubic(crystal),
            dft,
            model,
            settings["tolerances"],
            {peer: props[name] for peer, props in peer_props.items()},
        )
    rows += _polymorphs(config, crystals, settings["tolerances"])
    out["properties"] = rows
    out["property_summary"] = summary_counts(rows)
    out["crystals"] = crystals
    if peer_factories:
        out["peers"] = _peer_test_sets(peer_factories, peer_props, references, test_frames)
    return out


def _polymorphs(
    config: Mapping[str, Any],
    crystals: Mapping[str, Mapping[str, Any]],
    tolerances: Mapping[str, float],
) -> list[dict[str, Any]]:
    """Polymorph rows for every reduced formula with more than one crystal."""
    from ase.formula import Formula

    from potforge.validate.rows import polymorph_rows

    groups: dict[str, dict[str, Any]] = {}
    units: dict[str, int] = {}
    for name, c in crystals.items():
        if "error" in c["model"]:
            continue
        formula = Formula(c["formula"])
        reduced, n = formula.reduce()
        groups.setdefault(str(reduced), {})[name] = c
        units[name] = n
    rows = []
    for group in groups.values():
        rows += polymorph_rows(
            group, units, tolerances["polymorph_mev_per_fu"], tolerances["volume_percent"]
        )
    return rows


def _peer_test_sets(
    factories: Mapping[str, Any],
    props: Mapping[str, Mapping[str, Any]],
    references: Mapping[str, Mapping[str, Any]],
    frames: Sequence[Atoms],
) -> dict[str, Any]:
    """Peers on the test set, energies aligned at the crystal's E0 per atom (peer vs DFT)."""
    out = {}
    for name, factory in factories.items():
        shifts = [
            references[s]["energy_per_atom"] - p["energy_per_atom"]
            for s, p in props[name].items()
            if "error" not in p and s in references
        ]
        shift = float(np.mean(shifts)) if shifts else 0.0
        entry: dict[str, Any] = {"energy_shift_ev_per_atom": shift}
        if frames:
            pred = aligned(predictions_with(factory, frames), frames, shift)
            entry["test_set"] = test_set_errors(frames, pred)
        out[name] = entry
    return out
