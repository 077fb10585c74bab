"""One deployment as both tiers, told apart by request options, through a real router.

The backend is a real HTTP server whose answer depends on what it was asked (the system
prompt, the token budget, the seed), so each test sees what the router actually sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tierserve.dev.testing import router, serve
from tierserve.routing.tiering import cost_per_token

STEP = "Think step by step."


class Echo:
    """Answers "slow:<seed answer>" when given the step-by-step prompt, else "fast"."""

    def __init__(self, by_seed: dict[int, str], fast_logprob: float = -0.1) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._by_seed, self._fast_logprob = by_seed, fast_logprob

    async def complete(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.bodies.append(body)
        messages = body.get("messages") or []
        slow = bool(messages) and messages[0].get("content") == STEP
        text = f"Answer: {self._by_seed.get(body.get('seed', -1), 'x')}" if slow else "fast"
        lp = -0.1 if slow else self._fast_logprob
        return web.json_response({
            "id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop",
                         "logprobs": {"content": [{"token": text, "logprob": lp}]}
                         if body.get("logprobs") else None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})


@asynccontextmanager
async def echo(by_seed: dict[int, str], **kw: Any) -> AsyncIterator[tuple[Echo, str]]:
    e = Echo(by_seed, **kw)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", e.complete)
    async with serve(app) as url:
        yield e, url


def _cfg(url: str, **tiers: Any) -> dict[str, Any]:
    return {
        "deployments": [{"name": "one", "endpoints": [{"url": url}],
                         "balancing": {"scrape_metrics": False}}],
        "routes": [{"model": "m", "variants": [{"name": "t", "tiers": {
            "fast": "one", "slow": "one", "threshold": 0.99, "target_slow_share": None,
            "fast_options": {"max_tokens": 8},
            "slow_options": {"max_tokens": 96, "system_prompt": STEP, "samples": 3,
                             "temperature": 0.7},
            **tiers}}]}],
    }


async def _chat(url: str, headers: dict[str, str] | None = None,
                **extra: Any) -> tuple[int, bytes]:
    body = {"model": "m", "messages": [{"role": "user", "content": "7 x 8?"}], **extra}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                    headers=headers or {}) as r:
        return r.status, await r.read()


async def test_fast_tier_gets_its_options_and_the_client_sees_one_answer() -> None:
    async with echo({}) as (e, url), router(_cfg(url)) as (_r, rurl):
        status, raw = await _chat(rurl, max_tokens=300, temperature=0)
        assert status == 200
        assert orjson.loads(raw)["choices"][0]["message"]["content"] == "fast"
        (sent,) = e.bodies
        assert sent["max_tokens"] == 8 and sent["temperature"] == 0
        assert sent["messages"] == [{"role": "user", "content": "7 x 8?"}]


async def test_slow_tier_is_a_majority_vote_of_samples_on_the_same_deployment() -> None:
    async with echo({0: "54", 1: "56", 2: "56."}) as (e, url), \
            router(_cfg(url)) as (_r, rurl):
        status, raw = await _chat(rurl, {"x-tierserve-tier": "slow"}, seed=0)
        assert status == 200
        answer = orjson.loads(raw)
        assert len(answer["choices"]) == 1
        assert answer["choices"][0]["message"]["content"] == "Answer: 56"
        assert answer["usage"] == {"prompt_tokens": 30, "completion_tokens": 6,
                                   "total_tokens": 36}
        assert sorted(b["seed"] for b in e.bodies) == [0, 1, 2]
        assert {(b["max_tokens"], b["temperature"], b["messages"][0]["content"])
                for b in e.bodies} == {(96, 0.7, STEP)}


async def test_a_streamed_vote_is_replayed_as_one_sse_answer() -> None:
    async with echo({0: "Rome", 1: "Paris", 2: "paris"}) as (_e, url), \
            router(_cfg(url)) as (_r, rurl):
        status, raw = await _chat(rurl, {"x-tierserve-tier": "slow"}, stream=True)
        assert status == 200
        events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        text = "".join(orjson.loads(ev)["choices"][0]["delta"].get("content") or ""
                       for ev in events[:-1])
        assert text == "Answer: Paris"


async def test_low_confidence_escalates_to_the_same_model_run_slowly() -> None:
    reasons = ["error", "timeout", "length", "low_confidence"]
    async with echo({0: "56", 1: "56", 2: "54"}, fast_logprob=-3.0) as (e, url), \
            router(_cfg(url, escalate_on=reasons, min_mean_logprob=-1.0)) as (r, rurl):
        status, raw = await _chat(rurl)
        assert status == 200
        answer = orjson.loads(raw)
        assert answer["choices"][0]["message"]["content"] == "Answer: 56"
        assert answer["choices"][0]["logprobs"] is None  # the client did not ask
        fast, *slow = e.bodies
        assert fast["logprobs"] is True and fast["max_tokens"] == 8
        assert len(slow) == 3 and all(b["max_tokens"] == 96 for b in slow)
        value = r.metrics.registry.get_sample_value(
            "tierserve_router_escalations_total",
            {"route": "m", "variant": "t", "reason": "low_confidence"})
        assert value == 1.0


async def test_a_fast_answer_saves_what_the_slow_run_of_the_same_model_spends() -> None:
    """One priced deployment as both tiers: per token the tiers cost the same, so the
    saving is the slow tier's measured spend per answer (3 samples of 12 tokens = 36)
    less the fast answer's 12 tokens, at the deployment's price per token."""
    async with echo({0: "56", 1: "56", 2: "54"}) as (_e, url):
        cfg = _cfg(url)
        cfg["deployments"][0].update(gpu_type="cpu", tokens_per_s_per_replica=50.0)
        async with router(cfg) as (r, rurl):
            def saved() -> float:
                return r.metrics.registry.get_sample_value(
                    "tierserve_router_cost_saved_usd_total",
                    {"route": "m", "variant": "t"}) or 0.0
            status, _ = await _chat(rurl, {"x-tierserve-tier": "slow"}, seed=0)
            assert status == 200 and saved() == 0.0  # a slow answer saves nothing
            status, _ = await _chat(rurl)
            assert status == 200
            dep = r.snapshot.config.deployments[0]
            per_token = cost_per_token(dep)
            assert per_token > 0
            assert saved() == pytest.approx((36 - 12) * per_token)
