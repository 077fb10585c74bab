"""The live simulated engine over real HTTP: OpenAI client, SSE, metrics, bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from tierserve.core.profiles import get_profile
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.waiting import wait_until, wait_until_async
from tierserve.engine.server import EngineConfig, start

PROFILE = get_profile("llama-3.1-8b-a100-40gb")  # ~13 ms/token: easy to see on a busy CPU
MODEL = "sim-8b"


async def metric(session: aiohttp.ClientSession, base: str, name: str) -> float:
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
async def base(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    cold = getattr(request, "param", 0.0)
    port = free_port()
    runner = await start(EngineConfig(PROFILE, MODEL, cold_start_s=cold), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_stream_with_openai_client(base: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x")
    arrivals: list[float] = []
    text = ""
    usage = None
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello " * 100}], max_tokens=40,
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == 40 == len(arrivals)
    assert usage.prompt_tokens == 150 + 4
    assert len(text.split()) == 40
    # Paced, not dumped at once: the engine never runs ahead of its per-token schedule and
    # catches up at most MAX_LAG_S (0.25 s of this ~0.5 s stream) after a stall. A lower
    # bound, which a slow machine cannot break; the speed itself is a benchmark figure.
    expected_itl = PROFILE.step_ms(1, 0) / 1000
    assert arrivals[-1] - arrivals[0] >= 0.25 * 39 * expected_itl
    await client.close()


async def test_completions_and_metrics(base: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x")
    results = await asyncio.gather(
        *[
            client.completions.create(model=MODEL, prompt="abcd" * 50, max_tokens=10)
            for _ in range(5)
        ]
    )
    assert all(r.usage and r.usage.completion_tokens == 10 for r in results)
    assert [m.id for m in (await client.models.list()).data] == [MODEL]
    await client.close()
    async with aiohttp.ClientSession() as s:
        assert await metric(s, base, "vllm:request_success_total") == 5
        assert await metric(s, base, "vllm:generation_tokens_total") == 50
        assert await metric(s, base, "vllm:prompt_tokens_total") == 250
        assert await metric(s, base, "vllm:time_to_first_token_seconds_count") == 5
        assert await metric(s, base, "vllm:num_requests_running") == 0
        async with s.get(f"{base}/metrics") as resp:
            text = await resp.text()
        for name in ("vllm:gpu_cache_usage_perc", "vllm:num_requests_waiting",
                     "vllm:time_per_output_token_seconds", "vllm:e2e_request_latency_seconds"):
            assert f'{name}' in text and f'model_name="{MODEL}"' in text


@pytest.mark.parametrize(
    ("path", "data", "status"),
    [
        ("/v1/chat/completions", b"{not json", 400),
        ("/v1/chat/completions", b'"a string"', 422),
        ("/v1/chat/completions", b'{"model": "no", "messages": [{"role":"u","content":""}]}', 404),
        ("/v1/chat/completions", b'{"model": "sim-8b", "messages": []}', 400),
        ("/v1/completions", b'{"model": "sim-8b", "prompt": "x", "max_tokens": -5}', 400),
        ("/v1/completions", b'{"model": "sim-8b", "prompt": "x", "max_tokens": 99999999}', 400),
        ("/v1/completions", b'{"model": "sim-8b", "prompt": "x", "max_tokens": "ten"}', 422),
        ("/v1/completions", b'{"model": "sim-8b", "prompt": "' + b"x" * 3_000_000 + b'"}', 400),
        ("/v1/completions", b"x" * (5 * 1024 * 1024), 413),
        ("/v1/nothing", b"{}", 404),
    ],
)
async def test_bad_input_is_an_openai_error(base: str, path: str, data: bytes, status: int) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{base}{path}", data=data) as resp:
        assert resp.status == status
        body = await resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_client_disconnect_aborts(base: str) -> None:
    body = {"model": MODEL, "prompt": "x", "max_tokens": 5000, "stream": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/v1/completions", json=body) as resp:
            await resp.content.readline()
            assert await metric(s, base, "vllm:num_requests_running") == 1
        # leaving the block closes the connection mid-stream

        async def idle() -> bool:
            return await metric(s, base, "vllm:num_requests_running") == 0

        await wait_until_async(idle, 10, "the aborted stream to stop running")
        assert await metric(s, base, "vllm:request_success_total") == 0


@pytest.mark.parametrize("base", [0.5], indirect=True)
async def test_cold_start(base: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/health") as resp:
            assert resp.status == 503
        body = {"model": MODEL, "prompt": "x", "max_tokens": 2}
        async with s.post(f"{base}/v1/completions", json=body) as resp:
            assert resp.status == 503

        async def ready() -> bool:
            async with s.get(f"{base}/health") as r:
                return r.status == 200

        await wait_until_async(ready, 10, "/health to answer 200 after the cold start")


def test_cli_process() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tierserve.cli.main", "engine", "--profile", PROFILE.name,
         "--port", str(port), "--served-name", MODEL],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return bool(r.status == 200)

    try:
        wait_until(healthy, 20, "the engine CLI to become healthy")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_profile_replace_keeps_api() -> None:
    fast = dataclasses.replace(PROFILE, step_base_ms=1.0)
    assert fast.step_ms(1, 0) < PROFILE.step_ms(1, 0)


async def test_loadgen_counts_tokens(base: str) -> None:
    from tierserve.dev.engine_loadgen import run_load

    result = await run_load(base, MODEL, concurrency=4, duration_s=0.5, max_tokens=10)
    assert result.requests >= 4 and result.output_tok_s > 0
    assert result.mean_itl_ms > 0
