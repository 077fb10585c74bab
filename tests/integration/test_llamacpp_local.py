"""Real models on the local runtimes (``tierserve operator --target local``): SmolLM2 on
Ray Serve (two replicas, one thread each, on two cores) and Gemma-3-270M with its chat
template on Triton's Python backend, through the clients each runtime speaks."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import openai
import pytest

from tierserve.dev.real_models import GEMMA3, GEMMA_STOP, GEMMA_TEMPLATE, SMOLLM2
from tierserve.engine.local import LocalRuntimes, LocalSpec, free_port
from tierserve.engine.local_runner import engine_args_for

from .test_engine_local import until

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.llamacpp


async def scrape(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_threads_are_capped_so_replicas_fit() -> None:
    spec = LocalSpec("a/b", "rayServe", "", "m", replicas=2, engine="llamacpp",
                     model_uri=SMOLLM2, threads=8)
    assert engine_args_for(spec, cpus=2).threads == 1
    assert engine_args_for(LocalSpec("a/b", "triton", "", "m", engine="llamacpp",
                                     model_uri=SMOLLM2), cpus=2).threads == 2
    with pytest.raises(ValueError, match="model"):
        engine_args_for(LocalSpec("a/b", "triton", "", "m", engine="llamacpp"))


@pytest.mark.ray
async def test_smollm2_on_ray_serve(tmp_path: Path) -> None:
    local = LocalRuntimes(tmp_path, ray_http_port=free_port(), ray_num_cpus=2)
    key = "default/smollm2"
    spec = LocalSpec(key, "rayServe", "", "smollm2", replicas=2, engine="llamacpp",
                     model_uri=SMOLLM2)
    try:
        await local.apply(spec)
        status = await until(lambda: local.status(key), lambda s: s.ready and s.replicas == 2,
                             "two llama.cpp Serve replicas running")
        client = openai.AsyncOpenAI(base_url=f"{status.endpoint}/v1", api_key="x",
                                    max_retries=0)
        answers = []
        for country in ("France", "Japan"):
            got = await client.chat.completions.create(model="smollm2", messages=[
                {"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": f"What is the capital of {country}?"}],
                max_tokens=12, temperature=0, seed=5, logprobs=True)
            answers.append(got)
        assert "Paris" in (answers[0].choices[0].message.content or "")
        assert "Tokyo" in (answers[1].choices[0].message.content or "")
        lp = answers[0].choices[0].logprobs
        assert lp is not None and lp.content and all(e.logprob <= 0 for e in lp.content)
        usage = answers[0].usage
        assert usage is not None and usage.completion_tokens == len(lp.content)
        stream = await client.completions.create(model="smollm2", prompt="Once upon a time",
                                                 max_tokens=8, temperature=1.0, seed=11,
                                                 stream=True)
        pieces = [c.choices[0].text async for c in stream if c.choices]
        again = await client.completions.create(model="smollm2", prompt="Once upon a time",
                                                max_tokens=8, temperature=1.0, seed=11)
        await client.close()
        assert sum(1 for p in pieces if p) >= 3
        assert "".join(pieces) == again.choices[0].text  # same seed, either replica
        too_long = {"model": "smollm2", "prompt": "hi", "max_tokens": 5000}
        async with aiohttp.ClientSession() as s, s.post(f"{status.endpoint}/v1/completions",
                                                        json=too_long) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "context_length_exceeded"
        generated = sum(a.usage.completion_tokens for a in answers if a.usage)
        assert again.usage is not None and again.usage.completion_tokens == 8
        assert await scrape(status.metrics_url, "vllm:generation_tokens_total") == generated + 16
        assert await scrape(status.metrics_url, "vllm:inter_token_latency_seconds_count") > 0
    finally:
        await local.close()


@pytest.mark.triton
async def test_gemma3_on_triton(tmp_path: Path) -> None:
    local = LocalRuntimes(tmp_path)
    key = "default/gemma"
    spec = LocalSpec(key, "triton", "", "gemma-3-270m", engine="llamacpp", model_uri=GEMMA3,
                     chat_template=GEMMA_TEMPLATE, stop=GEMMA_STOP)
    try:
        await local.apply(spec)
        status = await until(lambda: local.status(key), lambda s: s.ready, "Triton ready")
        url = f"{status.endpoint}/v2/models/{status.model_name}"
        messages = [{"role": "user", "content": "What is the capital of Japan?"}]
        body = {"text_input": "", "max_tokens": 8,
                "parameters": {"messages": json.dumps(messages), "temperature": 0}}
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{url}/generate", json=body) as r:
                assert r.status == 200, await r.text()
                got = await r.json()
            assert "Tokyo" in got["text_output"] and "\n" not in got["text_output"]
            assert 20 < got["prompt_tokens"] < 60  # the template's tokens, counted for real
            prompt = {"text_input": "Question: What is the capital of France?\nAnswer:",
                      "max_tokens": 6, "stream": True, "parameters": {"temperature": 0}}
            events = []
            async with s.post(f"{url}/generate_stream", json=prompt) as r:
                assert r.status == 200
                async for line in r.content:
                    if line.startswith(b"data: "):
                        events.append(json.loads(line[6:]))
        text = "".join(e["text_output"] for e in events)
        assert "Paris" in text and len(events) >= 2
        # each event carries one sampled token; the last one is the "\n" that matched the
        # stop string: counted (it was generated), its text withheld (OpenAI's rule)
        assert events[-1]["text_output"] == ""
        assert events[-1]["completion_tokens"] == len(events)
    finally:
        await local.close()
