"""The demo's traffic driver against a real router in front of stub engines.

``traffic.drive`` runs a short plan over five route models: two tiered routes that
inspect the fast answer (``stream_escalation: buffer``), one whose fast answers are
confident (replayed to the client as one content chunk) and one whose fast answers all
escalate on low confidence (the slow answer streams); an A/B route with the sticky user
header; one whose engine answers 500; one whose engine dies mid-stream. Every request
the router answered is one record (the router's own request counter agrees per route),
answers are ok, and both kinds of failure are records with their error, never dropped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from tierserve.dev.demo.traffic import DemoPlan, DemoRecord, Phase, drive
from tierserve.dev.stub import Stub
from tierserve.dev.testing import router, stub

TOKENS = 6
PLAN = DemoPlan((Phase("steady", 0.8, 1), Phase("burst", 1.2, 3), Phase("idle", 0.3, 0)),
                ("qa", "hard", "chat", "broken", "cut"), max_tokens=TOKENS, timeout_s=20,
                prompts=("What is 7 times 8?", "What is the capital of France?"))
STUBS: dict[str, dict[str, Any]] = {
    "fast": {}, "unsure": {"logprob": -2.0}, "slow": {}, "a": {}, "b": {},
    "broken": {"fail_status": 500}, "cut": {"die_after_chunks": 2}}


def _tiers(fast: str) -> dict[str, object]:
    """As examples/tiered-route-cpu.yaml, with the fast answer buffered and inspected."""
    return {"name": "t", "tiers": {
        "fast": fast, "slow": "slow", "threshold": 1.0, "target_slow_share": None,
        "escalate_on": ["error", "timeout", "low_confidence"],
        "min_mean_logprob": math.log(0.575), "stream_escalation": "buffer"}}


def _config(urls: dict[str, str]) -> dict[str, object]:
    def variant(dep: str) -> dict[str, object]:
        return {"name": dep, "deployment": dep, "weight": 1}

    return {
        "deployments": [{"name": n, "endpoints": [{"url": u}],
                         "balancing": {"scrape_metrics": False}} for n, u in urls.items()],
        "routes": [
            {"model": "qa", "variants": [_tiers("fast")]},
            {"model": "hard", "variants": [_tiers("unsure")]},
            {"model": "chat", "sticky_header": "x-user-id",
             "variants": [variant("a"), variant("b")]},
            {"model": "broken", "variants": [variant("broken")]},
            {"model": "cut", "variants": [variant("cut")]},
        ]}


def _router_requests(metrics: str) -> Counter[str]:
    """``tierserve_router_requests_total`` summed per route label."""
    out: Counter[str] = Counter()
    for line in metrics.splitlines():
        m = re.match(r'tierserve_router_requests_total\{.*route="([^"]*)".*\} (\S+)$', line)
        if m:
            out[m.group(1)] += int(float(m.group(2)))
    return out


async def _run() -> tuple[list[DemoRecord], list[DemoRecord], int, dict[str, Stub], str]:
    async with AsyncExitStack() as stack:
        stubs, urls = {}, {}
        for name, behaviour in STUBS.items():
            stubs[name], urls[name] = await stack.enter_async_context(
                stub(name=name, itl_s=0.002, **behaviour))
        _router, url = await stack.enter_async_context(router(_config(urls)))
        seen: list[DemoRecord] = []
        sent: list[int] = []
        records = await drive(url, None, PLAN, seen.append, on_send=lambda: sent.append(1))
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
            metrics = await resp.text()
    return records, seen, len(sent), stubs, metrics


async def test_drive_records_every_request_and_every_failure_through_the_router() -> None:
    records, seen, sent, stubs, metrics = await _run()
    assert seen == records and sent == len(records)
    assert {r.phase for r in records} == {"steady", "burst"}  # idle sent nothing
    by_model = {m: [r for r in records if r.model == m] for m in PLAN.routes}
    assert all(by_model.values()), {m: len(rs) for m, rs in by_model.items()}
    # the router answered exactly the requests recorded, route by route
    assert _router_requests(metrics) == {m: len(rs) for m, rs in by_model.items()}
    for r in by_model["qa"] + by_model["hard"] + by_model["chat"]:
        assert r.ok and r.error is None and r.timing() is not None, r
        assert r.first_token is not None and r.start <= r.first_token <= r.end, r
    assert {r.tokens for r in by_model["qa"]} == {1}  # a replayed answer: one chunk
    assert {r.tokens for r in by_model["chat"]} == {TOKENS}
    a, b = stubs["a"].hits, stubs["b"].hits
    assert a and b and a + b == len(by_model["chat"])  # varied users reach both variants
    hard = len(by_model["hard"])  # each: one unsure answer, escalated, one slow answer
    assert stubs["unsure"].hits == stubs["slow"].hits == hard
    assert f'tierserve_router_escalations_total{{reason="low_confidence",route="hard",' \
           f'variant="t"}} {hard}.0' in metrics
    for r in by_model["broken"]:
        assert not r.ok and r.first_token is None and "500" in (r.error or ""), r
    for r in by_model["cut"]:  # content arrived, then the router's SSE error event
        assert not r.ok and r.first_token is not None, r
        assert "upstream stream ended before completion" in (r.error or ""), r
