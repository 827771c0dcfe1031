"""The DFT protocol: configuration to GPAW parameters, its hash, and the failure ladder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from potforge.hashing import settings_hash

# Keys that change the computed numbers (the rest only changes how hard the SCF tries).
PHYSICS_KEYS = ("xc", "ecut", "kpt_density", "gamma", "smearing", "convergence")


def protocol_hash(dft: Mapping[str, Any]) -> str:
    """Return the hash of the settings that determine a label's values."""
    return settings_hash({k: dft[k] for k in PHYSICS_KEYS})


def attempts(dft: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Return the ladder as (label, settings) pairs: the protocol, then each safer step in turn."""
    current = {k: dft[k] for k in (*PHYSICS_KEYS, "maxiter", "mixer_beta")}
    steps = [("initial", dict(current))]
    for step in dft["ladder"]:
        current = {**current, **step}
        label = ", ".join(f"{k}={v}" for k, v in step.items())
        steps.append((label, dict(current)))
    return steps


def gpaw_parameters(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one attempt's settings into GPAW calculator keyword arguments."""
    conv = settings["convergence"]
    convergence: dict[str, Any] = {"energy": conv["energy"], "density": conv["density"]}
    if conv.get("forces") is not None:
        convergence["forces"] = conv["forces"]
    return {
        "mode": {"name": "pw", "ecut": settings["ecut"]},
        "xc": settings["xc"],
        "kpts": {"density": settings["kpt_density"], "gamma": settings["gamma"]},
        "occupations": {"name": "fermi-dirac", "width": settings["smearing"]},
        "symmetry": "off",
        "maxiter": settings["maxiter"],
        "mixer": {"beta": settings["mixer_beta"]},
        "convergence": convergence,
    }
