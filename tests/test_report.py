"""The campaign report: a synthetic campaign folder rendered and opened in headless Chromium.

The folder is written with the keys the stages write, several of them by the stages' own
producers (property rows, calibration, convergence, model card), from realistic numbers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from potforge.io import read_json, write_json
from report_browser import check_report_in_browser, install_chromium

NASTY = 'tiny <script>alert("x")</script> & co'
MEMBERS = 2
T0 = 1_767_225_600.0  # benchmark end times are file modification times


@pytest.fixture(scope="module")
def chromium():
    reason = install_chromium()
    if reason:
        pytest.skip(reason)


# --- a synthetic campaign -----------------------------------------------------------------


def _metrics(force_rmse, energy_rmse, rng):
    return {
        "frames": 3,
        "force_rmse_ev_per_a": force_rmse,
        "force_mae_ev_per_a": 0.71 * force_rmse,
        "energy_rmse_mev_per_atom": energy_rmse,
        "energy_mae_mev_per_atom": 0.8 * energy_rmse,
        "stress_mae_gpa": float(rng.uniform(0.2, 0.6)),
    }


def _test_set(force_rmse, energy_rmse, rng, frames=12):
    dft = rng.uniform(-5.42, -5.05, frames)
    model = dft + rng.normal(0, energy_rmse / 1000, frames)
    out = _metrics(force_rmse, energy_rmse, rng)
    out.update(
        frames=frames,
        stress_rmse_gpa=float(rng.uniform(0.3, 0.9)),
        per_origin={
            origin: {**_metrics(force_rmse * f, energy_rmse * f, rng), "frames": frames // 3}
            for origin, f in (("explore", 1.2), ("sample", 0.9), ("structure", 0.8))
        },
        per_species_force_rmse_ev_per_a={"Si": force_rmse},
        energy_per_atom={"dft": dft.tolist(), "model": model.tolist()},
        max_force_deviation=rng.uniform(0.02, 0.3, frames).tolist(),
    )
    return out


def _calibration(scale, rng, atoms=96):
    from potforge.validate.calibration import calibration

    dev = rng.gamma(2.0, 0.04, atoms)
    err = np.abs(scale * dev + rng.normal(0, 0.02, atoms))
    out = calibration(dev, err, ["Si"] * atoms, {"lo": 0.05, "hi": 0.15})
    out["points"] = {"deviation": dev.round(5).tolist(), "error": err.round(5).tolist()}
    return out


def _crystal_props(a0, bulk_gpa, c11, vacancy, e0_atom):
    natoms, v0 = 8, a0**3
    volumes = v0 * np.linspace(0.94, 1.06, 5)
    b = bulk_gpa / 160.2177
    energies = natoms * e0_atom + 0.5 * b * (volumes - v0) ** 2 / v0
    return {
        "lattice": [a0, a0, a0],
        "volume_per_atom": v0 / natoms,
        "energy_per_atom": e0_atom,
        "eos": {
            "volumes": volumes.tolist(),
            "energies": energies.tolist(),
            "v0": v0,
            "e0": natoms * e0_atom,
            "bulk_modulus_gpa": bulk_gpa,
            "scale": 1.0,
            "natoms": natoms,
        },
        "elastic_gpa": {"C11": c11, "C12": 0.41 * c11, "C44": 0.48 * c11},
        "vacancy_ev": {"natoms": 8.0, "relaxed": vacancy, "unrelaxed": vacancy + 0.05},
    }


def _md_stability(rng):
    r = np.linspace(0.05, 5.95, 60)
    g = 3.2 * np.exp(-((r - 2.35) ** 2) / 0.02) + 1.4 * np.exp(-((r - 3.84) ** 2) / 0.08)
    g = np.where(r < 2.0, 0.0, g + 0.9 * (r > 2.6))
    runs = [
        {
            "ensemble": "nvt",
            "temperature": t,
            "natoms": 64,
            "steps_requested": 2000,
            "steps_done": 2000,
            "survived": True,
            "halt_reason": None,
            "message": None,
            "max_force_dev": float(rng.uniform(0.05, 0.2)),
        }
        for t in (600.0, 1200.0)
    ]
    runs.append({**runs[0], "ensemble": "nve", "energy_drift_mev_per_atom_per_ps": 0.042})
    return {
        "si": {
            "runs": runs,
            "rdf_hottest": {"temperature": 1200.0, "r": r.round(4).tolist(), "g": g.tolist()},
            "all_survived": True,
        }
    }


def _final_validation(rng, iteration):
    from potforge.validate.rows import property_rows, summary_counts

    dft = _crystal_props(5.4929, 89.66, 145.26, 2.5017, -5.29)
    model = _crystal_props(5.4718, 95.12, 151.9, 2.3384, -5.284)
    peer = _crystal_props(5.4311, 101.4, 151.4, 2.82, -4.337)
    tolerances = {
        "lattice_percent": 1.0,
        "volume_percent": 3.0,
        "bulk_modulus_percent": 10.0,
        "elastic_percent": 15.0,
        "vacancy_ev": 0.15,
    }
    rows = property_rows("si", True, dft, model, tolerances, {"SW": peer})
    rows.append(
        {"system": "ge", "name": "properties", "error": "BFGS <did not> converge", "pass": False}
    )
    return {
        "members": [f"iter_002/train/member_{k}/model.nequip.zip" for k in range(MEMBERS)],
        "test_set": _test_set(0.1234567, 7.654321, rng),
        "calibration": _calibration(1.37, rng),
        "properties": rows,
        "property_summary": summary_counts(rows),
        "crystals": {"si": {"dft": dft, "model": model, "formula": "Si8"}},
        "peers": {
            "SW": {"energy_shift_ev_per_atom": -0.953, "test_set": _test_set(0.31, 42.0, rng)}
        },
        "md_stability": _md_stability(rng),
        "iteration": iteration,
    }


def _select_report(it, rng, accurate_target, final):
    from potforge.select import convergence

    devs = rng.gamma(2.0, (0.08, 0.05, 0.007)[it], 40)
    counts = {
        "accurate": int((devs < 0.05).sum()),
        "candidate": int(((devs >= 0.05) & (devs < 0.15)).sum()),
        "failed": int((devs >= 0.15).sum()),
    }
    frames = sum(counts.values())
    edges = np.linspace(0, 0.6, 21)
    report = {
        "frames": frames,
        "counts": counts,
        "fractions": {k: v / frames for k, v in counts.items()},
        "per_task": {},
        "candidates": counts["candidate"],
        "picked": [
            {"task": "si/000-nvt-T600", "step": 10 * k, "deviation": 0.1, "why": "highest"}
            for k in range(min(counts["candidate"], 5))
        ],
        "deviation_histogram": {
            "edges": edges.round(4).tolist(),
            "counts": np.histogram(devs, edges)[0].tolist(),
        },
    }
    converged, why = convergence(report, accurate_target)
    assert converged == final, why  # the last iteration converges, the earlier ones do not
    report.update(iteration=it, converged=converged, convergence=why)
    return report


def _benchmark(path, wall, cpu, end):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    hms = f"{int(wall // 3600)}:{int(wall % 3600 // 60):02d}:{int(wall % 60):02d}"
    path.write_text(
        f"{header}\n{wall:.2f}\t{hms}\t154.2\t537.8\t79.0\t99.5\t0.0\t0.04\t57.8\t{cpu}\n"
    )
    os.utime(path, (end, end))


def _iteration_benchmarks(logs, it, clock):
    """Label, train, deploy and validate jobs of one iteration, one after another."""
    jobs = [(f"labels/chunk_00{k}", 600.0 + 40 * k, 1150.0) for k in range(2)]
    jobs += [(f"train/member_{k}", 420.0, 400.0) for k in range(MEMBERS)]
    jobs += [(f"train/deploy_{k}", 95.0, 60.0) for k in range(MEMBERS)]
    jobs += [("validate", 130.0, 120.0)]
    for name, wall, cpu in jobs:
        clock += wall
        _benchmark(logs / f"iter_{it:03d}" / f"{name}.benchmark.tsv", wall, cpu, clock)
    return clock, jobs


def make_campaign(root: Path, rng=None) -> dict:
    """Write a three-iteration finished campaign; return what the test checks against."""
    from potforge.loop import model_card, validation_summary

    rng = rng or np.random.default_rng(7)
    logs, clock, walls = root / "logs", T0, []
    for name, wall, cpu in (("protocol_check", 7.6, 4.8), ("dft_si", 145.0, 101.0)):
        clock += wall
        _benchmark(logs / "validation" / f"{name}.benchmark.tsv", wall, cpu, clock)
        walls.append(wall)
    frames, core_s = 0, 0.0
    for it in range(3):
        d = root / f"iter_{it:03d}"
        new = (8, 6, 5)[it]
        frames += new
        core_s += new * 390.0
        write_json(
            d / "dataset" / "summary.json",
            {
                "frames": frames,
                "per_split": {"train": frames - 2, "validation": 1, "test": 1},
                "per_generator": {"rattle": 4, "strain": 2, "explore": frames - 6},
                "dft_core_seconds": core_s,
                "quarantined": it,
            },
        )
        for k in range(2):
            write_json(
                d / "labels" / f"chunk_00{k}.json",
                {"labelled": new // 2, "quarantined": 0, "computed": new // 2, "reused": 0},
            )
        force = 0.35 / (it + 1)
        write_json(
            d / "train" / "committee.json",
            {
                "split": "test",
                "frames": 1,
                "committee_mean": _metrics(force, 60.0 / (it + 1), rng),
                "max_force_deviation": {"mean": 0.08, "max": 0.12, "per_frame": [0.08]},
            },
        )
        for k, temp in enumerate((600, 1200)):
            write_json(
                d / "explore" / "si" / f"00{k}-nvt-T{temp}" / "summary.json",
                {
                    "task": {"ensemble": "nvt", "temperature": float(temp), "steps": 100},
                    "natoms": 4,
                    "steps_requested": 100,
                    "steps_done": 100 if it or k == 0 else 40,
                    "halted": not (it or k == 0),
                    "halt_reason": None if it or k == 0 else "deviation <0.9",
                    "trust_hi": 0.15,
                    "max_force_dev": float(rng.uniform(0.1, 0.3)),
                },
            )
        write_json(d / "select" / "report.json", _select_report(it, rng, 0.6, it == 2))
        validation = {
            "test_set": _test_set(force * 1.1, 70.0 / (it + 1), rng),
            "calibration": _calibration(1.2, rng),
            "properties": [],
            "property_summary": {"passed": 0, "total": 0},
            "crystals": {},
            "iteration": it,
        }
        write_json(d / "validate" / "validation.json", validation)
        clock, jobs = _iteration_benchmarks(logs, it, clock)
        walls += [w for _, w, _ in jobs]
    write_json(
        root / "validation" / "labels" / "chunk_000.json", {"labelled": 12, "quarantined": 0}
    )
    check = {
        "stress_consistent": False,
        "systems": {
            "si": {
                "analytic_pressure_gpa": 2.03,
                "finite_difference_pressure_gpa": 3.61,
                "difference_gpa": 1.58,
                "consistent": False,
            }
        },
        "tolerance_gpa": 0.5,
    }
    write_json(root / "validation" / "protocol_check.json", check)
    final = _final_validation(rng, 2)
    write_json(root / "final" / "validation.json", final)
    clock += 300.0
    _benchmark(logs / "validation" / "final.benchmark.tsv", 300.0, 290.0, clock)
    walls.append(300.0)
    for k in range(MEMBERS):
        for name in ("model.nequip.zip", "model.pair_nequip.nequip.pt2", "best.ckpt"):
            path = root / "final" / "committee" / f"member_{k}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 2048)
    config = tiny_config()
    last = root / "iter_002" / "select" / "report.json"
    card = model_card(config, ["Si"], 2, read_json(last)["convergence"], root)
    card.update(campaign=NASTY, committee_size=MEMBERS, protocol_check=check)
    card["validation"] = validation_summary(final)
    write_json(root / "final" / "model_card.json", card)
    return {
        "validation": final,
        "card": card,
        "wall_sum": sum(walls),
        "wall_span": clock - T0,
        "core_hours": core_s / 3600,
    }


def make_partial_campaign(root: Path) -> None:
    """Iteration 0 half done: labels and the dataset, no committee, selection or final/."""
    d = root / "iter_000"
    write_json(
        d / "dataset" / "summary.json",
        {
            "frames": 8,
            "per_split": {"train": 6, "validation": 1, "test": 1},
            "per_generator": {"rattle": 4, "strain": 2, "bulk": 1, "shear": 1},
            "dft_core_seconds": 31.0,
            "quarantined": 0,
        },
    )
    write_json(
        d / "labels" / "chunk_000.json",
        {"labelled": 4, "quarantined": 0, "computed": 4, "reused": 0},
    )
    _benchmark(root / "logs" / "iter_000" / "labels" / "chunk_000.benchmark.tsv", 7.6, 4.8, T0)


# --- checks -------------------------------------------------------------------------------


def _close(text: str, value: float, rel: float = 5e-3) -> bool:
    number = float(text.rstrip("%").replace("±", ""))
    return math.isclose(number, value, rel_tol=rel, abs_tol=1e-9)


def _check_page_basics(page: dict, html_path: Path, screenshot: Path) -> None:
    assert page["console_errors"] == []
    assert page["images"] and page["images_ok"], page["images"]
    assert all(img["dataUri"] for img in page["images"])
    assert page["external"] == [] and page["scripts"] == 0
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html_path.stat().st_size < 5_000_000
    assert page["sections"] == [
        "summary",
        "learning",
        "parity",
        "deviation",
        "properties",
        "time",
        "provenance",
    ]


def test_the_report_of_a_finished_campaign_shows_its_numbers_in_a_browser(tmp_path, chromium):
    from potforge.report import write_report
    from potforge.report.html import (
        METRIC_FORMAT,
        VALUE_FORMAT,
        format_duration,
        format_error,
        format_number,
        format_tolerance,
    )

    root = tmp_path / "results" / "tiny"
    expected = make_campaign(root)
    out = write_report(root)
    assert out == root / "report.html"
    page = check_report_in_browser(out, tmp_path / "report.png")
    _check_page_basics(page, out, tmp_path / "report.png")
    figures = {img["figure"] for img in page["images"]}
    assert figures == {
        "learning-curves",
        "energy-parity",
        "force-errors",
        "deviation",
        "calibration",
        "eos",
        "rdf",
        "time",
    }
    assert page["title"] == f"potforge report: {NASTY}"  # escaped: shown as text, not run
    keys, validation = page["keys"], expected["validation"]

    ts = validation["test_set"]
    for key in ("force_rmse_ev_per_a", "energy_rmse_mev_per_atom", "force_mae_ev_per_a"):
        text = keys[f"test_set.{key}"]
        assert text == format_number(ts[key], METRIC_FORMAT)
        assert _close(text, ts[key])
    peer_ts = validation["peers"]["SW"]["test_set"]
    assert keys["peers.SW.test_set.force_rmse_ev_per_a"] == format_number(
        peer_ts["force_rmse_ev_per_a"], METRIC_FORMAT
    )

    rows = validation["properties"]
    assert page["propertyRows"] == [{"system": r["system"], "name": r["name"]} for r in rows]
    for k, row in enumerate(rows):
        if isinstance(row["error"], str):
            assert keys[f"properties.{k}.error"] == row["error"]
            assert keys[f"properties.{k}.pass"] == "FAIL"
            continue
        for side in ("model", "dft"):
            assert keys[f"properties.{k}.{side}"] == format_number(row[side], VALUE_FORMAT)
            assert _close(keys[f"properties.{k}.{side}"], row[side], 1e-4)
        assert keys[f"properties.{k}.error"] == format_error(row["error"], row["error_kind"])
        assert _close(keys[f"properties.{k}.error"], row["error"], 1e-2)
        assert keys[f"properties.{k}.tolerance"] == format_tolerance(
            row["tolerance"], row["error_kind"]
        )
        assert keys[f"properties.{k}.pass"] == ("pass" if row["pass"] else "FAIL")
        peer = row["peers"]["SW"]
        assert keys[f"properties.{k}.peers.SW.error"].startswith(
            format_error(peer["error"], row["error_kind"])
        )
    s = validation["property_summary"]
    assert keys["property_summary"] == f"{s['passed']} of {s['total']}"

    assert keys["summary.stop_reason"] == expected["card"]["stop_reason"]
    assert keys["summary.dft_frames"] == str(expected["card"]["dft_frames"])
    assert keys["summary.dft_core_hours"] == format_number(expected["core_hours"], ".3g")
    assert keys["summary.wall_sum"] == format_duration(expected["wall_sum"])
    assert keys["summary.wall_span"] == format_duration(expected["wall_span"])
    assert "protocol check flagged" in page["text"]
    assert keys["curve.2.independent_force"] != "n/a"
    assert keys["select.2.accurate"].endswith("%")
    assert keys["version.potforge"] not in ("", "not installed")
    assert "final/committee/member_1/model.pair_nequip.nequip.pt2" in page["text"]


def test_a_half_done_first_iteration_renders_with_what_is_missing(tmp_path, chromium):
    from potforge.cli import main

    root = tmp_path / "results" / "tiny"
    make_partial_campaign(root)
    assert main(["report", str(root)]) == 0
    out = root / "report.html"
    page = check_report_in_browser(out, tmp_path / "partial.png")
    _check_page_basics(page, out, tmp_path / "partial.png")
    notes = {n["key"]: n["text"] for n in page["notes"]}
    assert "final/validation.json" in notes["missing-summary"]
    assert "iter_000/train/committee.json" in notes["missing-summary"]
    assert "missing-properties" in notes and "missing-select" in notes
    assert "not finalised" in page["keys"]["summary.stop_reason"]
    assert page["keys"]["summary.dft_frames"] == "8"


def test_an_empty_or_broken_folder_still_renders(tmp_path):
    from potforge.cli import main

    root = tmp_path / "empty"
    root.mkdir()
    (root / "final").mkdir()
    (root / "final" / "validation.json").write_text("{not json")
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    text = out.read_text()
    assert "no iteration has started" in text and "unreadable: validation.json" in text
    assert "<script" not in text


@pytest.mark.slow
def test_the_tiny_campaigns_report_shows_its_validation(tiny_campaign, chromium, tmp_path):
    from potforge.report.html import METRIC_FORMAT, VALUE_FORMAT, format_error, format_number

    res = tiny_campaign / "results" / "tiny"
    page = check_report_in_browser(res / "report.html", tmp_path / "tiny.png")
    assert page["console_errors"] == [] and page["images_ok"] and len(page["images"]) >= 8
    assert Path(page["screenshot"]).stat().st_size > 10_000
    assert (res / "report.html").stat().st_size < 5e6
    validation = read_json(res / "final" / "validation.json")
    keys = page["keys"]
    for key in ("force_rmse_ev_per_a", "energy_rmse_mev_per_atom"):
        assert keys[f"test_set.{key}"] == format_number(validation["test_set"][key], METRIC_FORMAT)
    for k, row in enumerate(validation["properties"]):
        if isinstance(row.get("error"), str):  # e.g. a tiny committee with no EOS minimum
            assert keys[f"properties.{k}.error"] == row["error"]
            continue
        for side in ("model", "dft"):
            assert keys[f"properties.{k}.{side}"] == format_number(row[side], VALUE_FORMAT)
        assert keys[f"properties.{k}.error"] == format_error(row["error"], row["error_kind"])


def test_a_scattered_dft_e_of_v_is_named_beside_the_polymorph_energies():
    from potforge.report.html import scatter_note

    row = {"name": "dE(cubic-monoclinic)", "unit": "meV/f.u.", "tolerance": 25.0}
    assert scatter_note([{**row, "dft_scatter": 2.0}, {**row, "dft_scatter": None}]) == ""
    text = scatter_note([{**row, "dft_scatter": 22.1}, {**row, "dft_scatter": 8.0}])
    assert 'data-note="dft_scatter"' in text and 'class="warning"' in text
    assert "by up to 22 meV/f.u. (dE(cubic-monoclinic), tolerance 25)" in text
