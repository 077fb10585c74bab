"""The live controller with fake source, writer and clock (no network, no sleeping)."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

from prometheus_client import generate_latest

from tests.unit.test_autoscaler_support import CAPACITY, LIMITS, SLO, sample
from tierserve.autoscaler.cli import AdvisoryWriter
from tierserve.autoscaler.controller import Controller, ScaleTarget
from tierserve.autoscaler.types import MetricSample
from tierserve.autoscaler.vllm_metrics import parse, to_sample

TARGET = ScaleTarget(namespace="ns", name="llm", slo=SLO, capacity=CAPACITY,
                     limits=LIMITS)


class FakeClock:
    def __init__(self, t: float = 10_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s  # a test proves it never slept for real


class FakeSource:
    def __init__(self, load: float, *, fail: bool = False, lag: float = 0.0) -> None:
        self.load, self.fail, self.lag = load, fail, lag

    async def collect(self, target: ScaleTarget, now: float) -> MetricSample | None:
        if self.fail:
            raise ConnectionError("prometheus down")
        return sample(now - self.lag, load=self.load)


class FakeWriter:
    def __init__(self, spec: int, ready: int | None = None) -> None:
        self.spec, self.ready = spec, spec if ready is None else ready
        self.sets: list[tuple[int, str]] = []
        self.statuses: list[dict[str, Any]] = []

    async def get_scale(self, ns: str, name: str) -> tuple[int, int]:
        return self.spec, self.ready

    async def set_scale(self, ns: str, name: str, replicas: int, reason: str) -> None:
        self.sets.append((replicas, reason))
        self.spec = replicas

    async def record_status(self, ns: str, name: str, observed: dict[str, Any]) -> None:
        self.statuses.append(observed)


def make(source: FakeSource, writer: FakeWriter, clock: FakeClock) -> Controller:
    return Controller([TARGET], source, writer, clock=clock, sleep=clock.sleep, interval_s=10)


async def run_rounds(ctl: Controller, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        await ctl.step()
        await clock.sleep(10)


async def test_scales_up_and_explains() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=2)
    ctl = make(FakeSource(load=8.0), writer, clock)
    await run_rounds(ctl, clock, 3)
    assert writer.sets and writer.sets[0][0] >= 8
    assert "demand" in writer.sets[0][1]
    text = generate_latest(ctl.registry).decode()
    assert 'tierserve_autoscaler_desired_replicas{deployment="llm",namespace="ns"}' in text
    assert 'tierserve_autoscaler_input_demand_replicas{deployment="llm",namespace="ns"}' in text
    assert "tierserve_autoscaler_predicted_attainment" in text


async def test_holds_when_the_source_fails() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=4)
    ctl = make(FakeSource(load=20.0, fail=True), writer, clock)
    decisions = await ctl.step()
    assert decisions[0].held and not writer.sets
    assert 'action="hold"' in generate_latest(ctl.registry).decode()


async def test_holds_on_stale_samples() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=4)
    ctl = make(FakeSource(load=20.0, lag=120.0), writer, clock)
    decisions = await ctl.step()
    assert decisions[0].held and "old" in decisions[0].reason and not writer.sets


async def test_manual_edit_becomes_the_current_count() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=5)
    ctl = make(FakeSource(load=4.0), writer, clock)
    await run_rounds(ctl, clock, 2)
    writer.spec = writer.ready = 9  # someone scaled by hand
    decisions = await ctl.step()
    assert ctl.tracked[TARGET.key].state is not None
    assert decisions[0].desired_replicas >= 5


async def test_status_is_written_only_when_it_changes() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=5)
    ctl = make(FakeSource(load=4.0), writer, clock)
    await run_rounds(ctl, clock, 12)
    assert 1 <= len(writer.statuses) <= 3
    observed = writer.statuses[-1]
    assert observed["ttftTargetMs"] == 2500 and observed["attainment"] == 1.0


async def test_run_loop_stops_on_event() -> None:
    clock, writer = FakeClock(), FakeWriter(spec=5)
    ctl = make(FakeSource(load=4.0), writer, clock)
    stop = asyncio.Event()

    async def stopper(s: float) -> None:
        await clock.sleep(s)
        if clock.t > 10_050:
            stop.set()

    ctl.sleep = stopper
    await asyncio.wait_for(ctl.run(stop), timeout=5)
    assert clock.t > 10_050


async def test_advisory_writer_prints_decisions() -> None:
    out = io.StringIO()
    clock, writer = FakeClock(), AdvisoryWriter(replicas=2, out=out)
    ctl = Controller([TARGET], FakeSource(load=8.0), writer, clock=clock, sleep=clock.sleep)
    await run_rounds(ctl, clock, 2)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    advice = [e for e in events if e["event"] == "advice"]
    assert advice and advice[0]["deployment"] == "ns/llm" and advice[0]["replicas"] >= 8


def test_vllm_text_to_sample() -> None:
    before = parse(VLLM_TEXT.format(run=2, wait=0, ok=10, prompt=1000, gen=500, b1=5, b2=9, inf=10))
    after = parse(
        VLLM_TEXT.format(run=4, wait=1, ok=20, prompt=3000, gen=1500, b1=12, b2=19, inf=20)
    )
    s = to_sample(100.0, 10.0, [(after, before)])
    assert s.running == 4 and s.waiting == 1 and s.replicas[0].kv_usage == 0.25
    assert s.finish_rate == 1.0 and s.prompt_token_rate == 200.0 and s.gen_token_rate == 100.0
    assert s.arrival_rate == (10 + 3) / 10  # finished + growth of in-flight
    assert s.ttft is not None and s.ttft.counts == (7, 3, 0)
    restarted = parse(VLLM_TEXT.format(run=0, wait=0, ok=1, prompt=5, gen=2, b1=1, b2=1, inf=1))
    assert to_sample(110.0, 10.0, [(restarted, after)]).finish_rate == 0.1  # counter reset


VLLM_TEXT = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{model_name="m"}} {run}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{model_name="m"}} {wait}
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{{model_name="m"}} 0.25
# TYPE vllm:request_success counter
vllm:request_success_total{{model_name="m",finished_reason="stop"}} {ok}
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{{model_name="m"}} {prompt}
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{{model_name="m"}} {gen}
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{model_name="m",le="0.5"}} {b1}
vllm:time_to_first_token_seconds_bucket{{model_name="m",le="2.5"}} {b2}
vllm:time_to_first_token_seconds_bucket{{model_name="m",le="+Inf"}} {inf}
vllm:time_to_first_token_seconds_count{{model_name="m"}} {inf}
vllm:time_to_first_token_seconds_sum{{model_name="m"}} 3.0
"""


