"""Operator: reconciles and their errors by reason, writes to the API server, the work
queue's depth and latency, reconcile duration, and which replica leads.

The operator's series are its own (not per deployment), so no template variable filters
them. When an SLO burns after a change: reconcile errors or a deep, slow queue mean the
change has not reached the children yet; no leader means nothing is reconciled at all.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from tierserve.dashboards.kit import Q, Row, dashboard, quantile, timeseries

UID = "tierserve-operator"
OP = "tierserve_operator_"
W = "$__rate_interval"


def _rate(metric: str) -> str:
    return f"rate({OP}{metric}[{W}])"


def _reconciles() -> Row:
    return Row("Reconciles", [
        timeseries("Reconciles by kind and result", "ops",
                   Q(f"sum by (kind, result) ({_rate('reconciles_total')})",
                     "{{kind}} {{result}}"), stack=True, span=8),
        timeseries("Reconcile errors by reason", "ops",
                   Q(f"sum by (kind, reason) ({_rate('reconcile_errors_total')})",
                     "{{kind}} {{reason}}"), span=8),
        timeseries("API writes by verb", "ops",
                   Q(f"sum by (verb) ({_rate('api_writes_total')})", "{{verb}}"), span=8),
    ])


def _queue() -> Row:
    def q(p: float, metric: str) -> Q:
        return Q(quantile(p, OP + metric, "", "kind"), f"{{{{kind}}}} p{round(p * 100)}")

    return Row("Work queue", [
        timeseries("Work-queue depth", "short",
                   Q(f"sum by (kind) ({OP}workqueue_depth)", "{{kind}}"), span=6),
        timeseries("Work-queue latency (queued to handled)", "s",
                   q(0.5, "workqueue_latency_seconds"), q(0.95, "workqueue_latency_seconds"),
                   span=6),
        timeseries("Reconcile duration", "s",
                   q(0.5, "reconcile_duration_seconds"), q(0.95, "reconcile_duration_seconds"),
                   span=6),
        timeseries("Leader", "short",
                   Q(f"max by (instance) ({OP}leader)", "{{instance}}"), max_val=1, span=6,
                   description="1 on the replica holding the Lease; exactly one should."),
    ])


def build() -> dm.Dashboard:
    return dashboard(UID, "Tierserve / Operator", __doc__,
                     [_reconciles(), _queue()])
