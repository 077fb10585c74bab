"""The router's Triton adapter against a real tritonserver running the simulated engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tierserve.dev.cluster.procs import free_ports
from tierserve.dev.testing import router
from tierserve.engine.triton import TritonServer, TritonSpec

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    http, grpc, metrics = free_ports(3)
    spec = TritonSpec("llama-3.1-8b-a100-40gb", "meta-llama/Llama-3.1-8B",
                      Path(tmp_path_factory.mktemp("triton")), http, grpc, metrics)
    server = TritonServer(spec)
    try:
        server.start()
    except Exception as exc:  # no tritonserver binary on this machine
        pytest.skip(f"tritonserver unavailable: {exc}")
    try:
        asyncio.run(server.wait_ready(90))
        yield server
    finally:
        server.stop()


async def test_openai_client_through_router_to_real_triton(triton: TritonServer) -> None:
    cfg = {"deployments": [{"name": "trt", "protocol": "triton",
                            "endpoints": [{"url": triton.spec.http_url}],
                            "triton": {"model": triton.spec.model_name},
                            "balancing": {"scrape_metrics": False}}],
           "routes": [{"model": "llama", "variants": [{"name": "v", "deployment": "trt"}]}]}
    async with router(cfg) as (_r, url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        chat = await client.chat.completions.create(
            model="llama", max_tokens=6, temperature=0,
            messages=[{"role": "user", "content": "hello there"}])
        assert chat.usage is not None and chat.usage.completion_tokens == 6
        assert chat.choices[0].finish_reason == "length"
        assert len((chat.choices[0].message.content or "").split()) == 6
        stream = await client.chat.completions.create(
            model="llama", max_tokens=5, stream=True,
            messages=[{"role": "user", "content": "hello"}])
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert len(text.split()) == 5
        comp = await client.completions.create(model="llama", prompt="x", max_tokens=3)
        assert comp.usage is not None and comp.usage.completion_tokens == 3
        await client.close()
