"""Prometheus metrics for one router instance (its own registry: no globals).

Names are documented in ``docs/router.md``; the registry also carries the standard
process collectors (:mod:`tierserve.core.metrics_registry`). Label values are route
models, variant, tier, deployment names and statuses only: never keys, key names, or
prompt content. Label children are resolved once per label tuple and cached, keeping
``.labels()`` off the hot path.

The series every request updates (requests, latencies, tokens, added latency) are kept
as plain numbers (:class:`CounterFamily`, :class:`HistogramFamily`) and turned into
Prometheus families when scraped: prometheus_client's ``observe`` walks the buckets in
Python and takes a lock per value, about a sixth of the router's Python work per
streamed request. The router's event loop is their only writer and serves ``/metrics``
itself, so they need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tierserve.core.metrics_registry import component_registry

_LAT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
        120)
_ADDED = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_TPOT = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)
M = TypeVar("M", bound=MetricWrapperBase)
_go_float = cast(Callable[[float], str], floatToGoString)  # the le label, as prometheus_client
_RVTD = ("route", "variant", "tier", "deployment")


class Count:
    """One labelled counter's value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Buckets:
    """One labelled histogram's bucket counts (not cumulative; the last is +Inf) and sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds, self.counts, self.sum = bounds, [0] * (len(bounds) + 1), 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1  # the first bound >= value
        self.sum += value


class _Family(Collector):
    """Labelled children kept in plain numbers, collected as one Prometheus family."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        self.name, self._doc, self._labelnames = name, doc, list(labelnames)
        registry.register(self)

    def _family(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> Iterator[Metric]:
        yield self._family()


class CounterFamily(_Family):
    def __init__(self, name: str, doc: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        self._children: dict[tuple[str, ...], Count] = {}
        super().__init__(name, doc, labelnames, registry)

    def labels(self, *values: str) -> Count:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Count()
        return child

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self._doc, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class HistogramFamily(_Family):
    def __init__(self, name: str, doc: str, labelnames: Sequence[str],
                 registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self._bounds = [float(b) for b in buckets]
        self._le = [_go_float(b) for b in self._bounds] + ["+Inf"]
        self._children: dict[tuple[str, ...], Buckets] = {}
        super().__init__(name, doc, labelnames, registry)

    def labels(self, *values: str) -> Buckets:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Buckets(self._bounds)
        return child

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self._doc, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            running, cumulative = 0, []
            for le, n in zip(self._le, child.counts, strict=True):
                running += n
                cumulative.append((le, float(running)))
            family.add_metric(list(values), cumulative, child.sum)
        yield family


@dataclass(slots=True)
class RequestSeries:
    """Pre-resolved children for one (route, variant, tier, deployment)."""

    e2e: Buckets
    ttft: Buckets
    tpot: Buckets
    tokens_in: Count
    tokens_out: Count


class RouterMetrics:
    """All router series; ``registry`` is what ``/metrics`` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # a registry of its own carries the process collectors (process_*, python_info)
        r = self.registry = registry or component_registry()
        p = "tierserve_router_"
        self.requests = CounterFamily(p + "requests", "Requests answered", (*_RVTD, "status"),
                                      r)
        self.e2e = HistogramFamily(p + "request_duration_seconds", "End-to-end latency",
                                   _RVTD, r, _LAT)
        self.ttft = HistogramFamily(p + "ttft_seconds", "Time to first token (streamed)",
                                    _RVTD, r, _LAT)
        self.tpot = HistogramFamily(p + "tpot_seconds", "Time per output token", _RVTD, r,
                                    _TPOT)
        self.tokens_in = CounterFamily(p + "tokens_in", "Prompt tokens", _RVTD, r)
        self.tokens_out = CounterFamily(p + "tokens_out", "Completion tokens", _RVTD, r)
        self.added = HistogramFamily(p + "added_latency_seconds",
                                     "Router-added latency (non-streamed: total minus upstream)",
                                     ("route",), r, _ADDED)
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
