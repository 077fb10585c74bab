"""The live autoscaler loop, kept thin: gather -> pure policy -> write -> explain.

Every ``interval_s`` and for every target: one :class:`MetricSample` from the injected
:class:`MetricsSource` joins that target's window; the scale subresource (through the
injected :class:`ScaleWriter`) says how many replicas exist and are ready; the pure policy
decides with the injected clock; a changed count is written with its reason; observed
latency and attainment go to status when they change. Nothing here knows Kubernetes or
HTTP: the lead's kube writer and the sources in :mod:`sources` plug in from outside.

Failures are contained per target: a source error means no sample this round, and the
policy holds once the window goes stale; a writer error is logged and retried next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from tierserve.autoscaler import attainable
from tierserve.autoscaler.metrics import ControllerMetrics, window_inputs
from tierserve.autoscaler.policy import Policy, make_policy, signals
from tierserve.autoscaler.types import (
    Decision,
    Limits,
    MetricSample,
    MetricsWindow,
    PolicyContext,
    ScalerState,
    Slo,
)
from tierserve.core.capacity import ReplicaCapacity
from tierserve.core.metrics_registry import component_registry

log = logging.getLogger(__name__)


class ScaleTarget(BaseModel):
    """One LLMDeployment under autoscaling, as the controller needs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str
    name: str
    slo: Slo
    capacity: ReplicaCapacity
    limits: Limits
    policy: str = "slo"
    knobs: Mapping[str, Any] = Field(default_factory=dict)
    endpoints: tuple[str, ...] = ()  # engine /metrics URLs, for the scrape source
    # spec.autoscaling.enabled false: the count is the user's (kubectl scale, an HPA), but
    # the observed SLO still goes to status.slo, so every deployment reports attainment
    observe_only: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


class MetricsSource(Protocol):
    async def collect(self, target: ScaleTarget, now: float) -> MetricSample | None:
        """One sample for ``target`` (rates over the time since its previous sample);
        ``None`` when nothing could be read. Sample ``t`` is when the data was taken."""
        ...


class ScaleWriter(Protocol):
    async def get_scale(self, ns: str, name: str) -> tuple[int, int]:
        """(spec replicas, ready replicas) from the scale subresource."""
        ...

    async def set_scale(self, ns: str, name: str, replicas: int, reason: str) -> None:
        """Write spec.replicas through the scale subresource and emit an Event."""
        ...

    async def record_status(self, ns: str, name: str, observed: dict[str, Any]) -> None:
        """Patch the observed-SLO block of status (called only when it changed)."""
        ...


class EventSink(Protocol):
    async def event(self, ns: str, name: str, reason: str, message: str, warning: bool) -> None:
        """Post an Event on the deployment (the SLOUnattainable/SLOAttainable changes)."""
        ...


@dataclass
class _Tracked:
    target: ScaleTarget
    policy: Policy
    window: deque[MetricSample] = field(default_factory=deque)
    state: ScalerState | None = None
    last_status: dict[str, Any] | None = None
    holding: bool = False
    verdict: attainable.Verdict | None = None  # within maxReplicas? (None: not known yet)
    verdict_since: float = 0.0


