"""The stub backend as a raw asyncio protocol server (what ``python -m tierserve.dev.stub``
runs), so that the benchmark's backend is not its bottleneck.

The aiohttp stub (:class:`tierserve.dev.stub.Stub`, for in-process tests that need its
misbehaviours) spends about 4 ms of CPU per 20-chunk stream: a coroutine, a timer and an
aiohttp write per chunk. At 1,000 concurrent streams (about 1,000 streams/s) that is
more than the core it shares with the load generator, so the no-router baseline itself
saturated and the "added" TTFT of every router meant little. This server answers the
same requests with the same bytes (:func:`~tierserve.dev.stub.answer`,
:func:`~tierserve.dev.stub.events`), parses with httptools, builds each stream's events
once, and paces chunks with one ``call_later`` per chunk instead of a coroutine.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httptools
import orjson

from tierserve.dev.stub import Behaviour, answer, events

_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _response(status: int, body: bytes, content_type: bytes = b"application/json") -> bytes:
    reason = b"OK" if status == 200 else b"Error"
    return (b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\nContent-Length: %d\r\n\r\n%b"
            % (status, reason, content_type, len(body), body))


class _Conn(asyncio.Protocol):
    """One client connection; one request at a time (nobody pipelines to a stub)."""

    def __init__(self, server: RawStub) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._server.inflight -= 1
            self._timer = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_begin(self) -> None:
        self._url, self._body = b"", []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep = self._parser.should_keep_alive()
        path = self._url.split(b"?", 1)[0]
        if path in (b"/v1/chat/completions", b"/v1/completions"):
            self._complete(path == b"/v1/chat/completions")
        elif path == b"/health":
            self._end(_response(200, b"ok", b"text/plain"))
        elif path == b"/v1/models":
            self._end(_response(200, orjson.dumps(
                {"object": "list", "data": [{"id": self._server.b.name}]})))
        elif path == b"/metrics":
            self._end(_response(200, self._server.metrics(), b"text/plain"))
        else:
            self._end(_response(404, b'{"error": {"message": "not found"}}'))

    def _end(self, data: bytes) -> None:
        """The last bytes of an answer; the connection closes unless kept alive."""
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(data)
            if not self._keep:
                t.close()

    def _complete(self, chat: bool) -> None:
        s = self._server
        s.hits += 1
        try:
            body: dict[str, Any] = orjson.loads(b"".join(self._body))
        except orjson.JSONDecodeError:
            self._end(_response(400, b'{"error": {"message": "bad json"}}'))
            return
        n = int(body.get("max_tokens") or s.b.tokens)
        if body.get("stream"):
            token, end = s.events(body.get("model"), chat)
            s.inflight += 1
            self._stream(token, end, n, s.b.ttft_s, first=True)
        elif s.b.ttft_s or s.b.itl_s:
            delay = s.b.ttft_s + s.b.itl_s * max(0, n - 1)
            reply = _response(200, orjson.dumps(answer(s.b, body, chat, n)))
            self._timer = asyncio.get_running_loop().call_later(delay, self._late, reply)
            s.inflight += 1
        else:
            self._end(_response(200, orjson.dumps(answer(s.b, body, chat, n))))

    def _late(self, reply: bytes) -> None:
        self._timer = None
        self._server.inflight -= 1
        self._end(reply)

    def _stream(self, token: bytes, end: bytes, left: int, delay: float, *,
                first: bool = False) -> None:
        """Write the next event (the head with the first), then schedule the next one.

        As the aiohttp stub: the head, ``ttft_s``, the first token, ``itl_s`` between
        tokens, and the finish event and ``[DONE]`` right after the last token.
        """
        self._timer = None
        t = self._transport
        if t is None or t.is_closing():
            self._server.inflight -= 1
            return
        out = _STREAM_HEAD if first else b""
        if first and delay:  # the head first, as an engine does, then the first token
            t.write(out)
            self._later(delay, token, end, left)
            return
        if left > 0:
            out += _chunk(token)
            left -= 1
        if left == 0:
            self._server.inflight -= 1
            self._end(out + _chunk(end) + b"0\r\n\r\n")
            return
        t.write(out)
        self._later(self._server.b.itl_s, token, end, left)

    def _later(self, delay: float, token: bytes, end: bytes, left: int) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._stream, token, end,
                                                            left, 0.0)


class RawStub:
    """Counts and the behaviour; :meth:`start` listens."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.b = behaviour
        self.hits = 0
        self.inflight = 0
        self._events: dict[tuple[str, bool], tuple[bytes, bytes]] = {}

    def events(self, model: object, chat: bool) -> tuple[bytes, bytes]:
        key = (str(model), chat)
        got = self._events.get(key)
        if got is None:
            got = self._events[key] = events(self.b.name, model, chat, self.b.finish_reason)
        return got

    def metrics(self) -> bytes:
        name = self.b.name
        return (f'vllm:num_requests_waiting{{model_name="{name}"}} {self.b.waiting}\n'
                f'vllm:num_requests_running{{model_name="{name}"}} {self.inflight}\n').encode()

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Conn(self), host, port, backlog=4096,
                                        reuse_address=True)


async def serve_forever(behaviour: Behaviour, host: str, port: int) -> None:
    server = await RawStub(behaviour).start(host, port)
    async with server:
        await server.serve_forever()
