"""A lean HTTP/1.1 client for the hot path: keep-alive pools, one request per connection.

aiohttp's client spends more CPU per request than the rest of the router together
(request objects, header multidicts, timers, tracing hooks). This client writes a
pre-built request head, parses the answer with httptools' C parser, and keeps only what
the router reads: status, content type and body chunks. Body chunks are queued with
back-pressure (reading pauses while the consumer lags). Deadlines are one timer per
request. Errors are typed for failover: :class:`ConnectFailed` means nothing usable was
received (safe to try another replica); :class:`Broken` means the answer stopped midway.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import cast

import httptools

_PAUSE_AT = 64  # queued body chunks before reading pauses
_now = time.monotonic  # the event loop's clock on Linux (uvloop and asyncio)


class ConnectFailed(Exception):
    """No answer started: connection refused, reset or closed before the status line."""


class Broken(Exception):
    """The answer started but did not complete."""


class Timeout(Exception):
    """The deadline passed."""


class _Conn(asyncio.Protocol):
    """One connection; a request must finish before the next one starts."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.content_type = b"application/json"
        self.keep_alive = True
        self.done = False
        self.started = False
        self._chunks: deque[bytes] = deque()
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.last_data = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(Broken("malformed HTTP response"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.done:
            self._fail(Broken("connection lost") if self.status else
                       ConnectFailed("connection closed before the answer"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        if len(self._chunks) >= _PAUSE_AT and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.done = True
        self._wake()

    # consumer side
    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    def send(self, data: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(data)

    async def head(self) -> int:
        """Wait for the status line and headers; returns the status."""
        while not self.status:
            if self._error is not None:
                raise self._error
            await self._wait()
        return self.status

    async def chunk(self) -> bytes:
        """The next body chunk; ``b""`` at the end of the message."""
        while not self._chunks:
            if self.done:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        # Everything queued goes out as one piece: under load the relay then makes one
        # write per burst instead of one per event (adaptive batching, no added delay).
        chunks = self._chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.last_data = _now()
        if self._paused and self.transport:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    async def body(self) -> bytes:
        parts = []
        while chunk := await self.chunk():
            parts.append(chunk)
        return b"".join(parts)

    def expire(self) -> None:
        self._fail(Timeout())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections to one ``host:port``."""

    def __init__(self, host: str, port: int, max_idle: int = 1024) -> None:
        self.host, self.port = host, port
        self._idle: list[_Conn] = []
        self._max_idle = max_idle
        self.prefix = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n".encode()

    async def acquire(self, connect_timeout: float) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        loop = asyncio.get_running_loop()
        try:
            _t, conn = await asyncio.wait_for(
                loop.create_connection(_Conn, self.host, self.port), connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(type(exc).__name__) from None
        return conn

    def release(self, conn: _Conn) -> None:
        """Return a finished connection for reuse, or close it."""
        if conn.done and conn.keep_alive and not conn.closed and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def request_bytes(self, path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\n".encode() + self.prefix
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


class Exchange:
    """One request on one connection, with its deadline timer."""

    def __init__(self, pool: Pool, conn: _Conn, deadline_handle: asyncio.TimerHandle) -> None:
        self.pool, self.conn, self._timer = pool, conn, deadline_handle

    def idle_timeout(self, timeout_s: float) -> None:
        """Replace the deadline with an idle limit between chunks (streams).

        One timer per stream, not per chunk: when it fires it re-arms itself for the
        time left since the last chunk, and expires the stream only after a real gap.
        """
        self._timer.cancel()
        loop = asyncio.get_running_loop()
        self.conn.last_data = loop.time()

        def check() -> None:
            left = self.conn.last_data + timeout_s - loop.time()
            if left > 0 and not self.conn.closed:
                self._timer = loop.call_later(left, check)
            else:
                self.conn.expire()

        self._timer = loop.call_later(timeout_s, check)

    def finish(self) -> None:
        self._timer.cancel()
        self.pool.release(self.conn)

    def abort(self) -> None:
        self._timer.cancel()
        self.conn.close()


async def start(pool: Pool, path: str, body: bytes, *, timeout_s: float,
                connect_timeout_s: float) -> Exchange:
    """Send a request and wait for the answer's head (status and headers).

    A reused keep-alive connection that the server had already closed fails before any
    byte arrives; that one case is retried once on a fresh connection, transparently.
    """
    loop = asyncio.get_running_loop()
    data = pool.request_bytes(path, body)
    for attempt in range(2):
        conn = await pool.acquire(connect_timeout_s)
        timer = loop.call_later(timeout_s, conn.expire)
        conn.send(data)
        try:
            await conn.head()
        except ConnectFailed:
            timer.cancel()
            conn.close()
            if conn.reused and not conn.started and attempt == 0:
                continue
            raise
        except BaseException:
            timer.cancel()
            conn.close()
            raise
        return Exchange(pool, conn, timer)
    raise ConnectFailed("unreachable")
