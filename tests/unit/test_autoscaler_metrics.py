"""The autoscaler's metrics: namespace/deployment labels, one gauge per input in base units
(absent when unknown, never a sentinel), decisions by action and cause, holding by cause."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.unit.test_autoscaler_controller import TARGET, FakeClock, FakeSource, FakeWriter, make
from tests.unit.test_autoscaler_support import ctx, window
from tierserve.autoscaler.metrics import INPUTS
from tierserve.autoscaler.policy import make_policy
from tierserve.autoscaler.types import ScalerState

DEP = {"namespace": "ns", "deployment": "llm"}


def _v(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value("tierserve_autoscaler_" + name, {**DEP, **labels})


async def test_inputs_in_base_units_from_the_window_and_the_policy() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=2)
    ctl = make(FakeSource(load=8.0, lag=3.0), writer, clock)
    await ctl.step()
    reg = ctl.registry
    assert _v(reg, "input_arrival_rate_rps") == pytest.approx(80.0)  # 8 x 1000 tok/s / 100
    assert _v(reg, "input_metrics_age_seconds") == pytest.approx(3.0)
    assert _v(reg, "input_queue_depth") == 0
    ttft = _v(reg, "input_ttft_p95_seconds")
    assert ttft is not None and 0 < ttft <= 0.001  # every request in the lowest bucket: s
    assert _v(reg, "input_demand_replicas") == pytest.approx(8.0)
    assert _v(reg, "input_feedback_gain") == pytest.approx(1.0, abs=0.01)
    assert _v(reg, "input_trend_replicas_per_second") == 0
    assert _v(reg, "decisions_total", action="up", reason="demand") == 1
    for cause in ("no_metrics", "stale_metrics", "clock_skew"):
        assert _v(reg, "holding", reason=cause) == 0
    text = generate_latest(reg).decode()
    assert 'input="' not in text and " -1.0\n" not in text  # no mixed gauge, no sentinel


async def test_a_hold_says_why_and_drops_what_it_did_not_compute() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=4)
    ctl = make(FakeSource(load=8.0), writer, clock)
    await ctl.step()
    assert _v(ctl.registry, "input_demand_replicas") is not None
    ctl.source = FakeSource(load=8.0, lag=120.0)  # older than stale_after_s (60 s)
    ctl.tracked[TARGET.key].window.clear()
    decisions = await ctl.step()
    assert decisions[0].held and decisions[0].cause == "stale_metrics"
    reg = ctl.registry
    assert _v(reg, "holding", reason="stale_metrics") == 1
    assert _v(reg, "holding", reason="no_metrics") == 0
    assert _v(reg, "decisions_total", action="hold", reason="stale_metrics") == 1
    assert _v(reg, "input_demand_replicas") is None  # the policy computed nothing
    assert _v(reg, "input_metrics_age_seconds") == pytest.approx(120.0)  # the window did


async def test_no_metrics_at_all_holds_with_no_inputs() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=4)
    ctl = make(FakeSource(load=8.0, fail=True), writer, clock)
    await ctl.step()
    reg = ctl.registry
    assert _v(reg, "holding", reason="no_metrics") == 1
    assert all(_v(reg, "input_" + name) is None for name in INPUTS)
    assert _v(reg, "observed_attainment") is None


async def test_a_removed_target_leaves_no_series() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=2)
    ctl = make(FakeSource(load=8.0), writer, clock)
    await ctl.step()
    ctl.remove(*TARGET.key)
    text = generate_latest(ctl.registry).decode()
    assert 'deployment="llm"' not in text


async def test_the_registry_carries_the_process_collectors() -> None:
    ctl = make(FakeSource(load=1.0), FakeWriter(spec=1), FakeClock())
    text = generate_latest(ctl.registry).decode()
    assert "process_cpu_seconds_total" in text and "python_info{" in text


@pytest.mark.parametrize("policy", ["slo", "hpa", "kpa"])
def test_every_policy_input_has_a_gauge(policy: str) -> None:
    now = 10_000.0
    d = make_policy(policy)(ctx(window(now, lambda t: 6.0), ScalerState(4, 4), now))
    assert d.inputs and set(d.inputs) <= set(INPUTS), set(d.inputs) - set(INPUTS)
    assert all(v >= 0 or name == "trend_replicas_per_second" for name, v in d.inputs.items())
