"""bench.guards: each guard holds, falls or is reported as not measured, from the results the benchmarks wrote."""

from __future__ import annotations

from bench.guards import LEAD_FLOORS, _markdown, check


def _throughput(**leads: float) -> dict:
    return {"date": "2026-12-07", "summary": {task: {"engine_vs_tuned_wall": lead} for task, lead in leads.items()}}


def test_leads_at_their_floor_and_a_quick_first_visit_hold():
    rows = check(_throughput(**LEAD_FLOORS), {"median_interactive_s": 1.8, "median_params_s": 3.7})
    assert [row["holds"] for row in rows] == [True] * 5


def test_a_lead_below_its_floor_or_a_slow_summary_fails_and_a_missing_figure_is_not_measured():
    rows = {row["guard"].split(":")[0] + row["bound"]: row for row in
            check(_throughput(mlm=1.5, classification=1.3), {"median_interactive_s": 2.0, "median_params_s": 9.1})}
    assert rows["mlm>= 1.88x"]["holds"] is False
    assert rows["classification>= 1.22x"]["holds"] is True
    assert rows["causal>= 1.56x"]["holds"] is None and rows["causal>= 1.56x"]["measured"] is None
    assert rows["cold start<= 8.0 s"]["holds"] is False
    table = _markdown({"date": "now", "rows": list(rows.values())})
    assert "**NO**" in table and "not measured" in table
