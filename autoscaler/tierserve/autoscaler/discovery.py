"""LLMDeployment objects -> :class:`ScaleTarget` values, and the set of targets kept in
step with the objects a watch reports. Pure: objects in, targets out; the watch itself
lives in :mod:`tierserve.autoscaler.watch`.

Why a mapping at all: in a cluster nobody should write a targets file by hand; every
LLMDeployment already carries its SLO, its bounds, its autoscaling windows and (in
``status.sizing``) the operator's sizing plan, from which the capacity model
(:func:`tierserve.core.capacity.capacity_from_plan`) gives the capacity the policy needs.

Scrape endpoints (direct scrape, no Prometheus) follow the runtime's
:class:`~tierserve.core.runtimes.base.MetricsEndpoint`: a runtime whose pods each serve
their own replica's metrics (Triton) is scraped at every ready address of its Service's
EndpointSlices; one whose metrics one process aggregates (Ray Serve's ingress) once,
through ``status.endpoint``. Scraping a per-pod runtime through its Service would read a
different replica each round and difference counters of unrelated pods.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from tierserve.autoscaler.controller import ScaleTarget
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.api.deployment import LLMDeploymentSpec, SizingPlan
from tierserve.core.capacity import capacity_from_plan
from tierserve.core.runtimes import runtime_for

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)
Obj = Mapping[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set by the EndpointSlice controller


@dataclass(frozen=True)
class DiscoveryOptions:
    """What the objects do not say: the operator's choices for every target."""

    policy: str = "slo"
    knobs: Mapping[str, Any] | None = None
    stale_after_s: float = 60.0
    default_cold_start_s: float = 60.0


@dataclass(frozen=True)
class Skipped:
    """An LLMDeployment that is not autoscaled, and why (logged by the caller)."""

    namespace: str
    name: str
    reason: str


def metrics_url(endpoint: str, path: str = "/metrics") -> str:
    """Engine ``/metrics`` from ``status.endpoint``: Ray Serve's endpoint is the OpenAI
    base (``.../v1``), while the metrics are served at the root."""
    base = endpoint.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + path


def _ready_addresses(slices: Sequence[Obj]) -> list[str]:
    """Addresses of ready endpoints (``ready`` unset counts as ready, as Kubernetes says);
    terminating pods are not ready."""
    out: set[str] = set()
    for slice_ in slices:
        for ep in slice_.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is not False:
                out.update(str(a) for a in ep.get("addresses") or [])
    return sorted(out)


def scrape_urls(ns: str, name: str, spec: LLMDeploymentSpec, status: Obj,
                slices: Mapping[Key, Sequence[Obj]]) -> tuple[str, ...]:
    """The engine ``/metrics`` URLs a direct scrape reads for one deployment."""
    runtime = runtime_for(spec.runtime)
    metrics = runtime.metrics(spec)
    if metrics is None:
        return ()
    if not metrics.per_pod:
        endpoint = status.get("endpoint")
        return (metrics_url(str(endpoint), metrics.path),) if endpoint else ()
    service = runtime.router_endpoint(name, spec).service
    hosts = (f"[{a}]" if ":" in a else a for a in _ready_addresses(slices.get((ns, service), ())))
    return tuple(f"http://{h}:{metrics.port}{metrics.path}" for h in hosts)


def _limits(spec: LLMDeploymentSpec, opts: DiscoveryOptions) -> Limits:
    a = spec.autoscaling
    return Limits(
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        cold_start_s=(
            opts.default_cold_start_s if a.cold_start_seconds is None else a.cold_start_seconds
        ),
        scale_up_stabilization_s=a.scale_up_stabilization_seconds,
        scale_down_stabilization_s=a.scale_down_stabilization_seconds,
        scale_to_zero_after_s=a.scale_to_zero_after_seconds,
        stale_after_s=opts.stale_after_s,
    )


def target_from_object(obj: Mapping[str, Any], opts: DiscoveryOptions,
                       slices: Mapping[Key, Sequence[Obj]] | None = None
                       ) -> ScaleTarget | Skipped:
    """One LLMDeployment (as the API returns it) -> its target, or why it has none.
    ``slices``: the EndpointSlices by (namespace, Service), for per-pod scrape URLs."""
    meta = obj.get("metadata") or {}
    ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    status = obj.get("status") or {}
    try:
        spec = LLMDeploymentSpec.model_validate(obj.get("spec") or {})
        if not status.get("sizing"):
            return Skipped(ns, name, "no sizing plan in status yet")
        capacity = capacity_from_plan(SizingPlan.model_validate(status["sizing"]),
                                      spec.workload.input_tokens)
        return ScaleTarget(
            namespace=ns,
            name=name,
            slo=Slo(ttft_p95_ms=spec.slo.ttft_p95_ms, tpot_p95_ms=spec.slo.tpot_p95_ms,
                    target_attainment=spec.slo.target_attainment),
            capacity=capacity,
            limits=_limits(spec, opts),
            policy=opts.policy,
            knobs=dict(opts.knobs or {}),
            endpoints=scrape_urls(ns, name, spec, status, slices or {}),
            observe_only=not spec.autoscaling.enabled,
        )
    except (ValidationError, ValueError) as exc:
        return Skipped(ns, name, f"invalid for autoscaling: {exc}")


