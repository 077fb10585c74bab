"""``tierserve router --drain-s``: after SIGTERM a stream in flight runs to its end when the
drain window covers it, and is cut when it does not (the chart's preStop and grace
period are sized from this window)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from tierserve.dev.cluster.procs import free_port
from tierserve.dev.testing import simple_config, stub
from tierserve.dev.waiting import wait_until_async

TOKENS, ITL_S = 12, 0.25  # a 3 s stream


def _spawn(cfg: Path, port: int, drain_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tierserve.cli.main", "router", "--config", str(cfg),
         "--port", str(port), "--drain-s", str(drain_s)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def _stream_through_sigterm(url: str, proc: subprocess.Popen[bytes]) -> list[bytes]:
    """Start a stream, SIGTERM the router after its first chunk, read what follows."""
    body = {"model": "m", "stream": True, "max_tokens": TOKENS,
            "messages": [{"role": "user", "content": "hi"}]}
    lines: list[bytes] = []
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                    json=body) as r:
        assert r.status == 200
        try:
            async for line in r.content:
                if line.startswith(b"data:"):
                    lines.append(line.strip())
                    if len(lines) == 1:
                        os.killpg(proc.pid, signal.SIGTERM)
        except aiohttp.ClientPayloadError:
            pass  # the router closed the connection mid-stream
    return lines


@pytest.mark.parametrize(("drain_s", "whole"), [(30.0, True), (0.5, False)])
async def test_a_stream_in_flight_at_sigterm(tmp_path: Path, drain_s: float,
                                             whole: bool) -> None:
    async with stub(name="slow", tokens=TOKENS, itl_s=ITL_S) as (_s, backend):
        cfg = tmp_path / "router.yaml"
        cfg.write_text(yaml.safe_dump(simple_config({"d": [backend]}, {"m": {"d": 1}})))
        port = free_port()
        proc = _spawn(cfg, port, drain_s)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_async(lambda: _ready(url), 30, "the router to serve")
            lines = await _stream_through_sigterm(url, proc)
            assert (lines[-1:] == [b"data: [DONE]"]) is whole, lines
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