class Controller:
    def __init__(
        self,
        targets: Iterable[ScaleTarget],
        source: MetricsSource,
        writer: ScaleWriter,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        interval_s: float = 10.0,
        window_s: float = 300.0,
        registry: CollectorRegistry | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.source, self.writer, self.clock, self.sleep = source, writer, clock, sleep
        self.events = events
        self.interval_s, self.window_s = interval_s, window_s
        self.registry = registry if registry is not None else component_registry()
        self.metrics = ControllerMetrics(self.registry)
        self.tracked: dict[tuple[str, str], _Tracked] = {}
        for t in targets:
            self.add(t)

    def add(self, target: ScaleTarget) -> None:
        """Start (or re-configure) autoscaling of one deployment; keeps its window."""
        knobs = dict(target.knobs)
        if target.policy == "slo":
            knobs.setdefault("interval_s", self.interval_s)
        old = self.tracked.get(target.key)
        if old is not None and old.target == target:
            return
        tracked = _Tracked(target, make_policy(target.policy, **knobs))
        if old is not None:
            tracked.window, tracked.state = old.window, old.state
        self.tracked[target.key] = tracked

    def remove(self, ns: str, name: str) -> None:
        if self.tracked.pop((ns, name), None) is not None:
            self.metrics.forget((ns, name))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            await self.sleep(self.interval_s)

    async def step(self) -> list[Decision]:
        """One round over every target; one target's failure never stops the others."""
        items = list(self.tracked.values())
        results = await asyncio.gather(*(self._one(t) for t in items), return_exceptions=True)
        out: list[Decision] = []
        for tracked, res in zip(items, results, strict=True):
            if isinstance(res, BaseException):
                log.warning("autoscaling %s/%s failed: %s", *tracked.target.key, res)
            else:
                out.append(res)
        return out

    async def _gather(self, tr: _Tracked, now: float) -> None:
        try:
            sample = await self.source.collect(tr.target, now)
        except Exception as exc:  # a source outage must degrade to "hold", not crash
            log.warning("metrics for %s/%s unavailable: %s", *tr.target.key, exc)
            sample = None
        if sample is not None:
            tr.window.append(sample)
        while tr.window and tr.window[0].t <= now - self.window_s:
            tr.window.popleft()

    async def _one(self, tr: _Tracked) -> Decision:
        now = self.clock()
        await self._gather(tr, now)
        t = tr.target
        spec, ready = await self.writer.get_scale(t.namespace, t.name)
        state = self._current(tr.state, spec, ready, now)
        ctx = PolicyContext(MetricsWindow(tuple(tr.window)), t.slo, t.capacity, t.limits, state,
                            now)
        decision = tr.policy(ctx)
        tr.state = decision.state
        self._log(tr, decision, spec)
        if not t.observe_only:
            if decision.desired_replicas != spec and not decision.held:
                await self.writer.set_scale(
                    t.namespace, t.name, decision.desired_replicas, decision.reason
                )
            await self._judge(tr, decision, now)
        observed = self._observed(tr, decision)
        self.metrics.record(t.key, decision, spec, ready, observed.get("attainment"),
                            window_inputs(tuple(tr.window), now),
                            None if tr.verdict is None else not tr.verdict.ok)
        if observed != tr.last_status:  # steady state writes nothing
            await self.writer.record_status(t.namespace, t.name, observed)
            tr.last_status = observed
        return decision

    async def _judge(self, tr: _Tracked, decision: Decision, now: float) -> None:
        """Within maxReplicas or not: keep the verdict (a hold keeps the last one) and
        post an Event when it changes, instead of reporting a capped count as normal."""
        new = attainable.verdict(decision, tr.target.limits)
        if new is None:
            return
        event = attainable.transition_event(tr.verdict, new, decision.reason)
        if tr.verdict is None or tr.verdict.ok != new.ok:
            tr.verdict_since = now
        tr.verdict = new
        if event is not None:
            ns, name = tr.target.key
            reason, message, warning = event
            log.log(logging.WARNING if warning else logging.INFO, "%s/%s: %s", ns, name, message)
            if self.events is not None:
                await self.events.event(ns, name, reason, message, warning)

    @staticmethod
    def _current(prev: ScalerState | None, spec: int, ready: int, now: float) -> ScalerState:
        """The scale subresource is the truth: a manual edit becomes the new current count.
        A count someone else raised (the router waking a deployment from zero, a person
        scaling up) is a fresh scale-up: the idle clock restarts, so the replica just
        woken for a held request is not scaled back to zero on the next idle reading."""
        if prev is None:
            return ScalerState(spec, ready)
        if spec > prev.current_replicas:
            return replace(prev, current_replicas=spec, ready_replicas=ready,
                           last_scale_up_at=now, idle_since=None)
        return replace(prev, current_replicas=spec, ready_replicas=ready)

    @staticmethod
    def _log(tr: _Tracked, decision: Decision, spec: int) -> None:
        """Log what changes something: a scale write, or the start of a hold (once, so a
        long outage is one line, not one per round)."""
        key = tr.target.key
        if decision.held and not tr.holding:
            log.info("holding %s/%s at %d: %s", *key, spec, decision.reason)
        elif not decision.held and decision.desired_replicas != spec:
            log.info("scaling %s/%s %d -> %d: %s", *key, spec, decision.desired_replicas,
                     decision.reason)
        tr.holding = decision.held

    def _observed(self, tr: _Tracked, decision: Decision) -> dict[str, Any]:
        samples, slo = tuple(tr.window), tr.target.slo
        att = signals.observed_attainment(samples, slo)
        ttft, tpot = signals.p95_ms(samples, "ttft"), signals.p95_ms(samples, "tpot")
        return {
            "ttftP95Ms": None if ttft is None else round(ttft),
            "tpotP95Ms": None if tpot is None else round(tpot, 1),
            "ttftTargetMs": slo.ttft_p95_ms,
            "tpotTargetMs": slo.tpot_p95_ms,
            "attainment": None if att is None else round(att[0], 3),
            "targetAttainment": slo.target_attainment,
            "windowSeconds": self.window_s,
            "desiredReplicas": decision.desired_replicas,
            "conditions": ([] if tr.verdict is None
                           else [attainable.condition(tr.verdict, tr.verdict_since)]),
        }
