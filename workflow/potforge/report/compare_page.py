"""The comparison page of `potforge compare`: several arms' learning curves on one test set."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from potforge.report.html import (
    METRIC_FORMAT,
    esc,
    facts,
    format_number,
    note,
    page,
    section,
    table,
    td,
    tr,
)
from potforge.report.plots import data_uri

ROW_COLUMNS = (
    ("dft_frames", "DFT frames", "d"),
    ("dft_core_seconds", "DFT core-h", ".3g"),
    ("force_rmse_ev_per_a", "force RMSE (eV/Å)", METRIC_FORMAT),
    ("energy_rmse_mev_per_atom", "energy RMSE (meV/atom)", METRIC_FORMAT),
)


def curve_table(arms: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Every arm's iterations: DFT cost and errors on the shared test set."""
    rows = []
    for name, curve in arms.items():
        for row in curve:
            cells = [td(name, cls="text"), td(row["iteration"])]
            for key, _, spec in ROW_COLUMNS:
                value = row[key] / 3600.0 if key == "dft_core_seconds" else row[key]
                cells.append(td(format_number(value, spec), key=f"{name}.{row['iteration']}.{key}"))
            rows.append(tr(cells, data_arm=name))
    headers = ["arm", "iteration", *(label for _, label, _ in ROW_COLUMNS)]
    return table(headers, rows)


def efficiency_block(baseline: str, ratios: Mapping[str, Mapping[str, Any]]) -> str:
    """How much DFT each arm needed to reach the baseline arm's final force RMSE."""
    items = []
    for name, result in ratios.items():
        if result["never_reached"]:
            text = "never reached it"
        else:
            text = (
                f"{format_number(result['frames_ratio'], '.3g')} of its DFT frames, "
                f"{format_number(result['core_seconds_ratio'], '.3g')} of its DFT core-seconds"
            )
        items.append((name, text, f"efficiency.{name}"))
    target = next(iter(ratios.values()))["target_force_rmse_ev_per_a"] if ratios else None
    guide = (
        f"To reach {baseline}'s final force RMSE ({format_number(target)} eV/Å), each arm "
        f"needed (interpolated on its curve, relative to {baseline}'s final cost):"
    )
    return f"<h3>Against {esc(baseline)}</h3><p>{esc(guide)}</p>" + facts(items)


def render_comparison(data: Mapping[str, Any], png: bytes) -> str:
    """The whole comparison page from compare.json's content and the learning-curve plot."""
    rendered = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    arms = data["arms"]
    body = f'<img src="{data_uri(png)}" alt="learning curves of the arms" data-figure="compare">'
    body += curve_table(arms)
    if data.get("baseline"):
        body += efficiency_block(data["baseline"], data["efficiency"])
    body += note(
        f"All arms are measured on the same {data['test_frames']} frames: the union of their "
        "independent test sets (labelled once, never chosen by any arm's selection). The DFT "
        "cost counts the training labels of each arm, not the shared test set."
    )
    guide = "Error on one shared independent test set against the DFT each arm spent."
    sections = [section("curves", "Learning curves of the arms", guide, body)]
    subtitle = f"{', '.join(arms)}: rendered {rendered}"
    return page("potforge comparison", subtitle, [("curves", "Learning curves")], sections)


def write_comparison(out_dir: str | Path, data: Mapping[str, Any], png: bytes) -> Path:
    """Write compare.html into `out_dir` (atomically) and return its path."""
    from potforge.io import atomic_write

    path = Path(out_dir) / "compare.html"
    text = render_comparison(data, png)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
