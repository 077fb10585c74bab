"""The baselines behave per their published rules (HPA, Knative KPA, fixed, oracle)."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.test_autoscaler_support import LIMITS, ctx, drive, sample
from tierserve.autoscaler.policy import FixedPolicy, HpaPolicy, KpaPolicy, OraclePolicy
from tierserve.autoscaler.types import MetricsWindow, ScalerState


def running_window(
    now: float, running: int, replicas: int, span: float = 60, step: float = 2
) -> MetricsWindow:
    samples = tuple(
        sample(now - span + step * (i + 1), load=1.0, replicas=replicas, running=running)
        for i in range(int(span // step))
    )
    return MetricsWindow(samples)


def test_hpa_tolerance_keeps_count_within_ten_percent() -> None:
    hpa = HpaPolicy(target=10)
    # 42 running over 4 current replicas = 10.5 each against 10: ratio 1.05
    d = hpa(ctx(running_window(1000, running=42, replicas=2), ScalerState(4, 4), 1000))
    assert d.desired_replicas == 4 and "within tolerance" in d.reason  # ratio 1.05


def test_hpa_scales_up_by_ratio_with_rate_limit() -> None:
    hpa = HpaPolicy(target=10)
    d = hpa(ctx(running_window(1000, running=60, replicas=4), ScalerState(4, 4), 1000))
    assert d.desired_replicas == 6  # ceil(60 / 10)
    burst = hpa(ctx(running_window(1000, running=400, replicas=2), ScalerState(2, 2), 1000))
    assert burst.desired_replicas == 6  # max(+100%, +4 pods) from 2


def test_hpa_scale_down_waits_five_minutes() -> None:
    hpa = HpaPolicy(target=10)
    state = ScalerState(8, 8)
    t, counts = 1000.0, []
    # 80 running until t=1300, then 20: the 300 s window keeps 8 until ~1600
    while t < 2000:
        running = 80 if t < 1300 else 20
        d = hpa(ctx(running_window(t, running=running, replicas=8), state, t))
        state = replace(d.state, ready_replicas=d.desired_replicas)
        counts.append((t, d.desired_replicas))
        t += 15
    first_down = next(t for t, n in counts if n < 8)
    assert first_down >= 1300 + 300 - 30
    assert counts[-1][1] == 2


def test_kpa_panics_on_a_burst_and_never_scales_down_in_panic() -> None:
    kpa = KpaPolicy(target=10)
    now = 1000.0
    calm = [sample(now - 60 + 2 * i, load=1.0, replicas=2, running=20) for i in range(27)]
    burst = [sample(now - 6 + 2 * i, load=1.0, replicas=2, running=100) for i in range(1, 4)]
    d = kpa(ctx(MetricsWindow(tuple(calm + burst)), ScalerState(2, 2), now))
    assert "panic" in d.reason and d.desired_replicas == 10  # ceil(100 / 10), not the stable 3
    later = now + 20
    d2 = kpa(ctx(running_window(later, 10, 10), replace(d.state, ready_replicas=10), later))
    assert d2.desired_replicas == 10  # still in panic: no scale-down
    after = now + 200
    d3 = kpa(ctx(running_window(after, 10, 10), replace(d2.state, ready_replicas=10), after))
    assert d3.desired_replicas == 5  # stable mode, max scale-down rate 2x per decision


def test_kpa_stable_mode_uses_the_sixty_second_average() -> None:
    kpa = KpaPolicy(target=10)
    now = 1000.0
    samples = [sample(now - 60 + 2 * i, load=1.0, replicas=4, running=40) for i in range(1, 31)]
    d = kpa(ctx(MetricsWindow(tuple(samples)), ScalerState(4, 4), now))
    assert d.desired_replicas == 4 and "panic mode" not in d.reason


def test_fixed_is_constant_and_bounded() -> None:
    decisions = drive(FixedPolicy(replicas=7), lambda t: 50.0, start=3, seconds=200)
    assert {d.desired_replicas for d in decisions} == {7}
    capped = drive(FixedPolicy(replicas=70), lambda t: 1.0, start=3, seconds=20)
    assert capped[0].desired_replicas == LIMITS.max_replicas


def test_oracle_follows_its_schedule() -> None:
    oracle = OraclePolicy(schedule=(2, 5, 3), bucket_s=60)
    got = [oracle(ctx(MetricsWindow(()), ScalerState(1, 1), t)).desired_replicas
           for t in (0, 59, 60, 130, 999)]  # fmt: skip
    assert got == [2, 2, 5, 3, 3]


def test_baselines_hold_on_stale_metrics() -> None:
    now = 5000.0
    old = running_window(now - 200, running=80, replicas=4)
    for policy in (HpaPolicy(), KpaPolicy()):
        d = policy(ctx(old, ScalerState(4, 4), now))
        assert d.held and d.desired_replicas == 4
