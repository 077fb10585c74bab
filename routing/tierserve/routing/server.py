"""The router's HTTP/1.1 server: an asyncio protocol on httptools' C parser.

aiohttp.web's request handling (request and response objects, header multidicts, the
payload stream and writer) was about a third of the router's CPU under 1,000 open
streams (docs/router.md, profile). This server parses with httptools and hands the
handler a :class:`Request` with what the router reads: method, path, headers by
lower-cased name, and the whole body. The handler answers through the request:
:meth:`Request.respond` (a complete answer), or :meth:`Request.start_stream`,
:meth:`Request.write` (already framed bytes: see :attr:`Request.chunked`) and
:meth:`Request.end_stream` for SSE. Keep-alive, pipelined requests (answered in order),
``Expect: 100-continue`` and HTTP/1.0 clients (streams end by closing) are handled here.

Limits, each answered with the router's JSON error by the handler (:attr:`Request.
rejected`): a body over ``body_limit()`` bytes (413; by ``Content-Length`` or while
reading chunks; the bytes past the limit are discarded, not kept, so the client still
reads the answer), a URL over 8 KiB (414), header fields over 16 KiB or 64 KiB of
headers in all (431). Unparseable requests get 400 and the connection closes. Idle
keep-alive connections close after ``keepalive_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from http import HTTPStatus
from typing import Any, cast

import httptools

from tierserve.routing import eager
from tierserve.routing.errors import error_body

log = logging.getLogger(__name__)
MAX_URL = 8192
MAX_FIELD = 16384  # what the router allowed under aiohttp (max_field_size)
MAX_HEADERS = 65536
_DISCARD_MAX = 64 * 2**20  # past this a refused body is not read on: the connection closes
_PIPELINE_MAX = 16  # queued requests on one connection before reading pauses
_now = time.monotonic
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

Handler = Callable[["Request"], Coroutine[Any, Any, None]]


class Request:
    """One request and its answer; ``headers`` are keyed by lower-case name."""

    __slots__ = ("_conn", "body", "chunked", "finished", "headers", "keep_alive", "method",
                 "path", "rejected", "started")

    def __init__(self, conn: Conn, method: str, path: str, headers: dict[str, str],
                 body: bytes, rejected: tuple[int, str] | None, keep_alive: bool,
                 http10: bool) -> None:
        self._conn, self.method, self.path, self.headers = conn, method, path, headers
        self.body, self.rejected, self.keep_alive = body, rejected, keep_alive
        self.chunked = not http10  # HTTP/1.0 clients get streams ended by closing
        self.started = False  # the answer's head was written
        self.finished = False  # ... and its end

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._conn.transport

    @property
    def gone(self) -> bool:
        t = self._conn.transport
        return t is None or t.is_closing()

    def _head(self, status: int, headers: Iterable[tuple[str, str]], framing: bytes) -> bytes:
        self.started = True
        if not self._conn.server.serving:
            self.keep_alive = False  # shutting down: no further request on this one
        lines = [b"HTTP/1.1 %d %b\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        lines += [f"{k}: {v}\r\n".encode("latin-1") for k, v in headers]
        lines.append(framing)
        lines.append(b"\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
        return b"".join(lines)

    def respond(self, status: int, body: bytes, content_type: str,
                headers: Iterable[tuple[str, str]] = ()) -> None:
        """The whole answer, with ``Content-Length``."""
        head = self._head(status, [("Content-Type", content_type), *headers],
                          b"Content-Length: %d\r\n" % len(body))
        self.finished = True
        t = self._conn.transport
        if t is not None and not t.is_closing():
            t.write(head + body)

    def stream_head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        """The head of a streamed answer (chunked, or closed at the end for HTTP/1.0)."""
        if not self.chunked:
            self.keep_alive = False
        return self._head(status, headers,
                          b"Transfer-Encoding: chunked\r\n" if self.chunked else b"")

    def write(self, data: bytes) -> None:
        t = self._conn.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def frame(self, data: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data

    def ending(self) -> bytes:
        """The bytes that end a streamed answer (the last chunk; nothing for HTTP/1.0,
        whose stream ends when the connection closes); it counts as finished now."""
        self.finished = True
        return b"0\r\n\r\n" if self.chunked else b""

    def end_stream(self) -> None:
        """End a streamed answer, unless its end went out already (:meth:`ending`)."""
        if not self.finished:
            self.write(self.ending())

    async def drain(self) -> None:
        """Wait while the client's write buffer is over the high-water mark."""
        await self._conn.drain()


