"""The benchmark's load generator and placement parsing (small and fast; not a benchmark)."""

from __future__ import annotations

import json
import os
import re

import pytest
from aiohttp import web

from tierserve.dev.bench.router import Placement, engine_profile
from tierserve.dev.loadgen import run_nonstream, run_stream, summarize
from tierserve.dev.stub import Behaviour, Stub


async def _stub(itl_s: float = 0.0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(Stub(Behaviour(name="bench", tokens=3, itl_s=itl_s)).app(),
                           access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/v1/chat/completions"


def _body(stream: bool) -> bytes:
    return json.dumps({"model": "bench", "stream": stream, "max_tokens": 3,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()


async def test_open_loop_keeps_its_schedule_and_drops_the_warmup() -> None:
    runner, url = await _stub()
    try:
        samples, window = await run_nonstream(url, _body(False), rate=200, duration=1.0,
                                              warmup=0.25)
    finally:
        await runner.cleanup()
    assert len(samples) == 200  # the 50 warm-up requests are not among them
    out = summarize(samples, window)
    assert out["errors"] == 0
    assert out["achieved_rps"] == pytest.approx(200, rel=0.2)
    starts = [s.start_ns for s in samples]
    assert (starts[-1] - starts[0]) / 1e9 == pytest.approx(199 / 200, abs=0.1)


async def test_streams_count_events_and_gaps() -> None:
    runner, url = await _stub(itl_s=0.01)
    try:
        samples, window = await run_stream(url, _body(True), concurrency=4, duration=0.5,
                                           warmup=0.1)
    finally:
        await runner.cleanup()
    out = summarize(samples, window)
    assert samples and out["errors"] == 0
    assert all(len(s.gaps_ns) >= 2 for s in samples)  # 3 tokens 10 ms apart, then the end
    assert out["gap_p50_ms"] is not None and out["gap_p50_ms"] < 50


def test_placement() -> None:
    p = Placement.parse("target=1,backend=0,loadgen=0+1")
    assert p is not None and p.target == {1} and p.loadgen == {0, 1}
    assert p.describe() == "target=1,backend=0,loadgen=0+1"
    assert Placement.parse("none") is None
    auto = Placement.parse("auto")
    if len(os.sched_getaffinity(0)) >= 2:
        assert auto is not None and not auto.target & auto.backend
    zero = engine_profile(0.0)
    assert zero.step_ms(1000, 10_000) == 0.0


async def test_raw_stub_answers_as_the_aiohttp_stub_does() -> None:
    """The benchmark's backend process (raw protocol) sends what the test stub sends."""
    import aiohttp

    from tierserve.dev.rawstub import RawStub

    behaviour = Behaviour(name="bench", tokens=3, itl_s=0.005)
    server = await RawStub(behaviour).start("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw_url = f"http://127.0.0.1:{port}/v1/chat/completions"
    runner, aio_url = await _stub(itl_s=0.005)
    try:
        async with aiohttp.ClientSession() as s:
            got = []
            for url in (raw_url, aio_url):
                for stream in (False, True):
                    async with s.post(url, data=_body(stream)) as r:
                        assert r.status == 200
                        got.append((r.content_type, await r.read()))
        for raw, aio in ((got[0], got[2]), (got[1], got[3])):
            assert raw[0] == aio[0]
            assert _no_created(raw[1]) == _no_created(aio[1])
        samples, window = await run_stream(raw_url, _body(True), concurrency=4,
                                           duration=0.3, warmup=0.05)
        assert samples and summarize(samples, window)["errors"] == 0
    finally:
        server.close()
        await runner.cleanup()


def _no_created(body: bytes) -> bytes:
    return re.sub(rb'"created":\d+', b"", body)
