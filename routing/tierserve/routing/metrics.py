"""Prometheus metrics for one router instance (its own registry: no globals).

Names are documented in ``docs/router.md``; the registry also carries the standard
process collectors (:mod:`tierserve.core.metrics_registry`). Label values are route
models, variant, tier, deployment names and statuses only: never keys, key names, or
prompt content. Label children are resolved once per label tuple and cached, keeping
``.labels()`` off the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from tierserve.core.metrics_registry import component_registry

_LAT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
        120)
_ADDED = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_TPOT = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)
M = TypeVar("M", bound=MetricWrapperBase)
_RVTD = ("route", "variant", "tier", "deployment")


@dataclass(slots=True)
class RequestSeries:
    """Pre-resolved children for one (route, variant, tier, deployment)."""

    e2e: Histogram
    ttft: Histogram
    tpot: Histogram
    tokens_in: Counter
    tokens_out: Counter


class RouterMetrics:
    """All router series; ``registry`` is what ``/metrics`` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # a registry of its own carries the process collectors (process_*, python_info)
        r = self.registry = registry or component_registry()
        p = "tierserve_router_"
        self.requests = Counter(p + "requests", "Requests answered", (*_RVTD, "status"),
                                registry=r)
        self.e2e = Histogram(p + "request_duration_seconds", "End-to-end latency", _RVTD,
                             buckets=_LAT, registry=r)
        self.ttft = Histogram(p + "ttft_seconds", "Time to first token (streamed)", _RVTD,
                              buckets=_LAT, registry=r)
        self.tpot = Histogram(p + "tpot_seconds", "Time per output token", _RVTD,
                              buckets=_TPOT, registry=r)
        self.tokens_in = Counter(p + "tokens_in", "Prompt tokens", _RVTD, registry=r)
        self.tokens_out = Counter(p + "tokens_out", "Completion tokens", _RVTD, registry=r)
        self.added = Histogram(p + "added_latency_seconds",
                               "Router-added latency (non-streamed: total minus upstream)",
                               ("route",), buckets=_ADDED, registry=r)
        self.retries = Counter(p + "retries", "Failover attempts on another replica",
                               ("deployment", "reason"), registry=r)
        self.ejections = Counter(p + "ejections", "Outlier ejections", ("deployment",),
                                 registry=r)
        self.upstream_errors = Counter(p + "upstream_errors", "Upstream failures by kind",
                                       ("deployment", "kind"), registry=r)
        self.escalations = Counter(p + "escalations", "Fast-to-slow escalations",
                                   ("route", "variant", "reason"), registry=r)
        self.fallbacks = Counter(p + "fallbacks", "Requests sent to a fallback deployment",
                                 ("route", "variant", "deployment", "reason"), registry=r)
        self.tier_decisions = Counter(p + "tier_decisions", "Tier chosen before the request",
                                      ("route", "variant", "tier", "source"), registry=r)
        self.cost_saved = Counter(p + "cost_saved_usd",
                                  "Estimated GPU cost saved versus all-slow-tier",
                                  ("route", "variant"), registry=r)
        self.rejected = Counter(p + "rejected", "Requests refused before routing",
                                ("reason",), registry=r)
        self.stream_errors = Counter(p + "stream_errors", "Streams ended by an SSE error event",
                                     ("deployment",), registry=r)
        self.ab_writer = Gauge(p + "ab_writer", "1 while this replica writes status.ab "
                               "(holds the writer Lease, or is the only replica)", registry=r)
        self.ab_writes = Counter(p + "ab_status_writes", "A/B readouts written to LLMRoute "
                                 "status by this replica", registry=r)
        self._series: dict[tuple[str, str, str, str], RequestSeries] = {}
        self._counts: dict[tuple[str, ...], MetricWrapperBase] = {}

    def series(self, route: str, variant: str, tier: str, deployment: str) -> RequestSeries:
        key = (route, variant, tier, deployment)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = RequestSeries(
                self.e2e.labels(*key), self.ttft.labels(*key), self.tpot.labels(*key),
                self.tokens_in.labels(*key), self.tokens_out.labels(*key))
        return s

    def count(self, metric: M, *labels: str) -> M:
        """A cached child of ``metric`` (any labelled metric of this instance)."""
        key = (metric._name, *labels)
        c = self._counts.get(key)
        if c is None:
            c = self._counts[key] = metric.labels(*labels)
        return c  # type: ignore[return-value]

    def add_gauges(self, source: Callable[[], dict[str, tuple[int, int, int, int]]]) -> None:
        """Queue depth, held, ready and ejected replicas per deployment, read at scrape."""
        self.registry.register(_DeploymentGauges(source))


class _DeploymentGauges(Collector):
    """Gauges computed from live runtime state when Prometheus scrapes."""

    _NAMES = (("queue_depth", "Requests waiting in the deployment queue"),
              ("held_requests", "Requests held while scaling from zero"),
              ("ready_replicas", "Replicas in rotation"),
              ("ejected_replicas", "Replicas ejected as outliers"))

    def __init__(self, source: Callable[[], dict[str, tuple[int, int, int, int]]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        values = self._source()
        for index, (name, doc) in enumerate(self._NAMES):
            family = GaugeMetricFamily("tierserve_router_" + name, doc, labels=["deployment"])
            for dep, v in values.items():
                family.add_metric([dep], v[index])
            yield family
