"""Test helpers: real servers on free ports at 127.0.0.1, torn down on exit.

Used by the router's unit and integration tests (and handy in a REPL). Everything here
runs in the caller's event loop. Wait on conditions with
``tierserve.dev.waiting.wait_until_async``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from tierserve.core.routerconfig import RouterConfig, parse_config
from tierserve.dev.stub import Behaviour, Stub
from tierserve.routing.app import Router, create_app


class Served:
    """A running server: its base URL and how many client connections it holds."""

    def __init__(self, url: str, runner: web.AppRunner) -> None:
        self.url, self._runner = url, runner

    def connections(self) -> int:
        server = self._runner.server
        return 0 if server is None else len(server.connections)


@asynccontextmanager
async def served(app: web.Application,
                 ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Served]:
    """Serve ``app`` on a free port (TLS with ``ssl_context``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Served(f"{'https' if ssl_context else 'http'}://{host}:{port}", runner)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free port; yields its base URL."""
    async with served(app) as server:
        yield server.url


@asynccontextmanager
async def stub(**behaviour: Any) -> AsyncIterator[tuple[Stub, str]]:
    s = Stub(Behaviour(**behaviour))
    async with serve(s.app()) as url:
        yield s, url


@asynccontextmanager
async def router(config: RouterConfig | dict[str, Any], **kwargs: Any
                 ) -> AsyncIterator[tuple[Router, str]]:
    cfg = config if isinstance(config, RouterConfig) else parse_config(config)
    r = Router(cfg, **kwargs)
    async with serve_router(r) as url:
        yield r, url


@asynccontextmanager
async def serve_router(r: Router) -> AsyncIterator[str]:
    """Serve the router ``r`` on a free port (its own HTTP server); yields its base URL."""
    app = create_app(r)
    await app.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{app.port}"
    finally:
        await app.stop(timeout_s=5)


def simple_config(deployments: dict[str, list[str]], routes: dict[str, dict[str, float]],
                  **route_extra: Any) -> dict[str, Any]:
    """Deployments by endpoint URLs; routes as ``{model: {deployment: weight}}``."""
    return {
        "deployments": [{"name": n, "endpoints": [{"url": u} for u in urls],
                         "balancing": {"scrape_metrics": False}}
                        for n, urls in deployments.items()],
        "routes": [{"model": m, **route_extra,
                    "variants": [{"name": d, "deployment": d, "weight": w}
                                 for d, w in arms.items()]}
                   for m, arms in routes.items()],
    }


def sum_samples(text: str, prefix: str) -> dict[str, float]:
    """The samples of exposition ``text`` named ``prefix...``, summed over their label sets
    (by sample name: a histogram's ``_count`` and ``_sum`` stay apart)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def vllm_totals(base: str) -> dict[str, float]:
    """Every ``vllm:*`` sample at ``{base}/metrics``, summed over its label sets."""
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        return sum_samples(await r.text(), "vllm:")
