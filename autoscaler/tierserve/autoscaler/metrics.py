"""The autoscaler's metrics: what it decided, from what, and when it held.

All series carry ``namespace`` and ``deployment`` (the LLMDeployment's name), as every
per-deployment series in Tierserve does:

* ``tierserve_autoscaler_desired_replicas``, ``_current_replicas``, ``_ready_replicas``,
  ``_predicted_attainment`` and ``_observed_attainment`` (over the controller's window);
* ``tierserve_autoscaler_decisions_total{action,reason}``: one per round, ``action``
  up|down|none|hold, ``reason`` the decision's cause (a small fixed set:
  :data:`~tierserve.autoscaler.policy.common.HOLD_CAUSES`, ``demand``, ``stabilization``,
  ``max_replicas``...; the sentence goes to the log and the Event);
* ``tierserve_autoscaler_holding{reason}``: 1 for the hold cause while holding, else 0;
* ``tierserve_autoscaler_slo_unattainable``: 1 while the demand needs more replicas than
  ``maxReplicas`` allows (the ``SLOAttainable`` condition is False), else 0;
* one gauge per input, ``tierserve_autoscaler_input_<name>`` (:data:`INPUTS`), in base
  units (seconds, requests per second, replicas): what the metrics window showed and what
  the policy computed from it. An input that is unknown this round (no histogram data, a
  hold, another policy's input) has no series, rather than a sentinel value that a graph
  or an alert would read as real.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from tierserve.autoscaler.policy import signals
from tierserve.autoscaler.policy.common import HOLD_CAUSES
from tierserve.autoscaler.types import Decision, MetricSample

log = logging.getLogger(__name__)
P = "tierserve_autoscaler_"
LABELS = ("namespace", "deployment")
Key = tuple[str, str]

INPUTS: Mapping[str, str] = {
    # the metrics window, whichever policy runs
    "arrival_rate_rps": "Requests arriving per second (newest sample).",
    "ttft_p95_seconds": "Time to first token, p95 over the metrics window.",
    "tpot_p95_seconds": "Time per output token, p95 over the metrics window.",
    "queue_depth": "Requests waiting, in the engines and held by the router (newest sample).",
    "metrics_age_seconds": "Age of the newest sample in the window.",
    # policy slo
    "demand_replicas": "Demand in replicas of the sizing plan's capacity (level window).",
    "forecast_replicas": "Demand forecast one cold start ahead, in replicas.",
    "spread_replicas": "Standard deviation of demand around its trend, in replicas.",
    "trend_replicas_per_second": "Trend of demand, replicas per second.",
    "feedback_gain": "Integral gain on observed attainment (1: the plan is right).",
    "feedback_attainment": "Attainment over the feedback window, when enough requests.",
    "output_tokens_per_request": "Mean output tokens per request.",
    # policy hpa
    "running_requests": "Running requests, mean over the metric window (hpa).",
    "utilization_ratio": "Running requests per replica over the target (hpa).",
    # policy kpa
    "stable_concurrency": "In-flight requests, mean over the stable window (kpa).",
    "panic_concurrency": "In-flight requests, mean over the panic window (kpa).",
}


def window_inputs(samples: Sequence[MetricSample], now: float) -> dict[str, float]:
    """What the metrics window shows; p95s only when the window has histogram data."""
    if not samples:
        return {}
    newest = samples[-1]
    out = {"arrival_rate_rps": newest.arrival_rate, "queue_depth": float(newest.waiting),
           "metrics_age_seconds": max(0.0, now - newest.t)}
    for name, which in (("ttft_p95_seconds", "ttft"), ("tpot_p95_seconds", "tpot")):
        ms = signals.p95_ms(samples, which)
        if ms is not None:
            out[name] = ms / 1000
    return out


def action_of(d: Decision, spec: int) -> str:
    if d.held:
        return "hold"
    if d.desired_replicas > spec:
        return "up"
    return "down" if d.desired_replicas < spec else "none"


class ControllerMetrics:
    """Prometheus metrics on a registry the caller owns (no global registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(P + name, doc, [*LABELS, *extra], registry=registry)

        self.desired = gauge("desired_replicas", "Policy's desired count.")
        self.current = gauge("current_replicas", "spec.replicas seen.")
        self.ready = gauge("ready_replicas", "Ready replicas seen.")
        self.predicted = gauge("predicted_attainment", "Policy's predicted attainment.")
        self.observed = gauge("observed_attainment", "Attainment over the window.")
        self.holding = gauge("holding", "1 while holding for this reason, else 0.", ("reason",))
        self.unattainable = gauge("slo_unattainable",
                                  "1 while the demand needs more than maxReplicas, else 0.")
        self.inputs = {name: gauge("input_" + name, doc) for name, doc in INPUTS.items()}
        self.decisions = Counter(P + "decisions", "Decisions by action and reason.",
                                 [*LABELS, "action", "reason"], registry=registry)
        self._decided: dict[Key, set[tuple[str, str]]] = {}
        self._unknown: set[str] = set()

    def record(self, key: Key, d: Decision, spec: int, ready: int, observed: float | None,
               window: Mapping[str, float], unattainable: bool | None = None) -> None:
        self.desired.labels(*key).set(d.desired_replicas)
        self.current.labels(*key).set(spec)
        self.ready.labels(*key).set(ready)
        _set_or_remove(self.predicted, key, d.predicted_attainment)
        _set_or_remove(self.observed, key, observed)
        _set_or_remove(self.unattainable, key,
                       None if unattainable is None else float(unattainable))
        values = {**window, **d.inputs}
        for name in sorted(set(values) - set(INPUTS) - self._unknown):
            log.warning("policy input %r has no gauge (tierserve.autoscaler.metrics.INPUTS)",
                        name)
            self._unknown.add(name)
        for name, g in self.inputs.items():
            _set_or_remove(g, key, values.get(name))
        for cause in HOLD_CAUSES:
            self.holding.labels(*key, cause).set(1 if d.held and d.cause == cause else 0)
        outcome = (action_of(d, spec), d.cause)
        self.decisions.labels(*key, *outcome).inc()
        self._decided.setdefault(key, set()).add(outcome)

    def forget(self, key: Key) -> None:
        """The deployment is no longer autoscaled: its series go (none left stale)."""
        for g in (self.desired, self.current, self.ready, self.predicted, self.observed,
                  self.unattainable, *self.inputs.values()):
            _set_or_remove(g, key, None)
        for cause in HOLD_CAUSES:
            self.holding.remove(*key, cause)
        for outcome in self._decided.pop(key, set()):
            self.decisions.remove(*key, *outcome)


def _set_or_remove(g: Gauge, key: Key, value: float | None) -> None:
    """Set the series, or remove it (a no-op when absent): unknown means no series."""
    if value is not None:
        g.labels(*key).set(value)
    else:
        g.remove(*key)
