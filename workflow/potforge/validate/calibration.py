"""Uncertainty calibration: how the committee's force deviation relates to the true error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def calibration(
    deviation: np.ndarray,
    error: np.ndarray,
    symbols: Sequence[str],
    trust: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Relate per-atom force deviation to per-atom force error (|F_mean - F_DFT|, eV/A).

    Returns the Spearman rank correlation, the least-squares scale s of error = s * deviation
    (through the origin) overall and per species, and trust levels scaled by 1/s: deviations
    at which the expected true error equals the configured lo and hi.
    """
    from scipy.stats import spearmanr

    deviation, error = np.asarray(deviation, float), np.asarray(error, float)
    symbols = np.asarray(symbols)

    def fit(mask: np.ndarray) -> dict[str, Any]:
        d, e = deviation[mask], error[mask]
        if len(d) < 3 or not np.any(d > 0):
            return {"atoms": int(len(d)), "spearman": None, "scale": None}
        rho = spearmanr(d, e).statistic
        return {
            "atoms": int(len(d)),
            "spearman": None if not np.isfinite(rho) else float(rho),
            "scale": float((d @ e) / (d @ d)),
            "mean_deviation": float(d.mean()),
            "mean_error": float(e.mean()),
        }

    out = fit(np.ones(len(deviation), dtype=bool))
    out["per_species"] = {str(s): fit(symbols == s) for s in sorted(set(symbols.tolist()))}
    if trust is not None and out["scale"]:
        out["configured_trust"] = dict(trust)
        out["suggested_trust"] = {k: float(v / out["scale"]) for k, v in trust.items()}
    return out