async def test_a_wake_from_zero_is_not_undone() -> None:
    """The router wakes a deployment at zero for a held request (spec 0 -> 1 behind the
    controller's back); the next idle readings must not scale it straight back to zero:
    not while the replica is starting, and not before a whole idle period has passed."""
    limits = LIMITS.model_copy(update={"min_replicas": 0, "scale_to_zero_after_s": 60.0,
                                       "scale_down_stabilization_s": 30.0})
    target = TARGET.model_copy(update={"limits": limits})
    clock, writer = FakeClock(), FakeWriter(spec=1)
    ctl = Controller([target], FakeSource(load=0.0), writer, clock=clock, sleep=clock.sleep,
                     interval_s=10)
    await run_rounds(ctl, clock, 12)
    assert writer.spec == 0  # idle for the period: scaled to zero
    writer.sets.clear()
    writer.spec, writer.ready = 1, 0  # the router's wake; the replica is starting
    woke = clock.t
    await run_rounds(ctl, clock, 3)
    assert writer.sets == []  # starting: never zeroed
    writer.ready = 1
    zeroed_at = None
    for _ in range(12):
        await ctl.step()
        if writer.spec == 0 and zeroed_at is None:
            zeroed_at = clock.t
        await clock.sleep(10)
    assert zeroed_at is not None  # still idle: it does go back to zero...
    assert zeroed_at - woke >= 60.0  # ...but only a whole idle period after the wake


