"""Autoscaler: desired against current and ready replicas per deployment, its decisions
by action and reason, the attainment it predicted for its choice against the attainment
observed, the inputs each decision used (in base units), and its holds (on stale
metrics, for instance).

When an SLO burns: is the autoscaler asking for more (desired above current), holding
(and why), or at its maximum? A predicted attainment well above the observed one means
the capacity model is optimistic for this deployment (re-profile the engine).
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from tierserve.dashboards.kit import DEP, Panel, Q, Row, dashboard, rate, timeseries

UID = "tierserve-autoscaler"
BY = "namespace, deployment"
A = "tierserve_autoscaler_"


def _gauge(metric: str, legend: str, target: bool = False) -> Q:
    return Q(f"max by ({BY}) ({A}{metric}{{{DEP}}})", legend, target=target)


def _replicas() -> Row:
    return Row("Replicas and decisions", [
        timeseries("Desired vs current vs ready", "short",
                   _gauge("desired_replicas", "{{deployment}} desired"),
                   _gauge("current_replicas", "{{deployment}} current", target=True),
                   _gauge("ready_replicas", "{{deployment}} ready")),
        timeseries("Decisions by action and reason", "ops",
                   Q(f"sum by (deployment, action, reason) ({rate(A + 'decisions_total', DEP)})",
                     "{{deployment}} {{action}} ({{reason}})"), stack=True),
    ])


def _attainment() -> Row:
    return Row("Attainment", [
        timeseries("Predicted vs observed attainment", "percentunit",
                   _gauge("predicted_attainment", "{{deployment}} predicted"),
                   _gauge("observed_attainment", "{{deployment}} observed"),
                   Q(f"max by ({BY}) (tierserve_deployment_slo_objective_ratio{{{DEP}}})",
                     "{{deployment}} objective", target=True),
                   min_val=None, max_val=1, span=16),
        timeseries("Holding", "short",
                   Q(f"max by ({BY}, reason) ({A}holding{{{DEP}}})",
                     "{{deployment}} {{reason}}"), max_val=1, span=8,
                   description="1 while the autoscaler holds the count (stale metrics, "
                               "an unreadable scale subresource): it writes nothing then."),
    ])


def _input(title: str, unit: str, metric: str) -> Panel:
    return timeseries(title, unit, _gauge("input_" + metric, "{{deployment}}"), span=8)


def _inputs() -> Row:
    return Row("Inputs of the last decision", [
        _input("Arrival rate", "reqps", "arrival_rate_rps"),
        timeseries("TTFT p95 seen, against the SLO", "s",
                   _gauge("input_ttft_p95_seconds", "{{deployment}} seen"),
                   Q(f"max by ({BY}) (tierserve_deployment_slo_ttft_seconds{{{DEP}}})",
                     "{{deployment}} SLO", target=True), span=8),
        timeseries("TPOT p95 seen, against the SLO", "s",
                   _gauge("input_tpot_p95_seconds", "{{deployment}} seen"),
                   Q(f"max by ({BY}) (tierserve_deployment_slo_tpot_seconds{{{DEP}}})",
                     "{{deployment}} SLO", target=True), span=8),
        _input("Queue depth", "short", "queue_depth"),
        _input("Age of the newest metrics", "s", "metrics_age_seconds"),
    ])


def build() -> dm.Dashboard:
    return dashboard(UID, "Tierserve / Autoscaler", __doc__,
                     [_replicas(), _attainment(), _inputs()])
