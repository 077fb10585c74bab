"""A lean HTTP/1.1 client for the hot path: one request per connection at a time.

aiohttp's client spends more CPU per request than the rest of the router together
(request objects, header multidicts, timers, tracing hooks). This client writes a
pre-built request head, parses the answer with httptools' C parser, and keeps only what
the router reads: status, content type and body chunks. Body chunks are either queued
with back-pressure (reading pauses while the consumer lags) or, for a relayed stream,
handed synchronously to a sink (:meth:`_Conn.pipe`) without waking a coroutine per
chunk: what one read brought goes to the sink as one piece (one write to the client),
and the piece that completes the message says so, so that the client's end of the
answer goes out in the same write. Deadlines are one timer per request. Errors are typed
for failover: :class:`ConnectFailed` means nothing usable was received (safe to try
another replica); :class:`Broken` means the answer stopped midway. Connections come
from :class:`~tierserve.routing.pool.Pool` (plain TCP or TLS alike).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import httptools

_PAUSE_AT = 64  # queued body chunks before reading pauses
_now = time.monotonic  # the event loop's clock on Linux (uvloop and asyncio)
OnFirst = Callable[[bytes], None]  # given the first body chunk of a 2xx answer


class Sink(Protocol):
    """Where a piped message's body goes."""

    def __call__(self, chunk: bytes) -> bool:
        """A piece of the body (never empty); False asks to pause reading."""
        ...

    def end(self, chunk: bytes) -> None:
        """The message's last piece (maybe empty): the message is complete."""
        ...


def _unset(chunk: bytes) -> bool:
    raise AssertionError("a body piece outside pipe()")


class ConnectFailed(Exception):
    """No answer started: connection refused, reset or closed before the status line."""


class Broken(Exception):
    """The answer started but did not complete."""


class Timeout(Exception):
    """The deadline passed."""


class _Conn(asyncio.Protocol):
    """One connection; a request must finish before the next one starts."""

    def __init__(self, on_lost: Callable[[_Conn], None],
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        # The loop, kept (its pool passes it): Python 3.11's get_running_loop() costs a
        # getpid() system call (a fork check), asked for five times per stream before.
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._piece: bytes | None = None  # the current read's body, for the sink
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
        self._sink: Sink | None = None
        self._to: Callable[[bytes], bool] = _unset  # the sink, while piping
        self._on_first: OnFirst | None = None
        self.last_data = 0.0

    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

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
        # Piping: what this read brought goes to the sink as one piece, with the
        # message's end when it came too (then the sink is done with this message).
        # Inline, not a method, and lean: this runs for every relayed read.
        piece = self._piece
        if piece is not None:  # (pieces are kept only while piping)
            self._piece = None
            self.last_data = _now()
            if self.done:
                self._end_pipe(piece)
            elif not self._to(piece):
                self.pause()
                self._wake()  # pipe() returns so that its caller can drain
        elif self.done and self._sink is not None:
            self._end_pipe(b"")

    def _end_pipe(self, piece: bytes) -> None:
        sink = self._sink
        assert sink is not None
        self._sink, self._to = None, _unset  # on_message_complete woke pipe(): it returns
        sink.end(piece)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.done:
            self._fail(Broken("connection lost") if self.status else
                       ConnectFailed("connection closed before the answer"))
        self._on_lost(self)
        # the parser holds this protocol's callbacks: a cycle per connection, broken here
        # so a closed connection is freed by reference counting (no data comes after this)
        del self._parser

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._sink is not None:  # to the sink when feed_data returns (data_received)
            piece = self._piece
            self._piece = body if piece is None else piece + body
            return
        first = self._on_first
        if first is not None:
            self._on_first = None
            if 200 <= self.status < 300:
                first(body)  # still queued below: the consumer sees it as usual
        self._chunks.append(body)
        if len(self._chunks) >= _PAUSE_AT:
            self.pause()
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
        self._waiter = self.loop().create_future()
        await self._waiter
        self._waiter = None

    def send(self, data: bytes, on_first: OnFirst | None = None) -> None:
        """Write a request; raises :class:`ConnectFailed` on a connection already lost.

        (A fresh connection can be reset between the dial and this call, by a server
        that is dying; the reset must not clear that failure and leave the request
        waiting for an answer that cannot come.)
        """
        if self.closed:
            raise ConnectFailed("connection closed before the request")
        self._reset()
        self._on_first = on_first
        assert self.transport is not None
        self.transport.write(data)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

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
        self.resume()
        return chunk

    async def body(self) -> bytes:
        parts = []
        while chunk := await self.chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def pipe(self, sink: Sink) -> None:
        """Hand every further body chunk to ``sink`` as it arrives, until the message
        ends (returns; the sink's last call says so) or fails (raises). When ``sink``
        returns False reading pauses and this returns early, the message unfinished: the
        caller drains its side and pipes again (which resumes reading)."""
        if self._chunks or self.done:
            chunks = b"".join(self._chunks)
            self._chunks.clear()
            if self.done:
                sink.end(chunks)
                return
            if not sink(chunks):
                self.pause()
                return
        self.resume()
        self._sink, self._to = sink, sink
        try:
            while not self.done and not self._paused:
                if self._error is not None:
                    raise self._error
                await self._wait()
        finally:
            self._sink, self._to = None, _unset

    def expire(self) -> None:
        self._fail(Timeout())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Exchange:
    """One request on one connection, with its deadline timer."""

    def __init__(self, release: Callable[[_Conn], None], conn: _Conn,
                 deadline_handle: asyncio.TimerHandle) -> None:
        self._release, self.conn, self._timer = release, conn, deadline_handle
        self._idle_s = 0.0

    def idle_timeout(self, timeout_s: float) -> None:
        """Replace the deadline with an idle limit between chunks (streams).

        One timer per stream, not per chunk: when it fires it re-arms itself for the
        time left since the last chunk, and expires the stream only after a real gap.
        (A bound method, not a closure that names itself: that closure is a reference
        cycle per stream, left for the cyclic collector.)
        """
        self._timer.cancel()
        self._idle_s = timeout_s
        self.conn.last_data = _now()
        self._timer = self.conn.loop().call_later(timeout_s, self._check_idle)

    def _check_idle(self) -> None:
        left = self.conn.last_data + self._idle_s - _now()
        if left > 0 and not self.conn.closed:
            self._timer = self.conn.loop().call_later(left, self._check_idle)
        else:
            self.conn.expire()

    def finish(self) -> None:
        self._timer.cancel()
        self._release(self.conn)

    def abort(self) -> None:
        self._timer.cancel()
        self.conn.close()
