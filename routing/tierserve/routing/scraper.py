"""Scrapes engines' vLLM-format ``/metrics`` for queue depth (the ``queue`` scorer).

Only two gauges matter: ``vllm:num_requests_waiting`` and ``vllm:num_requests_running``
(summed over label sets). A failed scrape leaves the last values for one interval and then
zeroes them, so a dead metrics endpoint neither blocks routing nor pins a stale queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import aiohttp

from tierserve.core import vllm_names as names
from tierserve.routing.state import DeploymentRuntime

log = logging.getLogger(__name__)
WAITING = names.WAITING
RUNNING = names.RUNNING
QUEUE_PREFIX = "vllm:num_requests_"  # both gauges; a cheap filter before parsing


def parse_queue_metrics(text: str) -> tuple[float, float] | None:
    """(waiting, running) from Prometheus text, or ``None`` when neither is present."""
    waiting = running = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(QUEUE_PREFIX):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            value = float(line.rsplit(" ", 1)[-1])
        except ValueError:
            continue
        if name == WAITING:
            waiting, found = waiting + value, True
        elif name == RUNNING:
            running, found = running + value, True
    return (waiting, running) if found else None


class Scraper:
    """A background loop over every endpoint of every scraping deployment."""

    def __init__(self, session: aiohttp.ClientSession,
                 deployments: Callable[[], Iterable[DeploymentRuntime]]) -> None:
        self._session, self._deployments = session, deployments

    async def run(self) -> None:
        while True:
            deps = [d for d in self._deployments() if d.cfg.balancing.scrape_metrics]
            interval = min((d.cfg.balancing.scrape_interval_s for d in deps), default=1.0)
            await asyncio.gather(*(self._scrape(d, interval) for d in deps))
            await asyncio.sleep(interval)

    async def _scrape(self, dep: DeploymentRuntime, interval: float) -> None:
        timeout = aiohttp.ClientTimeout(total=min(interval, 2.0))
        for ep in list(dep.endpoints):
            if not ep.ready:
                continue
            try:
                async with self._session.get(ep.base + "/metrics", timeout=timeout) as resp:
                    text = await resp.text() if resp.status == 200 else ""
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                text = ""
            parsed = parse_queue_metrics(text)
            ep.waiting, ep.running = parsed if parsed is not None else (0.0, 0.0)
