"""Deployment and route state as metrics, computed from the operator's store at scrape time.

Like kube-state-metrics, but for our two kinds: a Prometheus custom collector over the
:class:`~tierserve.operator.store.Store` the operator already keeps, yielding per
LLMDeployment (labels ``namespace``, ``deployment``)

* ``tierserve_deployment_info{model,runtime,engine,accelerator}`` = 1;
* ``tierserve_deployment_slo_ttft_seconds``, ``..._slo_tpot_seconds`` (the p95 targets)
  and ``..._slo_objective_ratio`` (the target attainment, e.g. 0.99): the dashboards draw
  them as thresholds and the burn-rate rules divide by them, so nothing is typed twice;
* ``..._replicas_desired`` (spec), ``..._replicas_min`` and ``..._replicas_max`` (the
  autoscaler's bounds), ``..._replicas_ready`` (status), ``..._ready`` (0/1);
* ``..._accelerators{accelerator}``: GPUs (or cores, for ``cpu``) in use, ready replicas
  times the sizing plan's units per replica, and ``..._cost_per_hour_usd``: that times
  the price per unit-hour (the chart's ``engines.gpuPrices``, else the catalog's: the
  operator's :class:`~tierserve.core.builders.BuildSettings`, as in the sizing plan);

and per LLMRoute ``tierserve_route_info{namespace,route,mode}`` = 1 (``route`` is the
model name clients ask for, as on the router's series; ``mode`` ab|tiered) and
``tierserve_route_ready{namespace,route}`` (0/1).

Why this and not kube-state-metrics' custom-resource-state configuration: it needs no
extra component (a platform team without kube-state-metrics, or with a version that
lacks the feature, still gets the dashboards), and the operator already holds the cache,
so a scrape costs no API call. Cost and accelerators are derived values (the catalog's
price, the sizing plan's units, defaults of fields left unset) that a field-path mapping
cannot compute. A spec that fails validation yields only ``..._ready`` 0: its other
values are not trustworthy.

``collect`` runs in the event loop (the operator serves ``/metrics`` there), so the store
is read without locks and never half-updated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.api.errors import InvalidObject, validate
from tierserve.core.api.route import LLMRouteSpec
from tierserve.core.builders import BuildSettings
from tierserve.core.catalog import CPU
from tierserve.operator.routes import is_ready
from tierserve.operator.store import Key, Store

D, R = "tierserve_deployment_", "tierserve_route_"
DL = ["namespace", "deployment"]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


@dataclass
class _Families:
    info: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "info", "LLMDeployment: what it serves and on what (always 1).",
        [*DL, "model", "runtime", "engine", "accelerator"]))
    ttft: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "slo_ttft_seconds", "SLO: time to first token, p95 target.", DL))
    tpot: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "slo_tpot_seconds", "SLO: time per output token, p95 target.", DL))
    objective: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "slo_objective_ratio", "SLO: share of requests that must meet the targets.", DL))
    desired: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "replicas_desired", "spec.replicas.", DL))
    min_replicas: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "replicas_min", "spec.minReplicas.", DL))
    max_replicas: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "replicas_max", "spec.maxReplicas.", DL))
    ready_replicas: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "replicas_ready", "status.readyReplicas.", DL))
    accelerators: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "accelerators", "Accelerators in use: ready replicas x units per replica "
        "(GPUs, or cores for cpu).", [*DL, "accelerator"]))
    cost: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "cost_per_hour_usd", "Catalog price of the accelerators in use, per hour.", DL))
    ready: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        D + "ready", "1 when the Ready condition is True, else 0.", DL))
    route_info: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        R + "info", "LLMRoute: the model name it serves and its mode (always 1).",
        ["namespace", "route", "mode"]))
    route_ready: GaugeMetricFamily = field(default_factory=lambda: _gauge(
        R + "ready", "1 when the route's Ready condition is True, else 0.",
        ["namespace", "route"]))

    def __iter__(self) -> Iterator[Metric]:
        return iter(vars(self).values())


def units_per_replica(spec: LLMDeploymentSpec, status: dict[str, Any]) -> int | None:
    """GPUs (cores for cpu) per replica: the sizing plan's, else the spec's explicit count;
    None while neither says (``auto`` not yet sized)."""
    sizing = status.get("sizing") or {}
    acc = spec.accelerator
    if acc.type == CPU:
        n = sizing.get("threadsPerReplica") or acc.threads_per_replica
    else:
        n = sizing.get("gpusPerReplica") or (
            acc.gpus_per_replica if isinstance(acc.gpus_per_replica, int) else None)
    return int(n) if n else None


class StateCollector(Collector):
    """``leading``: export only while it says so (the leader's view is the one to show);
    ``settings``: the operator's build settings, for the prices."""

    def __init__(self, store: Store, leading: Callable[[], bool] = lambda: True,
                 settings: BuildSettings | None = None) -> None:
        self.store, self.leading = store, leading
        self.settings = settings or BuildSettings()
        # spec validation depends only on the generation: cached, as the reconciler does
        self._specs: dict[Key, tuple[tuple[str, int], LLMDeploymentSpec | None]] = {}

    def collect(self) -> Iterator[Metric]:
        if not self.leading():
            return
        f = _Families()
        live = set()
        for key, body in list(self.store.deployments.items()):
            live.add(key)
            self._deployment(f, key, body)
        for key in set(self._specs) - live:
            del self._specs[key]
        for (ns, _), body in list(self.store.routes.items()):
            self._route(f, ns, body)
        yield from f

    def _spec(self, key: Key, body: dict[str, Any]) -> LLMDeploymentSpec | None:
        meta = body["metadata"]
        stamp = (meta.get("uid", ""), int(meta.get("generation") or 0))
        cached = self._specs.get(key)
        if cached is None or cached[0] != stamp:
            spec: LLMDeploymentSpec | None
            try:
                spec = validate(LLMDeploymentSpec, body.get("spec") or {})
            except InvalidObject:
                spec = None
            cached = self._specs[key] = (stamp, spec)
        return cached[1]

    def _deployment(self, f: _Families, key: Key, body: dict[str, Any]) -> None:
        labels = list(key)
        f.ready.add_metric(labels, 1.0 if is_ready(body) else 0.0)
        spec = self._spec(key, body)
        if spec is None:
            return
        status = body.get("status") or {}
        acc = spec.accelerator.type
        f.info.add_metric([*labels, spec.model.name, spec.runtime, spec.engine, acc], 1.0)
        f.ttft.add_metric(labels, spec.slo.ttft_p95_ms / 1000)
        f.tpot.add_metric(labels, spec.slo.tpot_p95_ms / 1000)
        f.objective.add_metric(labels, spec.slo.target_attainment)
        f.desired.add_metric(labels, spec.replicas)
        f.min_replicas.add_metric(labels, spec.min_replicas)
        f.max_replicas.add_metric(labels, spec.max_replicas)
        ready = int(status.get("readyReplicas") or 0)
        f.ready_replicas.add_metric(labels, ready)
        units = units_per_replica(spec, status)
        if units is not None:
            in_use = ready * units
            f.accelerators.add_metric([*labels, acc], in_use)
            f.cost.add_metric(labels, in_use * self.settings.price_per_hour_usd(acc))

    @staticmethod
    def _route(f: _Families, namespace: str, body: dict[str, Any]) -> None:
        try:
            spec: LLMRouteSpec = validate(LLMRouteSpec, body.get("spec") or {})
        except InvalidObject:
            return  # no model name to label it with; its condition says why
        mode = "tiered" if spec.tiers is not None else "ab"
        f.route_info.add_metric([namespace, spec.model, mode], 1.0)
        f.route_ready.add_metric([namespace, spec.model], 1.0 if is_ready(body) else 0.0)