class EventWriter(FakeWriter):
    def __init__(self, spec: int) -> None:
        super().__init__(spec)
        self.events: list[tuple[str, str, bool]] = []

    async def event(self, ns: str, name: str, reason: str, message: str, warning: bool) -> None:
        self.events.append((reason, message, warning))


def conditions(writer: FakeWriter) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = writer.statuses[-1]["conditions"]
    return found


async def test_demand_above_max_replicas_is_unattainable_not_a_normal_decision() -> None:
    """Demand of 30 replicas against maxReplicas 20: the count is capped, the condition
    says so with the numbers, one Warning Event is posted (not one per round), the gauge
    reads 1; when demand fits again the condition flips back and one Normal Event says so."""
    clock, writer, source = FakeClock(), EventWriter(spec=20), FakeSource(load=30.0)
    ctl = Controller([TARGET], source, writer, clock=clock, sleep=clock.sleep, interval_s=10,
                     events=writer)
    await run_rounds(ctl, clock, 6)
    assert writer.spec == 20
    [cond] = conditions(writer)
    assert cond["type"] == "SLOAttainable" and cond["status"] == "False"
    assert cond["reason"] == "MaxReplicasReached"
    needed = re.search(r"maxReplicas 20: the demand needs (\d+) replicas", cond["message"])
    assert needed is not None and int(needed.group(1)) > 20
    assert [(r, w) for r, _, w in writer.events] == [("SLOUnattainable", True)]
    assert "SLO unattainable within maxReplicas 20" in writer.events[0][1]
    text = generate_latest(ctl.registry).decode()
    assert 'tierserve_autoscaler_slo_unattainable{deployment="llm",namespace="ns"} 1.0' in text
    since = cond["lastTransitionTime"]
    source.load = 10.0
    await run_rounds(ctl, clock, 3)
    [cond] = conditions(writer)
    assert cond["status"] == "True" and cond["reason"] == "WithinMaxReplicas"
    assert cond["lastTransitionTime"] > since
    assert [(r, w) for r, _, w in writer.events] == [("SLOUnattainable", True),
                                                     ("SLOAttainable", False)]
    text = generate_latest(ctl.registry).decode()
    assert 'tierserve_autoscaler_slo_unattainable{deployment="llm",namespace="ns"} 0.0' in text


async def test_within_max_replicas_posts_no_event_and_a_hold_keeps_the_verdict() -> None:
    clock, writer, source = FakeClock(), EventWriter(spec=4), FakeSource(load=4.0)
    ctl = Controller([TARGET], source, writer, clock=clock, sleep=clock.sleep, interval_s=10,
                     events=writer)
    await run_rounds(ctl, clock, 3)
    assert writer.events == [] and conditions(writer)[0]["status"] == "True"
    source.fail = True  # no metrics: the policy holds and says nothing about attainability
    await run_rounds(ctl, clock, 10)
    assert writer.events == [] and conditions(writer)[0]["status"] == "True"


async def test_observe_only_reports_the_slo_and_leaves_the_count() -> None:
    """autoscaling.enabled false: demand far above the count changes nothing, posts no
    Event, and the observed SLO still goes to status.slo."""
    clock, writer = FakeClock(), EventWriter(spec=2)
    observed = TARGET.model_copy(update={"observe_only": True})
    ctl = Controller([observed], FakeSource(load=30.0), writer, clock=clock, sleep=clock.sleep,
                     interval_s=10, events=writer)
    await run_rounds(ctl, clock, 6)
    assert writer.spec == 2 and not writer.sets and not writer.events
    assert writer.statuses and writer.statuses[-1]["ttftTargetMs"] == 2500
    assert not conditions(writer)
