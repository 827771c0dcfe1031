"""The loop's bookkeeping: when it stops and why."""

from __future__ import annotations

from pathlib import Path

from potforge.io import read_json
from potforge.loop import model_card_markdown, stop_point

REPO = Path(__file__).resolve().parents[1]


def report(converged, spent=0.0, frames=0, picked=0):
    return {
        "converged": converged,
        "convergence": "converged: x" if converged else "not converged: y",
        "dft_core_seconds_spent": spent,
        "dataset_frames": frames,
        "picked": [{}] * picked,
    }


def loop(cap, budget=None):
    return {"max_iterations": cap, "dft_budget_core_hours": budget}


def test_loop_goes_on_until_converged_or_capped():
    assert stop_point([report(False)], loop(3)) is None
    assert stop_point([report(False), report(True)], loop(3)) == (1, "converged: x")
    final, why = stop_point([report(False)] * 3, loop(3))
    assert final == 2 and why.startswith("iteration cap: loop.max_iterations=3 reached")


def test_raising_the_cap_extends_a_capped_campaign():
    reports = [report(False)] * 2
    assert stop_point(reports, loop(2))[0] == 1
    assert stop_point(reports, loop(4)) is None  # more iterations are needed, none redone


def test_the_dft_budget_stops_before_the_iteration_that_would_exceed_it():
    # 10 frames labelled per iteration at 36 core-s each: 0.1 core-hours per iteration.
    reports = [
        report(False, spent=360.0 * (it + 1), frames=10 * (it + 1), picked=10) for it in range(6)
    ]
    # budget 0.35 core-h: after iteration 2 (0.3 spent), 10 more frames would make 0.4
    final, why = stop_point(reports, loop(10, budget=0.35))
    assert final == 2 and why.startswith("DFT budget")
    assert "0.4 of loop.dft_budget_core_hours=0.35" in why
    assert stop_point(reports, loop(10, budget=10.0)) is None
    # convergence wins over the budget; the cap wins when it comes first
    assert (
        stop_point([report(False, 360, 10, 10), report(True, 720, 20, 10)], loop(10, 0.15))[0] == 0
    )
    assert stop_point(reports, loop(2, budget=0.35))[0] == 1


def test_model_card_markdown_states_the_committee_test_errors():
    card = read_json(REPO / "benchmarks" / "results" / "default_campaign" / "model_card.json")
    card["committee_test_errors"]["committee_mean"]["stress_mae_gpa"] = 1.234
    text = model_card_markdown(card)
    mean = card["committee_test_errors"]["committee_mean"]
    assert f"energy MAE {mean['energy_mae_mev_per_atom']:.3g} meV/atom" in text
    assert "stress MAE 1.23 GPa" in text
    card["committee_test_errors"] = None
    assert "energy MAE n/a meV/atom" in model_card_markdown(card)


def test_model_card_says_whether_it_trained_on_stress():
    card = read_json(REPO / "benchmarks" / "results" / "default_campaign" / "model_card.json")
    check = {
        "tolerance_gpa": 0.5,
        "train_on_stress": True,
        "systems": {"si": {"difference_gpa": 0.03}},
    }
    assert "Stress labels: trained on (analytic stress within 0.03 GPa" in model_card_markdown(
        {**card, "protocol_check": check}
    )
    dropped = {**check, "train_on_stress": False, "systems": {"c": {"difference_gpa": 75.6}}}
    text = model_card_markdown({**card, "protocol_check": dropped})
    assert "**not trained on**: analytic stress and -dE/dV differ by up to 75.6 GPa" in text
    # errors against such labels are not printed as if they meant something
    note = "not measured: the protocol's stress labels are wrong (analytic stress and ..."
    card["committee_test_errors"] = {**card["committee_test_errors"], "stress_note": note}
    card["validation"]["test_set"] = {**card["validation"]["test_set"], "stress_note": note}
    text = model_card_markdown({**card, "protocol_check": dropped})
    assert "stress MAE" not in text and "stress RMSE" not in text
    assert text.count(f"stress {note}") == 2


def test_model_card_names_the_scatter_of_the_dft_energies():
    card = read_json(REPO / "benchmarks" / "results" / "default_campaign" / "model_card.json")
    row = {"system": "cubic", "name": "dE(cubic-monoclinic)", "unit": "meV/f.u.", "model": 322.0}
    row.update(dft=275.0, error=47.0, tolerance=25.0, peers={}, dft_scatter=22.1)
    row["pass"] = False
    card["validation"]["properties"] = [row]
    text = model_card_markdown(card)
    assert "| cubic | dE(cubic-monoclinic) (meV/f.u.) | 322 | 275 | 47 | 25 | no |" in text
    assert "scatter about a smooth E(V) by up to 22.1 meV/f.u. (dE(cubic-monoclinic))" in text
