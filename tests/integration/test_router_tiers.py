"""Fast/slow tiers: decisions, forced tier, escalation with exactly one answer."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import openai
import orjson

from tierserve.dev.testing import router, stub

CODE = ("Write a Python function that parses ISO-8601 durations, then prove it is correct "
        "step by step, analyze trade-offs:\n```python\ndef parse(s):\n    return 0\n```\n" * 3)


def _cfg(fast: str, slow: str, **tiers: Any) -> dict[str, Any]:
    return {
        "deployments": [
            {"name": "small", "endpoints": [{"url": fast}], "gpu_type": "L4",
             "tokens_per_s_per_replica": 2000, "balancing": {"scrape_metrics": False}},
            {"name": "big", "endpoints": [{"url": slow}], "gpu_type": "H100-SXM",
             "gpus_per_replica": 4, "tokens_per_s_per_replica": 1000,
             "balancing": {"scrape_metrics": False}}],
        "routes": [{"model": "m", "variants": [{"name": "t", "tiers": {
            "fast": "small", "slow": "big", "threshold": 0.4, "target_slow_share": None,
            **tiers}}]}],
    }


async def _chat(url: str, content: str, headers: dict[str, str] | None = None,
                **extra: Any) -> tuple[int, bytes]:
    body = {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                    headers=headers or {}) as r:
        return r.status, await r.read()


def _text(raw: bytes) -> str:
    return str(orjson.loads(raw)["choices"][0]["message"]["content"])


async def test_classifier_sends_easy_prompts_fast_and_hard_ones_slow() -> None:
    async with stub(name="fast") as (_f, fu), stub(name="slow") as (_s, su), \
            router(_cfg(fu, su)) as (_r, url):
        status, raw = await _chat(url, "What is the capital of France?")
        assert status == 200 and _text(raw).startswith("fast")
        status, raw = await _chat(url, CODE)
        assert status == 200 and _text(raw).startswith("slow")
        status, raw = await _chat(url, "hi", {"x-tierserve-tier": "slow"})
        assert _text(raw).startswith("slow")
        status, raw = await _chat(url, CODE, {"x-tierserve-tier": "fast"})
        assert _text(raw).startswith("fast")
        status, _ = await _chat(url, "hi", {"x-tierserve-tier": "medium"})
        assert status == 400
        async with aiohttp.ClientSession() as sess, sess.get(url + "/metrics") as resp:
            text = await resp.text()
        assert 'tier_decisions_total{route="m",source="classifier",tier="fast",variant="t"} 1.0' \
            in text
        assert "tierserve_router_cost_saved_usd_total" in text
        saved = [line for line in text.splitlines()
                 if line.startswith("tierserve_router_cost_saved_usd_total{")]
        assert saved and float(saved[0].rsplit(" ", 1)[1]) > 0


async def test_length_stop_escalates_and_the_client_gets_only_the_slow_answer() -> None:
    async with stub(name="fast", finish_reason="length") as (f, fu), \
            stub(name="slow") as (s, su), router(_cfg(fu, su)) as (_r, url):
        status, raw = await _chat(url, "hello")
        answer = orjson.loads(raw)
        assert status == 200 and len(answer["choices"]) == 1
        assert _text(raw).startswith("slow") and "fast" not in _text(raw)
        assert (f.hits, s.hits) == (1, 1)


async def test_fast_error_and_timeout_escalate() -> None:
    async with stub(name="fast", fail_status=500) as (_f, fu), \
            stub(name="slow") as (_s, su), router(_cfg(fu, su)) as (_r, url):
        status, raw = await _chat(url, "hello")
        assert status == 200 and _text(raw).startswith("slow")
    async with stub(name="fast", ttft_s=3.0) as (_f, fu), stub(name="slow") as (_s, su), \
            router(_cfg(fu, su, fast_timeout_s=0.2)) as (_r, url):
        status, raw = await _chat(url, "hello")
        assert status == 200 and _text(raw).startswith("slow")


async def test_fast_4xx_is_not_escalated() -> None:
    async with stub(name="fast", fail_status=400) as (_f, fu), stub(name="slow") as (s, su), \
            router(_cfg(fu, su)) as (_r, url):
        status, _raw = await _chat(url, "hello")
        assert status == 400 and s.hits == 0


async def test_low_confidence_escalates_and_logprobs_are_hidden_otherwise() -> None:
    reasons = ["error", "timeout", "length", "low_confidence"]
    async with stub(name="fast", logprob=-3.0) as (_f, fu), stub(name="slow") as (_s, su), \
            router(_cfg(fu, su, escalate_on=reasons, min_mean_logprob=-1.0)) as (_r, url):
        _status, raw = await _chat(url, "hello")
        assert _text(raw).startswith("slow")
    async with stub(name="fast", logprob=-0.1) as (f, fu), stub(name="slow") as (_s, su), \
            router(_cfg(fu, su, escalate_on=reasons, min_mean_logprob=-1.0)) as (_r, url):
        f.keep_bodies = True
        _status, raw = await _chat(url, "hello")
        assert _text(raw).startswith("fast")
        assert orjson.loads(raw)["choices"][0]["logprobs"] is None
        assert f.bodies[0]["logprobs"] is True


def _dead() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_stream_before_first_byte_escalates_a_dead_fast_tier() -> None:
    async with stub(name="slow") as (_s, su), router(_cfg(_dead(), su)) as (_r, url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=3)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "slow slow slow "
        await client.close()


async def test_stream_buffer_policy_escalates_on_length_and_replays_fast_answers() -> None:
    async with stub(name="fast", finish_reason="length") as (_f, fu), \
            stub(name="slow") as (_s, su), \
            router(_cfg(fu, su, stream_escalation="buffer")) as (_r, url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=2)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "slow slow "
        await client.close()
    async with stub(name="fast") as (_f, fu), stub(name="slow") as (s, su), \
            router(_cfg(fu, su, stream_escalation="buffer")) as (_r, url):
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=2)
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "fast fast" and s.hits == 0
        assert chunks[-1].choices[0].finish_reason == "stop"
        await client.close()
