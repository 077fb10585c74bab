"""The router's Triton adapter in front of a real tritonserver running SmolLM2 with
llama.cpp (Tierserve's Python-backend model), through the official ``openai`` client:
chat goes through the model's own chat template (the messages travel as the request
parameter ``messages``), and log-probabilities, stop strings and real token counts come
back through Triton's outputs."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tierserve.dev.real_models import SMOLLM2
from tierserve.dev.testing import router
from tierserve.engine.local import LocalRuntimes, LocalSpec

from .test_engine_local import until
from .test_llamacpp_engine import chatml_tokens

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.llamacpp, pytest.mark.triton]


def ask(country: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": f"What is the capital of {country}?"}]


async def check_chat(client: openai.AsyncOpenAI) -> None:
    got = await client.chat.completions.create(
        model="smollm2", messages=ask("France"), max_tokens=10, temperature=0, seed=3,
        logprobs=True, top_logprobs=2)
    text = got.choices[0].message.content or ""
    assert "Paris" in text
    # counted by the model's tokenizer over its ChatML template, not flattened lines
    assert got.usage is not None and got.usage.prompt_tokens == chatml_tokens(ask("France"))
    lp = got.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert len(lp.content) == got.usage.completion_tokens
    assert "".join(e.token for e in lp.content) == text
    assert all(isinstance(e.logprob, float) and e.logprob <= 0 for e in lp.content)
    assert any(e.logprob < 0 for e in lp.content)
    assert all(len(e.top_logprobs) == 2 for e in lp.content)
    japan = await client.chat.completions.create(
        model="smollm2", messages=ask("Japan"), max_tokens=10, temperature=0)
    assert "Tokyo" in (japan.choices[0].message.content or "")

    stream = await client.chat.completions.create(
        model="smollm2", messages=ask("France"), max_tokens=10, temperature=0, seed=3,
        logprobs=True, stream=True)
    pieces, entries = [], []
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            lps = chunk.choices[0].logprobs
            entries += (lps.content or []) if lps else []
    assert sum(1 for p in pieces if p) >= 3
    assert "".join(pieces) == text  # greedy: the same answer, streamed
    assert [e.logprob for e in entries] == pytest.approx([e.logprob for e in lp.content])


async def check_completion(client: openai.AsyncOpenAI) -> None:
    got = await client.completions.create(
        model="smollm2", prompt="1, 2, 3, 4, 5,", max_tokens=12, temperature=0,
        stop=["8"], logprobs=2)
    choice = got.choices[0]
    assert choice.text.replace(" ", "") == "6,7,"  # ends before the stop string
    assert choice.finish_reason == "stop"
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.text_offset
    assert got.usage is not None and got.usage.completion_tokens >= len(lp.tokens)
    assert all(v is not None and v <= 0 for v in lp.token_logprobs)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    plain = await client.completions.create(model="smollm2", prompt="1, 2, 3,", max_tokens=3,
                                            temperature=0)
    assert plain.choices[0].logprobs is None  # not asked: not sent


async def test_router_to_llamacpp_on_triton(tmp_path: Path) -> None:
    local = LocalRuntimes(tmp_path)
    key = "default/smollm2"
    try:
        await local.apply(LocalSpec(key, "triton", "", "smollm2", engine="llamacpp",
                                    model_uri=SMOLLM2, threads=1))
        status = await until(lambda: local.status(key), lambda s: s.ready, "Triton ready")
        cfg = {"deployments": [{"name": "smol", "protocol": "triton",
                                "endpoints": [{"url": status.endpoint}],
                                "triton": {"model": status.model_name},
                                "balancing": {"scrape_metrics": False}}],
               "routes": [{"model": "smollm2", "variants": [{"name": "v",
                                                             "deployment": "smol"}]}]}
        async with router(cfg) as (_r, url):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            try:
                await check_chat(client)
                await check_completion(client)
            finally:
                await client.close()
    finally:
        await local.close()
