"""The operator's probes (operator/health.py) over real HTTP, served by a real event loop.

The loop runs in a thread of its own, as the operator's does in its process; the test
talks to it as the kubelet would (HTTP with a timeout). When the loop is stuck, the
liveness probe gets no answer; once it runs again, it answers. Readiness follows the
reflectors' sync state.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tierserve.core.kube.reflector import Reflector, Resource
from tierserve.dev.cluster.procs import free_port
from tierserve.operator import health

PROBE_TIMEOUT_S = 2.0  # the chart's probes allow 5 s


@dataclass
class Served:
    loop: asyncio.AbstractEventLoop
    port: int
    reflectors: list[Reflector]

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def served() -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    api: Any = None  # the reflectors never run: the test sets their sync state
    reflectors = [Reflector(api, Resource("v1", kind)) for kind in ("Pod", "Service")]
    port = free_port()
    probes = health.Health(reflectors, lambda: False, lambda: 3)
    runner = asyncio.run_coroutine_threadsafe(health.serve(probes, "127.0.0.1", port),
                                              loop).result(timeout=30)
    try:
        yield Served(loop, port, reflectors)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def test_liveness_fails_while_the_event_loop_is_stuck(served: Served) -> None:
    assert served.get("/healthz") == (200, {"alive": True, "leader": False})
    release = threading.Event()
    served.loop.call_soon_threadsafe(release.wait)  # a blocking call inside the loop
    try:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            served.get("/healthz")
    finally:
        release.set()
    assert served.get("/healthz")[0] == 200  # the loop runs again: alive again


def test_readiness_waits_for_every_watch_to_list(served: Served) -> None:
    status, body = served.get("/readyz")
    assert status == 503 and body["ready"] is False
    assert body["watches"] == {"Pod": "starting", "Service": "starting"}
    assert body["queue_depth"] == 3 and body["leader"] is False
    served.loop.call_soon_threadsafe(served.reflectors[0].synced.set)
    assert served.get("/readyz")[0] == 503  # one of two listed
    served.loop.call_soon_threadsafe(served.reflectors[1].synced.set)
    status, body = served.get("/readyz")
    assert status == 200 and body["ready"] is True


def test_a_follower_is_ready_once_synced() -> None:
    """Readiness does not depend on leadership: a follower's warm caches count."""
    api: Any = None
    reflector = Reflector(api, Resource("v1", "Pod"))
    reflector.synced.set()
    assert health.Health([reflector], lambda: False, lambda: 0).ready()
