"""The online bound through a jump: which buckets it holds, and that it is a bound."""

from __future__ import annotations

from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.synthetic import flash_crowd
from tierserve.autoscaler.types import Limits, Slo
from tierserve.dev.online_bound import bound, bounded_schedule, forced_buckets


def test_the_forced_buckets_cover_the_cold_start_after_the_jump() -> None:
    assert forced_buckets(60.0, 1200.0, 60.0) == range(20, 21)
    assert forced_buckets(60.0, 1230.0, 60.0) == range(20, 22)
    assert forced_buckets(60.0, 1200.0, 0.0) == range(20, 21)  # at least the jump's own
    sched = bounded_schedule([1, 2, 6, 5, 3, 2], range(2, 3), 2, 2, 9)
    assert sched == [1, 2, 2, 9, 9, 2]


def test_holding_more_at_the_jump_never_lowers_the_bound() -> None:
    trace = flash_crowd(duration_s=900.0, at_s=420.0, decay_s=300.0)
    scenario = Scenario(profile="llama-3.3-70b-h100x2", slo=Slo(ttft_p95_ms=2500,
                                                                tpot_p95_ms=40),
                        limits=Limits(max_replicas=16, cold_start_s=60))
    runner = Runner(trace, scenario)
    peak = max(runner.oracle().replicas)
    rows = bound(runner, 420.0, [1, 2, peak])
    assert [r.forced for r in rows] == [(7,)] * 3
    assert rows[0].attainment <= rows[1].attainment <= rows[2].attainment
    assert rows[0].attainment < rows[2].attainment  # one replica cannot carry the crowd
