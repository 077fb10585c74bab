"""What the cluster says about the demo run, for the report: the LLMDeployments (readiness,
replicas, targets and ``status.slo``), the LLMRoutes (readiness, mode, ``status.ab``),
the scale events (Kubernetes Events with reason ``Scaled``) and the router's tier split,
escalations and cost saved from Prometheus.

Inputs are the objects as the API server returns them (camelCase dicts); every function
here is pure except :func:`tier_readout`, which calls the query it is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tierserve.dev.live_timeline import ReplicaPoint

Obj = Mapping[str, Any]
PromQuery = Callable[[str], list[dict[str, Any]]]

TIER_REQUESTS = 'sum by (route, tier) (tierserve_router_requests_total{tier=~"fast|slow"})'
ESCALATIONS = "sum by (route, reason) (tierserve_router_escalations_total)"
COST_SAVED = "sum by (route) (tierserve_router_cost_saved_usd_total)"


def name(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", "?"))


def ready(obj: Obj) -> bool | None:
    """The Ready condition as a bool; None when the object has none yet."""
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return None


def slo_targets(deployment: Obj) -> tuple[float | None, float | None]:
    """``spec.slo``'s TTFT and TPOT p95 targets (ms)."""
    slo = deployment.get("spec", {}).get("slo", {})
    return slo.get("ttftP95Ms"), slo.get("tpotP95Ms")


def deployment_row(deployment: Obj, points: Sequence[ReplicaPoint]) -> dict[str, Any]:
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    ttft, tpot = slo_targets(deployment)
    specs = [p.spec for p in points]
    return {"name": name(deployment), "model": spec.get("model", {}).get("name"),
            "runtime": spec.get("runtime"), "ready": ready(deployment),
            "replicas": status.get("replicas"), "ready_replicas": status.get("readyReplicas"),
            "replicas_min": min(specs, default=None), "replicas_max": max(specs, default=None),
            "slo_target": {"ttft_p95_ms": ttft, "tpot_p95_ms": tpot,
                           "attainment": spec.get("slo", {}).get("targetAttainment")},
            "status_slo": dict(status.get("slo") or {})}


def route_deployments(route: Obj) -> list[str]:
    """The LLMDeployments a route sends to: the fast tier first, or the variants in order."""
    spec = route.get("spec", {})
    tiers = spec.get("tiers")
    if tiers:
        return [tiers["fast"], tiers["slow"]]
    return [v["deployment"] for v in spec.get("variants", [])]


def route_row(route: Obj) -> dict[str, Any]:
    spec = route.get("spec", {})
    return {"name": name(route), "model": spec.get("model"),
            "mode": "tiered" if spec.get("tiers") else "ab", "ready": ready(route),
            "deployments": route_deployments(route)}


def ab_readouts(routes: Sequence[Obj]) -> list[dict[str, Any]]:
    """Each A/B route's ``status.ab`` (per-variant requests, errors, latency; the test)."""
    out = []
    for r in routes:
        ab = r.get("status", {}).get("ab")
        if ab and not r.get("spec", {}).get("tiers"):
            out.append({"route": name(r), "model": r.get("spec", {}).get("model"), **ab})
    return out


def _event_time(event: Obj) -> str:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        if event.get(key):
            return str(event[key])
    return str(event.get("metadata", {}).get("creationTimestamp", ""))


def scale_events(events: Sequence[Obj]) -> list[dict[str, Any]]:
    """The ``Scaled`` Events (the autoscaler's decisions and their reasons), oldest first."""
    rows = [{"time": _event_time(e), "object": e.get("involvedObject", {}).get("name", "?"),
             "message": e.get("message", ""), "count": e.get("count", 1)}
            for e in events if e.get("reason") == "Scaled"]
    return sorted(rows, key=lambda row: row["time"])


def _value(sample: Mapping[str, Any]) -> float:
    value = float(sample["value"][1])
    return 0.0 if math.isnan(value) else value


def _add(routes: dict[str, dict[str, Any]], samples: list[dict[str, Any]],
         put: Callable[[dict[str, Any], dict[str, str], float], None]) -> None:
    """``put`` each sample of a known route into its row."""
    for s in samples:
        row = routes.get(s["metric"].get("route", ""))
        if row is not None:
            put(row, s["metric"], _value(s))


def _put_tier(row: dict[str, Any], labels: dict[str, str], value: float) -> None:
    if labels.get("tier") in ("fast", "slow"):
        row[labels["tier"]] += value


def _put_escalation(row: dict[str, Any], labels: dict[str, str], value: float) -> None:
    row["escalations"][labels.get("reason", "?")] = value


def _put_saved(row: dict[str, Any], _labels: dict[str, str], value: float) -> None:
    row["cost_saved_usd"] = value


def tier_readout(prom_query: PromQuery | None, tiered_models: Sequence[str]) -> dict[str, Any]:
    """Per tiered route model: requests answered by each tier, the slow share, the
    escalations by reason and the cost saved against sending everything to the slow
    tier, from the router's counters. Without Prometheus (or when it fails) a note says
    so: the LLMRoute status does not carry these."""
    if prom_query is None:
        return {"source": None, "note": "no Prometheus: tier split not available"}
    try:
        tiers, escalations, saved = (prom_query(q) for q in (TIER_REQUESTS, ESCALATIONS,
                                                            COST_SAVED))
    except Exception as exc:  # the report is written anyway, saying what was missing
        return {"source": None, "note": f"Prometheus query failed: {exc}"}
    routes: dict[str, dict[str, Any]] = {
        m: {"fast": 0.0, "slow": 0.0, "escalations": {}, "cost_saved_usd": 0.0}
        for m in tiered_models}
    _add(routes, tiers, _put_tier)
    _add(routes, escalations, _put_escalation)
    _add(routes, saved, _put_saved)
    for row in routes.values():
        total = row["fast"] + row["slow"]
        row["slow_share"] = round(row["slow"] / total, 3) if total else None
    return {"source": "prometheus", "routes": routes}
