"""The router's own HTTP/1.1 server on a real socket: framing, limits, keep-alive, drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from tierserve.core.routerconfig import parse_config
from tierserve.dev.testing import simple_config, stub
from tierserve.routing.app import Router, RouterApp, create_app

HOST = "127.0.0.1"

BODY = orjson.dumps({"model": "m", "max_tokens": 2,
                     "messages": [{"role": "user", "content": "hi"}]})
STREAM = orjson.dumps({"model": "m", "max_tokens": 3, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})


def _post(body: bytes, *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST /v1/chat/completions HTTP/{version}", "Host: x",
            "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One answer's head and body (Content-Length or chunked)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lower = head.lower()
    if b"content-length:" in lower:
        n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        return head, await reader.readexactly(n)
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return head, body
        body += chunk[:-2]


@asynccontextmanager
async def _served(**behaviour: Any) -> AsyncIterator[tuple[RouterApp, int]]:
    async with stub(name="s", **behaviour) as (_s, backend):
        cfg = simple_config({"d": [backend]}, {"m": {"d": 1}})
        cfg["server"] = {"max_body_bytes": 2048}
        app = create_app(Router(parse_config(cfg)))
        await app.start("127.0.0.1", 0)
        try:
            yield app, app.port
        finally:
            await app.stop(timeout_s=5)


async def test_keep_alive_pipelining_and_expect_continue() -> None:
    async with _served() as (app, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        # two pipelined requests, then one with Expect: 100-continue, on one connection
        writer.write(_post(BODY) + _post(STREAM))
        head, body = await _read_answer(reader)
        assert head.startswith(b"HTTP/1.1 200") and b'"choices"' in body
        head, body = await _read_answer(reader)
        assert b"text/event-stream" in head and body.endswith(b"data: [DONE]\n\n")
        writer.write(_post(b"", "Expect: 100-continue"))
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
        head, body = await _read_answer(reader)
        assert head.startswith(b"HTTP/1.1 400") and b"request_id" in body
        assert len(app.server.conns) == 1
        writer.close()


async def test_limits_and_malformed_requests() -> None:
    async with _served() as (_app, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(_post(b"x" * 5000))  # over max_body_bytes: refused, read and dropped
        head, body = await _read_answer(reader)
        assert head.startswith(b"HTTP/1.1 413") and b"request_too_large" in body
        assert b"connection: close" in head.lower()
        assert await reader.read() == b""  # then closed
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(_post(BODY, "X-Big: " + "a" * 20000))
        head, body = await _read_answer(reader)
        assert head.startswith(b"HTTP/1.1 431") and b"request_id" in body
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        head, body = await _read_answer(reader)
        assert head.startswith(b"HTTP/1.1 400") and orjson.loads(body)["error"]["request_id"]
        assert await reader.read() == b""


async def test_http10_stream_ends_by_closing() -> None:
    async with _served() as (_app, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(_post(STREAM, version="1.0"))
        raw = await asyncio.wait_for(reader.read(), 10)  # to the close
        head, _sep, body = raw.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower()
        assert body.startswith(b"data: ") and body.endswith(b"data: [DONE]\n\n")


async def test_stop_lets_a_running_stream_finish() -> None:
    async with _served(itl_s=0.05) as (app, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(_post(STREAM))
        await reader.readuntil(b"data: ")  # the stream is under way
        stopping = asyncio.create_task(app.stop(timeout_s=10))
        rest = await asyncio.wait_for(reader.read(), 10)
        assert rest.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"), rest[-80:]
        await stopping
        try:
            await asyncio.open_connection(HOST, port)
            refused = False
        except OSError:
            refused = True
        assert refused  # no longer listening
