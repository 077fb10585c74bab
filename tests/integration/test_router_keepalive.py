"""The upstream client reuses keep-alive connections and survives the server closing them."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from tierserve.dev.stub import Behaviour, Stub
from tierserve.dev.testing import router, simple_config
from tierserve.dev.waiting import wait_until_async

BODY = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}


async def test_idle_connection_closed_by_the_server_is_replaced_transparently() -> None:
    stub = Stub(Behaviour(name="ka"))
    runner = web.AppRunner(stub.app(), access_log=None, keepalive_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    assert runner.server is not None
    server = runner.server
    try:
        cfg = simple_config({"d": [f"http://{host}:{port}"]}, {"m": {"d": 1}})
        async with router(cfg) as (_r, url), aiohttp.ClientSession() as s:
            for _ in range(3):
                async with s.post(url + "/v1/chat/completions", json=BODY) as resp:
                    assert resp.status == 200
            assert len(server.connections) == 1  # one reused upstream connection
            await wait_until_async(lambda: not server.connections, 10, "the server to close idle")
            async with s.post(url + "/v1/chat/completions", json=BODY) as resp:
                assert resp.status == 200
            assert stub.hits == 4  # no duplicate request
            metrics = await (await s.get(url + "/metrics")).text()
            assert "upstream_errors_total{" not in metrics
    finally:
        await runner.cleanup()