class Conn(asyncio.Protocol):
    """One client connection: parses requests and answers them one after another."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self.busy = False
        self.idle_since = _now()
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused_writing = False
        self._paused_reading = False
        self._begin()

    def _begin(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._rejected: tuple[int, str] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        self._queue.clear()
        self._wake_drain()
        # the parser holds this protocol's callbacks: a cycle per connection, broken here
        # so a closed connection is freed by reference counting (no data comes after this)
        del self._parser

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._wake_drain()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._fail("malformed HTTP request")

    def _fail(self, message: str) -> None:
        """An unparseable request: 400 (unless an answer is under way), then close."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if not self.busy:
            body = error_body(message, "invalid_request_error", "invalid_request", None,
                              self.server.new_id())
            t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body))
        t.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._begin()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            self._url = self._url[:MAX_URL]
            self._reject(414, "request URL is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if len(value) > MAX_FIELD or self._header_bytes > MAX_HEADERS:
            self._reject(431, "request headers are too large")
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.body_limit():
            self._reject(413, "request body exceeds the limit")
        if (self._rejected is None and self.transport is not None
                and self._headers.get("expect", "").lower() == "100-continue"):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._rejected is not None:
            if self._size > _DISCARD_MAX and self.transport is not None:
                self.transport.close()
            return
        if self._size > self.server.body_limit():
            self._reject(413, "request body exceeds the limit")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        p = self._parser
        path = self._url.split(b"?", 1)[0].decode("latin-1")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(self, p.get_method().decode("latin-1"), path, self._headers, body,
                      self._rejected, p.should_keep_alive() and self._rejected is None,
                      p.get_http_version() == "1.0")
        self._queue.append(req)
        if not self.busy:
            self._next()
        elif len(self._queue) >= _PIPELINE_MAX and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()

    def _reject(self, status: int, message: str) -> None:
        if self._rejected is None:
            self._rejected = (status, message)
            self._body = []

    # answering
    def _next(self) -> None:
        req = self._queue.popleft()
        self.busy = True
        # Eagerly: the handler runs now, up to its first wait (for a stream: until the
        # upstream request is written), not after the loop's current batch (eager.py).
        eager.start(self.server.handler(req), lambda failure: self._answered(req, failure),
                    self.server.loop)

    def _answered(self, req: Request, failure: BaseException | None) -> None:
        self.busy = False
        self.idle_since = _now()
        t = self.transport
        failed = failure is not None
        if failed:
            log.error("request handler failed", exc_info=failure)
        self.server.answered()
        if t is None or t.is_closing():
            return
        if failed or not req.finished or not req.keep_alive:
            t.close()  # an unfinished or final answer: the client sees the end by the close
        elif self._queue:
            self._next()
        elif self._paused_reading:
            self._paused_reading = False
            t.resume_reading()

    def _wake_drain(self) -> None:
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def drain(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            raise ConnectionResetError("client went away")
        if self._paused_writing:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            self._drain_waiter = None
            if t.is_closing():
                raise ConnectionResetError("client went away")


class HttpServer:
    """Listens and keeps the connections; :meth:`stop` drains in-flight requests."""

    def __init__(self, handler: Handler, *, body_limit: Callable[[], int],
                 new_id: Callable[[], str], keepalive_s: float = 75.0) -> None:
        self.handler, self.body_limit, self.new_id = handler, body_limit, new_id
        self.conns: set[Conn] = set()
        self.serving = False
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the one it serves on
        self._keepalive_s = keepalive_s
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._quiet: asyncio.Event | None = None

    async def start(self, host: str, port: int, *, backlog: int = 4096) -> None:
        loop = self.loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Conn(self), host, port,
                                                backlog=backlog, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.serving = True
        self._sweeper = loop.call_later(self._keepalive_s / 4, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle longer than ``keepalive_s`` (one timer for all)."""
        limit = _now() - self._keepalive_s
        for conn in [c for c in self.conns if not c.busy and c.idle_since < limit]:
            if conn.transport is not None:
                conn.transport.close()
        self._sweeper = asyncio.get_running_loop().call_later(self._keepalive_s / 4,
                                                              self._sweep)

    def answered(self) -> None:
        if self._quiet is not None and not any(c.busy for c in self.conns):
            self._quiet.set()

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop listening, let requests in flight finish (at most ``timeout_s``), close."""
        self.serving = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in [c for c in self.conns if not c.busy]:
            if conn.transport is not None:
                conn.transport.close()
        if any(c.busy for c in self.conns):
            self._quiet = asyncio.Event()
            try:
                await asyncio.wait_for(self._quiet.wait(), timeout_s)
            except TimeoutError:
                log.warning("%d requests still running at shutdown",
                            sum(c.busy for c in self.conns))
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
