"""Prometheus metrics of the simulated engine, under the names vLLM exports.

The autoscaler, the router and the dashboards query these names, so they work
unchanged against real vLLM. Each engine owns its own :class:`CollectorRegistry`
(no process-global metrics), labelled with vLLM's ``model_name`` label.

Differences from vLLM worth knowing: ``vllm:time_per_output_token_seconds`` is
observed once per finished request (its mean inter-token interval), not once per
token; for equal-length requests the mean over a window is the same.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tierserve.core import vllm_names as names

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
        self.registry = registry or CollectorRegistry(auto_describe=True)
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

    def finished(
        self, reason: str, prompt: int, generated: int, ttft_s: float, e2e_s: float
    ) -> None:
        """Account one request that ran to completion."""
        self.prompt_tokens.inc(prompt)
        self.generation_tokens.inc(generated)
        self.ttft.observe(ttft_s)
        self.e2e.observe(e2e_s)
        if generated > 1:
            self.tpot.observe((e2e_s - ttft_s) / (generated - 1))
        self._success.labels(self.model_name, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
