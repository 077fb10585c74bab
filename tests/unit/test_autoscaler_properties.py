"""Properties of the SLO policy with its defaults, in the simulator (simulated time, not
timings): steady load does not flap, a burst of long prompts is met by a scale-up before
the queue has exceeded the TTFT target for long, stale metrics hold, and demand beyond
``maxReplicas`` is reported as unattainable rather than as a normal decision."""

from __future__ import annotations

import itertools
import random

from tests.unit.test_autoscaler_support import ctx, window
from tierserve.autoscaler.policy import SloPolicy, make_policy
from tierserve.autoscaler.sim import synthetic as syn
from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.profiles import get_sim_profile
from tierserve.autoscaler.sim.results import SimResult
from tierserve.autoscaler.sim.trace import Trace
from tierserve.autoscaler.types import Limits, ScalerState, Slo
from tierserve.core.capacity import capacity_from_profile

PROFILE = get_sim_profile("llama-3.3-70b-h100x2")
SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=40)
CAPACITY = capacity_from_profile(PROFILE, SLO.tpot_p95_ms, prompt_tokens=2000, output_tokens=30)
LIMITS = Limits(min_replicas=1, max_replicas=32, cold_start_s=60, scale_down_stabilization_s=60)


def prefill_heavy(rate_at: syn.RateFn, peak: float, duration_s: float, seed: int = 0) -> Trace:
    rng = random.Random(seed)
    times = syn.arrivals(rate_at, peak, duration_s, rng)
    return syn.build(times, syn.PREFILL_PROMPT, syn.PREFILL_ANSWER, rng)


def simulate(trace: Trace, initial: int, limits: Limits = LIMITS) -> SimResult:
    settings = SimSettings(slo=SLO, limits=limits, capacity=CAPACITY, initial_replicas=initial)
    return Simulation(trace, PROFILE, settings, make_policy("slo")).run()


def test_steady_load_does_not_flap() -> None:
    """Steady Poisson traffic of long prompts: after the first minutes the count settles,
    and no change is ever undone (up then down, or down then up)."""
    result = simulate(prefill_heavy(lambda _t: 3.0, 3.0, 1800.0), initial=4)
    counts = [(t, new - old) for t, old, new, _ in result.changes]
    late = [step for t, step in counts if t > 600]
    assert len(late) <= 1
    steps = [step for _, step in counts]
    reversals = sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))
    assert reversals <= 1


def test_a_burst_is_met_before_the_queue_exceeds_the_ttft_target_for_long() -> None:
    """Traffic triples within 30 s: the policy asks for capacity within two decision
    intervals of the burst reaching it, and requests wait beyond the TTFT target only
    during the cold start that follows (never after the new replicas serve)."""
    start, ramp = 600.0, 30.0

    def rate_at(t: float) -> float:
        return 2.0 + 4.0 * min(1.0, max(0.0, (t - start) / ramp))

    result = simulate(prefill_heavy(rate_at, 6.0, 1200.0), initial=3)
    ups = [t for t, old, new, _ in result.changes if new > old and t >= start]
    assert ups and ups[0] <= start + ramp + 20  # two 10 s intervals
    late = [r.arrival_s for r, ttft in zip(result.trace, result.ttft_s(), strict=True)
            if ttft > SLO.ttft_p95_ms / 1000]  # fmt: skip
    assert all(t < ups[0] + LIMITS.cold_start_s + 30 for t in late), late[-5:]
    after = [ttft for r, ttft in zip(result.trace, result.ttft_s(), strict=True)
             if r.arrival_s > ups[0] + 2 * LIMITS.cold_start_s]  # fmt: skip
    assert max(after) < SLO.ttft_p95_ms / 1000


def test_stale_metrics_hold_whatever_they_said() -> None:
    """Metrics two minutes old that showed ten times the capacity: the count stays."""
    now = 5000.0
    stale = window(now - 120, lambda _t: 40.0)
    decision = SloPolicy()(ctx(stale, ScalerState(3, 3), now))
    assert decision.held and decision.desired_replicas == 3 and "old" in decision.reason
    assert decision.needed_replicas is None  # a hold says nothing about attainability


def test_demand_beyond_max_replicas_is_flagged_as_unattainable() -> None:
    """The decision is capped at maxReplicas and carries the count the demand needs."""
    limits = LIMITS.model_copy(update={"max_replicas": 6})
    now = 5000.0
    decision = SloPolicy()(ctx(window(now, lambda _t: 12.0), ScalerState(6, 6), now,
                               limits=limits))  # fmt: skip
    assert decision.desired_replicas == 6 and decision.cause == "max_replicas"
    assert decision.needed_replicas is not None and decision.needed_replicas > 6
    fits = SloPolicy()(ctx(window(now, lambda _t: 3.0), ScalerState(6, 6), now, limits=limits))
    assert fits.needed_replicas is not None and fits.needed_replicas <= 6
