"""Failover: backends killed before and during a response, 5xx, 4xx, timeouts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import aiohttp
import orjson

from tierserve.dev.testing import router, simple_config, stub
from tierserve.dev.waiting import wait_until_async

CHAT: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def _post(url: str, body: dict[str, object], **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                    headers=headers) as r:
        return r.status, await r.read()


async def test_dead_replica_before_response_fails_over() -> None:
    async with stub(name="alive") as (_s, good):
        cfg = simple_config({"d": [_dead_url(), good]}, {"m": {"d": 1}})
        async with router(cfg) as (_r, url):
            for _ in range(10):
                status, body = await _post(url, CHAT)
                assert status == 200 and b"alive" in body
            text = (await _get(url + "/metrics"))
            assert 'tierserve_router_upstream_errors_total{deployment="d",kind="connect"}' in text


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()


async def test_5xx_is_retried_on_another_replica_and_4xx_is_not() -> None:
    async with stub(name="bad", fail_status=503) as (bad, b_url), \
            stub(name="good") as (good, g_url):
        cfg = simple_config({"d": [b_url, g_url]}, {"m": {"d": 1}})
        async with router(cfg) as (_r, url):
            for _ in range(6):
                status, body = await _post(url, CHAT)
                assert status == 200 and b"good" in body
            bad.b.fail_status, before = 404, good.hits + bad.hits
            results = [await _post(url, CHAT) for _ in range(6)]
            assert {s for s, _ in results} <= {200, 404}
            assert good.hits + bad.hits - before == 6  # one upstream call each: no retry


async def test_all_replicas_down_is_502_with_openai_body() -> None:
    cfg = simple_config({"d": [_dead_url(), _dead_url()]}, {"m": {"d": 1}})
    async with router(cfg) as (_r, url):
        status, body = await _post(url, CHAT, **{"x-request-id": "req-42"})
        err = orjson.loads(body)["error"]
        assert status == 502 and err["request_id"] == "req-42" and err["type"] == "api_error"


async def test_engine_5xx_with_openai_body_passes_through_after_retries() -> None:
    async with stub(name="x", fail_status=500) as (_s, backend), \
            router(simple_config({"d": [backend]}, {"m": {"d": 1}})) as (_r, url):
        status, body = await _post(url, CHAT)
        assert status == 500 and orjson.loads(body)["error"]["message"] == "x failed"


async def test_timeout_is_504() -> None:
    async with stub(name="slow", ttft_s=2.0) as (_s, backend):
        cfg = simple_config({"d": [backend]}, {"m": {"d": 1}}, timeout_s=0.2)
        async with router(cfg) as (_r, url):
            status, body = await _post(url, CHAT)
            assert status == 504 and orjson.loads(body)["error"]["code"] == "gateway_timeout"


async def _stream(url: str, max_tokens: int = 6) -> tuple[int, bytes]:
    body = {**CHAT, "stream": True, "max_tokens": max_tokens}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                    json=body) as r:
        return r.status, await r.read()


async def test_backend_dying_mid_stream_gives_an_sse_error_event() -> None:
    async with stub(name="crash", die_after_chunks=2, itl_s=0.01) as (_s, backend), \
            router(simple_config({"d": [backend]}, {"m": {"d": 1}})) as (_r, url):
        status, raw = await _stream(url)
        assert status == 200
        events = [e for e in raw.decode().split("\n\n") if e.startswith("data: ")]
        assert len(events) == 4  # two tokens, the error, [DONE]
        err = orjson.loads(events[2][6:])["error"]
        assert err["code"] == "upstream_stream_broken"
        assert events[3] == "data: [DONE]"


async def test_stream_fails_over_before_the_first_byte() -> None:
    async with stub(name="ok") as (_s, good):
        cfg = simple_config({"d": [_dead_url(), good]}, {"m": {"d": 1}})
        async with router(cfg) as (_r, url):
            for _ in range(5):
                status, raw = await _stream(url)
                assert status == 200 and raw.endswith(b"data: [DONE]\n\n") and b"ok" in raw


def _spawn_stub(port: int, itl_ms: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tierserve.dev.stub", "--port", str(port),
                             "--name", "proc", "--itl-ms", str(itl_ms), "--tokens", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


async def _killed_mid_stream(url: str, proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    """Stream through the router, kill the backend once 3 tokens arrived; the rest."""
    body = {**CHAT, "stream": True, "max_tokens": 200}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                    json=body) as r:
        tokens = 0
        while tokens < 3:
            line = await r.content.readline()
            assert line, "the stream ended before 3 tokens"
            tokens += line.startswith(b"data: ")
        os.killpg(proc.pid, signal.SIGKILL)
        return r.status, await r.read()


async def test_backend_process_killed_during_stream_and_before_next_request() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = _spawn_stub(port, 20)
    backend = f"http://127.0.0.1:{port}"
    try:
        async with stub(name="spare") as (_s, spare):
            async def up() -> bool:
                try:
                    return (await _get(backend + "/health")) == "ok"
                except aiohttp.ClientError:
                    return False
            await wait_until_async(up, 30, "the stub process")
            cfg = simple_config({"d": [backend]}, {"m": {"d": 1}})
            async with router(cfg) as (r, url):
                status, after = await _killed_mid_stream(url, proc)
                assert status == 200
                assert b"upstream_stream_broken" in after
                assert after.endswith(b"data: [DONE]\n\n")
                # now dead before responding: with a spare replica, requests succeed
                r.apply_config(r.snapshot.config.model_copy(update={"deployments": [
                    r.snapshot.config.deployments[0].model_copy(update={"endpoints": [
                        *r.snapshot.config.deployments[0].endpoints,
                        type(r.snapshot.config.deployments[0].endpoints[0])(url=spare)]})]}))
                for _ in range(4):
                    status, body = await _post(url, CHAT)
                    assert status == 200 and b"spare" in body
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def test_stalled_stream_hits_the_idle_timeout_with_an_sse_error() -> None:
    async with stub(name="stall", itl_s=2.0) as (_s, backend), \
            router(simple_config({"d": [backend]}, {"m": {"d": 1}},
                                 stream_idle_timeout_s=0.3)) as (_r, url):
        status, raw = await _stream(url, 5)
        assert status == 200
        # The stub sends its first token at once, then stalls 2 s per token: the idle
        # timeout (0.3 s) cuts the stream after that first token instead of waiting out
        # the stub (which would answer all 5 and no error).
        events = [e for e in raw.decode().split("\n\n") if e.startswith("data: ")]
        assert len(events) == 3  # one token, the error, [DONE]
        assert orjson.loads(events[0][6:])["choices"]
        assert orjson.loads(events[1][6:])["error"]["code"] == "upstream_stream_broken"
        assert events[2] == "data: [DONE]"


async def test_client_leaving_mid_stream_releases_everything() -> None:
    async with stub(name="long", itl_s=0.02, tokens=500) as (s, backend), \
            router(simple_config({"d": [backend]}, {"m": {"d": 1}})) as (r, url):
        dep = r.snapshot.deployments["d"]
        body = {**CHAT, "stream": True, "max_tokens": 500}
        async with aiohttp.ClientSession() as session:
            resp = await session.post(url + "/v1/chat/completions", json=body)
            assert resp.status == 200
            assert (await resp.content.readline()).startswith(b"data: ")
            resp.close()  # the client goes away mid-stream
        await wait_until_async(lambda: dep.endpoints[0].outstanding == 0 and dep.gate.inflight == 0,
                       10, "the router to release the stream")
        await wait_until_async(lambda: s.inflight == 0, 10, "the upstream stream to be aborted")
