"""Route ``fallback``: other deployments, in order, when the chosen one cannot answer."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
import pytest

from tierserve.core.routerconfig import ConfigError, parse_config
from tierserve.dev.testing import router, simple_config, stub

CHAT = {"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _config(primary: list[str], fallbacks: dict[str, list[str]]) -> dict[str, Any]:
    return simple_config({"p": primary, **fallbacks}, {"m": {"p": 1}},
                         fallback=list(fallbacks))


async def _post(url: str, stream: bool = False) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.post(
            url + "/v1/chat/completions", json={**CHAT, "stream": stream}) as r:
        return r.status, await r.read()


async def _fallbacks(url: str) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("tierserve_router_fallbacks_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:
                                                              line.index("}")].split(","))
            key = (labels["deployment"].strip('"'), labels["reason"].strip('"'))
            out[key] = float(line.rsplit(" ", 1)[1])
    return out


async def test_connection_errors_fall_back_in_order_with_one_answer() -> None:
    async with stub(name="second") as (second, s_url), stub(name="third") as (third, t_url):
        cfg = _config([_dead_url()], {"f1": [_dead_url()], "f2": [s_url], "f3": [t_url]})
        async with router(cfg) as (_r, url):
            for stream in (False, True):
                status, body = await _post(url, stream)
                assert status == 200 and b"second" in body and b"third" not in body
            assert second.hits == 2 and third.hits == 0
            assert await _fallbacks(url) == {("f1", "connect"): 2, ("f2", "connect"): 2}
            async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
                text = await r.text()
            assert ('tierserve_router_requests_total{deployment="f2",route="m",'
                    'status="200",tier="fallback",variant="p"} 2.0') in text


async def test_5xx_after_retries_falls_back_and_4xx_does_not() -> None:
    async with stub(name="broken", fail_status=503) as (broken, b_url), \
            stub(name="spare") as (spare, s_url), \
            router(_config([b_url], {"f": [s_url]})) as (_r, url):
        status, body = await _post(url)
        assert status == 200 and b"spare" in body
        assert await _fallbacks(url) == {("f", "5xx"): 1}
        broken.b.fail_status, hits = 400, spare.hits
        status, _body = await _post(url)
        assert status == 400 and spare.hits == hits  # never on 4xx


async def test_scaled_to_zero_without_hold_falls_back() -> None:
    async with stub(name="spare") as (_s, s_url):
        cfg = _config([], {"f": [s_url]})
        cfg["deployments"][0]["scale_from_zero"] = {"enabled": False}
        async with router(cfg) as (_r, url):
            status, body = await _post(url, stream=True)
            assert status == 200 and b"spare" in body
            assert await _fallbacks(url) == {("f", "unavailable"): 1}


async def test_full_queue_falls_back() -> None:
    async with stub(name="slow", ttft_s=0.5) as (_p, p_url), \
            stub(name="spare") as (spare, s_url):
        cfg = _config([p_url], {"f": [s_url]})
        cfg["deployments"][0].update(max_inflight_per_replica=1, max_queue=0)
        async with router(cfg) as (_r, url):
            results = await asyncio.gather(*(_post(url) for _ in range(3)))
            assert [s for s, _b in results] == [200, 200, 200]
            assert sum(b"spare" in b for _s, b in results) == 2 and spare.hits == 2
            assert await _fallbacks(url) == {("f", "queue_full"): 2}


async def test_all_fail_gives_one_error_and_no_fallback_past_deadline() -> None:
    cfg = _config([_dead_url()], {"f": [_dead_url()]})
    async with router(cfg) as (_r, url):
        status, body = await _post(url)
        assert status == 502 and orjson.loads(body)["error"]["code"] == "bad_gateway"
    async with stub(name="late", ttft_s=1.0) as (_l, l_url), \
            stub(name="spare") as (spare, s_url):
        cfg = _config([l_url], {"f": [s_url]})
        cfg["routes"][0]["timeout_s"] = 0.3
        async with router(cfg) as (_r, url):
            status, _body = await _post(url)
            assert status == 504 and spare.hits == 0  # the deadline ran out: nothing left


def test_fallback_must_name_known_deployments() -> None:
    cfg = simple_config({"p": []}, {"m": {"p": 1}}, fallback=["nope"])
    with pytest.raises(ConfigError, match="fallback names unknown deployment"):
        parse_config(cfg)
