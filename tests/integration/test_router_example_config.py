"""``examples/router-config.yaml`` runs as its header says (``tierserve router --config
examples/router-config.yaml --port PORT``): the real command loads it, asks for an API
key from ``TIERSERVE_ROUTER_API_KEYS`` for completions as its ``auth`` block says, and
lists its routes' models. (Its upstreams, ports on 127.0.0.1, are not started: the file
documents the format; the routing itself is tested with stubs elsewhere.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

from tierserve.dev.cluster.procs import free_port, terminate
from tierserve.dev.waiting import wait_until_async

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router-config.yaml"
KEY = "sk-example-test"


async def _models(url: str, key: str) -> tuple[int, list[str]] | None:
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/v1/models",
                                                       headers=headers) as r:
            if r.status != 200:
                return r.status, []
            return 200, sorted(m["id"] for m in (await r.json())["data"])
    except aiohttp.ClientError:
        return None


def _spawn(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TIERSERVE_ROUTER_API_KEYS": f"ci={KEY}"}
    return subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", "router", "--config",
                             str(EXAMPLE), "--port", str(port), "--host", "127.0.0.1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _chat_status(url: str) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                    json=body) as r:
        return r.status


async def test_the_example_config_serves_its_routes_behind_its_keys() -> None:
    routes = sorted(r["model"] for r in yaml.safe_load(EXAMPLE.read_text())["routes"])
    port = free_port()
    proc = _spawn(port)
    url = f"http://127.0.0.1:{port}"
    try:
        async def up() -> bool:
            return await _models(url, KEY) is not None or proc.poll() is not None

        await wait_until_async(up, 60, "the router to listen")
        assert proc.poll() is None, f"the router exited with {proc.returncode}"
        assert await _models(url, KEY) == (200, routes)
        assert await _chat_status(url) == 401  # no key: refused before any upstream
    finally:
        terminate(proc)
