"""The router's request and stream paths leave no reference cycles behind.

The router serves with the automatic cyclic collector off (``app.tune_gc``): that is
safe only while what a request allocates is freed by reference counting. A real router
in this process relays streamed and plain requests from the load generator (its own
process) to a stub backend (its own process); then a collection that saves what it finds
must find no object of the router's modules and no frame of its code.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tierserve.dev.cluster.procs import free_port
from tierserve.dev.testing import router, simple_config
from tierserve.dev.waiting import wait_until


@pytest.fixture
def backend() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tierserve.dev.stub", "--port", str(port),
                             "--name", "b", "--tokens", "8", "--itl-ms", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url), 30, "the stub backend")
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def _up(url: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _load(url: str, mode: str) -> dict[str, Any]:
    import json
    out = subprocess.run([sys.executable, "-m", "tierserve.dev.loadgen", "--url", url,
                          "--mode", mode, "--duration", "2", "--rate", "50",
                          "--concurrency", "20", "--max-tokens", "8"],
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ours(obj: object) -> bool:
    code = getattr(obj, "f_code", None)
    if code is not None:
        return "/tierserve/routing/" in code.co_filename
    return type(obj).__module__.startswith("tierserve.routing")


async def test_relaying_requests_and_streams_creates_no_cycles(backend: str) -> None:
    async with router(simple_config({"d": [backend]}, {"bench": {"d": 1}})) as (_r, url):
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for mode in ("stream", "nonstream"):
                got = await asyncio.to_thread(_load, url, mode)
                assert got["error_rate"] == 0 and got["achieved_rps"] > 0, got
            gc.collect()
            cyclic = [o for o in gc.garbage if _ours(o)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    names = sorted({type(o).__qualname__ for o in cyclic})
    assert not cyclic, f"{len(cyclic)} router objects were only freed by the collector: {names}"
