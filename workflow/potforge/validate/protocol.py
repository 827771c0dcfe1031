"""The DFT side of validation: the protocol's stress check and the cached property references."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from potforge.errors import LabelError
from potforge.structures import starting_structure
from potforge.validate.references import cached_reference, reference_key, stress_check


def _txt(log_dir: str | Path | None, name: str) -> Path | None:
    if not log_dir:
        return None
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return Path(log_dir) / f"{name}.gpaw.txt"


def protocol_check(
    config: Mapping[str, Any],
    cache_dir: str | Path,
    log_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Check every starting crystal's analytic stress against -dE/dV at the protocol.

    Returns per system the two pressures and whether they agree within the tolerance, and
    `train_on_stress`. Raises LabelError when they disagree and the config says stop.
    """
    from potforge.validate.calculators import dft_factory

    settings = config["validate"]["protocol_check"]
    tol = settings["stress_tolerance_gpa"]
    result: dict[str, Any] = {"tolerance_gpa": tol, "systems": {}}
    for name, system in sorted(config["systems"].items()):
        crystal = starting_structure(system["structure"])
        key = reference_key("stress-check", crystal, config["dft"], {})
        factory = dft_factory(config["dft"], _txt(log_dir, f"stress-check-{name}"))
        check = cached_reference(key, cache_dir, lambda c=crystal, f=factory: stress_check(c, f))
        check["consistent"] = bool(check["difference_gpa"] <= tol)
        result["systems"][name] = check
        log(
            f"[protocol-check] {name}: analytic pressure {check['analytic_pressure_gpa']:.2f} GPa, "
            f"-dE/dV {check['finite_difference_pressure_gpa']:.2f} GPa "
            f"({'consistent' if check['consistent'] else 'INCONSISTENT'}, tolerance {tol} GPa"
            f"{', cached' if check['cached'] else ''})"
        )
    bad = [n for n, c in result["systems"].items() if not c["consistent"]]
    result["stress_consistent"] = not bad
    result["train_on_stress"] = not bad
    if bad:
        worst = max(result["systems"][n]["difference_gpa"] for n in bad)
        message = (
            f"DFT protocol: analytic stress and -dE/dV differ by up to {worst:.2f} GPa "
            f"(> {tol} GPa) for {', '.join(bad)} at dft.ecut={config['dft']['ecut']} eV: "
            "the stress labels are wrong (Pulay stress); raise dft.ecut"
        )
        if settings["on_inconsistent_stress"] == "stop":
            raise LabelError(message + " (validate.protocol_check.on_inconsistent_stress: stop)")
        npt = sorted(
            name
            for name, system in config["systems"].items()
            if any(task["ensemble"] == "npt" for task in system["explore"]["tasks"])
        )
        result["npt_without_stress"] = npt
        if npt:
            message += (
                f"; the npt exploration of {', '.join(npt)} will follow a pressure the model "
                "never learned from stress labels (its cell can drift to states no user "
                "simulates: prefer nvt tasks at this cutoff)"
            )
        log(f"[protocol-check] WARNING: {message}; training without stress labels")
        result["warning"] = message
    return result


def dft_reference(
    config: Mapping[str, Any],
    system_name: str,
    cache_dir: str | Path,
    log_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    reuse: bool = True,
) -> dict[str, Any]:
    """Return the DFT properties of one system's crystal, computed once per protocol."""
    from potforge.validate.calculators import dft_factory
    from potforge.validate.properties import crystal_properties
    from potforge.validate.stage import property_crystal

    system = config["systems"][system_name]
    crystal = property_crystal(system)
    settings = config["validate"]["properties"]
    key = reference_key("properties", crystal, config["dft"], settings)
    factory = dft_factory(config["dft"], _txt(log_dir, f"reference-{system_name}"))
    ref = cached_reference(
        key, cache_dir, lambda: crystal_properties(crystal, factory, settings, log)
    )
    how = f"reused {ref['source']}" if ref["cached"] else "computed"
    log(f"[dft-reference] {system_name}: {how} (key {key})")
    props = {k: v for k, v in ref.items() if k not in ("cached", "source", "key", "compute_s")}
    return {
        "system": system_name,
        "key": key,
        "cached": ref["cached"],
        "source": ref["source"],
        "compute_s": ref.get("compute_s"),
        "properties": props,
    }
