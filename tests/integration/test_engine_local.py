"""The local runtime manager behind ``tierserve operator --target local``."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import openai
import pytest

from tierserve.dev.waiting import wait_until_async
from tierserve.engine.engines import SERVE_DEPLOYMENTS
from tierserve.engine.local import LocalRuntimes, LocalSpec, LocalStatus, free_port
from tierserve.engine.local_runner import app_name
from tierserve.engine.local_triton import TritonRunner
from tierserve.engine.triton import TritonServer

PROFILE = "llama-3.1-8b-a100-40gb"


async def until(
    probe: Callable[[], Awaitable[LocalStatus | None]],
    cond: Callable[[LocalStatus], bool],
    what: str,
) -> LocalStatus:
    """Wait until the probed status meets ``cond``; that status."""
    met: list[LocalStatus] = []

    async def check() -> bool:
        status = await probe()
        if status is not None and cond(status):
            met.append(status)
        return bool(met)

    await wait_until_async(check, 90, what, interval=0.2)
    return met[-1]


def triton_server(local: LocalRuntimes, key: str) -> TritonServer | None:
    runner = local.runner("triton")
    assert isinstance(runner, TritonRunner)
    return runner.server(key)


@pytest.mark.triton
async def test_triton_local_target(tmp_path: Path) -> None:
    local = LocalRuntimes(tmp_path)
    key = "default/llama"
    try:
        await local.apply(LocalSpec(key, "triton", PROFILE, "llama-8b"))
        status = await until(lambda: local.status(key), lambda s: s.ready, "the local Triton ready")
        assert status.replicas == 1 and status.endpoint.startswith("http://127.0.0.1:")
        url = f"{status.endpoint}/v2/models/{status.model_name}/generate"
        body = {"text_input": "hi", "max_tokens": 4}
        async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
            assert r.status == 200 and (await r.json())["completion_tokens"] == 4

        server = triton_server(local, key)
        assert server is not None and server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(server.proc.wait)
        after_kill = await local.status(key)
        assert after_kill is not None and not after_kill.ready and after_kill.restarts == 1
        status = await until(lambda: local.status(key), lambda s: s.ready, "ready again")

        await local.apply(LocalSpec(key, "triton", PROFILE, "llama-8b", replicas=2))
        status = await until(lambda: local.status(key), lambda s: s.ready, "ready at 2 replicas")
        assert status.replicas == 2
        restarted = triton_server(local, key)
        pid = restarted.pid if restarted is not None else None
    finally:
        await local.close()
    assert local.keys() == []
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def replica_pids(key: str, count: int) -> set[int]:
    """The process ids of the engine replicas of ``key``'s Serve app, once ``count`` answer."""
    from ray import serve

    handle = serve.get_deployment_handle(SERVE_DEPLOYMENTS["simulated"], app_name(key))
    seen: set[int] = set()

    async def all_seen() -> bool:
        seen.update(await asyncio.gather(*(handle.pid.remote() for _ in range(8))))
        return len(seen) >= count

    await wait_until_async(all_seen, 60, f"{count} replica(s) answering")
    return seen


@pytest.mark.ray
async def test_ray_serve_local_target(tmp_path: Path) -> None:
    local = LocalRuntimes(tmp_path, ray_http_port=free_port(), ray_num_cpus=2)
    key = "team-a/chat"
    try:
        await local.apply(LocalSpec(key, "rayServe", PROFILE, "chat-8b", threads=1))
        status = await until(lambda: local.status(key), lambda s: s.ready and s.replicas == 1,
                             "one ready replica")
        client = openai.AsyncOpenAI(base_url=f"{status.endpoint}/v1", api_key="x")
        resp = await client.completions.create(model="chat-8b", prompt="hello", max_tokens=5)
        assert resp.usage is not None and resp.usage.completion_tokens == 5
        await client.close()
        async with aiohttp.ClientSession() as s, s.get(status.metrics_url) as r:
            text = await r.text()
        assert 'request_success_total{finished_reason="length",model_name="chat-8b"} 1.0' in text

        first = await replica_pids(key, 1)
        await local.apply(LocalSpec(key, "rayServe", PROFILE, "chat-8b", replicas=2,
                                     threads=1))
        status = await until(lambda: local.status(key), lambda s: s.ready and s.replicas == 2,
                             "two ready replicas")
        both = await replica_pids(key, 2)
        # a new count adds a replica next to the serving one instead of replacing it (threads
        # are fixed: a count that changed the capped thread count would be new settings)
        assert first <= both
        await local.apply(LocalSpec(key, "rayServe", PROFILE, "chat-8b", replicas=1,
                                     threads=1))
        await until(lambda: local.status(key), lambda s: s.ready and s.replicas == 1,
                    "back to one replica")
        assert await replica_pids(key, 1) <= both

        await local.delete(key)
        assert await local.status(key) is None
    finally:
        await local.close()
