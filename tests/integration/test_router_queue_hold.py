"""Bounded queue (429 + Retry-After) and scale-from-zero hold and release."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from tierserve.core.routerconfig import parse_config
from tierserve.dev.testing import router, simple_config, stub
from tierserve.dev.waiting import wait_until_async

BODY = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}


async def _post(s: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with s.post(url + "/v1/chat/completions", json=BODY) as r:
        return r.status, dict(r.headers), await r.read()


async def test_queue_bound_answers_429_with_retry_after() -> None:
    async with stub(name="slow", ttft_s=1.0) as (_s, backend):
        cfg = simple_config({"d": [backend]}, {"m": {"d": 1}})
        cfg["deployments"][0].update(max_inflight_per_replica=2, max_queue=3)
        async with router(cfg) as (_r, url), aiohttp.ClientSession() as s:
            results = await asyncio.gather(*(_post(s, url) for _ in range(8)))
            statuses = sorted(status for status, _h, _b in results)
            assert statuses == [200] * 5 + [429] * 3
            rejected = next(h for status, h, _b in results if status == 429)
            assert int(rejected["Retry-After"]) >= 1


class Signal:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def wake(self, deployment: str) -> None:
        self.calls.append(deployment)


async def test_scale_from_zero_holds_signals_and_releases() -> None:
    signal = Signal()
    async with stub(name="woke") as (_s, backend):
        cfg: dict[str, Any] = simple_config({"d": []}, {"m": {"d": 1}})
        async with router(cfg, scale_signal=signal) as (r, url), aiohttp.ClientSession() as s:
            held = [asyncio.create_task(_post(s, url)) for _ in range(5)]
            await wait_until_async(lambda: r.snapshot.deployments["d"].hold.held == 5, 5, "5 held")
            assert signal.calls == ["d"]
            assert not any(t.done() for t in held)
            r.apply_config(parse_config(simple_config({"d": [backend]}, {"m": {"d": 1}})))
            results = await asyncio.gather(*held)
            assert [status for status, _h, _b in results] == [200] * 5


async def test_scale_from_zero_hold_is_bounded() -> None:
    cfg: dict[str, Any] = simple_config({"d": []}, {"m": {"d": 1}})
    cfg["deployments"][0]["scale_from_zero"] = {"max_held": 1, "hold_timeout_s": 0.2}
    async with router(cfg) as (_r, url), aiohttp.ClientSession() as s:
        first, second = await asyncio.gather(_post(s, url), _post(s, url))
        assert sorted([first[0], second[0]]) == [503, 503]
        assert all("Retry-After" in h for _s, h, _b in (first, second))
        assert orjson.loads(first[2])["error"]["code"] == "service_unavailable"
