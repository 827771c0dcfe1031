"""The active-learning loop's bookkeeping: when to stop, the model card, the status table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ITER_FORMAT = "iter_{:03d}"


def stop_decision(report: Mapping[str, Any], loop: Mapping[str, Any]) -> tuple[bool, str]:
    """Decide whether the loop stops after the iteration of a selection report.

    The one place of the stop rule (the workflow's DAG and the model card both ask it). In
    order: converged by the selection's criterion; the iteration cap; the DFT budget
    (loop.dft_budget_core_hours), which stops before an iteration whose labelling of the
    frames just picked, at the mean cost per frame so far, would exceed it. The selection
    report holds only facts, so raising the cap or the budget later reruns nothing.
    """
    iteration, convergence = int(report["iteration"]), report["convergence"]
    if report.get("converged"):
        return True, convergence
    spent_core_seconds = float(report.get("dft_core_seconds_spent") or 0.0)
    labelled_frames = int(report.get("dataset_frames") or 0)
    next_frames = len(report.get("picked", []))
    cap = int(loop["max_iterations"])
    if iteration + 1 >= cap:
        return True, f"iteration cap: loop.max_iterations={cap} reached ({convergence})"
    budget = loop.get("dft_budget_core_hours")
    if budget is not None and next_frames > 0:
        per_frame = spent_core_seconds / max(labelled_frames, 1)
        expected = spent_core_seconds + per_frame * next_frames
        if expected > budget * 3600.0:
            return True, (
                f"DFT budget: labelling {next_frames} more frames at {per_frame:.0f} core-s each "
                f"would spend {expected / 3600:.3g} of loop.dft_budget_core_hours={budget:g} "
                f"(spent {spent_core_seconds / 3600:.3g}; {convergence})"
            )
    return False, convergence


def stop_point(
    reports: Sequence[Mapping[str, Any]], loop: Mapping[str, Any]
) -> tuple[int, str] | None:
    """Return (final iteration, why) from the selection reports so far, or None to go on."""
    for it, report in enumerate(reports):
        stop, why = stop_decision({"iteration": it, **report}, loop)
        if stop:
            return it, why
    return None


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def iteration_rows(campaign_dir: str | Path) -> list[dict[str, Any]]:
    """Collect one row per iteration from what exists on disk (any stage may be missing)."""
    campaign_dir = Path(campaign_dir)
    rows = []
    for it_dir in sorted(campaign_dir.glob("iter_[0-9][0-9][0-9]")):
        it = int(it_dir.name[5:])
        labels = [_read(p) for p in sorted((it_dir / "labels").glob("chunk_*.json"))]
        dataset = _read(it_dir / "dataset" / "summary.json")
        committee = _read(it_dir / "train" / "committee.json")
        select = _read(it_dir / "select" / "report.json")
        rows.append(
            {
                "iteration": it,
                "labelled": sum(r["labelled"] for r in labels) if labels else None,
                "quarantined": sum(r["quarantined"] for r in labels) if labels else None,
                "dataset_frames": dataset["frames"] if dataset else None,
                "test_force_rmse": _committee_force_rmse(committee),
                "explored": select["frames"] if select else None,
                "accurate": select["fractions"]["accurate"] if select else None,
                "candidate": select["fractions"]["candidate"] if select else None,
                "failed": select["counts"]["failed"] if select else None,
                "selected": len(select["picked"]) if select else None,
                "converged": select.get("converged") if select else None,
            }
        )
    return rows


def _committee_force_rmse(committee: Mapping[str, Any] | None) -> float | None:
    """The committee-mean test-split force RMSE (eV/A) of a committee summary."""
    if not committee:
        return None
    value = committee.get("committee_mean", {}).get("force_rmse_ev_per_a")
    return None if value is None else float(value)


def status_table(campaign_dir: str | Path) -> str:
    """Render the iteration table of a campaign as fixed-width text."""
    rows = iteration_rows(campaign_dir)
    if not rows:
        return f"{campaign_dir}: no iterations yet"
    columns = [
        ("iter", "iteration", "{:d}"),
        ("labelled", "labelled", "{:d}"),
        ("failed DFT", "quarantined", "{:d}"),
        ("dataset", "dataset_frames", "{:d}"),
        ("test F RMSE", "test_force_rmse", "{:.3f}"),
        ("explored", "explored", "{:d}"),
        ("accurate", "accurate", "{:.1%}"),
        ("candidate", "candidate", "{:.1%}"),
        ("failed MD", "failed", "{:d}"),
        ("selected", "selected", "{:d}"),
    ]
    lines = ["  ".join(f"{title:>11}" for title, _, _ in columns)]
    for row in rows:
        cells = []
        for _, key, fmt in columns:
            value = row[key]
            cells.append(f"{'-' if value is None else fmt.format(value):>11}")
        lines.append("  ".join(cells))
    final = _read(Path(campaign_dir) / "final" / "model_card.json")
    if final:
        lines.append(f"final: iteration {final['final_iteration']}: {final['stop_reason']}")
    return "\n".join(lines)


def model_card(
    config: Mapping[str, Any],
    species: Sequence[str],
    final_iteration: int,
    stop_reason: str,
    campaign_dir: str | Path,
) -> dict[str, Any]:
    """Assemble the model card of the final committee from the campaign's outputs."""
    campaign_dir = Path(campaign_dir)
    final_dir = campaign_dir / ITER_FORMAT.format(final_iteration)
    dataset = _read(final_dir / "dataset" / "summary.json") or {}
    committee = _read(final_dir / "train" / "committee.json") or {}
    rows = [r for r in iteration_rows(campaign_dir) if r["iteration"] <= final_iteration]
    return {
        "campaign": config["campaign"],
        "species": list(species),
        "final_iteration": final_iteration,
        "iterations": final_iteration + 1,
        "stop_reason": stop_reason,
        "dft_protocol": dict(config["dft"]),
        "model": dict(config["train"]["model"]),
        "committee_size": config["train"]["committee"],
        "dataset": {
            "frames": dataset.get("frames"),
            "per_split": dataset.get("per_split"),
            "per_generator": dataset.get("per_generator"),
            "per_iteration": dataset.get("per_iteration"),
            "quarantined": dataset.get("quarantined"),
        },
        "dft_frames": dataset.get("frames", 0) + dataset.get("quarantined", 0),
        "dft_core_seconds": dataset.get("dft_core_seconds"),
        "dft_budget_core_hours": config["loop"].get("dft_budget_core_hours"),
        "dft_core_hours_spent": round((dataset.get("dft_core_seconds") or 0.0) / 3600.0, 4),
        "committee_test_errors": committee,
        "test_force_rmse": _committee_force_rmse(committee),
        "iteration_table": rows,
    }


def validation_summary(validation: Mapping[str, Any]) -> dict[str, Any]:
    """The model card's part of a validation: test-set errors, property rows, peers, MD."""
    ts = validation.get("test_set") or {}
    keys = (
        "frames",
        "force_rmse_ev_per_a",
        "force_mae_ev_per_a",
        "energy_rmse_mev_per_atom",
        "energy_mae_mev_per_atom",
        "stress_rmse_gpa",
        "per_species_force_rmse_ev_per_a",
        "stress_note",
    )
    per_origin = {
        name: {k: row.get(k) for k in ("frames", "force_rmse_ev_per_a", "energy_rmse_mev_per_atom")}
        for name, row in (ts.get("per_origin") or {}).items()
    }
    peers = {
        name: {k: (p.get("test_set") or {}).get(k) for k in keys[:5]}
        for name, p in (validation.get("peers") or {}).items()
    }
    md = validation.get("md_stability") or {}
    cal = validation.get("calibration") or {}
    return {
        "test_set": {k: ts.get(k) for k in keys},
        "test_set_per_origin": per_origin,
        "properties": [
            {
                k: r.get(k)
                for k in (
                    "system",
                    "name",
                    "unit",
                    "model",
                    "dft",
                    "error",
                    "tolerance",
                    "pass",
                    "peers",
                    "dft_scatter",
                )
            }
            for r in validation.get("properties", [])
        ],
        "property_summary": validation.get("property_summary"),
        "peers": peers,
        "calibration": {k: cal.get(k) for k in ("spearman", "scale", "suggested_trust")},
        "md_stability_survived": {n: m.get("all_survived") for n, m in md.items()},
    }


def validation_markdown(summary: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the validation part of a model card."""
    ts = summary["test_set"]

    def f(value: Any, fmt: str = ".3g") -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [
        "",
        "## Validation against DFT",
        "",
        "Frames the loop did not choose; properties against GPAW at the same protocol.",
        "",
        f"- Independent test set: {ts.get('frames')} frames, force RMSE "
        f"{f(ts.get('force_rmse_ev_per_a'))} eV/A, energy RMSE "
        f"{f(ts.get('energy_rmse_mev_per_atom'))} meV/atom, stress "
        + (ts.get("stress_note") or f"RMSE {f(ts.get('stress_rmse_gpa'))} GPa"),
    ]
    for name, peer in summary["peers"].items():
        lines.append(
            f"- Peer {name} on the same frames: force RMSE {f(peer.get('force_rmse_ev_per_a'))} "
            f"eV/A, energy RMSE {f(peer.get('energy_rmse_mev_per_atom'))} meV/atom "
            "(energies aligned at the crystal)"
        )
    cal = summary["calibration"]
    lines.append(
        f"- Calibration: Spearman {f(cal.get('spearman'))} between committee deviation and true "
        f"force error, error = {f(cal.get('scale'))} x deviation"
    )
    props = summary["properties"]
    if props:
        peers = sorted({p for r in props for p in (r.get("peers") or {})})
        lines += [
            "",
            "| system | property | model | DFT | error | tolerance | pass | "
            + " | ".join(f"{p} error" for p in peers)
            + (" |" if peers else ""),
            "|---|---|---|---|---|---|---|" + "---|" * len(peers),
        ]
        for r in props:
            if "model" not in r or r.get("model") is None:
                lines.append(f"| {r['system']} | {r['name']} | failed | | | | no |")
                continue
            cells = [
                r["system"],
                f"{r['name']} ({r['unit']})",
                f(r["model"], ".4g"),
                f(r["dft"], ".4g"),
                f(r["error"], ".3g")
                + ("%" if r["unit"] != "eV" and "meV" not in r["unit"] else ""),
                f(r["tolerance"], ".3g"),
                "yes" if r["pass"] else "no",
            ]
            cells += [f((r.get("peers") or {}).get(p, {}).get("error"), ".3g") for p in peers]
            lines.append("| " + " | ".join(cells) + " |")
        blurred = [r for r in props if r.get("dft_scatter") is not None]
        if blurred:
            worst = max(blurred, key=lambda r: r["dft_scatter"])
            lines += [
                "",
                f"GPAW's energies scatter about a smooth E(V) by up to {worst['dft_scatter']:.3g} "
                f"{worst['unit']} ({worst['name']}): energy differences between crystals are "
                "resolved at this protocol only to about that much.",
            ]
    return lines


def _test_errors_line(committee: Mapping[str, Any]) -> str:
    """One Markdown line of the committee-mean errors on the test split ('n/a' where missing)."""
    mean = committee.get("committee_mean") or {}

    def value(key: str) -> str:
        return "n/a" if mean.get(key) is None else f"{mean[key]:.3g}"

    stress = committee.get("stress_note") or f"MAE {value('stress_mae_gpa')} GPa"
    return (
        f"- Committee test errors ({committee.get('frames', 0)} frames): energy MAE "
        f"{value('energy_mae_mev_per_atom')} meV/atom, force MAE {value('force_mae_ev_per_a')} "
        f"eV/A, stress {stress}"
    )


def _stress_line(check: Mapping[str, Any] | None) -> list[str]:
    """The card's line on stress labels, from the protocol check (none without a check)."""
    if not check:
        return []
    worst = max((s["difference_gpa"] for s in check["systems"].values()), default=0.0)
    if check.get("train_on_stress", True):
        return [
            f"- Stress labels: trained on (analytic stress within {worst:.2g} GPa of -dE/dV, "
            f"tolerance {check['tolerance_gpa']} GPa)"
        ]
    npt = check.get("npt_without_stress") or []
    return [
        f"- Stress labels: **not trained on**: analytic stress and -dE/dV differ by up to "
        f"{worst:.3g} GPa (tolerance {check['tolerance_gpa']} GPa; Pulay stress of a low "
        "cutoff); the model's stress and pressure come from energies alone"
        + (f"; npt exploration of {', '.join(npt)} followed that pressure" if npt else "")
    ]


def model_card_markdown(card: Mapping[str, Any]) -> str:
    """Render a model card as Markdown."""
    d = card["dft_protocol"]
    lines = [
        f"# Model card: {card['campaign']}",
        "",
        f"- Species: {', '.join(card['species'])}",
        f"- Committee: {card['committee_size']} NequIP members, model {json.dumps(card['model'])}",
        f"- DFT protocol: GPAW {d['xc']}, PW {d['ecut']} eV, k-point density {d['kpt_density']}"
        f"/A{' (Gamma-centred)' if d['gamma'] else ''}, Fermi-Dirac {d['smearing']} eV"
        f", k-point symmetry {d.get('symmetry', 'time-reversal')}",
        *_stress_line(card.get("protocol_check")),
        f"- Iterations: {card['iterations']} ({card['stop_reason']})",
        f"- DFT frames: {card['dft_frames']} ({card['dataset']['quarantined']} quarantined), "
        f"{card['dft_core_seconds']} core-seconds",
        f"- Dataset: {card['dataset']['frames']} frames, split {card['dataset']['per_split']}",
        f"- DFT budget: {card.get('dft_core_hours_spent')} of "
        f"{card.get('dft_budget_core_hours') or 'unlimited'} core-hours (training labels)",
        f"- Origins: {card['dataset']['per_generator']}",
        f"- Committee test force RMSE: {card['test_force_rmse']} eV/A",
        _test_errors_line(card.get("committee_test_errors") or {}),
        "",
        "| iteration | labelled | dataset | test F RMSE | accurate | candidate | failed MD |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in card["iteration_table"]:
        cells = [row[k] for k in ("iteration", "labelled", "dataset_frames", "test_force_rmse")]
        cells += [row["accurate"], row["candidate"], row["failed"]]
        lines.append("| " + " | ".join("-" if c is None else f"{c:.3g}" for c in cells) + " |")
    record = card.get("record")
    if record:
        versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
        lines += [
            "",
            "## Record",
            "",
            f"- Software: {versions}",
            f"- Machine: {record['machine']['cpu']}; {record['machine']['system']}",
            f"- DFT store SHA-256: {record['dft_store_sha256']}",
            f"- Rebuild the committees from this record: `{record['rebuild']}`",
        ]
    if card.get("validation"):
        lines += validation_markdown(card["validation"])
        lines += [
            "",
            "Everything the validation measured: `validation.json`; the report: `../report.html`.",
        ]
    return "\n".join(lines) + "\n"
