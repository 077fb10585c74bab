"""The llama.cpp engine standalone (``tierserve engine --engine llamacpp``) with real
models, through the official ``openai`` client: answers that depend on the prompt,
streaming, reproducibility, real log-probabilities, exact usage, metrics, the queue."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tierserve.dev.cluster.procs import free_port
from tierserve.dev.real_models import ENGINES, GEMMA3, SMOLLM2
from tierserve.dev.testing import vllm_totals
from tierserve.dev.waiting import wait_until, wait_until_async

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llamacpp
MODEL = "smollm2"


def ask(question: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tierserve.cli.main", "engine", "--engine", "llamacpp",
         "--model", SMOLLM2, "--threads", "1", "--port", str(port), "--served-name", MODEL],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return bool(r.status == 200)

    try:
        wait_until(healthy, 60, "the llama.cpp engine to load its model")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.fixture
async def client(base: str) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    yield c
    await c.close()


def chatml_tokens(messages: list[ChatCompletionMessageParam]) -> int:
    """The prompt length by SmolLM2's own tokenizer, with ChatML written out by hand."""
    from tierserve.engine.model_source import DEFAULT_CACHE, resolve

    path = resolve(SMOLLM2, DEFAULT_CACHE, in_place=True)
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    text = "".join(f"<|im_start|>{m['role']}\n{m.get('content')}<|im_end|>\n" for m in messages)
    return len(vocab.tokenize((text + "<|im_start|>assistant\n").encode(), add_bos=False,
                              special=True))


async def test_answers_depend_on_the_prompt(client: openai.AsyncOpenAI) -> None:
    answers = {}
    for country, capital in (("France", "Paris"), ("Japan", "Tokyo")):
        got = await client.chat.completions.create(
            model=MODEL, messages=ask(f"What is the capital of {country}?"),
            max_tokens=12, temperature=0)
        answers[capital] = got.choices[0].message.content or ""
    assert "Paris" in answers["Paris"] and "Tokyo" not in answers["Paris"]
    assert "Tokyo" in answers["Tokyo"] and "Paris" not in answers["Tokyo"]


async def test_stream_usage_and_logprobs(base: str, client: openai.AsyncOpenAI) -> None:
    before = await vllm_totals(base)
    messages = ask("Name a primary colour.")
    stream = await client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=8, temperature=0, stream=True,
        logprobs=True, top_logprobs=3, stream_options={"include_usage": True})
    pieces, logprobs, finish, usage = [], [], None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        if chunk.choices:
            choice = chunk.choices[0]
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
            for entry in (choice.logprobs.content or []) if choice.logprobs else []:
                logprobs.append(entry)
    assert sum(1 for p in pieces if p) >= 3  # several chunks, as they were sampled
    assert usage is not None and usage.completion_tokens == len(logprobs) == 8
    assert finish == "length"
    assert usage.prompt_tokens == chatml_tokens(messages)
    assert all(isinstance(e.logprob, float) and e.logprob <= 0 for e in logprobs)
    assert any(e.logprob < 0 for e in logprobs)
    for e in logprobs:  # greedy: the chosen token is the most likely one
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].logprob == pytest.approx(e.logprob)
    after = await vllm_totals(base)
    assert after["vllm:generation_tokens_total"] - before.get(
        "vllm:generation_tokens_total", 0) == 8
    assert after["vllm:prompt_tokens_total"] - before.get(
        "vllm:prompt_tokens_total", 0) == usage.prompt_tokens
    assert after["vllm:inter_token_latency_seconds_count"] - before.get(
        "vllm:inter_token_latency_seconds_count", 0) == 7
    assert after["vllm:time_to_first_token_seconds_count"] - before.get(
        "vllm:time_to_first_token_seconds_count", 0) == 1


