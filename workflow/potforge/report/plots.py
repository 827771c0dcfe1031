"""The report's figures: matplotlib on the Agg canvas, each returned as PNG bytes."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 96
MODEL, DFT, INDEPENDENT = "#1f5fa8", "#c2410c", "#15803d"
STAGE_COLOURS = (
    "#1f5fa8",
    "#c2410c",
    "#15803d",
    "#7c3aed",
    "#ca8a04",
    "#0e7490",
    "#be185d",
    "#4b5563",
    "#65a30d",
    "#9f1239",
)


def new_figure(width: float, height: float) -> Figure:
    """A figure drawn by the Agg canvas (no pyplot, no display)."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a base64 data URI for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _finite(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def learning_curves(points: Sequence[Mapping[str, Any]]) -> bytes:
    """Force and energy RMSE per iteration against cumulative DFT frames and DFT core-hours.

    Each point holds iteration, frames, core_hours, committee_force, committee_energy,
    independent_force, independent_energy (any may be None).
    """
    fig = new_figure(10, 6.4)
    axes = fig.subplots(2, 2, squeeze=False)
    rows = (("force", "force RMSE (eV/Å)"), ("energy", "energy RMSE (meV/atom)"))
    cols = (("frames", "cumulative DFT frames"), ("core_hours", "DFT core-hours"))
    for (quantity, ylabel), ax_row in zip(rows, axes, strict=True):
        for (xkey, xlabel), ax in zip(cols, ax_row, strict=True):
            x = _finite([p.get(xkey) for p in points])
            for key, colour, label in (
                ("committee", MODEL, "committee, test split"),
                ("independent", INDEPENDENT, "independent test set"),
            ):
                y = _finite([p.get(f"{key}_{quantity}") for p in points])
                ok = np.isfinite(x) & np.isfinite(y)
                if ok.any():
                    ax.plot(x[ok], y[ok], "o-", color=colour, label=label)
                    labels = [
                        str(p["iteration"]) for p, keep in zip(points, ok, strict=True) if keep
                    ]
                    for xi, yi, label in zip(x[ok], y[ok], labels, strict=True):
                        ax.annotate(label, (xi, yi), xytext=(4, 4), textcoords="offset points")
            ax.set(xlabel=xlabel, ylabel=ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    return png_bytes(fig)


def energy_parity(
    dft: Sequence[float], model: Sequence[float], deviation: Sequence[float] | None = None
) -> bytes:
    """Model against DFT energy per atom, coloured by the frame's committee force deviation."""
    fig = new_figure(5.2, 4.6)
    ax = fig.subplots()
    x, y = _finite(dft), _finite(model)
    colour = None if deviation is None or len(deviation) != len(x) else _finite(deviation)
    art = ax.scatter(x, y, c=colour if colour is not None else MODEL, cmap="viridis", s=22)
    if colour is not None:
        fig.colorbar(art, ax=ax, label="max force deviation (eV/Å)")
    lo, hi = float(np.nanmin(np.r_[x, y])), float(np.nanmax(np.r_[x, y]))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
    ax.set(xlabel="DFT energy (eV/atom)", ylabel="model energy (eV/atom)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def force_parity(dft: Sequence[float], model: Sequence[float]) -> bytes:
    """Model against DFT force components (eV/A) on the independent test set."""
    fig = new_figure(5.2, 4.6)
    ax = fig.subplots()
    x, y = _finite(dft), _finite(model)
    ax.scatter(x, y, s=6, alpha=0.5, color=MODEL)
    lim = float(np.nanmax(np.abs(np.r_[x, y]))) * 1.05 or 1.0
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=1)
    ax.set(xlabel="DFT force component (eV/Å)", ylabel="model force component (eV/Å)")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def force_error_distribution(error: Sequence[float], deviation: Sequence[float]) -> bytes:
    """Histogram of per-atom |F_model - F_DFT|, split at the median committee deviation."""
    fig = new_figure(5.2, 4.6)
    ax = fig.subplots()
    err, dev = _finite(error), _finite(deviation)
    edges = np.linspace(0.0, float(np.nanmax(err)) * 1.02 or 1.0, 31)
    median = float(np.nanmedian(dev))
    for mask, colour, label in (
        (dev <= median, MODEL, f"deviation ≤ {median:.3g} eV/Å"),
        (dev > median, DFT, f"deviation > {median:.3g} eV/Å"),
    ):
        if mask.any():
            ax.hist(err[mask], bins=edges, color=colour, alpha=0.6, label=label)
    ax.set(xlabel="per-atom force error |F_model − F_DFT| (eV/Å)", ylabel="atoms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def draw_trust(ax: Any, trust: Mapping[str, float | None], shade: bool = True) -> None:
    """Mark the trust window's known levels on an axis (shaded between when both are known)."""
    levels = [v for v in (trust.get("lo"), trust.get("hi")) if v is not None]
    if shade and len(levels) == 2:
        ax.axvspan(levels[0], levels[1], color=INDEPENDENT, alpha=0.15, lw=0)
    for level in levels:
        ax.axvline(level, color=INDEPENDENT, lw=1, ls="-" if shade else "--")


def deviation_histograms(
    histograms: Sequence[tuple[int, Sequence[float], Sequence[int]]],
    trust: Mapping[str, float | None],
) -> bytes:
    """One panel per iteration: explored frames by max force deviation, trust window shaded."""
    ncols = min(len(histograms), 4)
    nrows = math.ceil(len(histograms) / ncols)
    fig = new_figure(max(2.6 * ncols + 0.6, 5.0), 2.3 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    for ax in axes.flat[len(histograms) :]:
        ax.set_visible(False)
    for ax, (iteration, edges, counts) in zip(axes.flat, histograms, strict=False):
        e = np.asarray(edges, float)
        ax.stairs(np.asarray(counts, float), e, fill=True, color=MODEL, alpha=0.7)
        draw_trust(ax, trust)
        ax.set_title(f"iteration {iteration}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("max force deviation (eV/Å)")
    for ax in axes[:, 0]:
        ax.set_ylabel("frames")
    return png_bytes(fig)


def calibration(
    deviation: Sequence[float],
    error: Sequence[float],
    scale: float | None,
    trust: Mapping[str, float | None] | None = None,
) -> bytes:
    """Per-atom true force error against committee deviation, with error = scale x deviation."""
    fig = new_figure(5.6, 4.6)
    ax = fig.subplots()
    dev, err = _finite(deviation), _finite(error)
    ax.scatter(dev, err, s=6, alpha=0.5, color=MODEL, label="atoms of the test set")
    levels = [v for v in (trust or {}).values() if v is not None]
    top = 1.05 * max([float(np.nanmax(dev)) if len(dev) else 1.0, *levels])
    if scale:
        ax.plot([0, top], [0, scale * top], color=DFT, label=f"error = {scale:.3g} × deviation")
    if trust:
        draw_trust(ax, trust, shade=False)
    ax.set(xlabel="committee force deviation (eV/Å)", ylabel="true force error (eV/Å)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def _eos_curve(eos: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Volumes and energies per atom, energies relative to their own minimum."""
    n = float(eos.get("natoms") or 1)
    v = np.asarray(eos["volumes"], float) / n
    e = np.asarray(eos["energies"], float) / n
    order = np.argsort(v)
    return v[order], (e - e.min())[order]


def eos_curves(crystals: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Model and DFT equations of state per crystal (per atom, each from its own minimum)."""
    names = sorted(crystals)
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    fig = new_figure(3.6 * ncols + 0.4, 3.0 * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        for side, colour, style in (("dft", DFT, "s--"), ("model", MODEL, "o-")):
            eos = crystals[name].get(side, {}).get("eos")
            if eos and eos.get("volumes") and eos.get("energies"):
                v, e = _eos_curve(eos)
                ax.plot(v, 1000.0 * e, style, color=colour, label=side.upper(), ms=4)
        ax.set_title(f"{name} ({crystals[name].get('formula', '')})", fontsize=9)
        ax.set(xlabel="volume (Å³/atom)", ylabel="E − E_min (meV/atom)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return png_bytes(fig)


def rdf_curves(rdfs: Mapping[str, Mapping[str, Any]]) -> bytes:
    """g(r) of the hottest MD stability run of every system."""
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    for k, (name, rdf) in enumerate(sorted(rdfs.items())):
        colour = STAGE_COLOURS[k % len(STAGE_COLOURS)]
        temperature = rdf.get("temperature")
        label = name if temperature is None else f"{name}, {float(temperature):g} K"
        ax.plot(rdf["r"], rdf["g"], color=colour, label=label)
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set(xlabel="r (Å)", ylabel="g(r)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def time_unit(seconds: float) -> tuple[float, str]:
    """A divisor and unit name that suit a duration."""
    if seconds >= 2 * 3600:
        return 3600.0, "h"
    if seconds >= 120:
        return 60.0, "min"
    return 1.0, "s"


def time_bars(
    groups: Sequence[str],
    stages: Sequence[str],
    wall: Mapping[tuple[str, str], float],
    cpu: Mapping[tuple[str, str], float],
) -> bytes:
    """Stacked bars of wall and CPU time per group (iteration) and stage."""
    fig = new_figure(10, 3.8)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    x = np.arange(len(groups))
    for ax, values, title in ((axes[0], wall, "wall time"), (axes[1], cpu, "CPU time")):
        totals = [sum(values.get((g, s), 0.0) for s in stages) for g in groups]
        div, unit = time_unit(max(totals, default=0.0))
        bottom = np.zeros(len(groups))
        for k, stage in enumerate(stages):
            h = np.array([values.get((g, stage), 0.0) for g in groups]) / div
            colour = STAGE_COLOURS[k % len(STAGE_COLOURS)]
            ax.bar(x, h, bottom=bottom, color=colour, label=stage)
            bottom += h
        ax.set_xticks(x, list(groups), rotation=30 if len(groups) > 6 else 0)
        ax.set(ylabel=f"{title} ({unit})", title=title)
        ax.grid(alpha=0.3, axis="y")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return png_bytes(fig)
