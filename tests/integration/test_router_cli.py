"""``tierserve router --config FILE --port PORT`` as a real process, with file reload."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

from tierserve.dev.testing import simple_config, stub
from tierserve.dev.waiting import wait_until_async


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _answer(url: str) -> str | None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                        json=body) as r:
            if r.status != 200:
                return None
            return str((await r.json())["choices"][0]["message"]["content"])
    except aiohttp.ClientError:
        return None


def _spawn(cfg: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tierserve.cli.main", "router", "--config", str(cfg),
         "--port", str(port), "--reload-interval-s", "0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def test_cli_serves_and_reloads_its_config_file(tmp_path: Path) -> None:
    async with stub(name="one") as (_a, one), stub(name="two") as (_b, two):
        cfg = tmp_path / "router.yaml"
        cfg.write_text(yaml.safe_dump(simple_config({"d": [one]}, {"m": {"d": 1}})))
        port = _port()
        proc = _spawn(cfg, port)
        url = f"http://127.0.0.1:{port}"
        try:
            async def answers(name: str) -> bool:
                return await _answer(url) == name

            await wait_until_async(lambda: answers("one"), 30, "the router to serve")
            cfg.write_text(yaml.safe_dump(simple_config({"d": [two]}, {"m": {"d": 1}})))
            await wait_until_async(lambda: answers("two"), 10, "the reloaded config")
            async with aiohttp.ClientSession() as s:
                for path in ("/healthz", "/readyz", "/metrics"):
                    async with s.get(url + path) as r:
                        assert r.status == 200
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_cli_rejects_a_bad_config_naming_the_value(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("deployments: [{name: d, endpoints: [{url: 'gopher://x'}]}]\n")
    out = subprocess.run([sys.executable, "-m", "tierserve.cli.main", "router", "--config",
                          str(cfg), "--port", str(_port())], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2 and "gopher://x" in out.stderr
