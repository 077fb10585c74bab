"""The serving code over the Backend protocol, with a fake backend: the aiohttp server
(real, on 127.0.0.1) streams its chunks, reports its prompt count and finish reason,
passes its log-probabilities through, turns its refusals into OpenAI 4xx, reads its
queue state into the gauges and observes latency per token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import aiohttp
import openai
import pytest

from tierserve.dev.cluster.procs import free_port
from tierserve.dev.testing import vllm_totals
from tierserve.dev.waiting import wait_until_async
from tierserve.engine.backend import Chunk, EngineState, Prepared, TokenOut
from tierserve.engine.metrics import EngineMetrics
from tierserve.engine.openai_api import ApiError, GenRequest, check_context
from tierserve.engine.server import ServerConfig, start
from tierserve.engine.timing import RequestTimer

MODEL = "fake"
WORDS = ["Hel", "lo", " there", "!"]


class FakeBackend:
    """Answers every prompt with WORDS, one chunk per token, each with a logprob; the
    prompt counts one token per character. ``gate`` holds generation until set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0
        self.running = 0
        self.seen: list[GenRequest] = []

    @property
    def ready(self) -> bool:
        return True

    @property
    def max_model_len(self) -> int:
        return 256

    def load(self) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def prepare(self, req: GenRequest) -> Prepared:
        text = req.prompt if isinstance(req.prompt, str) else ""
        text += "".join(str(m.get("content")) for m in req.messages)
        if "refuse" in text:
            raise ApiError(400, "refused", "messages", "no_chat_template")
        check_context(len(text), req.limit, self.max_model_len, req.max_tokens is not None)
        self.seen.append(req)
        return Prepared(req, len(text), req.limit)

    async def generate(self, prepared: Prepared) -> AsyncGenerator[Chunk, None]:
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        self.running += 1
        try:
            n = min(prepared.max_tokens, len(WORDS))
            for i, word in enumerate(WORDS[:n]):
                last = i == n - 1
                finish = ("length" if n < len(WORDS) else "stop") if last else None
                tok = TokenOut(word, -0.25 * (i + 1), ((word, -0.25 * (i + 1)), ("x", -3.0)))
                yield Chunk(word, (tok,), finish)
                await asyncio.sleep(0)
        finally:
            self.running -= 1

    def state(self) -> EngineState:
        return EngineState(self.running, self.waiting, 0.5 if self.running else 0.0)


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, FakeBackend]]:
    backend = FakeBackend()
    port = free_port()
    runner = await start(ServerConfig(MODEL, lambda: backend), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", backend
    finally:
        await runner.cleanup()


async def test_stream_carries_text_logprobs_usage_and_finish(
        served: tuple[str, FakeBackend]) -> None:
    base, backend = served
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "abcdef"}], stream=True,
        logprobs=True, top_logprobs=2, stream_options={"include_usage": True}, seed=3,
        temperature=0, stop=["zz"])  # fmt: skip
    texts, logprobs, finishes, usage = [], [], [], None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if chunk.choices:
            choice = chunk.choices[0]
            texts.append(choice.delta.content)
            finishes.append(choice.finish_reason)
            if choice.logprobs and choice.logprobs.content:
                logprobs += [(c.token, c.logprob, len(c.top_logprobs))
                             for c in choice.logprobs.content]
    await client.close()
    assert texts == WORDS and finishes == [None, None, None, "stop"]
    assert logprobs == [(w, -0.25 * (i + 1), 2) for i, w in enumerate(WORDS)]
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (6, 4)
    s = backend.seen[0].sampling
    assert (s.seed, s.temperature, s.stop, s.top_logprobs) == (3, 0.0, ("zz",), 2)
    metrics = await vllm_totals(base)
    assert metrics["vllm:inter_token_latency_seconds_count"] == 3  # per token, not request
    assert metrics["vllm:time_per_output_token_seconds_count"] == 1
    assert metrics["vllm:time_to_first_token_seconds_count"] == 1
    assert metrics["vllm:generation_tokens_total"] == 4


async def test_completion_length_and_legacy_logprobs(served: tuple[str, FakeBackend]) -> None:
    base, _ = served
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    got = await client.completions.create(model=MODEL, prompt="abc", max_tokens=2, logprobs=1)
    await client.close()
    choice = got.choices[0]
    assert (choice.text, choice.finish_reason) == ("Hello", "length")
    assert choice.logprobs is not None and choice.logprobs.token_logprobs == [-0.25, -0.5]
    assert choice.logprobs.text_offset == [0, 3]
    assert got.usage is not None and got.usage.prompt_tokens == 3


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"model": MODEL, "messages": [{"role": "user", "content": "refuse"}]}, 400,
     "no_chat_template"),
    ({"model": MODEL, "prompt": "x" * 250, "max_tokens": 10}, 400, "context_length_exceeded"),
    ({"model": MODEL, "prompt": "x", "temperature": -1}, 400, "invalid_value"),
])
async def test_refusals_are_openai_errors(served: tuple[str, FakeBackend], body: dict[str, object],
                                          status: int, code: str) -> None:
    base, _ = served
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    async with aiohttp.ClientSession() as s, s.post(f"{base}{path}", json=body) as r:
        assert r.status == status
        assert (await r.json())["error"]["code"] == code


async def test_gauges_read_the_backend(served: tuple[str, FakeBackend]) -> None:
    base, backend = served
    backend.gate.clear()
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    calls = [asyncio.create_task(client.completions.create(model=MODEL, prompt="a"))
             for _ in range(3)]

    async def three_waiting() -> bool:
        return (await vllm_totals(base))["vllm:num_requests_waiting"] == 3

    await wait_until_async(three_waiting, 10, "three requests waiting", interval=0.01)
    backend.gate.set()
    results = await asyncio.gather(*calls)
    await client.close()
    assert all(r.choices[0].text == "".join(WORDS) for r in results)
    metrics = await vllm_totals(base)
    assert metrics["vllm:num_requests_waiting"] == 0
    assert metrics["vllm:request_success_total"] == 3


def test_timer_splits_a_chunk_interval_over_its_tokens() -> None:
    now = [10.0]
    metrics = EngineMetrics("m")
    timer = RequestTimer(metrics, clock=lambda: now[0])
    now[0] = 10.5
    timer.tokens(1)  # TTFT 0.5
    now[0] = 10.9
    timer.tokens(4)  # 4 tokens in 0.4 s: 0.1 s each
    timer.tokens(0)
    timer.finished("stop", 7)
    assert metrics.ttft._sum.get() == pytest.approx(0.5)
    assert metrics.itl._sum.get() == pytest.approx(0.4)
    assert metrics.tpot._sum.get() == pytest.approx(0.1)
    assert timer.generated == 5


def test_timer_counts_tokens_when_vllm_does_not_at_the_end() -> None:
    """The prompt with the first token (its prefill ran), generated tokens as they
    arrive: a request still decoding already shows in the rates the autoscaler reads."""
    metrics = EngineMetrics("m")
    timer = RequestTimer(metrics, clock=lambda: 1.0)
    timer.tokens(1, prompt_tokens=7)
    timer.tokens(2, prompt_tokens=7)
    assert metrics.prompt_tokens._value.get() == 7
    assert metrics.generation_tokens._value.get() == 3
    timer.finished("stop", 7)
    assert metrics.prompt_tokens._value.get() == 7  # counted once
    assert metrics.generation_tokens._value.get() == 3
    silent = RequestTimer(metrics, clock=lambda: 1.0)
    silent.finished("length", 5)  # ended before a first token: counted at the end
    assert metrics.prompt_tokens._value.get() == 12
