"""The simulated engine inside a real tritonserver (nvidia-pytriton's binary, CPU)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tierserve.core.profiles import get_profile
from tierserve.dev.cluster.procs import free_ports
from tierserve.dev.testing import vllm_totals
from tierserve.dev.waiting import wait_until_async
from tierserve.engine.triton import TritonServer, TritonSpec

pytestmark = pytest.mark.triton
PROFILE = get_profile("llama-3.1-8b-a100-40gb")


def make_server(workdir: Path) -> TritonServer:
    http, grpc, metrics = free_ports(3)
    spec = TritonSpec(PROFILE.name, "meta-llama/Llama-3.1-8B", workdir, http, grpc, metrics)
    return TritonServer(spec)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    server = make_server(tmp_path_factory.mktemp("triton"))
    server.start()
    try:
        asyncio.run(server.wait_ready(90))
        yield server
    finally:
        server.stop()


async def test_generate_and_generate_stream(triton: TritonServer) -> None:
    base = f"{triton.spec.http_url}/v2/models/{triton.spec.model_name}"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/generate", json={"text_input": "x" * 40, "max_tokens": 8}) as r:
            assert r.status == 200
            body = await r.json()
        assert body["completion_tokens"] == 8 and body["prompt_tokens"] == 10
        assert len(body["text_output"].split()) == 8
        req = {"text_input": "hello", "max_tokens": 30, "stream": True}
        arrivals: list[float] = []
        async with s.post(f"{base}/generate_stream", json=req) as r:
            assert r.status == 200
            async for line in r.content:
                if line.startswith(b"data: "):
                    arrivals.append(time.monotonic())
                    last = json.loads(line[6:])
        assert len(arrivals) == 30 and last["completion_tokens"] == 30
        # paced, never ahead of the profile's schedule (a lower bound: see test_engine_server)
        expected = PROFILE.step_ms(1, 0) / 1000
        assert arrivals[-1] - arrivals[0] >= 0.25 * 29 * expected
        async with s.post(f"{base}/generate", json={"max_tokens": 3}) as r:
            assert r.status == 400


def test_tritonclient_grpc_stream(triton: TritonServer) -> None:
    import tritonclient.grpc as grpcclient

    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(triton.spec.grpc_url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        inputs = [
            grpcclient.InferInput("text_input", [1], "BYTES"),
            grpcclient.InferInput("max_tokens", [1], "INT32"),
            grpcclient.InferInput("stream", [1], "BOOL"),
            grpcclient.InferInput("prompt_tokens", [1], "INT32"),
        ]
        inputs[0].set_data_from_numpy(np.array([b"hi"], dtype=np.object_))
        inputs[1].set_data_from_numpy(np.array([12], dtype=np.int32))
        inputs[2].set_data_from_numpy(np.array([True]))
        inputs[3].set_data_from_numpy(np.array([500], dtype=np.int32))
        client.async_stream_infer(triton.spec.model_name, inputs, request_id="r1")
        texts = []
        while True:
            result, error = results.get(timeout=30)
            assert error is None
            texts.append(result.as_numpy("text_output")[0].decode())
            assert result.as_numpy("prompt_tokens")[0] == 500
            if result.as_numpy("completion_tokens")[0] == 12:
                break
        assert len(texts) == 12
    finally:
        client.stop_stream()
        client.close()


async def test_triton_metrics(triton: TritonServer) -> None:
    """Triton's own series, and the engine's vLLM families on the same port (Triton
    custom metrics), observed per request and per token as on the HTTP server."""
    base = triton.spec.metrics_url.removesuffix("/metrics")
    before = await vllm_totals(base)
    gen = f"{triton.spec.http_url}/v2/models/{triton.spec.model_name}/generate_stream"
    # a bound on a hang (a request that never gets its final response), not a timing
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        async with s.post(gen, json={"text_input": "x" * 40, "max_tokens": 6,
                                     "stream": True}) as r:
            assert r.status == 200
            await r.read()
        async with s.get(triton.spec.metrics_url) as r:
            text = await r.text()
    name = triton.spec.model_name
    assert f'nv_inference_request_success{{model="{name}",version="1"}}' in text
    assert "nv_inference_count" in text and "nv_inference_request_duration_us" in text
    after = await vllm_totals(base)

    def grew(sample: str) -> float:
        return after.get(sample, 0.0) - before.get(sample, 0.0)
    assert grew("vllm:generation_tokens_total") == 6
    assert grew("vllm:prompt_tokens_total") == 10
    assert grew("vllm:request_success_total") == 1
    assert grew("vllm:time_to_first_token_seconds_count") == 1
    assert grew("vllm:inter_token_latency_seconds_count") == 5  # per token after the first
    assert grew("vllm:time_per_output_token_seconds_count") == 1
    assert grew("vllm:e2e_request_latency_seconds_count") == 1
    for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                  "vllm:kv_cache_usage_perc"):
        assert gauge in after, gauge


async def test_killed_server_is_not_ready(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    try:
        await server.wait_ready(90)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        # The HTTP port can stop answering before the kernel has finished the process, so
        # wait for both (a bare `ready()` loop then `alive()` check raced, seen in CI).

        async def gone() -> bool:
            return not server.alive() and not await server.ready()

        await wait_until_async(gone, 10, "the killed server to be unready and reaped")
        assert not await server.ready()
        server.start()  # restart on the same ports and workdir
        await server.wait_ready(90)
    finally:
        server.stop()
    assert server.pid is None


async def test_cold_start_delays_readiness(tmp_path: Path) -> None:
    http, grpc, metrics = free_ports(3)
    spec = TritonSpec(PROFILE.name, "cold", tmp_path, http, grpc, metrics, cold_start_s=1.5)
    server = TritonServer(spec)
    server.start()
    try:
        assert await server.wait_ready(90) >= 1.5  # a lower bound: never flaky
    finally:
        server.stop()
