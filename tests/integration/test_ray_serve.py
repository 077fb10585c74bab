"""The simulated engine as a real Ray Serve application on a local (CPU-only) Ray."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
import openai
import pytest

from tierserve.core.profiles import get_profile
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.waiting import wait_until_async

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

PROFILE = get_profile("llama-3.1-8b-a100-40gb")
MODEL = "sim-8b"
APP = "sim"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    from tierserve.engine.serve_app import build_app

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = {"profile": PROFILE.name, "served_name": MODEL, "num_replicas": 2}
        serve.run(build_app(args), name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


async def engine_pids() -> set[int]:
    handle = serve.get_deployment_handle("SimEngine", APP)
    return set(await handle.broadcast("pid").results_async())


async def scrape(base: str, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    )


def running_at_least(base: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await scrape(base, "vllm:num_requests_running") >= n
    return check


async def test_replicas_follow_args(base: str) -> None:
    assert len(await engine_pids()) == 2


async def test_stream_with_openai_client(base: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    arrivals: list[float] = []
    usage = None
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi " * 40}], max_tokens=40,
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
        if chunk.usage:
            usage = chunk.usage
    await client.close()
    assert usage is not None and usage.completion_tokens == 40 == len(arrivals)
    # paced, never ahead of the profile's schedule (a lower bound: see test_engine_server;
    # Ray's per-chunk overhead only adds to it)
    expected = PROFILE.step_ms(1, 0) / 1000
    assert arrivals[-1] - arrivals[0] >= 0.25 * 39 * expected


async def test_metrics_and_gauges(base: str) -> None:
    before = await scrape(base, "vllm:request_success_total")
    async with aiohttp.ClientSession() as s:
        long_req = {"model": MODEL, "prompt": "x", "max_tokens": 400}
        task = asyncio.create_task(s.post(f"{base}/v1/completions", json=long_req))
        await wait_until_async(running_at_least(base, 1), 20, "the running gauge to rise",
                               interval=0.1)
        resp = await task
        assert resp.status == 200
        body = await resp.json()
    assert body["usage"]["completion_tokens"] == 400
    assert await scrape(base, "vllm:request_success_total") == before + 1
    assert await scrape(base, "vllm:gpu_cache_usage_perc") == 0
    assert await scrape(base, "vllm:time_to_first_token_seconds_count") >= 1


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{oops", 400), (b'{"model": "other", "prompt": "x"}', 404),
     (b'{"model": "sim-8b", "prompt": "x", "max_tokens": -1}', 400),
     (b'{"model": "sim-8b", "prompt": "x", "max_tokens": 10000000}', 400)],
)  # fmt: skip
async def test_bad_input(base: str, body: bytes, status: int) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{base}/v1/completions", data=body) as r:
        assert r.status == status
        assert set((await r.json())["error"]) == {"message", "type", "param", "code"}


async def test_kill_replica_under_load(base: str) -> None:
    pids = await engine_pids()
    victim = sorted(pids)[0]
    body = {"model": MODEL, "prompt": "x", "max_tokens": 150}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as s:

        async def one() -> tuple[int, dict[str, object]]:
            async with s.post(f"{base}/v1/completions", json=body) as r:
                return r.status, await r.json()

        tasks = [asyncio.create_task(one()) for _ in range(12)]
        await wait_until_async(running_at_least(base, 4), 20, "4 requests running",
                               interval=0.05)
        os.kill(victim, signal.SIGKILL)
        results = await asyncio.gather(*tasks)
    statuses = [status for status, _ in results]
    print("statuses after replica kill:", sorted(statuses))
    assert set(statuses) <= {200, 503}, statuses
    for status, payload in results:
        if status == 503:
            assert "error" in payload
        else:
            assert payload["usage"] == {"prompt_tokens": 1, "completion_tokens": 150,
                                        "total_tokens": 151}  # fmt: skip

    async def restarted() -> bool:
        try:
            now = await engine_pids()
        except Exception:  # Ray raises assorted errors while the replica is replaced
            return False
        return len(now) == 2 and victim not in now

    await wait_until_async(restarted, 90, f"Ray to replace the killed replica {victim}",
                           interval=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        for _ in range(4):
            async with s.post(f"{base}/v1/completions", json={**body, "max_tokens": 3}) as r:
                assert r.status == 200


async def test_stream_disconnect_aborts(base: str) -> None:
    body = {"model": MODEL, "prompt": "x", "max_tokens": 5000, "stream": True}
    async with aiohttp.ClientSession() as s, s.post(f"{base}/v1/completions", json=body) as resp:
        assert resp.status == 200
        await resp.content.readline()
        assert await scrape(base, "vllm:num_requests_running") == 1
    # the connection is closed mid-stream; Serve cancels the request down to the engine

    async def idle() -> bool:
        return await scrape(base, "vllm:num_requests_running") == 0

    await wait_until_async(idle, 30, "the aborted stream to stop running in the engine",
                           interval=0.2)
