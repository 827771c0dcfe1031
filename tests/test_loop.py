"""The loop's bookkeeping: when it stops and why."""

from __future__ import annotations

from pathlib import Path

from potforge.io import read_json
from potforge.loop import model_card_markdown, stop_point

REPO = Path(__file__).resolve().parents[1]


def report(converged):
    return {
        "converged": converged,
        "convergence": "converged: x" if converged else "not converged: y",
    }


def test_loop_goes_on_until_converged_or_capped():
    assert stop_point([report(False)], 3) is None
    assert stop_point([report(False), report(True)], 3) == (1, "converged: x")
    final, why = stop_point([report(False)] * 3, 3)
    assert final == 2 and why.startswith("iteration cap: loop.max_iterations=3 reached")


def test_raising_the_cap_extends_a_capped_campaign():
    reports = [report(False)] * 2
    assert stop_point(reports, 2)[0] == 1
    assert stop_point(reports, 4) is None  # more iterations are needed, none redone


def test_model_card_markdown_states_the_committee_test_errors():
    card = read_json(REPO / "benchmarks" / "results" / "default_campaign" / "model_card.json")
    card["committee_test_errors"]["committee_mean"]["stress_mae_gpa"] = 1.234
    text = model_card_markdown(card)
    mean = card["committee_test_errors"]["committee_mean"]
    assert f"energy MAE {mean['energy_mae_mev_per_atom']:.3g} meV/atom" in text
    assert "stress MAE 1.23 GPa" in text
    card["committee_test_errors"] = None
    assert "energy MAE n/a meV/atom" in model_card_markdown(card)
