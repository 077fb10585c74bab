"""Metrics sources for the live controller: Prometheus HTTP API, or direct scrape.

These are the only autoscaler modules that do I/O (aiohttp); they turn what a cluster
exposes into :class:`MetricSample` values and nothing more.

* :class:`ScrapeSource` fetches every engine's vLLM ``/metrics`` and differences it with
  the previous scrape (:mod:`vllm_metrics`). Engines that fail to answer are left out of
  the sample; when none answers there is no sample, and the policy holds once stale. The
  first scrape is only the baseline (no sample): the first sample comes one interval
  later, with the rates over it, as the simulator's first sample does.
* :class:`PrometheusSource` asks Prometheus for the same quantities with PromQL over the
  controller interval. The sample time is the newest *scrape* timestamp Prometheus has
  for the deployment's gauges (``timestamp(...)``), not the query time, so a Prometheus
  that stopped scraping yields stale samples and the policy holds. It also reads the
  router's queue and held requests for the deployment (``tierserve_router_*`` gauges,
  labelled ``deployment="<namespace>/<name>"``): requests the router's admission gate
  queues never reach an engine's waiting queue, and without them a saturated deployment
  would look less loaded than it is. No router series (a router nobody scrapes) reads 0.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict

from tierserve.autoscaler.controller import ScaleTarget
from tierserve.autoscaler.types import Histogram, MetricSample, ReplicaSample
from tierserve.autoscaler.vllm_metrics import EngineSnapshot, parse, to_sample


class ScrapeSource:
    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float = 2.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._prev: dict[str, tuple[float, EngineSnapshot]] = {}

    async def _fetch(self, url: str) -> EngineSnapshot | None:
        try:
            async with self._session.get(url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    return None
                return parse(await resp.text())
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None

    async def collect(self, target: ScaleTarget, now: float) -> MetricSample | None:
        snaps = await asyncio.gather(*(self._fetch(u) for u in target.endpoints))
        pairs: list[tuple[EngineSnapshot, EngineSnapshot | None]] = []
        dts: list[float] = []
        for url, snap in zip(target.endpoints, snaps, strict=True):
            if snap is None:
                continue
            prev = self._prev.get(url)
            pairs.append((snap, prev[1] if prev else None))
            if prev is not None:
                dts.append(now - prev[0])
            self._prev[url] = (now, snap)
        if not dts:
            # nothing to difference yet (the first scrape, or only engines never seen
            # before): rates over no interval are not a measurement, and a sample saying
            # "0 requests per second" would halve the demand level of the next rounds
            return None
        return to_sample(now, max(dts), pairs)


class PromQueries(BaseModel):
    """PromQL templates; ``{sel}`` is the engines' label selector, ``{w}`` the rate
    window, ``{dep}`` the router's name for the deployment (``namespace/name``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    selector: str = 'namespace="{ns}",tierserve_io_deployment="{name}"'
    running: str = "sum by (pod) (vllm:num_requests_running{{{sel}}})"
    waiting: str = "sum by (pod) (vllm:num_requests_waiting{{{sel}}})"
    kv: str = "sum by (pod) (vllm:gpu_cache_usage_perc{{{sel}}})"
    scraped_at: str = "max(timestamp(vllm:num_requests_running{{{sel}}}))"
    finished: str = "sum(rate(vllm:request_success_total{{{sel}}}[{w}s]))"
    prompt: str = "sum(rate(vllm:prompt_tokens_total{{{sel}}}[{w}s]))"
    generated: str = "sum(rate(vllm:generation_tokens_total{{{sel}}}[{w}s]))"
    inflight_deriv: str = (
        "sum(deriv(vllm:num_requests_running{{{sel}}}[{w}s]))"
        " + sum(deriv(vllm:num_requests_waiting{{{sel}}}[{w}s]))"
    )
    ttft: str = "sum by (le) (increase(vllm:time_to_first_token_seconds_bucket{{{sel}}}[{w}s]))"
    tpot: str = "sum by (le) (increase(vllm:time_per_output_token_seconds_bucket{{{sel}}}[{w}s]))"
    answers: str = "sum by (le) (increase(vllm:request_generation_tokens_bucket{{{sel}}}[{w}s]))"
    answer_tokens: str = "sum(rate(vllm:request_generation_tokens_sum{{{sel}}}[{w}s]))"
    router_queued: str = (
        'sum(tierserve_router_queue_depth{{deployment="{dep}"}})'
        ' + sum(tierserve_router_held_requests{{deployment="{dep}"}})'
    )


def _scalar(result: list[Mapping[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else 0.0


def _histogram(result: list[Mapping[str, Any]]) -> Histogram | None:
    cum = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in result)
    if not cum:
        return None
    bounds = [b for b, _ in cum if not math.isinf(b)]
    values = [v for _, v in cum]
    counts = [max(0, round(v - p)) for v, p in zip(values, [0.0, *values[:-1]], strict=True)]
    if len(counts) == len(bounds):
        counts.append(0)
    return Histogram(tuple(bounds), tuple(counts))


class PrometheusSource:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        window_s: float = 30.0,
        queries: PromQueries | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._session, self._base = session, base_url.rstrip("/")
        self._w, self._q = window_s, queries or PromQueries()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def _query(self, promql: str, now: float) -> list[Mapping[str, Any]]:
        url = f"{self._base}/api/v1/query"
        params = {"query": promql, "time": f"{now:.3f}"}
        async with self._session.get(url, params=params, timeout=self._timeout) as resp:
            body = await resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus query failed: {body.get('error', body)}")
        result: list[Mapping[str, Any]] = body["data"]["result"]
        return result

    async def collect(self, target: ScaleTarget, now: float) -> MetricSample | None:
        q = self._q
        sel = q.selector.format(ns=target.namespace, name=target.name)
        names = ("running", "waiting", "kv", "scraped_at", "finished", "prompt", "generated",
                 "inflight_deriv", "ttft", "tpot", "answers", "answer_tokens",
                 "router_queued")  # fmt: skip
        dep = f"{target.namespace}/{target.name}"
        texts = [getattr(q, n).format(sel=sel, w=int(self._w), dep=dep) for n in names]
        res = dict(
            zip(names, await asyncio.gather(*(self._query(t, now) for t in texts)), strict=True)
        )
        if not res["scraped_at"]:
            return None  # the deployment has no series: missing, the policy holds
        waiting = {r["metric"].get("pod", ""): float(r["value"][1]) for r in res["waiting"]}
        kv = {r["metric"].get("pod", ""): float(r["value"][1]) for r in res["kv"]}
        replicas = tuple(
            ReplicaSample(
                round(float(r["value"][1])), round(waiting.get(pod, 0.0)), kv.get(pod, 0.0)
            )
            for r in res["running"]
            for pod in [r["metric"].get("pod", "")]
        )
        finished = _scalar(res["finished"])
        return MetricSample(
            t=_scalar(res["scraped_at"]),
            replicas=replicas,
            arrival_rate=max(0.0, finished + _scalar(res["inflight_deriv"])),
            prompt_token_rate=_scalar(res["prompt"]),
            gen_token_rate=_scalar(res["generated"]),
            ttft=_histogram(res["ttft"]),
            tpot=_histogram(res["tpot"]),
            finish_rate=finished,
            finished_tokens_rate=_scalar(res["answer_tokens"]),
            gen_tokens=_histogram(res["answers"]),
            held=max(0, round(_scalar(res["router_queued"]))),
        )
