"""The loop's bookkeeping: when it stops and why."""

from __future__ import annotations

from potforge.loop import stop_point


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
