"""Upstream pools against real stubs: eviction when the configuration drops an endpoint,
the per-endpoint connection cap, and idle expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tierserve.core.routerconfig import parse_config
from tierserve.dev.stub import Behaviour, Stub
from tierserve.dev.testing import Served, router, served, simple_config
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.upstream import RawStream, UpstreamClient, UpstreamConnectError

BODY = {"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
PATH = "/v1/chat/completions"


@pytest.fixture
async def stubs() -> AsyncIterator[list[tuple[Stub, Served]]]:
    a, b = Stub(Behaviour(name="a")), Stub(Behaviour(name="b"))
    async with served(a.app()) as sa, served(b.app()) as sb:
        yield [(a, sa), (b, sb)]


async def test_an_endpoint_dropped_from_the_config_loses_its_pool(
        stubs: list[tuple[Stub, Served]]) -> None:
    (a, sa), (b, sb) = stubs
    cfg = simple_config({"d": [sa.url, sb.url]}, {"m": {"d": 1}})
    async with router(cfg) as (r, url), aiohttp.ClientSession() as s:
        while not (a.hits and b.hits):  # least-outstanding: both get requests soon
            async with s.post(url + PATH, json=BODY) as resp:
                assert resp.status == 200
            assert a.hits + b.hits < 100
        assert set(r.upstream.pools) == {sa.url, sb.url}
        assert sb.connections() == 1  # idle, kept alive
        r.apply_config(parse_config(simple_config({"d": [sa.url]}, {"m": {"d": 1}})))
        assert set(r.upstream.pools) == {sa.url}
        await wait_until_async(lambda: sb.connections() == 0, 5, "the evicted pool to close")
        hits = b.hits
        for _ in range(3):
            async with s.post(url + PATH, json=BODY) as resp:
                assert resp.status == 200
        assert b.hits == hits
        assert sa.connections() == 1  # the kept endpoint's pool is untouched


async def test_a_stream_on_an_evicted_endpoint_finishes_then_its_connection_closes() -> None:
    stub = Stub(Behaviour(name="s", tokens=4, itl_s=0.05))
    async with served(stub.app()) as server:
        client = UpstreamClient()
        try:
            got = await client.open(server.url, PATH, b'{"stream": true}', timeout_s=5,
                                    connect_timeout_s=2, idle_timeout_s=5)
            assert isinstance(got, RawStream)
            client.retain([])
            assert not client.pools
            rest = b"".join([c async for c in got.chunks()])
            assert (got.first + rest).count(b"data: ") == 6  # 4 tokens, finish, [DONE]
            got.close()
            await wait_until_async(lambda: server.connections() == 0, 5,
                                   "the released connection to close")
        finally:
            client.close()


async def test_the_connection_cap_queues_requests_on_the_open_connections() -> None:
    stub = Stub(Behaviour(name="c", tokens=1, ttft_s=0.05))
    async with served(stub.app()) as server:
        client = UpstreamClient(max_conns=2)
        try:
            results = await asyncio.gather(*(client.buffered(
                server.url, PATH, b'{"max_tokens": 1}', timeout_s=10, connect_timeout_s=5)
                for _ in range(6)))
            assert [g.status for g in results] == [200] * 6
            assert stub.hits == 6
            assert client.pools[server.url].open == 2
            assert server.connections() == 2
        finally:
            client.close()


async def test_at_the_cap_a_request_gives_up_within_its_connect_timeout() -> None:
    stub = Stub(Behaviour(name="h", tokens=3, itl_s=0.5))
    async with served(stub.app()) as server:
        client = UpstreamClient(max_conns=1)
        try:
            held = await client.open(server.url, PATH, b'{"stream": true}', timeout_s=5,
                                     connect_timeout_s=2, idle_timeout_s=5)
            assert isinstance(held, RawStream)
            with pytest.raises(UpstreamConnectError):
                await client.buffered(server.url, PATH, b"{}", timeout_s=5,
                                      connect_timeout_s=0.05)
            assert stub.hits == 1
            held.close()  # mid-stream: the connection closes and its slot frees
            got = await client.buffered(server.url, PATH, b'{"max_tokens": 1}', timeout_s=5,
                                        connect_timeout_s=2)
            assert got.status == 200
        finally:
            client.close()


async def test_idle_connections_expire() -> None:
    stub = Stub(Behaviour(name="i", tokens=1))
    async with served(stub.app()) as server:
        client = UpstreamClient(idle_s=0.1)
        try:
            got = await client.buffered(server.url, PATH, b'{"max_tokens": 1}', timeout_s=5,
                                        connect_timeout_s=2)
            assert got.status == 200
            assert client.pools[server.url].idle == 1
            await wait_until_async(lambda: server.connections() == 0, 5,
                                   "the idle connection to expire")
            assert client.pools[server.url].idle == 0
            assert client.pools[server.url].open == 0
        finally:
            client.close()


def test_pool_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_conns >= 1"):
        UpstreamClient(max_conns=0)
    with pytest.raises(ValueError, match="idle_s > 0"):
        UpstreamClient(idle_s=0)
