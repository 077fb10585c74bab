"""Fleet overview: every deployment and route at a glance, each latency against the
deployment's own SLO target, attainment and error budget, accelerators and their cost.

Start here; a deployment whose attainment is under its objective (or whose budget is
burning) is the one to open in the SLO drill-down.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from tierserve.dashboards import names
from tierserve.dashboards.kit import (
    DEP,
    NS,
    ROUTE,
    ROUTE_5XX,
    Panel,
    Q,
    Row,
    dashboard,
    quantile,
    rate,
    stat,
    timeseries,
    zero_filled,
)

UID = "tierserve-fleet"
BY = "namespace, deployment"
REQ = "tierserve_router_requests_total"


def _summary() -> Row:
    return Row("Fleet", [
        stat("Deployments ready", "short",
             Q(f"sum(tierserve_deployment_ready{{{DEP}}})", "ready"),
             Q(f"count(tierserve_deployment_ready{{{DEP}}})", "deployments")),
        stat("Routes ready", "short",
             Q(f'sum(tierserve_route_ready{{{NS}, route=~"$route"}})', "ready"),
             Q(f'count(tierserve_route_ready{{{NS}, route=~"$route"}})', "routes")),
        stat("Accelerators in use", "short",
             Q(f"sum(tierserve_deployment_accelerators{{{DEP}}})", "accelerators"),
             description="Ready replicas times accelerators per replica."),
        stat("Cost per hour", "currencyUSD",
             Q(f"sum(tierserve_deployment_cost_per_hour_usd{{{DEP}}})", "USD/h"),
             description="Catalog price of the accelerators in use."),
        stat("Generated tokens per second", "suffix: tok/s",
             Q(f"sum({rate('vllm:generation_tokens_total', DEP)})", "tokens/s")),
        stat("Requests per second", "reqps",
             Q(f"sum({rate(REQ, ROUTE)})", "req/s")),
    ])


def _replicas() -> Row:
    return Row("Deployments", [
        timeseries("Replicas: ready vs desired", "short",
                   Q(f"sum by ({BY}) (tierserve_deployment_replicas_ready{{{DEP}}})",
                     "{{deployment}} ready"),
                   Q(f"sum by ({BY}) (tierserve_deployment_replicas_desired{{{DEP}}})",
                     "{{deployment}} desired", target=True),
                   description="Desired is spec.replicas; a gap that stays is a replica "
                               "that cannot start (quota, image, capacity)."),
        timeseries("Accelerators in use by deployment", "short",
                   Q(f"sum by ({BY}) (tierserve_deployment_accelerators{{{DEP}}})",
                     "{{deployment}}"), stack=True, span=6),
        timeseries("Cost per hour by deployment", "currencyUSD",
                   Q(f"sum by ({BY}) (tierserve_deployment_cost_per_hour_usd{{{DEP}}})",
                     "{{deployment}}"), stack=True, span=6),
    ])


def _traffic() -> Row:
    total = f"sum by (route) ({rate(REQ, ROUTE)})"
    errors = f"sum by (route) ({rate(REQ, ROUTE_5XX)})"
    return Row("Traffic", [
        timeseries("Request rate by route", "reqps", Q(total, "{{route}}")),
        timeseries("Error rate (5xx) by route", "percentunit",
                   Q(zero_filled(errors, total), "{{route}}")),
        timeseries("Tokens per second by deployment", "suffix: tok/s",
                   Q(f"sum by ({BY}) ({rate('vllm:generation_tokens_total', DEP)})",
                     "{{deployment}} generated"),
                   Q(f"sum by ({BY}) ({rate('vllm:prompt_tokens_total', DEP)})",
                     "{{deployment}} prompt")),
    ])


def _latency_panel(title: str, histogram: str, slo: str) -> Panel:
    return timeseries(
        title, "s",
        Q(quantile(0.5, histogram, DEP, BY), "{{deployment}} p50"),
        Q(quantile(0.95, histogram, DEP, BY), "{{deployment}} p95"),
        Q(f"max by ({BY}) ({slo}{{{DEP}}})", "{{deployment}} SLO p95", target=True))


def _slo() -> Row:
    att = names.attainment("1h")
    return Row("SLO", [
        _latency_panel("TTFT p50 / p95 against the SLO", "vllm:time_to_first_token_seconds",
                       "tierserve_deployment_slo_ttft_seconds"),
        _latency_panel("TPOT p50 / p95 against the SLO", "vllm:time_per_output_token_seconds",
                       "tierserve_deployment_slo_tpot_seconds"),
        timeseries("SLO attainment (1 h)", "percentunit",
                   Q(f"{att}{{{DEP}}}", "{{deployment}}"),
                   Q(f"max by ({BY}) (tierserve_deployment_slo_objective_ratio{{{DEP}}})",
                     "{{deployment}} objective", target=True),
                   description="Share of requests meeting both the TTFT and TPOT targets.",
                   min_val=None, max_val=1),
        timeseries("Error budget left (3 d window)", "percentunit",
                   Q(f"1 - {names.burn_rate('3d')}{{{DEP}}}", "{{deployment}}"),
                   description="1 - burn rate over 3 days: below 0 the 3-day error budget "
                               "is spent.", min_val=None, max_val=1),
    ])


def build() -> dm.Dashboard:
    return dashboard(UID, "Tierserve / Fleet overview", __doc__,
                     [_summary(), _replicas(), _traffic(), _slo()])
