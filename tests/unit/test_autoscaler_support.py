"""Builders for autoscaler tests: synthetic metric windows on an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tierserve.autoscaler.policy import Policy
from tierserve.autoscaler.types import (
    TPOT_BUCKETS_S,
    TTFT_BUCKETS_S,
    Decision,
    Histogram,
    Limits,
    MetricSample,
    MetricsWindow,
    PolicyContext,
    ReplicaSample,
    ScalerState,
    Slo,
)
from tierserve.core.capacity import ReplicaCapacity

SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=100, target_attainment=0.99)
# one replica: 1000 generated tokens/s, 5000 prompt tokens/s, 32 sequences
CAPACITY = ReplicaCapacity(max_concurrency=32, decode_tokens_per_s=1000,
                           prefill_tokens_per_s=5000)
LIMITS = Limits(min_replicas=1, max_replicas=20, cold_start_s=60, scale_down_stabilization_s=120)


def fast_hist(bounds: tuple[float, ...], n: int) -> Histogram:
    """n observations in the lowest bucket: everything meets the SLO."""
    return Histogram(bounds, (n, *([0] * len(bounds))))


def sample(
    t: float,
    *,
    load: float,
    replicas: int = 4,
    running: int | None = None,
    waiting: int = 0,
) -> MetricSample:
    """A sample whose token demand is ``load`` replicas of CAPACITY (decode-only)."""
    rate = load * CAPACITY.decode_tokens_per_s / 100  # requests of 100 output tokens
    per = (running if running is not None else round(load * 8)) // max(replicas, 1)
    n = round(rate * 2)
    return MetricSample(
        t=t,
        replicas=tuple(
            ReplicaSample(per, waiting // max(replicas, 1), 0.3) for _ in range(replicas)
        ),
        arrival_rate=rate,
        prompt_token_rate=0.0,
        gen_token_rate=rate * 100,
        ttft=fast_hist(TTFT_BUCKETS_S, n),
        tpot=fast_hist(TPOT_BUCKETS_S, n),
        finish_rate=rate,
        finished_tokens_rate=rate * 100,
    )


def window(
    now: float, load: Callable[[float], float], *, span: float = 300, step: float = 2, **kw: int
) -> MetricsWindow:
    ts = [now - span + step * (i + 1) for i in range(int(span // step))]
    return MetricsWindow(tuple(sample(t, load=load(t), **kw) for t in ts))


def ctx(
    win: MetricsWindow,
    state: ScalerState,
    now: float,
    *,
    limits: Limits = LIMITS,
) -> PolicyContext:
    return PolicyContext(win, SLO, CAPACITY, limits, state, now)


def drive(
    policy: Policy,
    load: Callable[[float], float],
    *,
    start: int,
    seconds: float,
    interval: float = 10,
    limits: Limits = LIMITS,
    ready_lag: float = 0.0,
    state: ScalerState | None = None,
) -> list[Decision]:
    """Run the policy every ``interval`` on a fake clock; replicas become ready after
    ``ready_lag`` seconds (a cold start), so the state evolves as in the controller."""
    state = state or ScalerState(start, start)
    out: list[Decision] = []
    pending: list[tuple[float, int]] = []
    t = 1000.0
    while t < 1000.0 + seconds:
        ready = min(state.current_replicas, state.ready_replicas)
        for at, n in list(pending):
            if at <= t:
                ready = max(ready, min(n, state.current_replicas))
                pending.remove((at, n))
        state = replace(state, ready_replicas=ready)
        d = policy(ctx(window(t, load), state, t, limits=limits))
        if d.desired_replicas > state.current_replicas:
            pending.append((t + ready_lag, d.desired_replicas))
        state = d.state
        if ready_lag == 0:
            state = replace(state, ready_replicas=state.current_replicas)
        out.append(d)
        t += interval
    return out
