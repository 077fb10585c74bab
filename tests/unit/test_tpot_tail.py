"""The TPOT-tail model (``core.tpot_tail``): prefill collisions against a TPOT target,
and the SLO policy's opt-in floor built on it (``SloPolicy.tail_budget``).

The compound tail is checked against a seeded Monte Carlo of the same sum; the replica
count against its definition (fewest replicas within budget); the shape against what
the module promises (fewer misses with more replicas, more with more traffic, none for
answers whose slack no prompt can use up).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace as dc_replace

import pytest

from tests.unit.test_autoscaler_support import LIMITS, sample
from tierserve.autoscaler.policy import SloPolicy, signals
from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.synthetic import synthetic
from tierserve.autoscaler.types import (
    GEN_TOKEN_BUCKETS,
    Histogram,
    Limits,
    MetricsWindow,
    PolicyContext,
    ScalerState,
    Slo,
)
from tierserve.core.api.deployment_status import SizingPlan
from tierserve.core.capacity import ReplicaCapacity, capacity_from_plan
from tierserve.core.tpot_tail import (
    PrefillMix,
    _compound_tail,
    quantile_midpoints,
    replicas_for_tpot_tail,
    tpot_miss_share,
)
from tierserve.dev.tail_check import per_minute

# prefill-heavy traffic on the fitted llama-3.3-70b-h100x2 profile, TPOT target 40 ms
SHORT = PrefillMix(prompt_tokens=2200, output_tokens=20, step_ms=19.0,
                   prefill_ms_per_token=0.0699, tpot_ms=40)


@pytest.mark.parametrize(("arrivals", "theta"), [(0.3, 1.6), (2.0, 3.0), (8.0, 6.0)])
def test_compound_tail_matches_monte_carlo(arrivals: float, theta: float) -> None:
    rng = random.Random(7)
    draws = 40_000
    hits = 0
    for _ in range(draws):
        k, t = 0, rng.expovariate(1.0)
        while t < arrivals:  # Poisson count: unit-rate arrivals before ``arrivals``
            k += 1
            t += rng.expovariate(1.0)
        hits += sum(rng.expovariate(1.0) for _ in range(k)) > theta
    assert _compound_tail(arrivals, theta) == pytest.approx(hits / draws, abs=0.01)


def test_more_replicas_fewer_misses_more_traffic_more() -> None:
    shares = [tpot_miss_share(5.0, n, SHORT) for n in range(1, 16)]
    assert all(a >= b for a, b in itertools.pairwise(shares))
    assert shares[0] > 0.05 > 0.001 > shares[-1]
    assert tpot_miss_share(10.0, 8, SHORT) > tpot_miss_share(5.0, 8, SHORT)


def test_replica_count_is_the_fewest_within_budget() -> None:
    for rate in (0.5, 2.5, 5.0, 9.75):
        n = replicas_for_tpot_tail(rate, SHORT, 0.005, cap=64)
        assert tpot_miss_share(rate, n, SHORT) <= 0.005
        assert n == 1 or tpot_miss_share(rate, n - 1, SHORT) > 0.005


def test_count_grows_with_rate_and_is_capped() -> None:
    counts = [replicas_for_tpot_tail(r, SHORT, 0.005, cap=64) for r in (1, 2, 4, 8)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert replicas_for_tpot_tail(1000.0, SHORT, 0.005, cap=12) == 12
    assert replicas_for_tpot_tail(0.0, SHORT, 0.005, cap=12) == 0


def test_long_answers_behind_short_prompts_do_not_miss() -> None:
    long = PrefillMix(prompt_tokens=250, output_tokens=700, step_ms=19.0,
                      prefill_ms_per_token=0.0699, tpot_ms=40)
    assert tpot_miss_share(25.0, 4, long) < 1e-3


def test_a_step_above_the_target_always_misses() -> None:
    slow = PrefillMix(prompt_tokens=100, output_tokens=50, step_ms=45.0,
                      prefill_ms_per_token=0.07, tpot_ms=40)
    assert tpot_miss_share(0.1, 10, slow) == 1.0


# --- the policy's opt-in floor (SloPolicy.tail_budget) ----------------------------------

TAIL_SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=40, target_attainment=0.99)
BATCHING = ReplicaCapacity(max_concurrency=64, decode_tokens_per_s=1000,
                           prefill_tokens_per_s=1000 / 0.0699, decode_step_ms=19.0)


def _prefill_heavy_ctx(capacity: ReplicaCapacity, rate: float = 5.0) -> PolicyContext:
    """Two minutes of 5 requests/s of 2,200-token prompts and 20-token answers."""
    base = [sample(600.0 - 120 + 2 * (i + 1), load=0.1, replicas=4) for i in range(60)]
    samples = tuple(dc_replace(s, arrival_rate=rate, prompt_token_rate=rate * 2200,
                               finish_rate=rate, finished_tokens_rate=rate * 20)
                    for s in base)
    state = ScalerState(current_replicas=4, ready_replicas=4)
    return PolicyContext(MetricsWindow(samples), TAIL_SLO, capacity, LIMITS, state, 600.0)


def test_the_floor_sizes_prefill_heavy_traffic_by_its_collisions() -> None:
    mix = PrefillMix(2200, 20, 19.0, 0.0699, 40)
    floor = replicas_for_tpot_tail(5.0, mix, 0.005, cap=80)
    with_floor = SloPolicy(tail_budget=0.5, burst_z=0)(_prefill_heavy_ctx(BATCHING))
    without = SloPolicy(burst_z=0)(_prefill_heavy_ctx(BATCHING))
    assert with_floor.desired_replicas >= floor > without.desired_replicas
    assert f"TPOT-tail floor {floor}" in with_floor.reason


def test_no_floor_without_a_step_cost_or_for_one_sequence_engines() -> None:
    unknown = BATCHING.model_copy(update={"decode_step_ms": None})
    one_at_a_time = BATCHING.model_copy(update={"max_concurrency": 1})
    for cap in (unknown, one_at_a_time):
        assert cap.prefill_mix(2200, 20, 40) is None
        assert "TPOT-tail floor 0" in SloPolicy(tail_budget=0.5)(_prefill_heavy_ctx(cap)).reason


def test_the_sizing_plan_carries_the_step_the_floor_needs() -> None:
    plan = SizingPlan(gpus_per_replica=2, weights_gib=70, kv_cache_gib=80,
                      kv_bytes_per_token=320_000, max_batch_per_replica=64, est_tpot_ms=38,
                      est_decode_step_ms=19.5, est_ttft_ms=200,
                      tokens_per_second_per_replica=1600, requests_per_second_per_replica=3,
                      cost_per_million_tokens_usd=1.0)
    assert capacity_from_plan(plan, input_tokens=1000).decode_step_ms == 19.5
    older = plan.model_copy(update={"est_decode_step_ms": None})  # a status written before
    assert capacity_from_plan(older, input_tokens=1000).prefill_mix(1000, 100, 40) is None


def test_the_per_minute_check_pairs_the_oracle_with_the_floor() -> None:
    scenario = Scenario(profile="llama-3.3-70b-h100x2", slo=TAIL_SLO,
                        limits=Limits(max_replicas=32, cold_start_s=60))
    runner = Runner(synthetic("prefill-heavy", seed=0, duration_s=300), scenario)
    rows = per_minute(runner, budget=0.5)
    assert [b for b, *_ in rows] == list(range(5))
    assert all(per_min > 0 and oracle >= 1 and floor >= 1 for _, per_min, oracle, floor in rows)


# --- the observed answer-length shape (vllm:request_generation_tokens) -------------------

def test_observed_answers_replace_the_exponential_shape() -> None:
    # same mean (20 tokens), no short answers: the short ones are those a prefill breaks
    even = dc_replace(SHORT, answer_quantiles=quantile_midpoints(lambda q: 20.0))
    assert SHORT.answers() != even.answers() and len(even.answers()) == len(SHORT.answers())
    assert tpot_miss_share(5.0, 6, even) < tpot_miss_share(5.0, 6, SHORT)
    # and the exponential the module assumes, given as observations, is the default
    expo = dc_replace(SHORT, answer_quantiles=SHORT.answers())
    assert tpot_miss_share(5.0, 6, expo) == tpot_miss_share(5.0, 6, SHORT)


def test_answer_quantiles_read_the_window_histograms() -> None:
    bounds = GEN_TOKEN_BUCKETS
    hist = Histogram(bounds, (*(30 if b == 50 else 0 for b in bounds), 0))
    base = sample(10.0, load=0.1, replicas=2)
    assert signals.answer_quantiles([base]) is None  # no histogram
    one = dc_replace(base, gen_tokens=hist)
    assert signals.answer_quantiles([one]) is None  # 30 answers: below MIN_ANSWERS
    points = signals.answer_quantiles([one, one])
    assert points is not None and all(20 < p <= 50 for p in points)
    assert list(points) == sorted(points)


def test_the_floor_uses_the_observed_shape() -> None:
    ctx = _prefill_heavy_ctx(BATCHING)
    # all answers in (20, 50]: the same window with that histogram needs fewer replicas
    hist = Histogram(GEN_TOKEN_BUCKETS, (*(10 if b == 50 else 0 for b in GEN_TOKEN_BUCKETS), 0))
    shaped = tuple(dc_replace(s, gen_tokens=hist) for s in ctx.window.samples)
    with_shape = dc_replace(ctx, window=MetricsWindow(shaped))
    policy = SloPolicy(tail_budget=0.5, burst_z=0)
    assert policy(with_shape).desired_replicas < policy(ctx).desired_replicas
