"""The engines' vLLM metrics inside Triton, as Triton custom metrics.

On the HTTP server and on Ray Serve an engine exports ``vllm:*`` from its own
``/metrics``. Inside Triton the engine is a Python-backend model in a stub process with
no HTTP server of its own, and each model instance is a separate process: serving a
prometheus_client registry per instance would need a port per instance. Triton's custom
metrics API (``pb_utils.MetricFamily``) instead puts the families on Triton's own
metrics port, next to its ``nv_*`` series, where the runtime plugin already points
scrapes, the router's queue scraper and the autoscaler.

Instances of one model create the same families with the same labels, which Triton
keeps as one series: counters and histograms add up over instances, as vLLM's do over
its batch. The queue and KV gauges are per instance (label ``model_instance``; summed by
every reader, which is right for running and waiting requests; the KV usage of a
multi-instance model then reads as the sum of its instances' occupancy).

The families are the ones :class:`~tierserve.engine.metrics.EngineMetrics` exports
(same names, help, buckets), so :class:`~tierserve.engine.timing.RequestTimer`
observes a Triton request exactly as it observes an HTTP one.
"""

from __future__ import annotations

from typing import Any

from tierserve.core import vllm_names as names
from tierserve.engine.timing import E2E_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS


class _Counter:
    def __init__(self, metric: Any) -> None:
        self._m = metric

    def inc(self, amount: float = 1.0) -> None:
        self._m.increment(float(amount))


class _Histogram:
    def __init__(self, metric: Any) -> None:
        self._m = metric

    def observe(self, amount: float) -> None:
        self._m.observe(float(amount))


class TritonEngineMetrics:
    """The vLLM families of one model instance, on Triton's registry.

    ``pb`` is ``triton_python_backend_utils`` (passed in: it exists only inside the
    stub process, and tests give a fake with the same ``MetricFamily`` API).
    """

    def __init__(self, pb: Any, model_name: str, instance: str) -> None:
        self._pb, self.model_name = pb, model_name
        # Triton refuses updates to a metric whose family object was garbage-collected:
        # the families live as long as this object.
        self._families: list[Any] = []
        labels = {"model_name": model_name}
        self.ttft = _Histogram(self._hist(names.TTFT, "Time to first token.", TTFT_BUCKETS,
                                          labels))
        self.tpot = _Histogram(self._hist(names.TPOT, "Mean inter-token interval per request.",
                                          TPOT_BUCKETS, labels))
        self.itl = _Histogram(self._hist(
            names.ITL, "Interval between consecutive output tokens, per token.", TPOT_BUCKETS,
            labels))
        self.e2e = _Histogram(self._hist(names.E2E, "End-to-end request latency.",
                                         E2E_BUCKETS, labels))
        self.answer_tokens = _Histogram(self._hist(
            names.GENERATION_TOKENS_HIST, "Generated tokens per finished request.",
            names.GENERATION_TOKENS_BUCKETS, labels))
        self.prompt_tokens = _Counter(self._counter(names.PROMPT_TOKENS,
                                                    "Prefilled prompt tokens.", labels))
        self.generation_tokens = _Counter(self._counter(names.GENERATION_TOKENS,
                                                        "Generated tokens.", labels))
        self._success = self._family(names.REQUEST_SUCCESS, "Finished requests.",
                                     pb.MetricFamily.COUNTER)
        self._by_reason: dict[str, _Counter] = {}
        per_instance = {**labels, "model_instance": instance}
        self._gauges = {name: self._family(name, text, pb.MetricFamily.GAUGE).Metric(
            labels=per_instance) for name, text in (
                (names.RUNNING, "Requests in the running batch."),
                (names.WAITING, "Requests waiting to be scheduled."),
                (names.GPU_CACHE, "KV-cache usage (1 = 100%)."),
                (names.KV_CACHE, "KV-cache usage (vLLM V1 name)."))}

    def _family(self, name: str, text: str, kind: Any) -> Any:
        # Counter families carry the name without ``_total``, as prometheus_client's do;
        # Triton adds nothing, so the sample name gets the suffix here.
        sample = names.counter_sample(name) if kind == self._pb.MetricFamily.COUNTER else name
        family = self._pb.MetricFamily(name=sample, description=text, kind=kind)
        self._families.append(family)
        return family

    def _counter(self, name: str, text: str, labels: dict[str, str]) -> Any:
        return self._family(name, text, self._pb.MetricFamily.COUNTER).Metric(labels=labels)

    def _hist(self, name: str, text: str, buckets: tuple[float, ...],
              labels: dict[str, str]) -> Any:
        family = self._family(name, text, self._pb.MetricFamily.HISTOGRAM)
        return family.Metric(labels=labels, buckets=list(buckets))

    def request_succeeded(self, reason: str) -> None:
        counter = self._by_reason.get(reason)
        if counter is None:
            counter = self._by_reason[reason] = _Counter(self._success.Metric(
                labels={"model_name": self.model_name, "finished_reason": reason}))
        counter.inc()

    def set_state(self, running: float, waiting: float, kv: float) -> None:
        g = self._gauges
        g[names.RUNNING].set(float(running))
        g[names.WAITING].set(float(waiting))
        g[names.GPU_CACHE].set(float(kv))
        g[names.KV_CACHE].set(float(kv))
