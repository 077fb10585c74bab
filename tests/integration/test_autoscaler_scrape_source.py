"""``ScrapeSource`` against an engine's real ``/metrics`` over HTTP (the engine's own
:class:`EngineMetrics` and :class:`RequestTimer` behind an aiohttp server on 127.0.0.1):
the first scrape is a baseline, not a sample of zero rates; the next gives the rates
over the interval, including the prompt of a request that is still decoding."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tierserve.autoscaler.controller import ScaleTarget
from tierserve.autoscaler.sources import ScrapeSource
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import ReplicaCapacity
from tierserve.engine.metrics import EngineMetrics
from tierserve.engine.timing import RequestTimer


@pytest.fixture
async def engine() -> AsyncIterator[tuple[EngineMetrics, str]]:
    metrics = EngineMetrics("m")

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield metrics, f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    finally:
        await runner.cleanup()


def _target(url: str) -> ScaleTarget:
    return ScaleTarget(
        namespace="ns", name="m", slo=Slo(ttft_p95_ms=2500, tpot_p95_ms=40),
        capacity=ReplicaCapacity(max_concurrency=1, decode_tokens_per_s=40.0,
                                 prefill_tokens_per_s=80.0, usable_fraction=0.9),
        limits=Limits(min_replicas=1, max_replicas=2, cold_start_s=10), endpoints=(url,),
    )


async def test_first_scrape_is_a_baseline_then_rates_over_the_interval(
    engine: tuple[EngineMetrics, str],
) -> None:
    metrics, url = engine
    target = _target(url)
    async with aiohttp.ClientSession() as session:
        source = ScrapeSource(session)
        assert await source.collect(target, 100.0) is None  # nothing to difference yet
        timer = RequestTimer(metrics, clock=lambda: 100.0)
        timer.tokens(1, prompt_tokens=60)  # prefill done, still decoding
        timer.tokens(3, prompt_tokens=60)
        metrics.set_state(1, 2, 0.5)
        sample = await source.collect(target, 102.0)
    assert sample is not None
    assert sample.prompt_token_rate == 30.0 and sample.gen_token_rate == 2.0
    assert sample.running == 1 and sample.waiting == 2
    assert sample.arrival_rate == 1.5  # nothing finished, in flight grew by 3 over 2 s


async def test_answer_lengths_and_their_mean_come_through_the_scrape(
    engine: tuple[EngineMetrics, str],
) -> None:
    metrics, url = engine
    target = _target(url)
    async with aiohttp.ClientSession() as session:
        source = ScrapeSource(session)
        assert await source.collect(target, 100.0) is None
        for n in (3, 40, 40):  # three answers, finished in the interval
            timer = RequestTimer(metrics, clock=lambda: 100.0)
            timer.tokens(n, prompt_tokens=10)
            timer.finished("stop", prompt_tokens=10)
        sample = await source.collect(target, 102.0)
    assert sample is not None and sample.gen_tokens is not None
    # vLLM's 1-2-5 buckets: 3 in (2, 5], both 40s in (20, 50]
    by_bound = dict(zip(sample.gen_tokens.bounds, sample.gen_tokens.counts, strict=False))
    assert by_bound[5] == 1 and by_bound[50] == 2 and sample.gen_tokens.total == 3
    assert sample.finish_rate == 1.5 and sample.finished_tokens_rate == 41.5  # 83 tokens / 2 s
