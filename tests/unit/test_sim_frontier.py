"""Cost at equal attainment read off Pareto frontiers."""

from __future__ import annotations

import pytest

from tierserve.autoscaler.sim.frontier import cost_table, pareto


def test_pareto_drops_dominated_runs() -> None:
    f = pareto("hpa", [(0.99, 6.0), (0.995, 6.5), (0.98, 6.2), (0.992, 7.0), (0.999, 8.0)])
    assert f.points == ((0.99, 6.0), (0.995, 6.5), (0.999, 8.0))


def test_cost_is_interpolated_between_frontier_points() -> None:
    f = pareto("hpa", [(0.99, 6.0), (0.995, 6.5)])
    assert f.cost_at(0.9925) == pytest.approx(6.25)
    assert f.cost_at(0.99) == pytest.approx(6.0)
    assert f.cost_at(0.95) == pytest.approx(6.0)  # below: the cheapest run seen
    assert f.cost_at(0.999) is None  # never reached: no figure


def test_cost_table_reports_savings_against_each_baseline() -> None:
    fr = {"slo": pareto("slo", [(0.99, 4.5), (0.996, 5.0)]),
          "hpa": pareto("hpa", [(0.99, 6.0), (0.995, 6.5)])}  # fmt: skip
    text = cost_table(fr, [0.99, 0.996])
    rows = text.splitlines()
    assert rows[2].startswith("| 99.00% | 4.500 | 6.000 | 25.0%")
    assert rows[3].endswith("| 5.000 | - | - |")
