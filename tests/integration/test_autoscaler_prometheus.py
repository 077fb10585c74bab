"""Every PromQL query of ``PrometheusSource`` returns data from a real Prometheus
(Debian's package, unpacked by ``tierserve.dev.cluster.prometheus``) scraping a real
simulated engine (``tierserve engine``) and a real router in front of it under load,
and the resulting sample agrees with what they served (the router's gate queues what
the engine is not given, and the sample counts it); a stopped Prometheus makes the
source fail (the controller then holds)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from tierserve.autoscaler.controller import ScaleTarget
from tierserve.autoscaler.sources import PrometheusSource, PromQueries
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import ReplicaCapacity
from tierserve.dev.cluster import prometheus
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.waiting import wait_until, wait_until_async

NS, NAME = "team", "chat"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "engine.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", "engine",
                             "--profile", "qwen3.6-35b-a3b-gb10", "--served-name", "m",
                             "--port", str(port), "--host", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
            return bool(resp.status == 200)

    try:
        wait_until(up, 60, "simulated engine serving /metrics")
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _serving(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


@pytest.fixture
def router(engine: str, tmp_path: Path) -> Iterator[str]:
    """``tierserve router`` with a gate of 2 in flight per replica in front of the engine,
    so a load of 12 concurrent requests leaves about 10 queued in the router."""
    config = tmp_path / "router.yaml"
    config.write_text(json.dumps({
        "deployments": [{"name": f"{NS}/{NAME}", "served_model": "m",
                         "endpoints": [{"url": engine}],
                         "max_inflight_per_replica": 2,
                         "balancing": {"scrape_metrics": False}}],
        "routes": [{"model": "m", "variants": [{"name": "v", "deployment": f"{NS}/{NAME}"}]}],
    }))  # fmt: skip
    port = free_port()
    log = (tmp_path / "router.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", "router",
                             "--config", str(config), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _serving(url + "/readyz"), 60, "router ready")
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture
def prom(engine: str, router: str, tmp_path: Path) -> Iterator[prometheus.LocalPrometheus]:
    prometheus.binary_or_skip()
    targets = [prometheus.ScrapeTarget(engine + "/metrics", prometheus.deployment_labels(NS, NAME)),
               prometheus.ScrapeTarget(router + "/metrics", {})]  # fmt: skip
    p = prometheus.LocalPrometheus(tmp_path / "prom", targets, interval_s=1.0).start()
    try:
        yield p
    finally:
        p.stop()


def _target() -> ScaleTarget:
    return ScaleTarget(namespace=NS, name=NAME, slo=Slo(ttft_p95_ms=2000, tpot_p95_ms=50),
                       capacity=ReplicaCapacity(max_concurrency=8, decode_tokens_per_s=300,
                                                prefill_tokens_per_s=3000), limits=Limits())


async def _load(url: str, n: int, concurrency: int) -> None:
    client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await client.completions.create(model="m", prompt="hello " * 8, max_tokens=32)

    await asyncio.gather(*(one() for _ in range(n)))
    await client.close()


def test_every_promql_query_returns_data(engine: str, router: str,
                                         prom: prometheus.LocalPrometheus) -> None:
    queries = PromQueries()
    sel = queries.selector.format(ns=NS, name=NAME)

    async def answered(promql: str) -> bool:
        # a blocking HTTP query: off the loop, so the load keeps flowing meanwhile
        return bool(await asyncio.to_thread(prom.query, promql))

    async def run() -> None:
        started = time.time()
        load = asyncio.create_task(_load(router, 400, 12))  # outlasts the waits below
        names = [n for n in PromQueries.model_fields if n != "selector"]
        for name in names:
            text = getattr(queries, name).format(sel=sel, w=6, dep=f"{NS}/{NAME}")
            await wait_until_async(functools.partial(answered, text), 60,
                                   f"{name}: data for {text}", interval=0.5)
        async with aiohttp.ClientSession() as session:
            source = PrometheusSource(session, prom.url, window_s=6)
            sample = await source.collect(_target(), time.time())
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
        assert sample is not None
        # the sample is stamped with a scrape taken under this load (no wall-time bound)
        assert started <= sample.t <= time.time(), (started, sample.t)
        assert sample.running > 0 and sample.arrival_rate > 0 and sample.gen_token_rate > 0
        # the gate lets 2 through; the rest of the 12 wait in the router, not the engine
        assert sample.running <= 2 and sample.held >= 5, sample
        assert sample.waiting >= sample.held
        assert sample.ttft is not None and sample.ttft.total > 0
        assert sample.tpot is not None and sample.tpot.total > 0
        # answers of 32 tokens: the length histogram's buckets and its sum
        assert sample.gen_tokens is not None and sample.gen_tokens.total > 0
        assert sample.finished_tokens_rate > 0

    asyncio.run(run())
    wait_until(lambda: prom.query(f"sum(vllm:request_success_total{{{sel}}})") != [], 10,
               "counter scraped")
    done = float(prom.query(f"sum(vllm:request_success_total{{{sel}}})")[0]["value"][1])
    assert done > 0
    # the same series under the label the recording rules and dashboards group by
    by_deployment = prom.query(
        f'sum(vllm:request_success_total{{namespace="{NS}",deployment="{NAME}"}})')
    assert by_deployment and float(by_deployment[0]["value"][1]) >= done


def test_stopped_prometheus_fails_the_source(engine: str,
                                             prom: prometheus.LocalPrometheus) -> None:
    prom.stop()

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            source = PrometheusSource(session, prom.url, timeout_s=2)
            with pytest.raises(aiohttp.ClientError):
                await source.collect(_target(), time.time())

    asyncio.run(run())