class TargetSink(Protocol):
    """Where targets go (the :class:`~tierserve.autoscaler.controller.Controller`)."""

    def add(self, target: ScaleTarget) -> None: ...

    def remove(self, ns: str, name: str) -> None: ...


class Discovery:
    """Keeps a sink's targets equal to the autoscaled LLMDeployments a watch reports.

    ``skipped`` remembers the last skip reason per object so each is logged once per
    change, not on every status update. ``objects`` keeps the last object of each
    deployment so that a change of its EndpointSlices (:meth:`set_slice`: pods come,
    go, turn ready) re-derives its scrape URLs.
    """

    def __init__(self, sink: TargetSink, opts: DiscoveryOptions) -> None:
        self.sink, self.opts = sink, opts
        self.known: dict[tuple[str, str], ScaleTarget] = {}
        self.skipped: dict[tuple[str, str], str] = {}
        self.objects: dict[Key, Obj] = {}
        self.slices: dict[Key, Obj] = {}  # (namespace, EndpointSlice name) -> slice

    def upsert(self, obj: Mapping[str, Any]) -> ScaleTarget | Skipped:
        """ADDED/MODIFIED: (re)configure the target, or drop it when it no longer
        qualifies. An unchanged target is not re-added (our own status writes come back
        as MODIFIED events)."""
        result = target_from_object(obj, self.opts, self._by_service())
        self.objects[(result.namespace, result.name)] = obj
        if isinstance(result, Skipped):
            key = (result.namespace, result.name)
            if self.skipped.get(key) != result.reason:
                log.info("not autoscaling %s/%s: %s", *key, result.reason)
            self.skipped[key] = result.reason
            if self.known.pop(key, None) is not None:
                self.sink.remove(*key)
            return result
        self.skipped.pop(result.key, None)
        before = self.known.get(result.key)
        if before != result:
            verb = "observing" if result.observe_only else "autoscaling"
            log.info("%s %s/%s", "updating" if before is not None else verb, *result.key)
            if before is None or before.endpoints != result.endpoints:
                log.debug("scrape URLs of %s/%s: %s", *result.key,
                          ", ".join(result.endpoints) or "none")
            self.known[result.key] = result
            self.sink.add(result)
        return result

    def _by_service(self) -> dict[Key, list[Obj]]:
        out: dict[Key, list[Obj]] = {}
        for (ns, _), slice_ in self.slices.items():
            service = ((slice_.get("metadata") or {}).get("labels") or {}).get(
                SERVICE_NAME_LABEL)
            if service:
                out.setdefault((ns, str(service)), []).append(slice_)
        return out

    def set_slice(self, ns: str, name: str, slice_: Obj | None) -> None:
        """An EndpointSlice changed (None: deleted): the deployments of its namespace get
        their scrape URLs again (an unchanged target is left alone)."""
        if slice_ is None:
            self.slices.pop((ns, name), None)
        else:
            self.slices[(ns, name)] = slice_
        for key, obj in list(self.objects.items()):
            if key[0] == ns:
                self.upsert(obj)

    def delete(self, ns: str, name: str) -> None:
        """DELETED: stop autoscaling it."""
        self.objects.pop((ns, name), None)
        self.skipped.pop((ns, name), None)
        if self.known.pop((ns, name), None) is not None:
            log.info("dropping %s/%s: deleted", ns, name)
            self.sink.remove(ns, name)

    def replace_all(self, objs: Sequence[Mapping[str, Any]]) -> list[ScaleTarget | Skipped]:
        """A fresh list (start, or re-list after a broken watch): objects no longer there
        are dropped, the others upserted."""
        present = {
            (str((o.get("metadata") or {}).get("namespace") or "default"),
             str((o.get("metadata") or {}).get("name") or ""))
            for o in objs
        }  # fmt: skip
        for key in [k for k in {*self.known, *self.objects} if k not in present]:
            self.delete(*key)
        return [self.upsert(o) for o in objs]
