"""The demo's traffic driver against a real router in front of stub engines.

``traffic.drive`` runs a short plan over four route models: a tiered route, an A/B route
with the sticky user header, one whose engine answers 500 and one whose engine dies
mid-stream. Every request the router answered is one record (the router's own request
counter agrees per route), answers are ok with their tokens, and both kinds of failure
are records with their error, never dropped.
"""

from __future__ import annotations

import re
from collections import Counter

import aiohttp

from tierserve.dev.demo.traffic import DemoPlan, DemoRecord, Phase, drive
from tierserve.dev.testing import router, stub

TOKENS = 6
PLAN = DemoPlan((Phase("steady", 0.8, 1), Phase("burst", 1.2, 3), Phase("idle", 0.3, 0)),
                ("qa", "chat", "broken", "cut"), max_tokens=TOKENS, timeout_s=20,
                prompts=("What is 7 times 8?", "What is the capital of France?"))


def _config(urls: dict[str, str]) -> dict[str, object]:
    def variant(dep: str) -> dict[str, object]:
        return {"name": dep, "deployment": dep, "weight": 1}

    return {
        "deployments": [{"name": n, "endpoints": [{"url": u}],
                         "balancing": {"scrape_metrics": False}} for n, u in urls.items()],
        "routes": [
            {"model": "qa", "variants": [{"name": "t", "tiers": {
                "fast": "fast", "slow": "slow", "threshold": 0.4,
                "target_slow_share": None}}]},
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


async def test_drive_records_every_request_and_every_failure_through_the_router() -> None:
    async with stub(name="fast", itl_s=0.002) as (fast, fu), \
            stub(name="slow", itl_s=0.002) as (slow, su), \
            stub(name="a", itl_s=0.002) as (a, au), stub(name="b", itl_s=0.002) as (b, bu), \
            stub(name="broken", fail_status=500) as (_broken, xu), \
            stub(name="cut", die_after_chunks=2) as (_cut, cu):
        urls = {"fast": fu, "slow": su, "a": au, "b": bu, "broken": xu, "cut": cu}
        async with router(_config(urls)) as (_r, url):
            seen: list[DemoRecord] = []
            sent: list[int] = []
            records = await drive(url, None, PLAN, seen.append,
                                  on_send=lambda: sent.append(1))
            async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
                metrics = await resp.text()
    assert seen == records and len(sent) == len(records)
    assert {r.phase for r in records} == {"steady", "burst"}  # idle sent nothing
    by_model = {m: [r for r in records if r.model == m] for m in PLAN.routes}
    assert all(by_model.values()), {m: len(rs) for m, rs in by_model.items()}
    # the router answered exactly the requests recorded, route by route
    assert _router_requests(metrics) == {m: len(rs) for m, rs in by_model.items()}
    for r in by_model["qa"] + by_model["chat"]:
        assert r.ok and r.error is None and r.timing() is not None, r
        assert r.first_token is not None and r.start <= r.first_token <= r.end, r
    assert {r.tokens for r in by_model["chat"]} == {TOKENS}
    assert a.hits and b.hits and a.hits + b.hits == len(by_model["chat"])  # users vary
    assert fast.hits + slow.hits >= len(by_model["qa"])
    for r in by_model["broken"]:
        assert not r.ok and r.first_token is None and "500" in (r.error or ""), r
    for r in by_model["cut"]:  # content arrived, then the router's SSE error event
        assert not r.ok and r.first_token is not None, r
        assert "upstream stream ended before completion" in (r.error or ""), r
