"""Prometheus metrics of the engines (simulated and llama.cpp), under vLLM's names.

The autoscaler, the router and the dashboards query these names, so they work
unchanged against real vLLM. Each engine owns its own :class:`CollectorRegistry`
(no process-global metrics), labelled with vLLM's ``model_name`` label, with the standard
process collectors (``process_*``, ``python_info``) as vLLM's default registry has them.

The buckets and :class:`~tierserve.engine.timing.RequestTimer`, which records one
request into these families, are in :mod:`tierserve.engine.timing`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tierserve.core import vllm_names as names
from tierserve.core.metrics_registry import component_registry
from tierserve.engine.timing import E2E_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS

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
        self.answer_tokens = Histogram(
            names.GENERATION_TOKENS_HIST, "Generated tokens per finished request.",
            labels, buckets=names.GENERATION_TOKENS_BUCKETS, registry=r,
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
