"""Prometheus metrics of the engines (simulated and llama.cpp), under vLLM's names.

The autoscaler, the router and the dashboards query these names, so they work
unchanged against real vLLM. Each engine owns its own :class:`CollectorRegistry`
(no process-global metrics), labelled with vLLM's ``model_name`` label, with the standard
process collectors (``process_*``, ``python_info``) as vLLM's default registry has them.

:class:`RequestTimer` observes one request as its tokens reach the server:
``vllm:time_to_first_token_seconds`` at the first token,
``vllm:inter_token_latency_seconds`` once per later token (as vLLM does; tokens that
arrive together share the interval evenly), and at the end the end-to-end latency, the
token counters and ``vllm:time_per_output_token_seconds``, which here stays the
request's mean inter-token interval (observed once per request).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tierserve.core import vllm_names as names
from tierserve.core.metrics_registry import component_registry

# vLLM's buckets, with finer low ends for fast GPUs (H100 ITL is ~5 ms).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
TPOT_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)  # fmt: skip
E2E_BUCKETS = (0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
               40.0, 50.0, 60.0, 120.0, 240.0)  # fmt: skip

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EngineMetrics:
    """The vLLM metric family for one served model, in a private registry."""

    def __init__(self, model_name: str, registry: CollectorRegistry | None = None) -> None:
        # a registry of its own carries the process collectors (process_*, python_info)
        self.registry = registry or component_registry(auto_describe=True)
        self.model_name = model_name
        labels = ["model_name"]
        r = self.registry
        self._running = Gauge(
            names.RUNNING, "Requests in the running batch.", labels, registry=r
        )
        self._waiting = Gauge(
            names.WAITING, "Requests waiting to be scheduled.", labels, registry=r
        )
        self._cache = Gauge(
            names.GPU_CACHE, "KV-cache usage (1 = 100%).", labels, registry=r
        )
        self._kv_cache = Gauge(
            names.KV_CACHE, "KV-cache usage (vLLM V1 name).", labels, registry=r
        )
        self.ttft = Histogram(
            names.TTFT, "Time to first token.", labels,
            buckets=TTFT_BUCKETS, registry=r,
        ).labels(model_name)  # fmt: skip
        self.tpot = Histogram(
            names.TPOT, "Mean inter-token interval per request.",
            labels, buckets=TPOT_BUCKETS, registry=r,
        ).labels(model_name)  # fmt: skip
        self.itl = Histogram(
            names.ITL, "Interval between consecutive output tokens, per token.",
            labels, buckets=TPOT_BUCKETS, registry=r,
        ).labels(model_name)  # fmt: skip
        self.e2e = Histogram(
            names.E2E, "End-to-end request latency.", labels,
            buckets=E2E_BUCKETS, registry=r,
        ).labels(model_name)  # fmt: skip
        self.prompt_tokens = Counter(
            names.PROMPT_TOKENS, "Prefilled prompt tokens.", labels, registry=r
        ).labels(model_name)
        self.generation_tokens = Counter(
            names.GENERATION_TOKENS, "Generated tokens.", labels, registry=r
        ).labels(model_name)
        self._success = Counter(
            names.REQUEST_SUCCESS, "Finished requests.", [*labels, "finished_reason"],
            registry=r,
        )  # fmt: skip

    def bind_state(
        self, running: Callable[[], float], waiting: Callable[[], float], kv: Callable[[], float]
    ) -> None:
        """Gauges read the engine at scrape time (no per-step bookkeeping)."""
        self._running.labels(self.model_name).set_function(running)
        self._waiting.labels(self.model_name).set_function(waiting)
        self._cache.labels(self.model_name).set_function(kv)
        self._kv_cache.labels(self.model_name).set_function(kv)

    def set_state(self, running: float, waiting: float, kv: float) -> None:
        """Set the gauges directly (for aggregators that are not the engine)."""
        self._running.labels(self.model_name).set(running)
        self._waiting.labels(self.model_name).set(waiting)
        self._cache.labels(self.model_name).set(kv)
        self._kv_cache.labels(self.model_name).set(kv)

    def request_succeeded(self, reason: str) -> None:
        self._success.labels(self.model_name, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Observes(Protocol):
    def observe(self, amount: float) -> None: ...


class _Counts(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class RequestMetrics(Protocol):
    """What :class:`RequestTimer` records into: :class:`EngineMetrics`, or the same
    families on another registry (Triton's custom metrics, ``triton_metrics``)."""

    @property
    def ttft(self) -> _Observes: ...
    @property
    def itl(self) -> _Observes: ...
    @property
    def tpot(self) -> _Observes: ...
    @property
    def e2e(self) -> _Observes: ...
    @property
    def prompt_tokens(self) -> _Counts: ...
    @property
    def generation_tokens(self) -> _Counts: ...
    def request_succeeded(self, reason: str) -> None: ...


class RequestTimer:
    """Latency of one request as its tokens arrive (``clock``: seconds, monotonic)."""

    def __init__(self, metrics: RequestMetrics | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.start = clock()
        self.first: float | None = None
        self.last = self.start
        self.generated = 0

    def tokens(self, n: int, at: float | None = None) -> None:
        """``n`` tokens arrived now (or at ``at``, on this timer's clock)."""
        if n <= 0:
            return
        now = self.clock() if at is None else at
        if self.first is None:
            self.first = now
            if self.metrics is not None:
                self.metrics.ttft.observe(now - self.start)
            gaps = [0.0] * (n - 1)  # tokens that came with the first one
        else:
            gaps = [(now - self.last) / n] * n
        if self.metrics is not None:
            for gap in gaps:
                self.metrics.itl.observe(gap)
        self.last = now
        self.generated += n

    def finished(self, reason: str, prompt_tokens: int) -> None:
        """The request ran to its end (counters, e2e and the mean TPOT)."""
        m = self.metrics
        if m is None:
            return
        end = self.clock()
        first = self.first if self.first is not None else end
        m.prompt_tokens.inc(prompt_tokens)
        m.generation_tokens.inc(self.generated)
        m.e2e.observe(end - self.start)
        if self.generated > 1:
            m.tpot.observe((self.last - first) / (self.generated - 1))
        m.request_succeeded(reason)
