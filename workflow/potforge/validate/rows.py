"""Property rows: model against DFT with a tolerance and a verdict, peers beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from potforge.validate.properties import is_cubic

# name, unit, how the error is measured, the tolerance key of validate.tolerances
PERCENT, ABSOLUTE = "percent", "absolute"


def _values(props: Mapping[str, Any], cubic: bool) -> list[tuple[str, str, float, str, str]]:
    """Return (name, unit, value, error kind, tolerance key) of one crystal's properties."""
    out = []
    if cubic:
        out.append(("a0", "A", props["lattice"][0], PERCENT, "lattice_percent"))
    else:
        out.append(("V0", "A^3/atom", props["volume_per_atom"], PERCENT, "volume_percent"))
    out.append(("B", "GPa", props["eos"]["bulk_modulus_gpa"], PERCENT, "bulk_modulus_percent"))
    for name, value in (props.get("elastic_gpa") or {}).items():
        out.append((name, "GPa", value, PERCENT, "elastic_percent"))
    for kind, value in (props.get("vacancy_ev") or {}).items():
        if kind != "natoms":
            out.append((f"vacancy_{kind}", "eV", value, ABSOLUTE, "vacancy_ev"))
    return out


def error_of(value: float, reference: float, kind: str) -> float:
    """Return the error of a value: relative (%) or absolute."""
    if kind == PERCENT:
        return 100.0 * (value - reference) / reference if reference else float("inf")
    return value - reference


def property_rows(
    system: str,
    crystal_is_cubic: bool,
    dft: Mapping[str, Any],
    model: Mapping[str, Any],
    tolerances: Mapping[str, float],
    peers: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Compare one crystal's properties: one row per property, peers' values beside."""
    peer_values = {
        name: {n: v for n, _, v, _, _ in _values(p, crystal_is_cubic)}
        for name, p in (peers or {}).items()
        if p.get("error") is None
    }
    rows = []
    for name, unit, ref, kind, tol_key in _values(dft, crystal_is_cubic):
        found = {n: v for n, _, v, _, _ in _values(model, crystal_is_cubic)}
        if name not in found:
            continue
        tolerance = float(tolerances[tol_key])
        error = error_of(found[name], ref, kind)
        row = {
            "system": system,
            "name": name,
            "unit": unit,
            "dft": ref,
            "model": found[name],
            "error": error,
            "error_kind": kind,
            "tolerance": tolerance,
            "pass": bool(abs(error) <= tolerance),
            "peers": {},
        }
        for peer, values in peer_values.items():
            if name in values:
                peer_error = error_of(values[name], ref, kind)
                row["peers"][peer] = {
                    "value": values[name],
                    "error": peer_error,
                    "pass": bool(abs(peer_error) <= tolerance),
                }
        rows.append(row)
    return rows


def eos_scatter(eos: Mapping[str, Any]) -> float | None:
    """Return the scatter of an EOS's energies about a smooth curve (eV per cell), if measurable.

    The residual of a cubic polynomial in V, with its 4 fitted parameters taken from the degrees
    of freedom; None under 6 points. A smooth E(V) scatters by round-off; a plane-wave basis that
    changes with the cell (a low cutoff) makes the energy jump from volume to volume, which no
    potential follows and which blurs energy differences between crystals at that protocol.
    """
    volumes, energies = eos.get("volumes") or [], eos.get("energies") or []
    if len(volumes) < 6 or len(volumes) != len(energies):
        return None
    v, e = np.asarray(volumes, float), np.asarray(energies, float)
    x = (v - v.mean()) / v.std()
    residual = e - np.polyval(np.polyfit(x, e, 3), x)
    return float(np.sqrt(np.sum(residual**2) / (len(v) - 4)))


def polymorph_rows(
    crystals: Mapping[str, Mapping[str, Any]],
    formula_units: Mapping[str, int],
    tolerance_mev: float,
    volume_tolerance: float,
) -> list[dict[str, Any]]:
    """Energy per formula unit relative to the lowest (by DFT) and volume, for polymorphs.

    `crystals` maps a system to {'dft': properties, 'model': properties}; only systems of one
    reduced formula are compared.
    """
    if len(crystals) < 2:
        return []

    def per_fu(props: Mapping[str, Any], system: str, key: str) -> float:
        return props["eos"][key] / formula_units[system]

    lowest = min(crystals, key=lambda s: per_fu(crystals[s]["dft"], s, "e0"))
    scatter = {s: eos_scatter(c["dft"]["eos"]) for s, c in crystals.items()}
    rows = []
    for system, pair in sorted(crystals.items()):
        e_ref = {
            side: per_fu(pair[side], system, "e0") - per_fu(crystals[lowest][side], lowest, "e0")
            for side in ("dft", "model")
        }
        error = 1000.0 * (e_ref["model"] - e_ref["dft"])
        blur = [scatter[s] / formula_units[s] for s in (system, lowest) if scatter[s] is not None]
        rows.append(
            {
                "system": system,
                "name": f"dE({system}-{lowest})",
                "unit": "meV/f.u.",
                "dft": 1000.0 * e_ref["dft"],
                "model": 1000.0 * e_ref["model"],
                "error": error,
                "error_kind": ABSOLUTE,
                "tolerance": tolerance_mev,
                "pass": bool(abs(error) <= tolerance_mev),
                "peers": {},
                # how far GPAW's own energies blur this difference (both crystals' scatter)
                "dft_scatter": (
                    1000.0 * float(np.hypot(*blur)) if system != lowest and len(blur) == 2 else None
                ),
            }
        )
        v = {side: per_fu(pair[side], system, "v0") for side in ("dft", "model")}
        verror = error_of(v["model"], v["dft"], PERCENT)
        rows.append(
            {
                "system": system,
                "name": "V0_per_fu",
                "unit": "A^3/f.u.",
                "dft": v["dft"],
                "model": v["model"],
                "error": verror,
                "error_kind": PERCENT,
                "tolerance": volume_tolerance,
                "pass": bool(abs(verror) <= volume_tolerance),
                "peers": {},
            }
        )
    return rows


def energy_order(
    crystals: Mapping[str, Mapping[str, Any]], side: str, units: Mapping[str, int]
) -> list[str]:
    """Return the systems ordered by energy per formula unit on one side ('dft' or 'model')."""
    return sorted(crystals, key=lambda s: crystals[s][side]["eos"]["e0"] / units[s])


def summary_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Return how many property rows pass and how many there are."""
    return {"passed": sum(1 for r in rows if r["pass"]), "total": len(rows)}


__all__ = [
    "is_cubic",
    "property_rows",
    "polymorph_rows",
    "eos_scatter",
    "energy_order",
    "summary_counts",
]
