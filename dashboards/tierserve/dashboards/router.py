"""Router: traffic by route, variant and tier; the A/B split and its readout (latency and
errors per variant); tiering (fast-tier share, escalations by reason, cost saved); what
the router itself adds (latency, retries, failovers, outlier ejections, 429s, held
requests) and the requests refused before routing.

When an SLO burns: check that the router is not the cause first (added latency,
retries and ejections point at a bad replica; held requests at a deployment scaled to
zero; a growing escalation rate moves load to the slow tier).
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from tierserve.dashboards.kit import (
    ROUTE,
    ROUTE_5XX,
    ROUTER,
    ROUTER_DEP,
    Panel,
    Q,
    Row,
    dashboard,
    quantile,
    rate,
    timeseries,
    zero_filled,
)

UID = "tierserve-router"
REQ = "tierserve_router_requests_total"
P = "tierserve_router_"
NS_429 = 'status="429"'  # a key's 429 comes before the route is known


def _share(by: str, of: str) -> str:
    """Each ``by`` group's share of its ``of`` group's requests."""
    return (f"sum by ({of}, {by}) ({rate(REQ, ROUTE)}) "
            f"/ on ({of}) group_left sum by ({of}) ({rate(REQ, ROUTE)})")


def _traffic() -> Row:
    return Row("Traffic", [
        timeseries("Requests by route, variant and tier", "reqps",
                   Q(f"sum by (route, variant, tier) ({rate(REQ, ROUTE)})",
                     "{{route}} {{variant}} {{tier}}"), stack=True),
        timeseries("Responses by status", "reqps",
                   Q(f"sum by (route, status) ({rate(REQ, ROUTE)})", "{{route}} {{status}}")),
    ])


def _ab() -> Row:
    by = "route, variant"
    errors = zero_filled(f"sum by ({by}) ({rate(REQ, ROUTE_5XX)})",
                         f"sum by ({by}) ({rate(REQ, ROUTE)})")
    return Row("A/B", [
        timeseries("A/B split (share of requests per variant)", "percentunit",
                   Q(_share("variant", "route"), "{{route}} {{variant}}"), max_val=1, span=6),
        timeseries("A/B readout: TTFT p95 per variant", "s",
                   Q(quantile(0.95, P + "ttft_seconds", ROUTE, by), "{{route}} {{variant}}"),
                   span=6),
        timeseries("A/B readout: end-to-end p95 per variant", "s",
                   Q(quantile(0.95, P + "request_duration_seconds", ROUTE, by),
                     "{{route}} {{variant}}"), span=6),
        timeseries("A/B readout: error rate per variant", "percentunit",
                   Q(errors, "{{route}} {{variant}}"), span=6),
    ])


def _tiers() -> Row:
    return Row("Tiers", [
        timeseries("Tier share", "percentunit",
                   Q(_share("tier", "route"), "{{route}} {{tier}}"), max_val=1, span=8),
        timeseries("Escalations by reason", "reqps",
                   Q(f"sum by (route, reason) ({rate(P + 'escalations_total', ROUTE)})",
                     "{{route}} {{reason}}"), span=8),
        timeseries("Cost saved against the slow tier alone", "currencyUSD",
                   Q(f"sum by (route) ({rate(P + 'cost_saved_usd_total', ROUTE)}) * 3600",
                     "{{route}} USD/h"), span=8,
                   description="Estimated accelerator cost per hour saved by serving on "
                               "the fast tier, at catalog prices."),
    ])


def _per_deployment(title: str, metric: str, by: str, legend: str) -> Panel:
    return timeseries(title, "ops",
                      Q(f"sum by ({by}) ({rate(P + metric, ROUTER_DEP)})", legend), span=8)


def _health() -> Row:
    return Row("Router health", [
        timeseries("Added latency (p50 / p99)", "s",
                   Q(quantile(0.5, P + "added_latency_seconds", ROUTE, "route"), "{{route}} p50"),
                   Q(quantile(0.99, P + "added_latency_seconds", ROUTE, "route"),
                     "{{route}} p99"), span=8,
                   description="Router time on non-streamed requests: total minus upstream."),
        _per_deployment("Retries on another replica", "retries_total", "deployment, reason",
                        "{{deployment}} {{reason}}"),
        _per_deployment("Outlier ejections", "ejections_total", "deployment", "{{deployment}}"),
        timeseries("Failovers to a fallback deployment", "ops",
                   Q(f"sum by (route, deployment, reason) ({rate(P + 'fallbacks_total', ROUTE)})",
                     "{{route}} → {{deployment}} {{reason}}"), span=8),
        timeseries("429 responses", "reqps",
                   Q(f'label_replace(sum by (route) ({rate(REQ, NS_429)}), "route", '
                     f'"(before routing)", "route", "")', "{{route}}"), span=8,
                   description="A deployment's queue full (by route), or a key over its "
                               "limit (before routing, when no route is known yet)."),
        timeseries("Held requests (scale from zero)", "short",
                   Q(f"sum by (deployment) ({P}held_requests{{{ROUTER_DEP}}})",
                     "{{deployment}}"), span=8),
        timeseries("Requests refused before routing", "reqps",
                   Q(f"sum by (reason) ({rate(P + 'rejected_total', ROUTER)})", "{{reason}}"),
                   span=24, description="Per-key rate limits, retry budget and other "
                                        "refusals, by reason."),
    ])


def build() -> dm.Dashboard:
    return dashboard(UID, "Tierserve / Router", __doc__,
                     [_traffic(), _ab(), _tiers(), _health()])
