"""Deployment SLO drill-down: one deployment's latency distributions and percentiles
against its own targets, attainment over 5 m / 1 h / 6 h, the error budget's burn rate,
what the engines are doing (queue, running requests, KV cache, token rates) and the
replica counts, with every change of the desired count marked as a scale event.

When an SLO burns: compare the burn rate's windows (a 5 m spike or a 6 h trend), then
whether the queue grows (too few replicas: is the autoscaler holding, pinned at its
maximum?) or the KV cache is full (too many long sequences per replica).
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from tierserve.dashboards import names
from tierserve.dashboards.kit import (
    DEP,
    ROUTER_DEP,
    Panel,
    Q,
    Row,
    dashboard,
    heatmap,
    quantile,
    rate,
    scale_events,
    timeseries,
)

UID = "tierserve-deployment"
BY = "namespace, deployment"
TTFT, TPOT = "vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds"
E2E, ITL = "vllm:e2e_request_latency_seconds", "vllm:inter_token_latency_seconds"
# Page and ticket burn-rate factors of the multi-window alerts (SRE workbook, ch. 5).
BURN_LINES = ((14.4, "red"), (6.0, "orange"), (1.0, "yellow"))


def _percentiles(title: str, histogram: str, slo: str | None) -> Panel:
    qs = [Q(quantile(q, histogram, DEP, BY), f"{{{{deployment}}}} p{round(q * 100)}")
          for q in (0.5, 0.9, 0.95, 0.99)]
    if slo is not None:
        qs.append(Q(f"max by ({BY}) ({slo}{{{DEP}}})", "{{deployment}} SLO p95", target=True))
    return timeseries(title, "s", *qs, span=8)


def _latency() -> list[Row]:
    return [
        Row("Latency distribution", [
            heatmap("TTFT heatmap", "s", TTFT, DEP),
            heatmap("TPOT heatmap (inter-token latency)", "s", ITL, DEP),
            heatmap("End-to-end latency heatmap", "s", E2E, DEP),
        ]),
        Row("Latency percentiles", [
            _percentiles("TTFT percentiles", TTFT, "tierserve_deployment_slo_ttft_seconds"),
            _percentiles("TPOT percentiles", TPOT, "tierserve_deployment_slo_tpot_seconds"),
            _percentiles("End-to-end latency percentiles", E2E, None),
        ]),
    ]


def _objective() -> Q:
    return Q(f"max by ({BY}) (tierserve_deployment_slo_objective_ratio{{{DEP}}})",
             "{{deployment}} objective", target=True)


def _attainment(title: str, rule: str, windows: tuple[str, ...], span: int) -> Panel:
    fn = {"ttft": names.ttft_attainment, "tpot": names.tpot_attainment,
          "both": names.attainment}[rule]
    qs = [Q(f"{fn(w)}{{{DEP}}}", f"{{{{deployment}}}} {w}") for w in windows]
    return timeseries(title, "percentunit", *qs, _objective(), min_val=None, max_val=1,
                      span=span)


def _slo() -> Row:
    burn = [Q(f"{names.burn_rate(w)}{{{DEP}}}", f"{{{{deployment}}}} {w}")
            for w in ("5m", "1h", "6h")]
    return Row("SLO attainment and error budget", [
        _attainment("TTFT attainment (5 m / 1 h / 6 h)", "ttft", names.SIGNAL_WINDOWS, 6),
        _attainment("TPOT attainment (5 m / 1 h / 6 h)", "tpot", names.SIGNAL_WINDOWS, 6),
        _attainment("Attainment, both targets (5 m / 1 h / 6 h)", "both", ("5m", "1h", "6h"), 6),
        timeseries("Error budget burn rate", "x", *burn, lines=BURN_LINES, span=6,
                   description="1 spends the budget exactly over the SLO period; the "
                               "dashed lines are the page (14.4, 6) and ticket (1) "
                               "factors of the burn-rate alerts."),
    ])


def _engines() -> Row:
    kv = (f"max by ({BY}) (vllm:kv_cache_usage_perc{{{DEP}}} "
          f"or vllm:gpu_cache_usage_perc{{{DEP}}})")
    return Row("Engines", [
        timeseries("Queue depth", "short",
                   Q(f"sum by ({BY}) (vllm:num_requests_waiting{{{DEP}}})",
                     "{{deployment}} waiting in engines"),
                   Q(f"sum by (deployment) (tierserve_router_queue_depth{{{ROUTER_DEP}}})",
                     "{{deployment}} queued in router"), span=6),
        timeseries("Running requests", "short",
                   Q(f"sum by ({BY}) (vllm:num_requests_running{{{DEP}}})",
                     "{{deployment}}"), span=6),
        timeseries("KV-cache usage (fullest replica)", "percentunit",
                   Q(kv, "{{deployment}}"), max_val=1, span=6,
                   description="vLLM V1 kv_cache_usage_perc, or V0 gpu_cache_usage_perc."),
        timeseries("Token rates", "suffix: tok/s",
                   Q(f"sum by ({BY}) ({rate('vllm:prompt_tokens_total', DEP)})",
                     "{{deployment}} prompt"),
                   Q(f"sum by ({BY}) ({rate('vllm:generation_tokens_total', DEP)})",
                     "{{deployment}} generation"), span=6),
    ])


def _replicas() -> Row:
    return Row("Replicas", [
        timeseries("Replicas: desired, current, ready", "short",
                   Q(f"max by ({BY}) (tierserve_autoscaler_desired_replicas{{{DEP}}})",
                     "{{deployment}} autoscaler desired"),
                   Q(f"max by ({BY}) (tierserve_deployment_replicas_desired{{{DEP}}})",
                     "{{deployment}} current (spec)", target=True),
                   Q(f"max by ({BY}) (tierserve_deployment_replicas_ready{{{DEP}}})",
                     "{{deployment}} ready"),
                   description="Scale events (changes of spec.replicas) are annotations.",
                   span=24),
    ])


def build() -> dm.Dashboard:
    return dashboard(UID, "Tierserve / Deployment SLO drill-down", __doc__,
                     [*_latency(), _slo(), _engines(), _replicas()],
                     annotations=[scale_events()])