async def test_seeded_sampling_reproduces(client: openai.AsyncOpenAI) -> None:
    async def once(temperature: float, seed: int) -> str:
        got = await client.completions.create(model=MODEL, prompt="Once upon a time",
                                              max_tokens=10, temperature=temperature, seed=seed)
        return got.choices[0].text

    assert await once(0, 1) == await once(0, 1)
    first = await once(1.0, 42)
    assert first == await once(1.0, 42)
    got = await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4,
                                          logprobs=2, temperature=0)
    lp = got.choices[0].logprobs
    assert lp is not None and lp.token_logprobs is not None and len(lp.token_logprobs) == 4
    assert all(x is not None and x <= 0 for x in lp.token_logprobs)


async def test_stop_ends_with_stop(client: openai.AsyncOpenAI) -> None:
    got = await client.chat.completions.create(
        model=MODEL, messages=ask("What is the capital of France?"),
        max_tokens=20, temperature=0, stop=[" is"])
    choice = got.choices[0]
    assert choice.finish_reason == "stop" and " is" not in (choice.message.content or "")


async def test_one_sequence_at_a_time_the_rest_wait(base: str,
                                                    client: openai.AsyncOpenAI) -> None:
    calls = [asyncio.create_task(client.completions.create(
        model=MODEL, prompt=f"Count to {n}:", max_tokens=12, temperature=0))
        for n in (5, 6, 7)]  # fmt: skip
    seen: list[dict[str, float]] = []

    async def queued() -> bool:
        seen.append(await vllm_totals(base))
        m = seen[-1]
        return m["vllm:num_requests_waiting"] >= 1 and m["vllm:num_requests_running"] == 1

    await wait_until_async(queued, 30, "a request running and one waiting")
    assert 0 < seen[-1]["vllm:kv_cache_usage_perc"] < 1
    results = await asyncio.gather(*calls)
    assert all(r.usage is not None and r.usage.completion_tokens >= 1 for r in results)
    assert max(m["vllm:num_requests_running"] for m in seen) == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"model": MODEL, "prompt": "hi", "max_tokens": 5000}, 400, "context_length_exceeded"),
    ({"model": MODEL, "prompt": [10**7]}, 400, "invalid_value"),
    ({"model": MODEL, "prompt": "hi", "temperature": "warm"}, 422, "invalid_type"),
    ({"model": "other", "prompt": "hi"}, 404, "model_not_found"),
])
async def test_bad_input(base: str, body: dict[str, object], status: int, code: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{base}/v1/completions", json=body) as r:
        assert r.status == status
        assert (await r.json())["error"]["code"] == code


async def test_gemma_base_model_needs_and_uses_a_template() -> None:
    from tierserve.engine.engines import engine_args, make_backend
    from tierserve.engine.server import ServerConfig, start

    async def serve(args: dict[str, object]) -> tuple[str, object]:
        port = free_port()
        runner = await start(ServerConfig("gemma", lambda: make_backend(engine_args(args))),
                             "127.0.0.1", port)
        base = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            async with aiohttp.ClientSession() as s, s.get(f"{base}/health") as r:
                return r.status == 200

        await wait_until_async(ready, 60, "Gemma loaded")
        return base, runner

    chat = {"model": "gemma", "messages": [{"role": "user", "content": "What is the "
                                            "capital of Japan?"}], "max_tokens": 8,
            "temperature": 0}
    base, runner = await serve({"engine": "llamacpp", "model": GEMMA3, "threads": 1})
    try:
        async with aiohttp.ClientSession() as s, s.post(f"{base}/v1/chat/completions",
                                                        json=chat) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "no_chat_template"
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
    base, runner = await serve(dict(ENGINES["gemma3-270m"]))
    try:
        async with aiohttp.ClientSession() as s, s.post(f"{base}/v1/chat/completions",
                                                        json=chat) as r:
            body = await r.json()
        choice = body["choices"][0]
        assert "Tokyo" in choice["message"]["content"] and choice["finish_reason"] == "stop"
        assert "\n" not in choice["message"]["content"]
    finally:
        await runner.cleanup()  # type: ignore[attr-defined]
