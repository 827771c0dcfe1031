"""The DFT protocol: configuration to GPAW parameters, its hash, and the failure ladder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from potforge.hashing import settings_hash

# Keys that change the computed numbers (the rest only changes how hard the SCF tries).
PHYSICS_KEYS = ("xc", "ecut", "kpt_density", "gamma", "smearing", "convergence", "symmetry")

# `dft.symmetry` to GPAW's `symmetry` keyword. GPAW's "off" also drops time-reversal symmetry
# (27 instead of 14 k-points on a rattled Si8 cell, the same numbers to 1e-13);
# "time-reversal" keeps it (safe for any single point); "full" adds the point group (perfect
# crystals: references, not labels of rattled frames, where it finds nothing anyway).
GPAW_SYMMETRY: dict[str, Any] = {
    "off": "off",
    "time-reversal": {"point_group": False, "time_reversal": True},
    "full": {"point_group": True, "time_reversal": True},
}


def reproducible_fft() -> None:
    """Make GPAW plan its FFTs with FFTW_ESTIMATE: the same plan, so the same bits, every run.

    GPAW's default, FFTW_MEASURE, times candidate algorithms and keeps the fastest, so two runs
    of one single point can take different plans and part in the last bits (energies 1e-13 eV
    apart on this machine); ESTIMATE picks by rule. The numbers agree to round-off either way,
    so this is not part of the protocol hash.
    """
    from gpaw import fftw

    fftw.FFTWPlans._overwrite_flags = fftw.ESTIMATE


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
        "symmetry": GPAW_SYMMETRY[settings.get("symmetry", "off")],
        "maxiter": settings["maxiter"],
        "mixer": {"beta": settings["mixer_beta"]},
        "convergence": convergence,
    }
