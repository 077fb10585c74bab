"""``tierserve check router URL`` as a process (what the chart's helm test pod runs)
against a real router, and against servers that are not one."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from aiohttp import web

from tierserve.dev.cluster.procs import free_port
from tierserve.dev.testing import router, serve, simple_config, stub


async def _check(url: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tierserve.cli.main", "check", "router", url,
           "--timeout-s", "5"]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True,
                                   timeout=60)


async def test_passes_against_a_router_listing_its_models() -> None:
    async with stub(name="one") as (_s, backend), router(
            simple_config({"d": [backend]}, {"chat": {"d": 1}, "code": {"d": 1}})) as (_r, url):
        res = await _check(url)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (f"tierserve check router: ok: router {url} serves "
                                  "2 model(s): chat, code")


async def test_a_router_without_routes_still_passes() -> None:
    async with router({"deployments": [], "routes": []}) as (_r, url):
        res = await _check(url)
    assert res.returncode == 0 and "serves 0 model(s)" in res.stdout, res.stderr


async def _not_a_list(_request: web.Request) -> web.Response:
    return web.json_response({"models": []})


async def test_fails_naming_what_answered_instead() -> None:
    app = web.Application()
    app.router.add_get("/v1/models", _not_a_list)
    async with serve(app) as wrong:
        res = await _check(wrong)
        assert res.returncode == 1
        assert f"GET {wrong}/v1/models: not an OpenAI model list" in res.stderr
        res = await _check(wrong + "/elsewhere")
        assert res.returncode == 1 and "HTTP 404" in res.stderr
    closed = f"http://127.0.0.1:{free_port()}"
    res = await _check(closed)
    assert res.returncode == 1 and f"GET {closed}/v1/models: ClientConnectorError" in res.stderr
