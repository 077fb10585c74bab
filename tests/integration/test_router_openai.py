"""The official openai client, streaming and not, through the router to real backends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tierserve.dev.testing import router, simple_config, stub
from tierserve.dev.waiting import wait_until_async


def _error_body(error: openai.APIStatusError) -> dict[str, Any]:
    """The OpenAI error object the client unwrapped (typed ``object`` by the client)."""
    body = error.body
    assert isinstance(body, dict), body
    return body


async def test_openai_client_chat_completions_models() -> None:
    async with stub(name="alpha") as (_s, backend), \
            router(simple_config({"d": [backend]}, {"m": {"d": 1}})) as (_r, url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        chat = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert chat.choices[0].message.content == "alpha alpha alpha"
        assert chat.usage is not None and chat.usage.completion_tokens == 3
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True)
        parts = [c.choices[0].delta.content async for c in stream if c.choices]
        assert "".join(p for p in parts if p) == "alpha " * 4
        comp = await client.completions.create(model="m", prompt="hi", max_tokens=2)
        assert comp.choices[0].text == "alpha alpha"
        cstream = await client.completions.create(model="m", prompt="hi", max_tokens=2,
                                                  stream=True)
        assert "".join([c.choices[0].text async for c in cstream]) == "alpha alpha "
        models = await client.models.list()
        assert [m.id for m in models.data] == ["m"]
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="missing",
                                                 messages=[{"role": "user", "content": "x"}])
        assert _error_body(info.value)["code"] == "model_not_found"
        await client.close()


async def test_served_model_name_is_rewritten_and_engine_errors_pass_through() -> None:
    async with stub(name="beta", fail_status=400) as (s, backend):
        s.keep_bodies = True
        cfg = simple_config({"d": [backend]}, {"public": {"d": 1}})
        cfg["deployments"][0]["served_model"] = "org/beta-8b"
        async with router(cfg) as (_r, url):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(
                    model="public", messages=[{"role": "user", "content": "x"}])
            assert _error_body(info.value)["message"] == "beta failed"
            assert s.bodies[0]["model"] == "org/beta-8b"
            assert s.hits == 1  # 4xx is never retried
            await client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def engine() -> Iterator[str]:
    """The simulated engine from the engines issue, as a real process."""
    probe = subprocess.run([sys.executable, "-m", "tierserve.cli.main", "engine", "--help"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("tierserve engine is not available")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", "engine", "--profile",
                             "llama-3.1-8b-h100", "--port", str(port), "--served-name", "llama"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def test_openai_client_through_router_to_simulated_engine(engine: str) -> None:
    import aiohttp

    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(engine + "/v1/models") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until_async(up, 60, "the simulated engine")
    cfg = simple_config({"eng": [engine]}, {"chat": {"eng": 1}})
    cfg["deployments"][0]["served_model"] = "llama"
    cfg["deployments"][0]["balancing"]["scrape_metrics"] = True
    async with router(cfg) as (_r, url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        chat = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=5)
        assert chat.choices[0].finish_reason in ("length", "stop")
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], max_tokens=5,
            stream=True)
        chunks = [c async for c in stream]
        assert chunks and any(c.choices and c.choices[0].finish_reason for c in chunks)
        await client.close()
